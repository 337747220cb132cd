package diffcheck

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rawServer answers one request with a 200 chunked response made of the given chunks.
func rawServer(t *testing.T, chunks []string) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMesos-Stream-Id: s\r\nTransfer-Encoding: chunked\r\n\r\n")
		for _, c := range chunks {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(c), c)
		}
		b.WriteString("0\r\n\r\n")
		_, _ = conn.Write([]byte(b.String()))
	}()
	return &url.URL{Scheme: "http", Host: ln.Addr().String(), Path: "/api/v1/scheduler"}
}

func record(s string) string { return fmt.Sprintf("%d\n%s", len(s), s) }

func TestChunking(t *testing.T) {
	sub, hb := record(`{"type":"SUBSCRIBED"}`), record(`{"type":"HEARTBEAT"}`)
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"one record per chunk", []string{sub, hb, hb}, "one record per chunk"},
		{"two records in one chunk", []string{sub + hb, hb}, "several records in one chunk"},
		{"a record split", []string{sub[:5], sub[5:], hb}, "records split across chunks"},
		{"length alone", []string{sub[:3], sub[3:], hb}, "records split across chunks"},
		{"both", []string{sub + hb[:4], hb[4:]}, "records split across chunks; several records in one chunk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := dialSubscribe(ctx, rawServer(t, tc.chunks), http.Header{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for ev := range s.events {
				types = append(types, ev.Type)
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if s.StreamID != "s" {
				t.Errorf("stream id %q", s.StreamID)
			}
			if got := s.Chunking(); got != tc.want {
				t.Errorf("chunking %q, want %q", got, tc.want)
			}
			if types[0] != "SUBSCRIBED" || types[len(types)-1] != "HEARTBEAT" {
				t.Errorf("events %v", types)
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	r := newRecorder()
	r.red.learn("a1b2-0000", "<framework_id>")
	r.red.learn("a1b2-S1", "<agent_id>")
	r.set("msg", "The stream ID '0b2a6f52-3bd8-4d0e-9d35-6a1c1d5b7e10' included in this request didn't match the stream ID currently associated with framework ID a1b2-0000")
	r.set("agent", "slave(1)@10.0.3.17:5051 on a1b2-S1")
	r.setMasked("too big", "Task uses more resources cpus(allocated: *):5; mem(allocated: *):32 than available cpus(allocated: *):4 on a1b2-S1")
	r.shape("x", map[string]any{"b": []any{map[string]any{"c": "1"}, map[string]any{"c": 2.0, "d": true}}, "e": []any{}})
	want := []Observation{
		{"", "agent", "slave(1)@<ip>:<port> on <agent_id>"},
		{"", "msg", "The stream ID '<uuid>' included in this request didn't match the stream ID currently associated with framework ID <framework_id>"},
		{"", "shape:x.b[].c", "number|string"},
		{"", "shape:x.b[].d", "bool"},
		{"", "shape:x.e", "array"},
		{"", "too big", "Task uses more resources cpus(allocated: *):N; mem(allocated: *):N than available cpus(allocated: *):N on <agent_id>"},
	}
	if diff := cmp.Diff(want, r.Observations()); diff != "" {
		t.Errorf("observations (-want +got):\n%s", diff)
	}
}

func TestCompareAndWriteDiff(t *testing.T) {
	a := []Observation{{"1", "status", "400"}, {"1", "body", "x"}, {"2", "only a", "1"}}
	b := []Observation{{"1", "status", "415"}, {"1", "body", "x"}, {"3", "only b", "2"}}
	diffs := Compare(a, b)
	want := []Difference{{"1", "status", "400", "415"}, {"2", "only a", "1", Absent}, {"3", "only b", Absent, "2"}}
	if diff := cmp.Diff(want, diffs); diff != "" {
		t.Errorf("diffs (-want +got):\n%s", diff)
	}
	var out strings.Builder
	if err := WriteDiff(&out, "sim", "mesos", diffs); err != nil {
		t.Fatal(err)
	}
	wantText := "1\n  status\n    sim:    400\n    mesos:  415\n2\n  only a\n    sim:    1\n    mesos:  <absent>\n" +
		"3\n  only b\n    sim:    <absent>\n    mesos:  2\n3 differences in 3 steps\n"
	if diff := cmp.Diff(wantText, out.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
	if len(Compare(a, a)) != 0 {
		t.Error("a run differs from itself")
	}
}

// An agent the check cannot talk to costs one attempt, and every executor step says why.
func TestUnreachableAgentIsTriedOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close() // hang up before answering
		}
	}()
	s := &scenario{opts: Options{Wait: 5 * time.Second}, rec: newRecorder()}
	s.c = newClient(&url.URL{Scheme: "http", Host: "127.0.0.1:1"}, "", "", 5*time.Second)
	s.agentURL = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	s.executorErrors(context.Background())
	obs := s.rec.Observations()
	if len(obs) != 8 {
		t.Fatalf("%d observations, want an error for each of the 8 steps: %v", len(obs), obs)
	}
	for _, o := range obs {
		if o.Key != "error" || o.Value != obs[0].Value || !strings.Contains(o.Value, "<ip>:<port>") {
			t.Errorf("%+v", o)
		}
	}
	if n := len(accepted); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

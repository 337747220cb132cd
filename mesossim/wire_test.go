package mesossim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/kubemesos/kubemesos/mesossim/internal/wiretest"
)

// TestSchedulerEventsAreOneChunkEach reads a SUBSCRIBE stream chunk by chunk, as Mesos writes it: every
// chunk is exactly one RecordIO record (SUBSCRIBED alone, then the first HEARTBEAT alone, OFFERS over
// 64 KiB in one chunk, UPDATEs), for each response encoding.
func TestSchedulerEventsAreOneChunkEach(t *testing.T) {
	for _, enc := range []struct {
		name    string
		headers map[string]string
		decode  func([]byte, *scheduler.Event) error
	}{
		{"json", map[string]string{"Content-Type": mediaJSON, "Accept": mediaJSON},
			func(b []byte, e *scheduler.Event) error { return json.Unmarshal(b, e) }},
		{"recordio-protobuf", map[string]string{"Content-Type": mediaJSON, "Accept": mediaRecordIO, "Message-Accept": mediaProtobuf},
			func(b []byte, e *scheduler.Event) error { return proto.Unmarshal(b, e) }},
	} {
		t.Run(enc.name, func(t *testing.T) {
			h := newHarness(t, Config{}, 1, "cpus:4;mem:1024")
			// A second agent with large attributes makes an OFFERS event far larger than net/http's
			// 2048-byte response buffer.
			var attrs []mesos.Attribute
			for i := 0; i < 80; i++ {
				attrs = append(attrs, mesos.Attribute{Name: fmt.Sprintf("a%02d", i), Type: mesos.TEXT, Text: &mesos.Value_Text{Value: strings.Repeat("x", 1024)}})
			}
			rs, _ := ParseResources("cpus:4;mem:1024")
			big := newFakeAgent("agent-big", h.m)
			if err := h.m.AddAgent(mesos.AgentInfo{ID: &mesos.AgentID{Value: "agent-big"}, Hostname: "big", Resources: rs, Attributes: attrs}, big); err != nil {
				t.Fatal(err)
			}

			body, _ := json.Marshal(map[string]any{"type": "SUBSCRIBE", "subscribe": map[string]any{"framework_info": fwInfo("chunks", nil)}})
			s, err := wiretest.Post(h.srv.Listener.Addr().String(), "/api/v1/scheduler", enc.headers, body, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Status != 200 || !s.Chunked() {
				t.Fatalf("SUBSCRIBE: status %d, header %v; want 200 and a chunked body", s.Status, s.Header)
			}
			next := func(want scheduler.Event_Type) (*scheduler.Event, int) {
				t.Helper()
				rec, err := s.ReadRecord()
				if err != nil {
					t.Fatalf("waiting for %s: %v", want, err)
				}
				var e scheduler.Event
				if err := enc.decode(rec, &e); err != nil {
					t.Fatalf("decoding %q: %v", rec, err)
				}
				if e.Type != want {
					t.Fatalf("event %s, want %s", e.Type, want)
				}
				return &e, len(rec)
			}
			sub, _ := next(scheduler.Event_SUBSCRIBED)
			next(scheduler.Event_HEARTBEAT)

			h.m.Allocate()
			offers, size := next(scheduler.Event_OFFERS)
			if size <= 64<<10 {
				t.Errorf("OFFERS record is %d bytes, the test wants one over 64 KiB", size)
			}
			var small mesos.Offer
			for _, o := range offers.Offers.Offers {
				if o.AgentID.Value == "agent-0" {
					small = o
				}
			}

			c := &jsonClient{t: t, url: h.url + "/api/v1/scheduler", streamID: s.Header.Get("Mesos-Stream-Id"), fwID: sub.Subscribed.FrameworkID.Value}
			c.mustCall("ACCEPT", launchCall([]any{map[string]any{"value": small.ID.Value}}, 0, commandTask("t1", map[string]any{"value": "agent-0"}, 1, 128)))
			for _, want := range []mesos.TaskState{mesos.TASK_RUNNING} {
				if e, _ := next(scheduler.Event_UPDATE); e.Update.Status.GetState() != want {
					t.Fatalf("update %s, want %s", e.Update.Status.GetState(), want)
				}
			}
			h.clock.Step(h.m.cfg.HeartbeatInterval)
			next(scheduler.Event_HEARTBEAT)

			// The end of the stream is the last chunk, with nothing after the records.
			h.m.Close()
			if _, err := s.ReadChunk(); err != io.EOF {
				t.Errorf("after the stream closed: %v, want the last chunk", err)
			}
		})
	}
}

// BenchmarkSchedulerStreamEvents: events queued on a subscription and read by a raw client. One op =
// one UPDATE event (about 300 bytes of protobuf) through the stream's pump, written as its own
// RecordIO record, chunk and flush.
func BenchmarkSchedulerStreamEvents(b *testing.B) {
	m := NewMaster(Config{Log: quietLog()})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	defer m.Close()
	body, _ := json.Marshal(map[string]any{"type": "SUBSCRIBE", "subscribe": map[string]any{"framework_info": fwInfo("bench", nil)}})
	s, err := wiretest.Post(srv.Listener.Addr().String(), "/api/v1/scheduler",
		map[string]string{"Content-Type": mediaJSON, "Accept": mediaRecordIO, "Message-Accept": mediaProtobuf}, body, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 2; i++ { // SUBSCRIBED, HEARTBEAT
		if _, err := s.ReadChunk(); err != nil {
			b.Fatal(err)
		}
	}
	m.lock()
	var st *stream
	for _, f := range m.frameworks {
		st = f.stream
	}
	m.unlock()
	state, src, msg := mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, strings.Repeat("m", 200)
	ev := &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: mesos.TaskStatus{
		TaskID: mesos.TaskID{Value: "task"}, State: &state, Source: &src, Message: &msg, UUID: newUUIDBytes()}}}
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		// Records are counted whatever their chunking, so that the benchmark also runs against a
		// writer that batches records into chunks.
		var pending []byte
		for n := 0; n < b.N; {
			chunk, err := s.ReadChunk()
			if err != nil {
				done <- err
				return
			}
			pending = append(pending, chunk...)
			for {
				head, rest, ok := bytes.Cut(pending, []byte("\n"))
				if !ok {
					break
				}
				size, _ := strconv.Atoi(string(head))
				if len(rest) < size {
					break
				}
				pending = rest[size:]
				n++
			}
		}
		done <- nil
	}()
	for i := 0; i < b.N; i++ {
		st.send(ev)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

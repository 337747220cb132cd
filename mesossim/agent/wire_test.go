package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/kubemesos/kubemesos/mesossim/internal/wiretest"
)

const wireTimeout = 20 * time.Second

// silentExecutor is an executor hook that never subscribes, so that a test can subscribe for it.
func silentExecutor(ctx context.Context, _ map[string]string) error {
	<-ctx.Done()
	return nil
}

// TestExecutorEventsAreOneChunkEach subscribes as an executor over a raw connection: SUBSCRIBED,
// LAUNCH (one over 64 KiB too), ACKNOWLEDGED and HEARTBEAT each arrive as exactly one chunk holding
// exactly one RecordIO record, as a Mesos agent writes them.
func TestExecutorEventsAreOneChunkEach(t *testing.T) {
	for _, mt := range []string{mediaJSON, mediaProtobuf} {
		t.Run(mt, func(t *testing.T) {
			m := &fakeMaster{autoAck: true}
			a := newTestAgent(t, m, func(c *Config) {
				c.ExecutorHook = silentExecutor
				c.ExecutorHeartbeatInterval = 20 * time.Millisecond
			})
			fw := testFramework(false)
			info := hookExecutorInfo("raw")
			a.Launch(fw, info, []mesos.TaskInfo{dataTask("t1", "small")}, false)

			sub := executor.Call{Type: executor.Call_SUBSCRIBE, FrameworkID: *fw.ID, ExecutorID: info.ExecutorID, Subscribe: &executor.Call_Subscribe{}}
			body, err := encodeMessage(mt, &sub)
			if err != nil {
				t.Fatal(err)
			}
			s, err := wiretest.Post(a.Endpoint(), "/api/v1/executor", map[string]string{"Content-Type": mt, "Accept": mt}, body, wireTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Status != 200 || !s.Chunked() {
				t.Fatalf("SUBSCRIBE: status %d, header %v; want 200 and a chunked body", s.Status, s.Header)
			}
			// next returns the next event of type want; every chunk on the way must be one record.
			next := func(want executor.Event_Type) (*executor.Event, int) {
				t.Helper()
				for {
					rec, err := s.ReadRecord()
					if err != nil {
						t.Fatalf("waiting for %s: %v", want, err)
					}
					var e executor.Event
					if err := decodeMessage(mt, rec, &e); err != nil {
						t.Fatalf("decoding %q: %v", rec, err)
					}
					if e.Type == want {
						return &e, len(rec)
					}
					if e.Type != executor.Event_HEARTBEAT {
						t.Fatalf("event %s, want %s", e.Type, want)
					}
				}
			}
			next(executor.Event_SUBSCRIBED)
			if e, _ := next(executor.Event_LAUNCH); e.Launch.Task.TaskID.Value != "t1" {
				t.Fatalf("LAUNCH of %s, want t1", e.Launch.Task.TaskID.Value)
			}
			a.Launch(fw, info, []mesos.TaskInfo{dataTask("big", strings.Repeat("d", 70<<10))}, false)
			if _, size := next(executor.Event_LAUNCH); size <= 64<<10 {
				t.Errorf("LAUNCH record is %d bytes, the test wants one over 64 KiB", size)
			}

			st := mesos.TASK_RUNNING
			upd := executor.Call{Type: executor.Call_UPDATE, FrameworkID: *fw.ID, ExecutorID: info.ExecutorID,
				Update: &executor.Call_Update{Status: mesos.TaskStatus{TaskID: mesos.TaskID{Value: "t1"}, State: &st,
					Source: mesos.SOURCE_EXECUTOR.Enum(), UUID: newUUID()}}}
			b, _ := encodeMessage(mediaJSON, &upd)
			resp, err := http.Post("http://"+a.Endpoint()+"/api/v1/executor", mediaJSON, strings.NewReader(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("UPDATE: %d", resp.StatusCode)
			}
			next(executor.Event_ACKNOWLEDGED)
			next(executor.Event_HEARTBEAT)
		})
	}
}

// TestOperatorStreamsAreOneChunkEach reads LAUNCH_NESTED_CONTAINER_SESSION and ATTACH_CONTAINER_OUTPUT
// responses chunk by chunk: every chunk is exactly one ProcessIO record, including records larger than
// net/http's 2048-byte response buffer, and the output arrives whole.
func TestOperatorStreamsAreOneChunkEach(t *testing.T) {
	f := newNestedFixture(t)
	addr := f.a.Endpoint()
	const size = 200000
	readAll := func(t *testing.T, s *wiretest.Stream, messageType string) (stdout, stderr string, largest int) {
		t.Helper()
		if s.Status != 200 || !s.Chunked() {
			t.Fatalf("status %d, header %v; want 200 and a chunked body", s.Status, s.Header)
		}
		for {
			rec, err := s.ReadRecord()
			if err == io.EOF {
				return stdout, stderr, largest
			}
			if err != nil {
				t.Fatal(err)
			}
			largest = max(largest, len(rec))
			var p agentapi.ProcessIO
			if err := decodeMessage(messageType, rec, &p); err != nil {
				t.Fatalf("decoding %q: %v", rec, err)
			}
			if p.Data == nil {
				continue
			}
			switch p.Data.Type {
			case agentapi.ProcessIO_Data_STDOUT:
				stdout += string(p.Data.Data)
			case agentapi.ProcessIO_Data_STDERR:
				stderr += string(p.Data.Data)
			}
		}
	}
	cmd := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a; echo done >&2", size)
	for _, mt := range []string{mediaJSON, mediaProtobuf} {
		t.Run("session/"+mt, func(t *testing.T) {
			call := agentapi.Call{Type: agentapi.Call_LAUNCH_NESTED_CONTAINER_SESSION, LaunchNestedContainerSession: &agentapi.Call_LaunchNestedContainerSession{
				ContainerID: f.child("s-" + strings.ReplaceAll(mt, "/", "-")), Command: shell(cmd)}}
			body, _ := encodeMessage(mediaJSON, &call)
			s, err := wiretest.Post(addr, "/api/v1", map[string]string{"Content-Type": mediaJSON, "Accept": mediaRecordIO, "Message-Accept": mt}, body, wireTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			stdout, stderr, largest := readAll(t, s, mt)
			if len(stdout) != size || strings.Trim(stdout, "a") != "" || stderr != "done\n" {
				t.Errorf("session output: %d bytes of stdout, stderr %q; want %d bytes and \"done\\n\"", len(stdout), stderr, size)
			}
			if largest <= 2048 {
				t.Errorf("largest record %d bytes: the test wants records larger than net/http's buffer", largest)
			}
		})
	}
	t.Run("attach", func(t *testing.T) {
		c := f.child("talker")
		// Only a container with a TTY can be attached to (attach.go); its stderr is its terminal.
		if err := f.launch(c, shell("while [ ! -f go ]; do sleep 0.01; done; "+cmd), withTTY(nil)); err != nil {
			t.Fatal(err)
		}
		call := agentapi.Call{Type: agentapi.Call_ATTACH_CONTAINER_OUTPUT, AttachContainerOutput: &agentapi.Call_AttachContainerOutput{ContainerID: c}}
		body, _ := json.Marshal(&call)
		s, err := wiretest.Post(addr, "/api/v1", map[string]string{"Content-Type": mediaJSON, "Accept": mediaRecordIO, "Message-Accept": mediaJSON}, body, wireTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := os.WriteFile(filepath.Join(f.dir, "containers", "talker", "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, _ := readAll(t, s, mediaJSON)
		if want := strings.Repeat("a", size) + "done\r\n"; stdout != want || stderr != "" {
			t.Errorf("attached output: %d bytes of stdout (ending %q), stderr %q; want %d a's and done", len(stdout), stdout[max(0, len(stdout)-10):], stderr, size)
		}
	})
}

// decodeMessage decodes an event or response the agent encoded as contentType.
func decodeMessage(contentType string, body []byte, m wireMessage) error {
	if contentType == mediaProtobuf {
		return m.Unmarshal(body)
	}
	return json.Unmarshal(body, m)
}

package sandboxexec_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/kubemesos/kubemesos/executor/sandboxexec"
)

// fakeAgent is the executor API of an agent the test drives: each SUBSCRIBE is recorded and gets a
// stream the test writes events into and may cut; UPDATEs are recorded and answered 202.
type fakeAgent struct {
	// subscribeDelay holds back a SUBSCRIBE's response (headers included), as a loaded agent does.
	subscribeDelay time.Duration

	mu      sync.Mutex
	subs    []*mesosexec.Call_Subscribe
	updates []mesos.TaskStatus
	streams chan *stream
}

type stream struct {
	events chan mesosexec.Event
	cut    chan struct{}
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var call mesosexec.Call
	if err := call.Unmarshal(b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch call.GetType() {
	case mesosexec.Call_UPDATE:
		f.mu.Lock()
		f.updates = append(f.updates, call.GetUpdate().Status)
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case mesosexec.Call_SUBSCRIBE:
		f.mu.Lock()
		f.subs = append(f.subs, call.GetSubscribe())
		f.mu.Unlock()
		s := &stream{events: make(chan mesosexec.Event, 10), cut: make(chan struct{})}
		select {
		case f.streams <- s:
		case <-r.Context().Done():
			return
		}
		select {
		case <-time.After(f.subscribeDelay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case ev := <-s.events:
				data, _ := ev.Marshal()
				// RecordIO: "<length>\n<record>".
				_, _ = w.Write(append([]byte(strconv.Itoa(len(data))+"\n"), data...))
				w.(http.Flusher).Flush()
			case <-s.cut:
				return
			case <-r.Context().Done():
				return
			}
		}
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

func (f *fakeAgent) update(i int) (mesos.TaskStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.updates) {
		return mesos.TaskStatus{}, false
	}
	return f.updates[i], true
}

func runAgainst(t *testing.T, checkpoint bool) (*fakeAgent, chan error) {
	t.Helper()
	return runAgainstAgent(t, &fakeAgent{streams: make(chan *stream, 4)}, checkpoint, sandboxexec.Config{})
}

// runAgainstAgent runs a sandbox executor against f with cfg (its environment and signals set here).
func runAgainstAgent(t *testing.T, f *fakeAgent, checkpoint bool, cfg sandboxexec.Config) (*fakeAgent, chan error) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	env := map[string]string{
		"MESOS_FRAMEWORK_ID": "fw-1", "MESOS_EXECUTOR_ID": "kubemesos-pod-u9", "MESOS_SANDBOX": t.TempDir(),
		"MESOS_AGENT_ENDPOINT": strings.TrimPrefix(srv.URL, "http://"), "MESOS_CHECKPOINT": strconv.FormatBool(checkpoint),
		"MESOS_RECOVERY_TIMEOUT": "15secs", "MESOS_SUBSCRIPTION_BACKOFF_MAX": "100ms",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cfg.Getenv, cfg.NoSignals = func(k string) string { return env[k] }, true
		done <- sandboxexec.Run(ctx, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f, done
}

func subscribed() mesosexec.Event {
	return mesosexec.Event{Type: mesosexec.Event_SUBSCRIBED, Subscribed: &mesosexec.Event_Subscribed{
		ExecutorInfo:  mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "kubemesos-pod-u9"}},
		FrameworkInfo: mesos.FrameworkInfo{User: "root", Name: "kubemesos"},
		AgentInfo:     mesos.AgentInfo{Hostname: "agent0", ID: &mesos.AgentID{Value: "agent-S0"}},
		ContainerID:   &mesos.ContainerID{Value: "c1"},
	}}
}

func awaitUpdate(t *testing.T, f *fakeAgent, i int) mesos.TaskStatus {
	t.Helper()
	var st mesos.TaskStatus
	waitFor(t, "update "+strconv.Itoa(i), func() bool {
		var ok bool
		st, ok = f.update(i)
		return ok
	})
	return st
}

// A checkpointing framework's sandbox executor survives an agent restart: it resubscribes with its
// unacknowledged task and update, as Mesos' executor driver does, and goes on.
func TestSandboxExecutorResubscribes(t *testing.T) {
	f, done := runAgainst(t, true)
	s1 := <-f.streams
	s1.events <- subscribed()
	task := mesos.TaskInfo{Name: "sandbox", TaskID: mesos.TaskID{Value: "sandbox-u9"}}
	s1.events <- mesosexec.Event{Type: mesosexec.Event_LAUNCH, Launch: &mesosexec.Event_Launch{Task: task}}
	running := awaitUpdate(t, f, 0)
	if running.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("first update %s", running.GetState())
	}
	close(s1.cut) // the agent restarts before acknowledging
	s2 := <-f.streams
	f.mu.Lock()
	sub := f.subs[1]
	f.mu.Unlock()
	if len(sub.UnacknowledgedTasks) != 1 || sub.UnacknowledgedTasks[0].TaskID.Value != "sandbox-u9" ||
		len(sub.UnacknowledgedUpdates) != 1 || string(sub.UnacknowledgedUpdates[0].Status.UUID) != string(running.UUID) {
		t.Errorf("resubscription carries tasks %v and updates %v, want the task and its TASK_RUNNING", sub.UnacknowledgedTasks, sub.UnacknowledgedUpdates)
	}
	s2.events <- subscribed()
	s2.events <- mesosexec.Event{Type: mesosexec.Event_ACKNOWLEDGED, Acknowledged: &mesosexec.Event_Acknowledged{TaskID: task.TaskID, UUID: running.UUID}}
	s2.events <- mesosexec.Event{Type: mesosexec.Event_KILL, Kill: &mesosexec.Event_Kill{TaskID: task.TaskID}}
	killed := awaitUpdate(t, f, 1)
	if killed.GetState() != mesos.TASK_KILLED {
		t.Fatalf("second update %s", killed.GetState())
	}
	select {
	case err := <-done:
		t.Fatalf("Run ended before the acknowledgement of TASK_KILLED: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	s2.events <- mesosexec.Event{Type: mesosexec.Event_ACKNOWLEDGED, Acknowledged: &mesosexec.Event_Acknowledged{TaskID: task.TaskID, UUID: killed.UUID}}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end after the acknowledgement")
	}
}

// A SUBSCRIBE whose response comes later than any other call may take is waited for, as Mesos' executor
// library waits: the LAUNCH written to it reaches the executor. An executor that gave up on it and
// subscribed again would not list that task, and the agent would drop it (Slave::subscribe).
func TestSandboxExecutorWaitsForASlowSubscribe(t *testing.T) {
	f := &fakeAgent{streams: make(chan *stream, 4), subscribeDelay: time.Second}
	runAgainstAgent(t, f, true, sandboxexec.Config{CallTimeout: 100 * time.Millisecond})
	s1 := <-f.streams
	s1.events <- subscribed()
	task := mesos.TaskInfo{Name: "sandbox", TaskID: mesos.TaskID{Value: "sandbox-u9"}}
	s1.events <- mesosexec.Event{Type: mesosexec.Event_LAUNCH, Launch: &mesosexec.Event_Launch{Task: task}}
	if running := awaitUpdate(t, f, 0); running.GetState() != mesos.TASK_RUNNING || running.TaskID != task.TaskID {
		t.Fatalf("first update %s of %s, want TASK_RUNNING of %s", running.GetState(), running.TaskID.Value, task.TaskID.Value)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) != 1 {
		t.Errorf("%d SUBSCRIBEs, want 1: the executor gave up on the first one's response", len(f.subs))
	}
}

// Without checkpointing a broken connection ends the executor (the agent shuts it down anyway).
func TestSandboxExecutorWithoutCheckpointEndsWithTheConnection(t *testing.T) {
	f, done := runAgainst(t, false)
	s1 := <-f.streams
	s1.events <- subscribed()
	// Its TASK_RUNNING shows that SUBSCRIBED, before it, was taken.
	s1.events <- mesosexec.Event{Type: mesosexec.Event_LAUNCH, Launch: &mesosexec.Event_Launch{Task: mesos.TaskInfo{Name: "sandbox", TaskID: mesos.TaskID{Value: "sandbox-u9"}}}}
	awaitUpdate(t, f, 0)
	close(s1.cut)
	select {
	case err := <-done:
		if !errors.Is(err, sandboxexec.ErrDisconnected) {
			t.Errorf("Run = %v, want ErrDisconnected", err)
		}
		done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end")
	}
}

package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// fakeAgentAPI serves the executor API: each SUBSCRIBE becomes a stream the test feeds; UPDATEs are
// recorded and never acknowledged unless the test says so.
type fakeAgentAPI struct {
	mu         sync.Mutex
	subscribes []mesosexec.Call_Subscribe
	updates    []mesos.TaskStatus
	messages   [][]byte
	refuse     bool // answer SUBSCRIBE with 503 (agent down)
	streams    chan *eventStream
	// subscribeDelay holds back a SUBSCRIBE's response (headers included), as a loaded agent does.
	subscribeDelay time.Duration
}

type eventStream struct {
	events chan *mesosexec.Event
	close  chan struct{}
}

func (f *fakeAgentAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var call mesosexec.Call
	if err := call.Unmarshal(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch call.GetType() {
	case mesosexec.Call_UPDATE:
		f.mu.Lock()
		f.updates = append(f.updates, call.GetUpdate().Status)
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case mesosexec.Call_MESSAGE:
		f.mu.Lock()
		f.messages = append(f.messages, call.GetMessage().Data)
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case mesosexec.Call_SUBSCRIBE:
		f.mu.Lock()
		refuse := f.refuse
		if !refuse {
			f.subscribes = append(f.subscribes, *call.GetSubscribe())
		}
		f.mu.Unlock()
		if refuse {
			http.Error(w, "agent is recovering", http.StatusServiceUnavailable)
			return
		}
		s := &eventStream{events: make(chan *mesosexec.Event, 16), close: make(chan struct{})}
		select {
		case <-time.After(f.subscribeDelay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case f.streams <- s:
		case <-r.Context().Done():
			return
		}
		for {
			select {
			case ev := <-s.events:
				b, err := ev.Marshal()
				if err != nil {
					panic(err)
				}
				io.WriteString(w, strconv.Itoa(len(b))+"\n")
				w.Write(b)
				w.(http.Flusher).Flush()
			case <-s.close:
				return
			case <-r.Context().Done():
				return
			}
		}
	default:
		http.Error(w, "unexpected call", http.StatusBadRequest)
	}
}

func (f *fakeAgentAPI) updateStates() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, u := range f.updates {
		out = append(out, u.GetState().String())
	}
	return out
}

// instantRuntime starts containers at once; they run until exit is called or a signal arrives
// (SIGTERM ends them with 0).
type instantRuntime struct {
	mu    sync.Mutex
	procs map[string]chan podworker.ExitStatus
}

func (r *instantRuntime) proc(id string) chan podworker.ExitStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.procs == nil {
		r.procs = map[string]chan podworker.ExitStatus{}
	}
	if r.procs[id] == nil {
		r.procs[id] = make(chan podworker.ExitStatus, 1)
	}
	return r.procs[id]
}

func (r *instantRuntime) Start(_ context.Context, pod *corev1.Pod, c *corev1.Container, attempt int32) (podworker.Handle, error) {
	id := c.Name + "-" + strconv.Itoa(int(attempt))
	r.proc(id)
	return podworker.Handle{ID: id}, nil
}

func (r *instantRuntime) Wait(ctx context.Context, h podworker.Handle) (podworker.ExitStatus, error) {
	select {
	case st := <-r.proc(h.ID):
		return st, nil
	case <-ctx.Done():
		return podworker.ExitStatus{}, ctx.Err()
	}
}

func (r *instantRuntime) Signal(_ context.Context, h podworker.Handle, sig syscall.Signal) error {
	code := int32(0)
	if sig == syscall.SIGKILL {
		code = 137
	}
	r.exit(h.ID, code)
	return nil
}

func (r *instantRuntime) Remove(context.Context, podworker.Handle) error { return nil }

func (r *instantRuntime) exit(id string, code int32) {
	select {
	case r.proc(id) <- podworker.ExitStatus{ExitCode: code}:
	default:
	}
}

type loopHarness struct {
	t      testing.TB
	api    *fakeAgentAPI
	clk    *clocktesting.FakeClock
	rt     *instantRuntime
	logs   *logtest.Hook
	hooks  chan string // "subscribed <container>" and "status <pod> <phase> <done>"
	result chan error
	draws  atomic.Int64
}

// random alternates 0.025 and 0.75: the back-offs it gives are distinct fractions of the maximum.
func (h *loopHarness) random() float64 {
	if h.draws.Add(1)%2 == 1 {
		return 0.025
	}
	return 0.75
}

func startLoop(t testing.TB, checkpoint bool) *loopHarness {
	t.Helper()
	return startLoopWith(t, checkpoint, &fakeAgentAPI{streams: make(chan *eventStream, 4)}, 0)
}

// startLoopWith is startLoop against api, with a Config.CallTimeout.
func startLoopWith(t testing.TB, checkpoint bool, api *fakeAgentAPI, callTimeout time.Duration) *loopHarness {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	h := &loopHarness{t: t, api: api, clk: clocktesting.NewFakeClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)),
		rt: &instantRuntime{}, logs: hook, result: make(chan error, 1), hooks: make(chan string, 1000)}
	env := map[string]string{
		"MESOS_FRAMEWORK_ID": "fw-1", "MESOS_EXECUTOR_ID": "kubemesos-executor", "MESOS_DIRECTORY": t.TempDir(),
		"MESOS_SANDBOX": t.TempDir(), "MESOS_AGENT_ENDPOINT": strings.TrimPrefix(srv.URL, "http://"),
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs", "MESOS_CHECKPOINT": strconv.FormatBool(checkpoint),
		"MESOS_RECOVERY_TIMEOUT": "1mins", "MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs",
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		h.result <- Run(ctx, Config{Getenv: func(k string) string { return env[k] }, KubeClient: fake.NewClientset(),
			Runtime: h.rt, Clock: h.clk, Log: log, Random: h.random, StatusFlushTimeout: time.Second, CallTimeout: callTimeout,
			OnSubscribed: func(s *mesosexec.Event_Subscribed) { h.hooks <- "subscribed " + s.GetContainerID().GetValue() },
			OnPodStatus: func(p *corev1.Pod, st corev1.PodStatus, done bool) {
				h.hooks <- fmt.Sprintf("status %s %s %v", p.Name, st.Phase, done)
			}})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.result:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return h
}

func (h *loopHarness) stream() *eventStream {
	h.t.Helper()
	select {
	case s := <-h.api.streams:
		return s
	case <-time.After(10 * time.Second):
		h.t.Fatal("no SUBSCRIBE")
		return nil
	}
}

func (h *loopHarness) awaitLog(msg string) {
	h.t.Helper()
	waitFor(h.t, "log "+msg, func() bool {
		for _, e := range h.logs.AllEntries() {
			if e.Message == msg {
				return true
			}
		}
		return false
	})
}

// awaitRetryTimer waits until the loop armed its resubscription timer.
func (h *loopHarness) awaitRetryTimer() {
	h.t.Helper()
	waitFor(h.t, "retry timer", h.clk.HasWaiters)
}

func subscribed() *mesosexec.Event {
	return &mesosexec.Event{Type: mesosexec.Event_SUBSCRIBED, Subscribed: &mesosexec.Event_Subscribed{
		ExecutorInfo:  mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"}},
		FrameworkInfo: mesos.FrameworkInfo{Name: "kubemesos", User: "root"},
		AgentInfo:     mesos.AgentInfo{Hostname: "agent0", ID: &mesos.AgentID{Value: "S0"}},
		ContainerID:   &mesos.ContainerID{Value: "executor-container"},
	}}
}

func launchEvent(t testing.TB, pod *corev1.Pod) (*mesosexec.Event, mesos.TaskInfo) {
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.1}})
	ti, err := podtranslate.TaskInfo(pod, mesos.AgentID{Value: "S0"}, mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"}}, res)
	if err != nil {
		t.Fatal(err)
	}
	return &mesosexec.Event{Type: mesosexec.Event_LAUNCH, Launch: &mesosexec.Event_Launch{Task: ti}}, ti
}

func ack(status mesos.TaskStatus) *mesosexec.Event {
	return &mesosexec.Event{Type: mesosexec.Event_ACKNOWLEDGED, Acknowledged: &mesosexec.Event_Acknowledged{TaskID: status.TaskID, UUID: status.UUID}}
}

// A SUBSCRIBE whose response comes later than any other call may take is waited for, as Mesos' executor
// library waits: the LAUNCH the agent writes to it reaches the executor. One that gave up and subscribed
// again would not list that task, and the agent would drop it (Slave::subscribe).
func TestSubscribeWaitsForASlowAgent(t *testing.T) {
	h := startLoopWith(t, true, &fakeAgentAPI{streams: make(chan *eventStream, 4), subscribeDelay: time.Second}, 100*time.Millisecond)
	s1 := h.stream()
	s1.events <- subscribed()
	launch, _ := launchEvent(t, shPod("web", corev1.RestartPolicyNever, 30, "unused"))
	s1.events <- launch
	waitFor(t, "STARTING and RUNNING", func() bool { return len(h.api.updateStates()) == 2 })
	h.api.mu.Lock()
	defer h.api.mu.Unlock()
	if len(h.api.subscribes) != 1 {
		t.Errorf("%d SUBSCRIBEs, want 1: the executor gave up on the first one's response", len(h.api.subscribes))
	}
}

func TestResubscribeCarriesUnacknowledgedTasksAndUpdates(t *testing.T) {
	h := startLoop(t, true)
	s1 := h.stream()
	s1.events <- subscribed()
	launch, ti := launchEvent(t, shPod("web", corev1.RestartPolicyNever, 30, "unused"))
	s1.events <- launch
	waitFor(t, "STARTING and RUNNING", func() bool { return len(h.api.updateStates()) == 2 })
	if diff := cmp.Diff([]string{"TASK_STARTING", "TASK_RUNNING"}, h.api.updateStates()); diff != "" {
		t.Fatalf("updates (-want +got):\n%s", diff)
	}

	// The agent restarts: the stream ends. While disconnected, the pod finishes.
	close(s1.close)
	h.awaitLog("agent closed the connection")
	h.awaitRetryTimer()
	h.rt.exit("main-0", 0)
	h.awaitLog("task ended")
	if n := len(h.api.updateStates()); n != 2 {
		t.Errorf("%d updates sent while disconnected", n)
	}
	h.clk.Step(500 * time.Millisecond)
	s2 := h.stream()
	var hooks []string
	for len(h.hooks) > 0 {
		hooks = append(hooks, <-h.hooks)
	}
	if diff := cmp.Diff([]string{"subscribed executor-container", "status web Pending false", "status web Running false", "status web Succeeded true"}, hooks); diff != "" {
		t.Errorf("hooks (-want +got):\n%s", diff)
	}

	h.api.mu.Lock()
	sub := h.api.subscribes[1]
	first := h.api.updates
	h.api.mu.Unlock()
	var gotTasks []string
	for _, t := range sub.UnacknowledgedTasks {
		gotTasks = append(gotTasks, t.TaskID.Value)
	}
	if diff := cmp.Diff([]string{ti.TaskID.Value}, gotTasks); diff != "" {
		t.Errorf("unacknowledged tasks (-want +got):\n%s", diff)
	}
	var gotUpdates []string
	for _, u := range sub.UnacknowledgedUpdates {
		gotUpdates = append(gotUpdates, u.Status.GetState().String())
	}
	if diff := cmp.Diff([]string{"TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"}, gotUpdates); diff != "" {
		t.Fatalf("unacknowledged updates (-want +got):\n%s", diff)
	}
	for i := range first {
		if string(first[i].UUID) != string(sub.UnacknowledgedUpdates[i].Status.UUID) {
			t.Errorf("update %d resent with another UUID", i)
		}
	}

	// Acknowledging everything retires the task: a later SUBSCRIBE carries nothing, and SHUTDOWN with
	// no pods left ends Run at once.
	s2.events <- subscribed()
	for _, u := range sub.UnacknowledgedUpdates {
		s2.events <- ack(u.Status)
	}
	h.awaitLog("task retired")
	close(s2.close)
	h.awaitRetryTimer()
	h.clk.Step(2 * time.Second) // the most any back-off is
	s3 := h.stream()
	h.api.mu.Lock()
	sub3 := h.api.subscribes[2]
	h.api.mu.Unlock()
	if len(sub3.UnacknowledgedTasks)+len(sub3.UnacknowledgedUpdates) != 0 {
		t.Errorf("third SUBSCRIBE still carries %d tasks, %d updates", len(sub3.UnacknowledgedTasks), len(sub3.UnacknowledgedUpdates))
	}
	s3.events <- subscribed()
	s3.events <- &mesosexec.Event{Type: mesosexec.Event_SHUTDOWN}
	select {
	case err := <-h.result:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		h.result <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end on SHUTDOWN")
	}
}

func TestRecoveryTimeout(t *testing.T) {
	h := startLoop(t, true)
	s1 := h.stream()
	s1.events <- subscribed()
	h.api.mu.Lock()
	h.api.refuse = true
	h.api.mu.Unlock()
	close(s1.close)
	// Every attempt waits a random fraction of MESOS_SUBSCRIPTION_BACKOFF_MAX (2 s), as Mesos' executor
	// library does (never the whole back-off doubled past a restarted agent's 2 s re-registration
	// window); after a minute of failures Run gives up.
	for attempts := 0; ; attempts++ {
		select {
		case err := <-h.result:
			if !errors.Is(err, ErrRecoveryTimeout) {
				t.Fatalf("Run = %v, want ErrRecoveryTimeout", err)
			}
			h.result <- err
			var delays []time.Duration
			for _, e := range h.logs.AllEntries() {
				if e.Message == "resubscribing after back-off" {
					delays = append(delays, e.Data["retryIn"].(time.Duration))
				}
			}
			if len(delays) < 5 {
				t.Fatalf("only %d attempts", len(delays))
			}
			if diff := cmp.Diff([]time.Duration{50 * time.Millisecond, 1500 * time.Millisecond, 50 * time.Millisecond, 1500 * time.Millisecond}, delays[:4]); diff != "" {
				t.Errorf("back-off (-want +got):\n%s", diff)
			}
			return
		default:
		}
		if attempts > 1000 {
			t.Fatal("no recovery timeout")
		}
		if h.clk.HasWaiters() {
			h.clk.Step(2 * time.Second)
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

func TestDisconnectWithoutCheckpointEnds(t *testing.T) {
	h := startLoop(t, false)
	s1 := h.stream()
	s1.events <- subscribed()
	h.awaitLog("subscribed to the agent")
	close(s1.close)
	select {
	case err := <-h.result:
		if !errors.Is(err, ErrDisconnected) {
			t.Errorf("Run = %v, want ErrDisconnected", err)
		}
		h.result <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end")
	}
}

package statuswriter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func pod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
}

// statusPatches counts the writes to pods/status and fails them as told.
type statusPatches struct {
	mu      sync.Mutex
	calls   int
	fail    int                // fail the first fail calls with a 503
	failErr func(n int) error  // or decide per call (n counts from 1)
	block   chan chan struct{} // if set, each call hands over a channel and waits for it to close
}

func (s *statusPatches) install(cs *fake.Clientset) {
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		s.mu.Lock()
		s.calls++
		n := s.calls
		fail := n <= s.fail
		failErr := s.failErr
		block := s.block
		s.mu.Unlock()
		if block != nil {
			release := make(chan struct{})
			block <- release
			<-release
		}
		if failErr != nil {
			if err := failErr(n); err != nil {
				return true, nil, err
			}
		}
		if fail {
			return true, nil, apierrors.NewServiceUnavailable("apiserver down")
		}
		return false, nil, nil // let the tracker apply it
	})
}

func (s *statusPatches) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func status(phase corev1.PodPhase, msg string) corev1.PodStatus {
	return corev1.PodStatus{Phase: phase, Message: msg, HostIP: "10.0.0.1",
		ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: "busybox"}}}
}

func run(t *testing.T, w *Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})
}

func flush(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// awaitRetry waits until n writes were attempted and the writer armed its retry timer.
func awaitRetry(t *testing.T, clk *clocktesting.FakeClock, s *statusPatches, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.count() < n || !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatalf("after %d writes no retry timer (want %d writes)", s.count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func getPod(t *testing.T, cs *fake.Clientset, name string) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTerminalStatusSurvivesAPIServerOutage(t *testing.T) {
	for _, failures := range []int{0, 1, 5} {
		t.Run(fmt.Sprintf("%d failures", failures), func(t *testing.T) {
			p := pod("job")
			cs := fake.NewClientset(p)
			sp := &statusPatches{fail: failures}
			sp.install(cs)
			clk := clocktesting.NewFakeClock(t0)
			w := New(cs, Config{Clock: clk, InitialBackOff: time.Second, MaxBackOff: 4 * time.Second})
			w.Set(p, 1, status(corev1.PodRunning, ""))
			w.Set(p, 2, status(corev1.PodSucceeded, "done"))
			run(t, w)
			var delays []time.Duration
			for i := 1; i <= failures; i++ {
				awaitRetry(t, clk, sp, i)
				before := clk.Now()
				// step one second at a time until the retry happens
				for sp.count() == i {
					clk.Step(time.Second)
					waitFor(t, func() bool { return sp.count() > i || clk.HasWaiters() })
				}
				delays = append(delays, clk.Now().Sub(before))
			}
			flush(t, w)
			got := getPod(t, cs, "job")
			if got.Status.Phase != corev1.PodSucceeded || got.Status.Message != "done" {
				t.Errorf("stored status %s %q, want Succeeded \"done\"", got.Status.Phase, got.Status.Message)
			}
			if sp.count() != failures+1 {
				t.Errorf("writes = %d, want %d (only the newest status is written)", sp.count(), failures+1)
			}
			want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}[:failures]
			if diff := cmp.Diff(want, delays, cmp.Comparer(func(a, b time.Duration) bool { return a == b })); diff != "" && failures > 0 {
				t.Errorf("retry delays (-want +got):\n%s", diff)
			}
			if w.Pending() != 0 {
				t.Errorf("pending = %d", w.Pending())
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNeverWritesOlderOverNewer(t *testing.T) {
	p := pod("web")
	cs := fake.NewClientset(p)
	sp := &statusPatches{block: make(chan chan struct{}), failErr: func(n int) error {
		if n == 1 {
			return apierrors.NewServiceUnavailable("down")
		}
		return nil
	}}
	sp.install(cs)
	var written []string
	var mu sync.Mutex
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		written = append(written, string(a.(k8stesting.PatchAction).GetPatch()))
		mu.Unlock()
		return false, nil, nil
	})
	clk := clocktesting.NewFakeClock(t0)
	w := New(cs, Config{Clock: clk, InitialBackOff: time.Second})
	run(t, w)

	w.Set(p, 1, status(corev1.PodRunning, "v1"))
	release := <-sp.block // write of v1 is in flight
	w.Set(p, 3, status(corev1.PodFailed, "v3"))
	w.Set(p, 2, status(corev1.PodRunning, "v2")) // older than a queued one: ignored
	close(release)                               // v1 fails
	awaitRetry(t, clk, sp, 1)
	clk.Step(time.Second)
	close(<-sp.block) // v3 is written
	flush(t, w)
	w.Set(p, 2, status(corev1.PodRunning, "v2")) // older than the written one: ignored
	flush(t, w)

	if got := getPod(t, cs, "web").Status; got.Phase != corev1.PodFailed || got.Message != "v3" {
		t.Errorf("stored %s %q, want Failed v3", got.Phase, got.Message)
	}
	if sp.count() != 2 {
		t.Errorf("writes = %d, want 2 (v1 failed, v3)", sp.count())
	}
}

func TestGonePodsAreDropped(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"not found", apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "x")},
		{"uid precondition", apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "x", errors.New("Precondition failed: UID in precondition"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pod("x")
			cs := fake.NewClientset(p)
			sp := &statusPatches{failErr: func(int) error { return tt.err }}
			sp.install(cs)
			clk := clocktesting.NewFakeClock(t0)
			w := New(cs, Config{Clock: clk})
			run(t, w)
			w.Set(p, 1, status(corev1.PodRunning, ""))
			flush(t, w)
			if sp.count() != 1 || clk.HasWaiters() {
				t.Errorf("writes = %d, retry armed = %v; want 1 write and no retry", sp.count(), clk.HasWaiters())
			}
		})
	}
}

func TestPatchCarriesUIDAndStatus(t *testing.T) {
	p := pod("x")
	cs := fake.NewClientset(p)
	var patch string
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		if pa.GetPatchType() != "application/strategic-merge-patch+json" || pa.GetSubresource() != "status" {
			t.Errorf("patch type %s subresource %s", pa.GetPatchType(), pa.GetSubresource())
		}
		patch = string(pa.GetPatch())
		return false, nil, nil
	})
	w := New(cs, Config{Clock: clocktesting.NewFakeClock(t0)})
	run(t, w)
	w.Set(p, 1, corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.2"})
	flush(t, w)
	want := `{"metadata":{"uid":"uid-x"},"status":{"phase":"Running","podIP":"10.0.0.2"}}`
	if patch != want {
		t.Errorf("patch\n got %s\nwant %s", patch, want)
	}
	if got := getPod(t, cs, "x").Status.PodIP; got != "10.0.0.2" {
		t.Errorf("stored podIP %q", got)
	}
}

// slowClient delays patches of one pod outside the fake clientset (whose reactors run under its lock).
type slowClient struct {
	kubernetes.Interface
	slow    string
	release chan struct{}
}

func (c slowClient) CoreV1() typedcorev1.CoreV1Interface { return slowCore{c.Interface.CoreV1(), c} }

type slowCore struct {
	typedcorev1.CoreV1Interface
	c slowClient
}

func (s slowCore) Pods(ns string) typedcorev1.PodInterface {
	return slowPods{s.CoreV1Interface.Pods(ns), s.c}
}

type slowPods struct {
	typedcorev1.PodInterface
	c slowClient
}

func (p slowPods) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (*corev1.Pod, error) {
	if name == p.c.slow {
		select {
		case <-p.c.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return p.PodInterface.Patch(ctx, name, pt, data, opts, sub...)
}

func TestSlowPodDoesNotHoldUpOthers(t *testing.T) {
	slow, fast := pod("slow"), pod("fast")
	cs := fake.NewClientset(slow, fast)
	release := make(chan struct{})
	w := New(slowClient{Interface: cs, slow: "slow", release: release}, Config{Clock: clocktesting.NewFakeClock(t0), Workers: 2})
	run(t, w)
	w.Set(slow, 1, status(corev1.PodRunning, "slow"))
	w.Set(fast, 1, status(corev1.PodRunning, "fast"))
	waitFor(t, func() bool { return getPod(t, cs, "fast").Status.Phase == corev1.PodRunning })
	waitFor(t, func() bool { return w.Pending() == 1 }) // only the slow pod is left
	close(release)
	flush(t, w)
	if got := getPod(t, cs, "slow").Status.Message; got != "slow" {
		t.Errorf("slow pod message %q", got)
	}
}

// A field the new status no longer has (a condition's reason, a container's waiting state) is removed,
// not merged with the new one.
func TestPatchRemovesWhatTheNewStatusDropped(t *testing.T) {
	p := pod("x")
	p.Status = corev1.PodStatus{
		Phase:      corev1.PodPending,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [app]"}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}},
	}
	cs := fake.NewClientset(p)
	w := New(cs, Config{Clock: clocktesting.NewFakeClock(t0)})
	run(t, w)
	want := corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: corev1.ContainerState{
			Running: &corev1.ContainerStateRunning{}}}},
	}
	w.Set(p, 1, want)
	flush(t, w)
	if diff := cmp.Diff(want, getPod(t, cs, "x").Status); diff != "" {
		t.Errorf("stored status (-want +got):\n%s", diff)
	}
}

func TestTerminalReasonOfAnotherWriterIsKept(t *testing.T) {
	p := pod("x")
	p.Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "FailedCreatePodSandBox", Message: "Failed to create pod sandbox: no IP"}
	cs := fake.NewClientset(p)
	w := New(cs, Config{Clock: clocktesting.NewFakeClock(t0), PendingDelay: -1})
	run(t, w)
	// A status computed before the executor learnt of the kill (Pending) does not move the pod back.
	w.Set(p, 1, corev1.PodStatus{Phase: corev1.PodPending})
	flush(t, w)
	if got := getPod(t, cs, "x").Status; got.Phase != corev1.PodFailed || got.Reason != "FailedCreatePodSandBox" {
		t.Errorf("stored status %+v after a Pending write: the pod must stay Failed with its reason", got)
	}
	w.Set(p, 2, corev1.PodStatus{Phase: corev1.PodFailed, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}})
	flush(t, w)
	got := getPod(t, cs, "x").Status
	if got.Reason != "FailedCreatePodSandBox" || got.Message != "Failed to create pod sandbox: no IP" || len(got.Conditions) != 1 {
		t.Errorf("stored status %+v: the framework's reason and message must stay", got)
	}
	// The executor's own reason wins, and a pod that is not terminal yet gets exactly what is written.
	w.Set(p, 3, corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "m"})
	flush(t, w)
	if got := getPod(t, cs, "x").Status; got.Reason != "Evicted" || got.Message != "m" {
		t.Errorf("stored status %+v, want the executor's reason", got)
	}
}

// Conditions others write into the status (a readiness gate's, DisruptionTarget) stay: the kubelet's
// status manager keeps the conditions it does not own; its own it replaces, as before.
func TestForeignConditionsAreKept(t *testing.T) {
	p := pod("x")
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		{Type: "k8s.io/test-condition1", Status: corev1.ConditionTrue},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
	}}
	cs := fake.NewClientset(p)
	w := New(cs, Config{Clock: clocktesting.NewFakeClock(t0)})
	run(t, w)
	w.Set(p, 1, corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ReadinessGatesNotReady"},
	}})
	flush(t, w)
	want := []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ReadinessGatesNotReady"},
		{Type: "k8s.io/test-condition1", Status: corev1.ConditionTrue},
	}
	if diff := cmp.Diff(want, getPod(t, cs, "x").Status.Conditions); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
}

// podRequests counts the reads and status patches of pods, and refuses a patch whose resourceVersion
// precondition is not the stored pod's, as the API server does (the fake tracker does not check it).
type podRequests struct {
	mu                   sync.Mutex
	gets, patches, stale int
}

func (r *podRequests) install(t *testing.T, cs *fake.Clientset) {
	cs.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.gets++
		return false, nil, nil
	})
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		var body struct {
			Metadata struct{ ResourceVersion string } `json:"metadata"`
		}
		if err := json.Unmarshal(pa.GetPatch(), &body); err != nil {
			t.Errorf("patch %s: %v", pa.GetPatch(), err)
		}
		stored, err := cs.Tracker().Get(a.GetResource(), pa.GetNamespace(), pa.GetName())
		if err != nil {
			return true, nil, err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.patches++
		if rv := body.Metadata.ResourceVersion; rv != "" && rv != stored.(*corev1.Pod).ResourceVersion {
			r.stale++
			return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), pa.GetName(), errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
}

func (r *podRequests) counts() (gets, patches, stale int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets, r.patches, r.stale
}

// A write diffs against what the last patch returned, or the caller's cached copy, instead of reading
// the pod first (issue 13: that GET was 40% of a launched pod's API requests).
func TestWritesWithoutReadingThePod(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cached   bool
		wantGets int
	}{
		{"first write reads", false, 1},
		{"cache for the first write", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod("x")
			p.ResourceVersion = "7"
			cs := fake.NewClientset(p)
			var reqs podRequests
			reqs.install(t, cs)
			cfg := Config{Clock: clocktesting.NewFakeClock(t0), PendingDelay: -1}
			if tc.cached {
				cfg.Cached = func(ns, name string) *corev1.Pod { return p.DeepCopy() }
			}
			w := New(cs, cfg)
			run(t, w)
			for seq, msg := range []string{"one", "two", "three"} {
				w.Set(p, uint64(seq+1), status(corev1.PodRunning, msg))
				flush(t, w)
			}
			if got := getPod(t, cs, "x").Status.Message; got != "three" {
				t.Errorf("stored message %q, want three", got)
			}
			gets, patches, stale := reqs.counts()
			if gets != tc.wantGets+1 || patches != 3 || stale != 0 { // getPod above is one GET
				t.Errorf("%d GETs (1 the test's), %d patches, %d stale; want %d GETs, 3 patches, 0 stale", gets, patches, stale, tc.wantGets+1)
			}
		})
	}
}

// A cached copy older than the stored pod makes the patch conflict; the writer then reads the pod and
// diffs against what is really there, so the framework's terminal reason written meanwhile stays.
func TestStaleCopyIsReadAgain(t *testing.T) {
	p := pod("x")
	p.ResourceVersion = "9"
	p.Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "FailedCreatePodSandBox", Message: "no IP"}
	cs := fake.NewClientset(p)
	var reqs podRequests
	reqs.install(t, cs)
	stale := pod("x")
	stale.ResourceVersion = "3"
	w := New(cs, Config{Clock: clocktesting.NewFakeClock(t0), PendingDelay: -1,
		Cached: func(string, string) *corev1.Pod { return stale }})
	run(t, w)
	w.Set(p, 1, status(corev1.PodRunning, ""))
	flush(t, w)
	got := getPod(t, cs, "x").Status
	if got.Phase != corev1.PodFailed || got.Reason != "FailedCreatePodSandBox" || got.Message != "no IP" {
		t.Errorf("stored status %+v: the pod must stay Failed with the framework's reason", got)
	}
	if gets, patches, stale := reqs.counts(); gets != 2 || patches != 2 || stale != 1 {
		t.Errorf("%d GETs (1 the test's), %d patches, %d stale; want 2, 2, 1", gets, patches, stale)
	}
}

// A Pending status waits PendingDelay for a newer one: a pod whose containers start meanwhile costs one
// write. Alone, it is written when the delay ends; any other phase is written at once.
func TestPendingStatusWaitsForANewerOne(t *testing.T) {
	p := pod("x")
	cs := fake.NewClientset(p)
	var patches statusPatches
	patches.install(cs)
	clk := clocktesting.NewFakeClock(t0)
	w := New(cs, Config{Clock: clk})
	run(t, w)

	w.Set(p, 1, status(corev1.PodPending, "creating"))
	waitFor(t, clk.HasWaiters)
	w.Set(p, 2, status(corev1.PodRunning, "started"))
	flush(t, w)
	if n := patches.count(); n != 1 {
		t.Errorf("%d status writes for Pending then Running, want 1", n)
	}
	if got := getPod(t, cs, "x").Status.Message; got != "started" {
		t.Errorf("stored message %q, want started", got)
	}

	q := pod("y")
	if err := cs.Tracker().Add(q); err != nil {
		t.Fatal(err)
	}
	w.Set(q, 1, status(corev1.PodPending, "creating"))
	waitFor(t, clk.HasWaiters)
	clk.Step(DefaultPendingDelay - time.Millisecond)
	w.Set(q, 2, status(corev1.PodPending, "pulling")) // a newer Pending status does not restart the wait
	time.Sleep(20 * time.Millisecond)
	if n := patches.count(); n != 1 {
		t.Fatalf("a Pending status was written before its delay ended (%d writes)", n)
	}
	clk.Step(time.Millisecond)
	flush(t, w)
	if got := getPod(t, cs, "y").Status.Message; got != "pulling" || patches.count() != 2 {
		t.Errorf("after the delay: message %q, %d writes; want pulling, 2", got, patches.count())
	}
}

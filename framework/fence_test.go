package framework

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"
)

func ours(id string) resourcelock.LeaderElectionRecord {
	return resourcelock.LeaderElectionRecord{HolderIdentity: id}
}

// The fence holds for its validity after the start of a renewal that left the Lease ours, and no
// longer once another holder or a release is seen; a failed write that says nothing keeps it.
func TestLeaseFenceHoldsOnlyWithinValidity(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	f := newLeaseFence(clk, 10*time.Second, "me", quiet())
	if err := f.held(); !errors.Is(err, errLeaseNotHeld) {
		t.Fatalf("held() before any renewal = %v, want errLeaseNotHeld", err)
	}
	f.wrote(clk.Now(), ours("me"), nil)
	clk.Step(10*time.Second - time.Millisecond)
	if err := f.held(); err != nil {
		t.Errorf("held() just within validity = %v", err)
	}
	clk.Step(time.Millisecond)
	if err := f.held(); err == nil || !strings.Contains(err.Error(), "last renewed 10s ago") {
		t.Errorf("held() at validity = %v, want expired", err)
	}
	// A renewal that timed out may or may not have been applied: the last sure one still bounds.
	f.wrote(clk.Now(), ours("me"), context.DeadlineExceeded)
	if err := f.held(); err == nil {
		t.Error("a failed renewal renewed the fence")
	}
	f.wrote(clk.Now(), ours("me"), nil)
	if err := f.held(); err != nil {
		t.Errorf("held() after renewal = %v", err)
	}
	// A renewal that started before the one recorded does not move the fence back.
	f.wrote(clk.Now().Add(-5*time.Second), ours("me"), nil)
	clk.Step(6 * time.Second)
	if err := f.held(); err != nil {
		t.Errorf("held() = %v: an older renewal's start replaced a newer one", err)
	}
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, StateName, errors.New("changed"))
	f.wrote(clk.Now(), ours("me"), conflict)
	if err := f.held(); !errors.Is(err, errLeaseNotHeld) {
		t.Errorf("held() after a conflicting write = %v, want errLeaseNotHeld", err)
	}
	f.wrote(clk.Now(), ours("me"), nil)
	f.wrote(clk.Now(), ours(""), nil) // ReleaseOnCancel
	if err := f.held(); !errors.Is(err, errLeaseNotHeld) {
		t.Errorf("held() after release = %v, want errLeaseNotHeld", err)
	}
	f.wrote(clk.Now(), ours("me"), nil)
	f.lost()
	if err := f.held(); !errors.Is(err, errLeaseNotHeld) {
		t.Errorf("held() after lost() = %v, want errLeaseNotHeld", err)
	}
	var none *leaseFence // no leader election
	if err := none.allow(fencedBinding, "x"); err != nil {
		t.Errorf("nil fence refused: %v", err)
	}
}

// The fence counts from when a Lease write was sent, not from when its answer came: a standby counts
// the lease duration from when it saw the write, which may be long before a slow answer.
func TestFencedLockCountsFromTheWritesStart(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	kube := fake.NewClientset()
	kube.PrependReactor("*", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		clk.Step(4 * time.Second) // the write takes 4 s
		return false, nil, nil
	})
	f := newLeaseFence(clk, 10*time.Second, "me", quiet())
	lock := fencedLock{fence: f, Interface: &resourcelock.LeaseLock{
		LeaseMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: StateName}, Client: kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: "me"},
	}}
	now := metav1.NewTime(clk.Now())
	if err := lock.Create(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me", LeaseDurationSeconds: 15,
		AcquireTime: now, RenewTime: now}); err != nil {
		t.Fatal(err)
	}
	clk.Step(6 * time.Second) // 10 s after the Create was sent, 6 s after it returned
	if err := f.held(); err == nil {
		t.Error("fence held 10 s after the renewal was sent: it counted from the answer")
	}
	rec, _, err := lock.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rec.RenewTime = metav1.NewTime(clk.Now())
	if err := lock.Update(context.Background(), *rec); err != nil {
		t.Fatal(err)
	}
	if err := f.held(); err != nil {
		t.Errorf("fence after Update = %v, want held", err)
	}
}

// A leader past its fence (paused beyond its lease) neither binds nor sends ACCEPT nor saves state,
// even though its scheduler still believes it is subscribed; with a fresh renewal it does all three.
func TestStaleLeaderNeitherBindsNorLaunches(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		name := "paused past its lease"
		if fresh {
			name = "renewed"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, State{}, pod("a", "uid-a"))
			fence := newLeaseFence(f.clock, 10*time.Second, "me", quiet())
			f.s.fence = fence
			f.s.store = fencedStore{StateStore: f.store, fence: fence}
			fence.wrote(f.clock.Now(), ours("me"), nil)
			f.subscribe("fw-1")
			f.drain()
			f.caller.reset()
			f.kube.ClearActions()
			if !fresh {
				f.clock.Step(20 * time.Second) // SIGSTOP past the lease, then SIGCONT
			}
			f.offers(offer("o1", "a1", "h1", 4, 4096))
			f.s.cycleAndLaunch(f.ctx)
			var bindings, configMapWrites int
			for _, a := range f.actions() {
				switch a {
				case "create pods/binding":
					bindings++
				case "create configmaps", "update configmaps":
					configMapWrites++
				}
			}
			accepts := len(f.caller.ofType(scheduler.Call_ACCEPT))
			got := counterValue(t, fence.fenced.WithLabelValues(fencedState)) + counterValue(t, fence.fenced.WithLabelValues(fencedBinding)) +
				counterValue(t, fence.fenced.WithLabelValues(fencedMesosCall))
			if fresh {
				if bindings != 1 || accepts != 1 || configMapWrites == 0 || got != 0 {
					t.Errorf("renewed leader: %d bindings, %d ACCEPTs, %d state writes, %v fenced; want 1, 1, >0, 0", bindings, accepts, configMapWrites, got)
				}
				return
			}
			if bindings != 0 || accepts != 0 || configMapWrites != 0 || len(f.caller.calls) != 0 {
				t.Errorf("stale leader: %d bindings, %d ACCEPTs, %d state writes, Mesos calls %v; want none", bindings, accepts, configMapWrites, f.caller.types())
			}
			if got == 0 {
				t.Error("kubemesos_fenced_total did not count the refused actions")
			}
		})
	}
}

// Binding alone is fenced too (a pod bound by the old leader is launched by the new one).
func TestStaleLeaderDoesNotBind(t *testing.T) {
	f := newFixture(t, State{}, pod("a", "uid-a"))
	fence := newLeaseFence(f.clock, 10*time.Second, "me", quiet())
	f.s.fence = fence
	err := f.s.bind(f.ctx, pod("a", "uid-a"), "h1")
	if err == nil || !errors.Is(err, errLeaseNotHeld) {
		t.Errorf("bind() without the Lease = %v, want errLeaseNotHeld", err)
	}
	for _, a := range f.actions() {
		if a == "create pods/binding" {
			t.Error("Binding sent without the Lease")
		}
	}
	fence.wrote(f.clock.Now(), ours("me"), nil)
	if err := f.s.bind(f.ctx, pod("a", "uid-a"), "h1"); err != nil {
		t.Errorf("bind() with the Lease = %v", err)
	}
}

// The subscriber sends no SUBSCRIBE while the fence refuses: an old leader woken up must not fail the
// new leader's Mesos stream over by re-subscribing with the FrameworkID.
func TestSubscriberWaitsForTheLease(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	streams := make(chan *eventStream, 4)
	caller := &fakeCaller{stream: func() (mesos.Response, error) {
		s := newEventStream()
		streams <- s
		return s, nil
	}}
	fence := newLeaseFence(clk, 10*time.Second, "me", quiet())
	sub := &subscriber{
		caller:       caller,
		info:         func() *mesos.FrameworkInfo { return &mesos.FrameworkInfo{Name: "kubemesos", User: "root"} },
		handle:       func(context.Context, *scheduler.Event) error { return nil },
		disconnected: func(error) {},
		clock:        clk, minBackoff: time.Second, maxBackoff: 4 * time.Second, log: quiet(),
		mayLead: func() error { return fence.allow(fencedSubscribe, "SUBSCRIBE") },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	// Several back-off periods pass without a SUBSCRIBE.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		clk.Step(time.Second)
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(caller.ofType(scheduler.Call_SUBSCRIBE)); n != 0 {
		t.Fatalf("%d SUBSCRIBE calls without the Lease", n)
	}
	if counterValue(t, fence.fenced.WithLabelValues(fencedSubscribe)) == 0 {
		t.Error("refused SUBSCRIBE not counted")
	}
	fence.wrote(clk.Now(), ours("me"), nil)
	s := stepUntil(t, clk, 100*time.Millisecond, streams)
	cancel()
	s.Close()
	if err := receive(t, done); err != nil {
		t.Errorf("Run() = %v", err)
	}
}

func TestLeaderElectionTimingsValidated(t *testing.T) {
	for _, tt := range []struct {
		lease, renew, retry time.Duration
		want                string
	}{
		{15 * time.Second, 10 * time.Second, 2 * time.Second, ""},
		{3 * time.Second, 2 * time.Second, time.Second / 2, ""},
		{2500 * time.Millisecond, 1500 * time.Millisecond, time.Second / 2, ""},
		// The Lease records whole seconds: 2.9 s is 2 s to a standby.
		{2900 * time.Millisecond, 2500 * time.Millisecond, time.Second / 2, "in whole seconds: 2s"},
		{10 * time.Second, 10 * time.Second, 2 * time.Second, "must be greater than --leader-elect-renew-deadline"},
		{15 * time.Second, 2 * time.Second, 2 * time.Second, "1.2 x --leader-elect-retry-period"},
		{15 * time.Second, 2 * time.Second, 0, "1.2 x --leader-elect-retry-period"},
	} {
		cfg := DefaultConfig()
		cfg.LeaderElectLeaseDuration, cfg.LeaderElectRenewDeadline, cfg.LeaderElectRetryPeriod = tt.lease, tt.renew, tt.retry
		err := cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v/%v/%v: %v", tt.lease, tt.renew, tt.retry, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v/%v/%v: %v, want %q", tt.lease, tt.renew, tt.retry, err, tt.want)
		}
		cfg.LeaderElect = false // the timings do not matter then
		if err := cfg.Validate(); err != nil {
			t.Errorf("without --leader-elect: %v", err)
		}
	}
}

package framework

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

// Fenced actions, the label of kubemesos_fenced_total.
const (
	fencedMesosCall = "mesos_call" // any scheduler call but SUBSCRIBE (ACCEPT, DECLINE, KILL, ...)
	fencedSubscribe = "subscribe"
	fencedBinding   = "binding"
	fencedState     = "state"
)

// errLeaseNotHeld: this process does not hold the leader Lease (never did, released it, or saw
// another holder's write).
var errLeaseNotHeld = errors.New("the leader Lease " + StateName + " is not held by this process")

// leaseFence says whether this process may still act as the leader. leaderelection's IsLeader is not
// enough: a process paused (SIGSTOP, a stalled VM) past its lease wakes up with IsLeader still true
// and runs on until its renew loop notices, while a standby has taken over meanwhile. As
// leaderelection's own Check (healthzAdaptor) does, the fence compares the time since the last
// renewal with a duration on the monotonic clock, which runs on while the process is stopped.
//
// The renewal's time is when its write was *sent*, not when it returned: a standby counts the lease
// duration from when it first sees that write, which is after the API server applied it, hence after
// it was sent. The fence holds for RenewDeadline after that (leaderelection's renew loop gives up
// RenewDeadline after its last attempt began), leaving LeaseDuration - RenewDeadline for an action
// checked just before the end to reach the API server or the Mesos master. What still slips through
// is fenced by them: a Binding to a bound pod is a Conflict, and the new leader's SUBSCRIBE with the
// same FrameworkID fails this process' Mesos stream over (its calls are then refused).
//
// A nil *leaseFence always holds: without --leader-elect there is no one to be fenced from.
type leaseFence struct {
	clock    clock.PassiveClock
	valid    time.Duration
	identity string
	log      logrus.FieldLogger
	fenced   *prometheus.CounterVec

	mu      sync.Mutex
	renewed time.Time // start of the last write that left the Lease ours; zero when not ours
}

func newLeaseFence(clk clock.PassiveClock, valid time.Duration, identity string, log logrus.FieldLogger) *leaseFence {
	return &leaseFence{clock: clk, valid: valid, identity: identity, log: log,
		fenced: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kubemesos", Name: "fenced_total",
			Help: "Actions not taken because this process no longer surely held the leader Lease, by action."}, []string{"action"})}
}

// held returns nil while the Lease is surely this process'.
func (f *leaseFence) held() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	renewed := f.renewed
	f.mu.Unlock()
	if renewed.IsZero() {
		return errLeaseNotHeld
	}
	if age := f.clock.Since(renewed); age >= f.valid {
		return fmt.Errorf("the leader Lease %s was last renewed %v ago (it is trusted for %v): another replica may lead now",
			StateName, age.Round(time.Millisecond), f.valid)
	}
	return nil
}

// allow is held for an action: a refusal is counted and logged (at most as often as actions come;
// the process is about to lose its leadership anyway).
func (f *leaseFence) allow(action, what string) error {
	err := f.held()
	if err != nil {
		f.fenced.WithLabelValues(action).Inc()
		f.log.WithError(err).WithFields(logrus.Fields{"action": action, "what": what}).Warn("fenced: not acting without the leader Lease")
	}
	return err
}

// lost forgets the Lease (leadership ended).
func (f *leaseFence) lost() {
	f.mu.Lock()
	f.renewed = time.Time{}
	f.mu.Unlock()
}

// wrote records the outcome of a write of the Lease sent at start.
func (f *leaseFence) wrote(start time.Time, rec resourcelock.LeaderElectionRecord, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err == nil && rec.HolderIdentity == f.identity:
		if start.After(f.renewed) {
			f.renewed = start
		}
	case err == nil:
		f.renewed = time.Time{} // released
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		// Someone else wrote the Lease since this process last saw it: assume it was taken.
		f.renewed = time.Time{}
	}
	// Other errors (timeouts, a partition) say nothing new: the last renewal still bounds the Lease.
}

// fencedLock is the leader-election lock with every write of it reported to the fence.
type fencedLock struct {
	resourcelock.Interface
	fence *leaseFence
}

func (l fencedLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	start := l.fence.clock.Now()
	err := l.Interface.Create(ctx, rec)
	l.fence.wrote(start, rec, err)
	return err
}

func (l fencedLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	start := l.fence.clock.Now()
	err := l.Interface.Update(ctx, rec)
	l.fence.wrote(start, rec, err)
	return err
}

// fencedStore saves state only while the Lease is held: an old leader's snapshot must not overwrite
// the ExecutorInfos or FrameworkID the new leader stored.
type fencedStore struct {
	StateStore
	fence *leaseFence
}

func (s fencedStore) Save(ctx context.Context, st State) error {
	if err := s.fence.allow(fencedState, "state ConfigMap"); err != nil {
		return fmt.Errorf("not saving state: %w", err)
	}
	return s.StateStore.Save(ctx, st)
}

package framework

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/internal/mesosdecode"
)

// missedHeartbeats is how many heartbeat intervals without any event make the subscription count as lost.
const missedHeartbeats = 5

// errHeartbeatLost ends a subscription whose master went silent.
var errHeartbeatLost = errors.New("no event from the Mesos master within 5 heartbeat intervals")

// subscriber owns the Mesos subscription: SUBSCRIBE, the event stream, heartbeat-loss detection and
// re-subscription with capped exponential back-off. Events go to handle, in order, on the calling
// goroutine of Run; disconnected is called after every subscription ends.
type subscriber struct {
	caller       calls.Caller
	info         func() *mesos.FrameworkInfo // built per attempt: carries the current FrameworkID
	handle       func(ctx context.Context, e *scheduler.Event) error
	disconnected func(err error)
	clock        clock.WithTicker
	minBackoff   time.Duration
	maxBackoff   time.Duration
	log          logrus.FieldLogger
	// mayLead, when set, must return nil before each SUBSCRIBE.
	mayLead func() error
}

// Run subscribes until ctx is cancelled, and returns nil then.
func (s *subscriber) Run(ctx context.Context) error {
	backoff := s.minBackoff
	for ctx.Err() == nil {
		if s.mayLead != nil {
			if err := s.mayLead(); err != nil {
				// Leadership is ending: the elector cancels ctx soon; until then, wait and see.
				select {
				case <-ctx.Done():
					return nil
				case <-s.clock.After(s.minBackoff):
				}
				continue
			}
		}
		info := s.info()
		call := calls.Subscribe(info)
		if id := info.GetID().GetValue(); id != "" {
			call.FrameworkID = &mesos.FrameworkID{Value: id}
		}
		subscribed, err := s.once(ctx, call)
		s.disconnected(err)
		if ctx.Err() != nil {
			return nil
		}
		if subscribed {
			backoff = s.minBackoff
		}
		if apierrors.CodeNotAuthenticated.Matches(errors.Unwrap(err)) || apierrors.CodeNotAuthenticated.Matches(err) {
			// Retried all the same (the master's credentials may be fixed meanwhile), but said plainly.
			s.log.WithError(err).WithField("retryIn", backoff).Error("the Mesos master refused the framework's credentials (401): check --principal and --secret-file")
		} else {
			s.log.WithError(err).WithField("retryIn", backoff).Warn("Mesos subscription ended")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(backoff):
		}
		backoff = min(2*backoff, s.maxBackoff)
	}
	return nil
}

// once runs one subscription; subscribed reports whether SUBSCRIBED was received.
func (s *subscriber) once(ctx context.Context, call *scheduler.Call) (subscribed bool, err error) {
	resp, err := s.caller.Call(ctx, call)
	if err != nil {
		return false, fmt.Errorf("subscribing to Mesos: %w", err)
	}
	if resp == nil {
		return false, errors.New("subscribing to Mesos: no response stream")
	}
	var closeOnce sync.Once
	closeResp := func() { closeOnce.Do(func() { _ = resp.Close() }) }
	defer closeResp()

	// The watchdog closes the stream when the master goes silent, which ends Decode below.
	w := &watchdog{clock: s.clock, timeout: missedHeartbeats * 15 * time.Second, last: s.clock.Now(), changed: make(chan struct{}, 1)}
	lost := make(chan struct{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			left := w.remaining()
			if left <= 0 {
				close(lost)
				closeResp()
				return
			}
			t := s.clock.NewTimer(left)
			select {
			case <-done:
				t.Stop()
				return
			case <-ctx.Done():
				t.Stop()
				closeResp()
				return
			case <-w.changed:
				t.Stop()
			case <-t.C():
			}
		}
	}()
	defer func() { close(done); wg.Wait() }()

	for {
		var e scheduler.Event
		if err := mesosdecode.Decode(resp, &e); err != nil { // a garbled event ends the subscription, not the framework
			select {
			case <-lost:
				return subscribed, errHeartbeatLost
			default:
			}
			if ctx.Err() != nil {
				return subscribed, ctx.Err()
			}
			return subscribed, fmt.Errorf("reading Mesos events: %w", err)
		}
		var timeout time.Duration
		if e.GetType() == scheduler.Event_SUBSCRIBED {
			subscribed = true
			if hb := e.GetSubscribed().GetHeartbeatIntervalSeconds(); hb > 0 {
				timeout = missedHeartbeats * time.Duration(hb*float64(time.Second))
			}
		}
		w.beat(timeout)
		if err := s.handle(ctx, &e); err != nil {
			return subscribed, fmt.Errorf("handling Mesos event %s: %w", e.GetType(), err)
		}
	}
}

// watchdog tracks the time of the last event and the allowed silence.
type watchdog struct {
	clock   clock.WithTicker
	changed chan struct{} // signalled when the allowed silence changes
	mu      sync.Mutex
	timeout time.Duration
	last    time.Time
}

// beat records an event; a positive timeout replaces the allowed silence.
func (w *watchdog) beat(timeout time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = w.clock.Now()
	if timeout > 0 && timeout != w.timeout {
		w.timeout = timeout
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

func (w *watchdog) remaining() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.timeout - w.clock.Since(w.last)
}

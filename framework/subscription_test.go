package framework

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
	clocktesting "k8s.io/utils/clock/testing"
)

// stepUntil steps the fake clock by d until ch yields, failing after a wall-clock deadline.
func stepUntil[T any](t *testing.T, clk *clocktesting.FakeClock, d time.Duration, ch <-chan T) T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case v := <-ch:
			return v
		case <-time.After(5 * time.Millisecond):
			clk.Step(d)
		}
	}
	t.Fatal("condition not reached")
	var zero T
	return zero
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}
	var zero T
	return zero
}

func TestSubscriberHeartbeatLossAndResubscribe(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	clk := clocktesting.NewFakeClock(t0)
	streams := make(chan *eventStream, 4)
	caller := &fakeCaller{stream: func() (mesos.Response, error) {
		s := newEventStream()
		streams <- s
		return s, nil
	}}
	handled := make(chan scheduler.Event_Type, 16)
	disconnected := make(chan error, 4)
	var frameworkID string
	sub := &subscriber{
		caller: caller,
		info: func() *mesos.FrameworkInfo {
			fi := &mesos.FrameworkInfo{Name: "kubemesos", User: "root"}
			if frameworkID != "" {
				fi.ID = &mesos.FrameworkID{Value: frameworkID}
			}
			return fi
		},
		handle: func(_ context.Context, e *scheduler.Event) error {
			if e.GetType() == scheduler.Event_SUBSCRIBED {
				frameworkID = e.GetSubscribed().FrameworkID.Value
			}
			handled <- e.GetType()
			return nil
		},
		disconnected: func(err error) { disconnected <- err },
		clock:        clk, minBackoff: time.Second, maxBackoff: 4 * time.Second, log: log,
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- sub.Run(ctx) }()

	s1 := receive(t, streams)
	hb := 1.0
	s1.events <- &scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID: &mesos.FrameworkID{Value: "fw-1"}, HeartbeatIntervalSeconds: &hb}}
	s1.events <- &scheduler.Event{Type: scheduler.Event_HEARTBEAT}
	if got := receive(t, handled); got != scheduler.Event_SUBSCRIBED {
		t.Fatalf("first event = %s", got)
	}
	if got := receive(t, handled); got != scheduler.Event_HEARTBEAT {
		t.Fatalf("second event = %s", got)
	}

	// Silence for 5 heartbeat intervals ends the subscription.
	err := stepUntil(t, clk, 500*time.Millisecond, disconnected)
	if !errors.Is(err, errHeartbeatLost) {
		t.Fatalf("subscription ended with %v, want heartbeat loss", err)
	}
	// After the back-off it subscribes again, resuming with the FrameworkID.
	stepUntil(t, clk, 500*time.Millisecond, streams)
	subs := caller.ofType(scheduler.Call_SUBSCRIBE)
	if len(subs) != 2 {
		t.Fatalf("SUBSCRIBE calls = %d, want 2", len(subs))
	}
	if subs[0].GetFrameworkID() != nil {
		t.Errorf("first SUBSCRIBE carries a FrameworkID")
	}
	if got := subs[1].GetSubscribe().GetFrameworkInfo().GetID().GetValue(); got != "fw-1" || subs[1].GetFrameworkID().GetValue() != "fw-1" {
		t.Errorf("resubscription FrameworkID = %q / %q, want fw-1", got, subs[1].GetFrameworkID().GetValue())
	}
	cancel()
	if err := receive(t, runErr); err != nil {
		t.Errorf("Run() = %v after cancel, want nil", err)
	}
}

func TestSubscriberBackoffIsCapped(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	clk := clocktesting.NewFakeClock(t0)
	attempts := make(chan time.Time, 16)
	caller := &fakeCaller{stream: func() (mesos.Response, error) {
		attempts <- clk.Now()
		return nil, errors.New("connection refused")
	}}
	sub := &subscriber{caller: caller, info: func() *mesos.FrameworkInfo { return &mesos.FrameworkInfo{} },
		handle:       func(context.Context, *scheduler.Event) error { return nil },
		disconnected: func(error) {}, clock: clk, minBackoff: time.Second, maxBackoff: 4 * time.Second, log: log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	var times []time.Time
	times = append(times, receive(t, attempts))
	// Step only while the subscriber waits on the clock, so no step is lost before it starts waiting.
	deadline := time.Now().Add(10 * time.Second)
	for len(times) < 6 && time.Now().Before(deadline) {
		select {
		case at := <-attempts:
			times = append(times, at)
		default:
			if clk.HasWaiters() {
				clk.Step(250 * time.Millisecond)
			} else {
				time.Sleep(time.Millisecond)
			}
		}
	}
	if len(times) < 6 {
		t.Fatalf("only %d attempts", len(times))
	}
	cancel()
	receive(t, done)
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	if diff := cmp.Diff(want, gaps); diff != "" {
		t.Errorf("back-offs (-want +got):\n%s", diff)
	}
}

package mesossim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/extras/scheduler/controller"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/events"
)

// TestMesosGoControllerSurvivesMasterFailover runs mesos-go's scheduler controller (the loop production
// frameworks use) against the simulator: it launches a task, the master fails over mid-flight, the
// controller re-subscribes with its FrameworkID, and the task's remaining updates arrive and are
// acknowledged on the new subscription.
func TestMesosGoControllerSurvivesMasterFailover(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	caller := httpsched.NewCaller(httpcli.New(httpcli.Endpoint(h.url + "/api/v1/scheduler")))
	var (
		mu       sync.Mutex
		fwID     string
		launched bool
	)
	frameworkID := func() string { mu.Lock(); defer mu.Unlock(); return fwID }
	subscribed := make(chan string, 10) // master IDs seen in SUBSCRIBED
	states := make(chan mesos.TaskState, 10)
	tokens := make(chan struct{}, 1)
	tokens <- struct{}{}
	handler := events.HandlerFuncs{
		scheduler.Event_SUBSCRIBED: func(ctx context.Context, e *scheduler.Event) error {
			mu.Lock()
			fwID = e.Subscribed.FrameworkID.Value
			mu.Unlock()
			subscribed <- e.Subscribed.MasterInfo.ID
			return nil
		},
		scheduler.Event_OFFERS: func(ctx context.Context, e *scheduler.Event) error {
			mu.Lock()
			first := !launched
			launched = true
			mu.Unlock()
			o := e.Offers.Offers[0]
			if !first {
				_, err := caller.Call(ctx, calls.Decline(o.ID).With(calls.Framework(frameworkID())))
				return err
			}
			task := mesos.TaskInfo{Name: "c", TaskID: mesos.TaskID{Value: "ctl-1"}, AgentID: o.AgentID,
				Command:   &mesos.CommandInfo{Value: proto.String("true")},
				Resources: mesos.Resources{rez.NewCPUs(1).Resource, rez.NewMemory(32).Resource}}
			_, err := caller.Call(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(task)}.WithOffers(o.ID)).With(calls.Framework(frameworkID())))
			return err
		},
		scheduler.Event_UPDATE: func(ctx context.Context, e *scheduler.Event) error {
			st := e.Update.Status
			states <- st.GetState()
			if st.GetState() == mesos.TASK_RUNNING && !h.failedOver() {
				return nil // do not acknowledge RUNNING before the failover: it must be redelivered after it
			}
			if len(st.UUID) == 0 {
				return nil
			}
			_, err := caller.Call(ctx, calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID).With(calls.Framework(frameworkID())))
			return err
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- controller.Run(ctx, &mesos.FrameworkInfo{User: "root", Name: "controller", FailoverTimeout: proto.Float64(3600)}, caller,
			controller.WithEventHandler(handler),
			controller.WithFrameworkID(frameworkID),
			controller.WithRegistrationTokens(tokens),
			controller.WithSubscriptionTerminated(func(error) {
				select {
				case tokens <- struct{}{}:
				default:
				}
			}))
	}()
	defer func() {
		cancel()
		<-done
	}()
	wait := func(what string, ch <-chan string) string {
		t.Helper()
		select {
		case v := <-ch:
			return v
		case <-time.After(waitTimeout):
			t.Fatalf("no %s", what)
			return ""
		}
	}
	firstMaster := wait("first SUBSCRIBED", subscribed)
	h.m.Allocate()
	select {
	case s := <-states:
		if s != mesos.TASK_RUNNING {
			t.Fatalf("first update %v", s)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no first update")
	}
	firstID := frameworkID()
	h.m.Failover()
	secondMaster := wait("SUBSCRIBED after the failover", subscribed)
	if secondMaster == firstMaster || frameworkID() != firstID {
		t.Errorf("after failover: master %s (was %s), framework %s (was %s)", secondMaster, firstMaster, frameworkID(), firstID)
	}
	h.agents[0].sendHead("ctl-1") // the agent retries the unacknowledged RUNNING
	for _, want := range []mesos.TaskState{mesos.TASK_RUNNING, mesos.TASK_FINISHED} {
		select {
		case s := <-states:
			if s != want {
				t.Fatalf("update %v, want %v", s, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no %v update", want)
		}
	}
	eventually(t, "final acknowledgement", func() bool { return h.taskStates()["ctl-1"] == "completed:TASK_FINISHED" })
}

func (h *harness) failedOver() bool {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.m.failovers > 0
}

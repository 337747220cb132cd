package framework

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubemesos/kubemesos/internal/hostfacts"
)

// FuzzSchedulerEvent feeds any scheduler Event the master could send (whatever decodes as one: the
// stream's decoder refuses the rest) to a subscribed framework with a pending pod, a running pod and
// a Node, then runs a placement cycle: nothing may panic, and every launch must use only offers the
// master made.
//
//	go test ./framework -run '^$' -fuzz '^FuzzSchedulerEvent$' -fuzztime 1000000x
func FuzzSchedulerEvent(f *testing.F) {
	seeds := []*scheduler.Event{
		{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: []mesos.Offer{offer("o1", "a1", "h1", 4, 4096)}}},
		{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: mesos.TaskStatus{
			TaskID: mesos.TaskID{Value: "pod-uid-run"}, State: mesos.TASK_FAILED.Enum(), AgentID: &mesos.AgentID{Value: "a1"},
			Source: mesos.SOURCE_AGENT.Enum(), Reason: mesos.REASON_CONTAINER_LIMITATION_MEMORY.Enum(), UUID: []byte("0123456789abcdef")}}},
		{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: "o1"}}},
		{Type: scheduler.Event_MESSAGE, Message: &scheduler.Event_Message{AgentID: mesos.AgentID{Value: "a1"},
			ExecutorID: mesos.ExecutorID{Value: ExecutorID}, Data: hostfacts.Collect("/").Encode()}},
		{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{AgentID: &mesos.AgentID{Value: "a1"}}},
		{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework has been removed"}},
		{Type: scheduler.Event_HEARTBEAT},
	}
	for _, e := range seeds {
		b, err := e.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var e scheduler.Event
		if err := e.Unmarshal(data); err != nil {
			return
		}
		fx := newFixtureConfig(t, DefaultConfig(), fake.NewClientset(), State{FrameworkID: "fw-1"},
			pod("pending", "uid-pending"), pod("run", "uid-run", func(p *corev1.Pod) { p.Spec.NodeName = "h1" }))
		fx.addNode(agentNode("h1", "a1"))
		fx.subscribe("fw-1")
		offered := map[string]bool{}
		if e.GetType() == scheduler.Event_OFFERS {
			for _, o := range e.GetOffers().GetOffers() {
				offered[o.ID.Value] = true
			}
		}
		_ = fx.s.HandleEvent(fx.ctx, &e) // an error ends the subscription: allowed
		fx.s.cycleAndLaunch(fx.ctx)
		for _, c := range fx.caller.ofType(scheduler.Call_ACCEPT) {
			for _, id := range c.GetAccept().OfferIDs {
				if !offered[id.Value] {
					t.Fatalf("ACCEPT of offer %q the master never made (event %v)", id.Value, e.GetType())
				}
			}
		}
	})
}

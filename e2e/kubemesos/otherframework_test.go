package kubemesos

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// batchFramework is a plain command-task Mesos framework (mesos-go's HTTP scheduler client, in the
// test process) that shares the cluster with kubemesos: it keeps up to target tasks running, each
// taking taskCPUs and taskMB, relaunching as they finish, and declines what it does not need. Task n
// runs script(n) (varied durations keep the tasks from ending all at once).
type batchFramework struct {
	t      *testing.T
	name   string
	caller calls.Caller
	fwID   string
	cancel context.CancelFunc
	done   chan struct{}

	target           int
	taskCPUs, taskMB float64
	script           func(n int) string

	mu       sync.Mutex
	running  map[string]bool // launched, not terminal
	finished int
	failed   []string
	offers   int
	seq      int
	errs     []error
}

func startBatchFramework(t *testing.T, masterURL, name string, target int, cpus, memMB float64, script func(n int) string) *batchFramework {
	t.Helper()
	b := &batchFramework{t: t, name: name, target: target, taskCPUs: cpus, taskMB: memMB, script: script,
		running: map[string]bool{}, done: make(chan struct{})}
	b.caller = httpsched.NewCaller(httpcli.New(httpcli.Endpoint(masterURL + "/api/v1/scheduler")))
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	info := &mesos.FrameworkInfo{
		User: "root", Name: name, Roles: []string{name},
		Capabilities: []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_MULTI_ROLE}},
	}
	resp, err := b.caller.Call(ctx, calls.Subscribe(info))
	if err != nil {
		cancel()
		t.Fatalf("%s: subscribing: %v", name, err)
	}
	var first scheduler.Event
	if err := resp.Decode(&first); err != nil || first.GetType() != scheduler.Event_SUBSCRIBED {
		resp.Close()
		cancel()
		t.Fatalf("%s: first event %v (%v), want SUBSCRIBED", name, first.GetType(), err)
	}
	b.fwID = first.GetSubscribed().FrameworkID.Value
	go func() {
		defer close(b.done)
		defer resp.Close()
		for {
			var ev scheduler.Event
			if err := resp.Decode(&ev); err != nil {
				if ctx.Err() == nil {
					b.fail(fmt.Errorf("event stream ended: %w", err))
				}
				return
			}
			b.handle(ctx, &ev)
		}
	}()
	t.Cleanup(b.stop)
	return b
}

func (b *batchFramework) stop() {
	b.cancel()
	<-b.done
}

func (b *batchFramework) fail(err error) {
	b.mu.Lock()
	b.errs = append(b.errs, err)
	b.mu.Unlock()
}

func (b *batchFramework) call(ctx context.Context, c *scheduler.Call) {
	resp, err := b.caller.Call(ctx, c.With(calls.Framework(b.fwID)))
	if resp != nil {
		resp.Close()
	}
	if err != nil && ctx.Err() == nil {
		b.fail(fmt.Errorf("%v: %w", c.GetType(), err))
	}
}

func (b *batchFramework) handle(ctx context.Context, ev *scheduler.Event) {
	switch ev.GetType() {
	case scheduler.Event_OFFERS:
		for _, o := range ev.GetOffers().GetOffers() {
			b.useOffer(ctx, o)
		}
	case scheduler.Event_UPDATE:
		st := ev.GetUpdate().GetStatus()
		b.mu.Lock()
		id := st.TaskID.Value
		switch st.GetState() {
		case mesos.TASK_STAGING, mesos.TASK_STARTING, mesos.TASK_RUNNING:
		case mesos.TASK_FINISHED:
			if b.running[id] {
				b.finished++
			}
			delete(b.running, id)
		default:
			if b.running[id] {
				b.failed = append(b.failed, fmt.Sprintf("%s %v %s", id, st.GetState(), st.GetMessage()))
			}
			delete(b.running, id)
		}
		b.mu.Unlock()
		if len(st.UUID) > 0 {
			b.call(ctx, calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
		}
	}
}

// useOffer launches as many tasks as fit the offer and are wanted; the rest is declined with a short
// filter so that it soon comes back when wanted.
func (b *batchFramework) useOffer(ctx context.Context, o mesos.Offer) {
	cpus, mem := scalarOf(o.Resources, "cpus"), scalarOf(o.Resources, "mem")
	b.mu.Lock()
	b.offers++
	var tasks []mesos.TaskInfo
	for len(b.running) < b.target && cpus >= b.taskCPUs && mem >= b.taskMB {
		b.seq++
		id := fmt.Sprintf("%s-%d", b.name, b.seq)
		tasks = append(tasks, mesos.TaskInfo{
			Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID,
			Command:   &mesos.CommandInfo{Value: proto.String(b.script(b.seq))},
			Resources: mesos.Resources{rez.NewCPUs(b.taskCPUs).Resource, rez.NewMemory(b.taskMB).Resource},
		})
		b.running[id] = true
		cpus -= b.taskCPUs
		mem -= b.taskMB
	}
	b.mu.Unlock()
	if len(tasks) == 0 {
		b.call(ctx, calls.Decline(o.ID).With(calls.RefuseSeconds(500*time.Millisecond)))
		return
	}
	b.call(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(o.ID)).With(calls.RefuseSeconds(500*time.Millisecond)))
}

// batchStats is a snapshot of the batch framework's progress.
type batchStats struct {
	Running, Finished, Offers int
	Failed                    []string
	Errs                      []error
}

func (b *batchFramework) stats() batchStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return batchStats{Running: len(b.running), Finished: b.finished, Offers: b.offers,
		Failed: append([]string(nil), b.failed...), Errs: append([]error(nil), b.errs...)}
}

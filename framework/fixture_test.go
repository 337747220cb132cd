package framework

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubemesos/kubemesos/offerbridge"
)

// fakeCaller records the calls the framework makes to Mesos.
type fakeCaller struct {
	mu    sync.Mutex
	calls []*scheduler.Call
	fail  map[scheduler.Call_Type]error
	// stream, when set, answers SUBSCRIBE.
	stream func() (mesos.Response, error)
	// onCall, when set, sees every call before it is answered.
	onCall func(*scheduler.Call)
}

func (f *fakeCaller) Call(_ context.Context, c *scheduler.Call) (mesos.Response, error) {
	f.mu.Lock()
	f.calls = append(f.calls, proto.Clone(c).(*scheduler.Call))
	err := f.fail[c.GetType()]
	stream, onCall := f.stream, f.onCall
	f.mu.Unlock()
	if onCall != nil {
		onCall(c)
	}
	if c.GetType() == scheduler.Call_SUBSCRIBE && stream != nil {
		return stream()
	}
	return nil, err
}

// ofType returns the recorded calls of one type.
func (f *fakeCaller) ofType(t scheduler.Call_Type) []*scheduler.Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*scheduler.Call
	for _, c := range f.calls {
		if c.GetType() == t {
			out = append(out, c)
		}
	}
	return out
}

// types returns the types of all calls in order.
func (f *fakeCaller) types() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = c.GetType().String()
	}
	return out
}

func (f *fakeCaller) reset() {
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
}

// fixture is a scheduler with a fake clientset, seeded listers, a fake clock and a fake Mesos caller.
// Informers are not running: tests put the objects a watch would deliver into the indexers themselves.
type fixture struct {
	t         *testing.T
	ctx       context.Context
	kube      *fake.Clientset
	clock     *clocktesting.FakeClock
	caller    *fakeCaller
	podIndex  cache.Indexer
	cacheForm *interner
	nodeIndex cache.Indexer
	recorder  *record.FakeRecorder
	store     *ConfigMapStore
	s         *sched
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newFixture(t *testing.T, st State, objs ...*corev1.Pod) *fixture {
	t.Helper()
	return newFixtureWith(t, fake.NewClientset(), st, objs...)
}

func newFixtureWith(t *testing.T, kube *fake.Clientset, st State, objs ...*corev1.Pod) *fixture {
	t.Helper()
	return newFixtureConfig(t, DefaultConfig(), kube, st, objs...)
}

func newFixtureConfig(t *testing.T, cfg Config, kube *fake.Clientset, st State, objs ...*corev1.Pod) *fixture {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	kube.PrependReactor("create", "pods", bindingReactor(kube))
	podIndex := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	nodeIndex := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	clk := clocktesting.NewFakeClock(t0)
	cacheForm := newInterner()
	store := &ConfigMapStore{Client: kube, Namespace: cfg.StateNamespace, Name: StateName}
	f := &fixture{t: t, ctx: context.Background(), kube: kube, clock: clk, caller: &fakeCaller{},
		podIndex: podIndex, cacheForm: cacheForm, nodeIndex: nodeIndex, recorder: record.NewFakeRecorder(1000), store: store}
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	t.Cleanup(queue.ShutDown)
	nodes := newNodeController(kube, clk, cfg.NodeLeaseDuration, cfg.ExecutorCPUs, cfg.ExecutorMemMB, log)
	f.s = newScheduler(cfg, ExecutorSettings{URI: "http://fw:10260/executor/kubemesos", LogLevel: "info", CPUs: 0.1, MemMB: 64}, st,
		schedulerDeps{Clock: clk, Log: log, Caller: f.caller, Store: store, Kube: kube, PodIndex: podIndex, PodUIDs: cacheForm.uids,
			NodeLister: corelisters.NewNodeLister(nodeIndex), Nodes: nodes, Recorder: f.recorder,
			Metrics: newMetrics(), Ready: &readiness{}, Queue: queue})
	f.s.seed = 1
	for _, p := range objs {
		f.addPod(p)
	}
	return f
}

// addPod stores a pod in the API and the informer cache.
func (f *fixture) addPod(p *corev1.Pod) {
	f.t.Helper()
	if _, err := f.kube.CoreV1().Pods(p.Namespace).Create(f.ctx, p, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.updateCache(p)
}

// updateCache puts an object into the pod cache, as a watch event would (through the informer's
// transform), and queues it.
func (f *fixture) updateCache(p *corev1.Pod) {
	f.t.Helper()
	if err := f.podIndex.Update(f.cacheForm.compactPod(p)); err != nil {
		f.t.Fatal(err)
	}
	f.s.queue.Add(podKey(p))
}

// refreshCache copies a pod from the fake API into the cache.
func (f *fixture) refreshCache(ns, name string) *corev1.Pod {
	f.t.Helper()
	p, err := f.kube.CoreV1().Pods(ns).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.updateCache(p)
	return p
}

func (f *fixture) addNode(n *corev1.Node) {
	f.t.Helper()
	if err := f.nodeIndex.Add(n); err != nil {
		f.t.Fatal(err)
	}
}

// pendingPod is a copy of the scheduler's record of a pending pod (the zero value if none).
func (f *fixture) pendingPod(key string) pendingPod {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if p := f.s.pending[key]; p != nil {
		return *p
	}
	return pendingPod{}
}

// drain syncs every queued pod key, as the workers would.
func (f *fixture) drain() {
	f.t.Helper()
	for f.s.queue.Len() > 0 {
		key, _ := f.s.queue.Get()
		if err := f.s.syncPod(f.ctx, key); err != nil {
			f.t.Logf("syncPod(%s): %v", key, err)
		}
		f.s.queue.Forget(key)
		f.s.queue.Done(key)
	}
}

func (f *fixture) event(e *scheduler.Event) {
	f.t.Helper()
	if err := f.s.HandleEvent(f.ctx, e); err != nil {
		f.t.Fatalf("HandleEvent(%s): %v", e.GetType(), err)
	}
}

func (f *fixture) subscribe(id string) {
	f.t.Helper()
	hb := 15.0
	f.event(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID: &mesos.FrameworkID{Value: id}, HeartbeatIntervalSeconds: &hb}})
}

func (f *fixture) offers(os ...mesos.Offer) {
	f.t.Helper()
	f.event(&scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: os}})
}

func (f *fixture) update(st mesos.TaskStatus) {
	f.t.Helper()
	f.event(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}})
}

// status builds a task status; uuid nil makes it a reconciliation answer.
func status(taskID, agentID string, state mesos.TaskState, source mesos.TaskStatus_Source, reason *mesos.TaskStatus_Reason, uuid []byte) mesos.TaskStatus {
	return mesos.TaskStatus{TaskID: mesos.TaskID{Value: taskID}, AgentID: &mesos.AgentID{Value: agentID},
		State: state.Enum(), Source: source.Enum(), Reason: reason, UUID: uuid}
}

const role = "kubemesos"

func roleScalar(name string, v float64) mesos.Resource {
	r := role
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v},
		AllocationInfo: &mesos.Resource_AllocationInfo{Role: &r}}
}

func offer(id, agent, host string, cpus, mem float64, executors ...string) mesos.Offer {
	r := role
	ports := mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(),
		Ranges:         &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 31000, End: 32000}}},
		AllocationInfo: &mesos.Resource_AllocationInfo{Role: &r}}
	o := mesos.Offer{
		ID: mesos.OfferID{Value: id}, FrameworkID: mesos.FrameworkID{Value: "fw-1"},
		AgentID: mesos.AgentID{Value: agent}, Hostname: host,
		AllocationInfo: &mesos.Resource_AllocationInfo{Role: &r},
		Resources:      []mesos.Resource{roleScalar("cpus", cpus), roleScalar("mem", mem), roleScalar("disk", 10000), ports},
	}
	for _, e := range executors {
		o.ExecutorIDs = append(o.ExecutorIDs, mesos.ExecutorID{Value: e})
	}
	return o
}

func pod(name, uid string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(uid),
			CreationTimestamp: metav1.NewTime(t0.Add(-time.Second))},
		Spec: corev1.PodSpec{
			SchedulerName: "kubemesos",
			Containers: []corev1.Container{{Name: "c", Image: "busybox", Command: []string{"sleep", "3600"},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func resourceQuantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

// agentNode is a Node the fixture's framework (fw-1) created for an agent.
func agentNode(host, agentID string) *corev1.Node {
	return frameworkNode(host, agentID, "fw-1")
}

// frameworkNode is a Node a kubemesos framework created for an agent; frameworkID "" leaves it
// unmarked, as Nodes were before frameworks marked them.
func frameworkNode(host, agentID, frameworkID string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: host, Labels: map[string]string{
		offerbridge.LabelHostname: host, offerbridge.LabelAgentID: agentID}}}
	if frameworkID != "" {
		n.Annotations = map[string]string{AnnotationFrameworkID: frameworkID, AnnotationFrameworkName: "kubemesos"}
	}
	return n
}

// taskIDs returns the task IDs launched by ACCEPT calls.
func launchedTasks(cs []*scheduler.Call) []string {
	var out []string
	for _, c := range cs {
		for _, op := range c.GetAccept().GetOperations() {
			for _, ti := range op.GetLaunch().GetTaskInfos() {
				out = append(out, ti.TaskID.Value)
			}
		}
	}
	return out
}

// actionsOn lists the fake clientset's actions as "verb resource[/subresource]".
func (f *fixture) actions() []string {
	var out []string
	for _, a := range f.kube.Actions() {
		s := a.GetVerb() + " " + a.GetResource().Resource
		if sub := a.GetSubresource(); sub != "" {
			s += "/" + sub
		}
		out = append(out, s)
	}
	return out
}

var _ encoding.Decoder = (*eventStream)(nil)

// eventStream is a SUBSCRIBE response delivering events, then blocking until closed.
type eventStream struct {
	events chan *scheduler.Event
	closed chan struct{}
	once   sync.Once
}

func newEventStream() *eventStream {
	return &eventStream{events: make(chan *scheduler.Event, 100), closed: make(chan struct{})}
}

func (s *eventStream) Decode(u encoding.Unmarshaler) error {
	select {
	case e := <-s.events:
		b, err := e.Marshal()
		if err != nil {
			return err
		}
		return u.Unmarshal(b)
	case <-s.closed:
		return fmt.Errorf("stream closed: %w", io.EOF)
	}
}

func (s *eventStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// bindingReactor makes the fake clientset apply Bindings to the pod, as the API server does.
func bindingReactor(kube *fake.Clientset) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := a.(k8stesting.CreateAction).GetObject().(*corev1.Binding)
		gvr := corev1.SchemeGroupVersion.WithResource("pods")
		obj, err := kube.Tracker().Get(gvr, b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		p := obj.(*corev1.Pod).DeepCopy()
		if p.Spec.NodeName != "" {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), b.Name, fmt.Errorf("pod %s is already assigned to node %q", b.Name, p.Spec.NodeName))
		}
		p.Spec.NodeName = b.Target.Name
		return true, b, kube.Tracker().Update(gvr, p, b.Namespace)
	}
}

type agentFixture struct {
	id, host    string
	active      bool
	deactivated *bool
}

func getAgentsResponse(agents []agentFixture) *master.Response_GetAgents {
	r := &master.Response_GetAgents{}
	for _, a := range agents {
		r.Agents = append(r.Agents, master.Response_GetAgents_Agent{
			AgentInfo: mesos.AgentInfo{ID: &mesos.AgentID{Value: a.id}, Hostname: a.host},
			Active:    a.active, Deactivated: a.deactivated,
			TotalResources: []mesos.Resource{scalar("cpus", 4)},
		})
	}
	return r
}

// cycleAndLaunch runs one placement cycle and waits for the launches it started, so a test sees
// their Bindings and ACCEPT.
func (s *sched) cycleAndLaunch(ctx context.Context) {
	s.cycle(ctx)
	s.launches.Wait()
}

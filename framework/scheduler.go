package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/internal/hostfacts"
	"github.com/kubemesos/kubemesos/offerbridge"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// Event reasons the framework records on pods.
const (
	EventScheduled        = "Scheduled"
	EventFailedScheduling = "FailedScheduling"
	EventFailedBinding    = "FailedBinding"
	EventFailedLaunch     = "FailedLaunch"
	EventKilling          = "Killing"
	EventTaskEnded        = "TaskEnded"
	// EventFailedCreatePodSandBox is the kubelet's event when a pod's sandbox cannot be created: here,
	// its sandbox task ended before the pod ran.
	EventFailedCreatePodSandBox = "FailedCreatePodSandBox"
	// EventSandboxEnded: a running pod's sandbox task ended, taking the pod's network with it.
	EventSandboxEnded = "SandboxEnded"
)

// Reasons the framework writes into a pod's status besides podtranslate's.
const (
	// PodReasonFailedCreatePodSandBox: the pod's sandbox task ended before the pod ran (say, the agent
	// does not know the CNI network); the message carries Mesos' text.
	PodReasonFailedCreatePodSandBox = "FailedCreatePodSandBox"
	// PodReasonTaskDropped: Mesos dropped or could not start the pod's task maxDrops times; the pod stays
	// bound, so it is failed and its controller replaces it.
	PodReasonTaskDropped = "TaskDropped"
)

const (
	// taskIDPrefix is podtranslate's TaskID prefix.
	taskIDPrefix = podtranslate.TaskIDPrefix
	// sandboxIDPrefix starts a sandbox task's ID (a pod on a CNI pod network is two tasks).
	sandboxIDPrefix = podtranslate.SandboxTaskIDPrefix
	// maxDrops is how often a bound pod's task may be relaunched after Mesos dropped it, could not start
	// its executor, or did not know it.
	maxDrops = 3
	// bindParallelism bounds the Bindings of one launch in flight at once.
	bindParallelism = 16
	// launchParallelism bounds the launches (agents) carried out at once, over every cycle. A launch
	// lasts its Bindings' and ACCEPT's round trips (0.3-0.5 s on a loaded API server): 16 capped a
	// burst at about 40 launches a second (issue 13's profile). With 64, the simulated master of 1,000
	// agents, 1,000 executors starting in its process, answered some ACCEPTs after 15 s, and mesos-go
	// resubscribes after a failed call.
	launchParallelism = 32
	// acceptRefuse is the filter of resources left unused by an ACCEPT: none, so Mesos offers them
	// again at its next allocation (a filter of 1 s missed that one: Mesos expires a filter only after
	// both its timeout and an allocation interval, hierarchical.cpp recoverResources). Placement
	// counts on that room (offerbridge.Book.Returning) and pods wait for it.
	acceptRefuse = 0
	// placement back-off of unschedulable pods.
	minPodBackoff = time.Second
	maxPodBackoff = 30 * time.Second
	// killRepeat is how long a KILL is given before it is sent again (lost calls, agent restarts).
	killRepeat = 30 * time.Second
	// explicit reconciliation back-off.
	minReconcileBackoff = time.Second
	maxReconcileBackoff = time.Minute
)

// taskRecord is what the framework knows about one of its tasks.
type taskRecord struct {
	agentID string
	state   mesos.TaskState
	// relaunch is true when Mesos says the task never started the pod (TASK_DROPPED, a launch-time
	// TASK_LOST) or does not know it (TASK_UNKNOWN, a reconciliation TASK_LOST): the bound pod may be
	// launched again. ifNotStarted limits that to pods that never started.
	relaunch     bool
	ifNotStarted bool
	drops        int
	// killedAt is when KILL was last sent; a KILL is repeated only after killRepeat.
	killedAt time.Time
	// notReadySaved holds the pod's Ready and ContainersReady conditions from before the framework
	// marked them False for TASK_UNREACHABLE, to restore when the task is RUNNING again.
	notReadySaved []corev1.PodCondition
}

// live reports whether the task may be running.
func (r *taskRecord) live() bool { return r != nil && !r.relaunch && !terminal(r.state) }

// pendingPod is a pod waiting for placement.
type pendingPod struct {
	uid       types.UID
	attempts  int
	notBefore time.Time
	message   string                      // last FailedScheduling message
	waits     offerbridge.AgentsWaitedFor // of the last attempt: whose offers may place the pod
	// full is a bound pod as the API server has it (the cache keeps bound pods without what a launch
	// needs: podcache.go).
	full *corev1.Pod
}

// sched is the framework's core: it handles Mesos events, runs placement cycles over held offers and
// pending pods, binds and launches, and syncs each pod with its task. Mesos events arrive on the
// subscription goroutine, pod keys on the workqueue workers, placement runs on the loop goroutine; all
// shared state is behind mu and no I/O happens while mu is held.
type sched struct {
	clock          clock.WithTicker
	log            logrus.FieldLogger
	caller         calls.Caller
	store          StateStore
	kube           kubernetes.Interface
	pods           corelisters.PodLister
	podUIDs        *podUIDs
	nodeLister     corelisters.NodeLister
	nodes          *nodeController
	operator       executorLister // nil: no lookup of running executors
	recorder       record.EventRecorder
	metrics        *metrics
	ready          *readiness
	fence          *leaseFence
	book           *offerbridge.Book
	queue          workqueue.TypedRateLimitingInterface[string]
	schedulerNames map[string]bool
	translate      podtranslate.Options
	executor       ExecutorSettings
	frameworkInfo  mesos.FrameworkInfo // without ID
	refuse         time.Duration
	reconcileEvery time.Duration
	seed           uint64
	kick           chan struct{}
	placement      placementSettings
	roles          *roleState
	quotaOp        quotaOperator // nil: no operator API, namespaces' quota annotations are not applied
	quota          quotaState
	preemption     preemptionState
	maintenance    maintenanceState

	// saveMu makes state writes one at a time (saveState).
	saveMu sync.Mutex
	// savedGen is the stateGen of the last state written (under saveMu).
	savedGen uint64
	mu       sync.Mutex
	state    State
	// stateGen counts the changes made to state.
	stateGen    uint64
	persistedID string // the FrameworkID known to be in the store
	subscribed  bool
	suppressed  bool
	filtered    bool
	newPending  bool
	tasks       map[string]*taskRecord
	pending     map[string]*pendingPod
	inflight    map[types.UID]bool
	// agentLaunch is, per agent, closed when the last launch started there has ended: launches of
	// later cycles on the same agent wait for it (executorFor and Mesos' executor launch assume one
	// at a time).
	agentLaunch map[string]chan struct{}
	// launches are the launches in flight (runLoop waits for them); launchSlots bounds them.
	launches         sync.WaitGroup
	launchSlots      chan struct{}
	awaiting         map[string]string // explicit reconciliation: task ID → agent ID
	reconciled       bool
	reconcileAttempt int
	nextReconcile    time.Time
	nextImplicit     time.Time
}

// schedulerDeps are the collaborators of a scheduler.
type schedulerDeps struct {
	Clock      clock.WithTicker
	Log        logrus.FieldLogger
	Caller     calls.Caller
	Store      StateStore
	Kube       kubernetes.Interface
	PodIndex   cache.Indexer // the pod informer's indexer
	PodUIDs    *podUIDs      // kept by the pod informer's transform
	NodeLister corelisters.NodeLister
	Nodes      *nodeController
	Operator   executorLister // optional
	Recorder   record.EventRecorder
	Metrics    *metrics
	Ready      *readiness
	Queue      workqueue.TypedRateLimitingInterface[string]
	// Fence is checked before every Mesos call and Binding; nil without leader election.
	Fence *leaseFence

	// NamespaceLister gives the namespaces' labels for pod affinity's namespaceSelector; optional.
	NamespaceLister corelisters.NamespaceLister
}

func newScheduler(cfg Config, executor ExecutorSettings, st State, d schedulerDeps) *sched {
	if st.Executors == nil {
		st.Executors = map[string]mesos.ExecutorInfo{}
	}
	s := &sched{
		clock: d.Clock, log: d.Log, caller: d.Caller, store: d.Store, kube: d.Kube,
		pods: corelisters.NewPodLister(d.PodIndex), podUIDs: d.PodUIDs, nodeLister: d.NodeLister,
		nodes: d.Nodes, operator: d.Operator, recorder: d.Recorder, metrics: d.Metrics, ready: d.Ready, queue: d.Queue, fence: d.Fence,
		book:           offerbridge.NewBook(d.Clock, cfg.OfferHold),
		schedulerNames: cfg.SchedulerNames(),
		translate:      cfg.translateOptions(),
		executor:       executor,
		frameworkInfo:  frameworkInfo(cfg),
		refuse:         time.Duration(cfg.RefuseSeconds * float64(time.Second)),
		reconcileEvery: cfg.ReconcileInterval,
		seed:           uint64(d.Clock.Now().UnixNano()),
		kick:           make(chan struct{}, 1),
		placement:      newPlacementSettings(cfg, d.NamespaceLister),
		roles:          newRoleState(cfg),
		state:          st,
		persistedID:    st.FrameworkID,
		tasks:          map[string]*taskRecord{},
		pending:        map[string]*pendingPod{},
		inflight:       map[types.UID]bool{},
		agentLaunch:    map[string]chan struct{}{},
		launchSlots:    make(chan struct{}, launchParallelism),
		awaiting:       map[string]string{},
	}
	d.Nodes.mu.Lock()
	d.Nodes.onBack = s.agentBack
	d.Nodes.recorder, d.Nodes.metrics = d.Recorder, d.Metrics
	d.Nodes.owner.name, d.Nodes.owner.master = cfg.FrameworkName, cfg.Master
	d.Nodes.podCIDRAttribute = cfg.PodCIDRAttribute
	d.Nodes.mu.Unlock()
	// A restarted framework knows its Nodes by the stored FrameworkID before Mesos answers.
	d.Nodes.SetOwner(st.FrameworkID, st.FormerFrameworkIDs)
	return s
}

// agentBack asks Mesos about the unreachable tasks of an agent that is active again: a partition-aware
// master does not send updates for them when the agent re-registers, reconciliation tells.
func (s *sched) agentBack(agentID string) {
	ask := map[string]string{}
	s.mu.Lock()
	for id, rec := range s.tasks {
		if rec.agentID == agentID && rec.state == mesos.TASK_UNREACHABLE {
			ask[id] = agentID
		}
	}
	subscribed := s.subscribed
	s.mu.Unlock()
	if len(ask) == 0 || !subscribed {
		return
	}
	s.log.WithFields(logrus.Fields{"agentID": agentID, "tasks": len(ask)}).Info("agent active again: reconciling its unreachable tasks")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.call(ctx, calls.Reconcile(calls.ReconcileTasks(ask))); err != nil {
		s.log.WithError(err).Warn("reconciling tasks of an agent back from a partition")
	}
}

// frameworkInfo is the FrameworkInfo of docs/design.md (without the FrameworkID).
func frameworkInfo(cfg Config) mesos.FrameworkInfo {
	failover := cfg.FailoverTimeout.Seconds()
	checkpoint := true
	hostname, _ := os.Hostname()
	userName := cfg.MesosUser
	if userName == "" {
		userName = "root"
		if u, err := user.Current(); err == nil {
			userName = u.Username
		}
	}
	fi := mesos.FrameworkInfo{
		User:            userName,
		Name:            cfg.FrameworkName,
		Roles:           append([]string(nil), cfg.Roles...),
		FailoverTimeout: &failover,
		Checkpoint:      &checkpoint,
		Capabilities: []mesos.FrameworkInfo_Capability{
			{Type: mesos.FrameworkInfo_Capability_MULTI_ROLE},
			{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE},
			{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
			{Type: mesos.FrameworkInfo_Capability_GPU_RESOURCES},
		},
	}
	if hostname != "" {
		fi.Hostname = &hostname
	}
	if cfg.Principal != "" {
		p := cfg.Principal
		fi.Principal = &p
	}
	return fi
}

// FrameworkInfo returns the FrameworkInfo for the next SUBSCRIBE, with the persisted FrameworkID and
// the roles in use.
func (s *sched) FrameworkInfo() *mesos.FrameworkInfo {
	fi := s.frameworkInfo
	fi.Roles = s.subscribeRoles()
	s.mu.Lock()
	if id := s.state.FrameworkID; id != "" {
		fi.ID = &mesos.FrameworkID{Value: id}
	}
	s.mu.Unlock()
	return &fi
}

// call sends a call with the FrameworkID set, dropping the response body.
func (s *sched) call(ctx context.Context, c *scheduler.Call) error {
	s.mu.Lock()
	id := s.state.FrameworkID
	s.mu.Unlock()
	if id == "" {
		return errors.New("no FrameworkID yet")
	}
	if err := s.fence.allow(fencedMesosCall, c.GetType().String()); err != nil {
		return fmt.Errorf("mesos %s not sent: %w", c.GetType(), err)
	}
	c.FrameworkID = &mesos.FrameworkID{Value: id}
	if err := calls.CallNoData(ctx, s.caller, c); err != nil {
		return fmt.Errorf("mesos %s: %w", c.GetType(), err)
	}
	return nil
}

func (s *sched) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// ---- Mesos events ----

// HandleEvent handles one event of the subscription. An error ends the subscription.
func (s *sched) HandleEvent(ctx context.Context, e *scheduler.Event) error {
	switch e.GetType() {
	case scheduler.Event_SUBSCRIBED:
		return s.handleSubscribed(ctx, e.GetSubscribed())
	case scheduler.Event_OFFERS:
		s.handleOffers(e.GetOffers().GetOffers())
	case scheduler.Event_RESCIND:
		id := e.GetRescind().GetOfferID()
		if s.book.Rescind(id) {
			s.metrics.offersRescinded.Inc()
		}
		s.log.WithField("offerID", id.Value).Debug("offer rescinded")
	case scheduler.Event_UPDATE:
		s.handleUpdate(ctx, e.GetUpdate().GetStatus())
	case scheduler.Event_FAILURE:
		s.handleFailure(ctx, e.GetFailure())
	case scheduler.Event_ERROR:
		return s.handleError(ctx, e.GetError().GetMessage())
	case scheduler.Event_MESSAGE:
		s.handleMessage(e.GetMessage())
	case scheduler.Event_INVERSE_OFFERS:
		s.handleInverseOffers(e.GetInverseOffers().GetInverseOffers())
	case scheduler.Event_RESCIND_INVERSE_OFFER:
		s.rescindInverseOffer(e.GetRescindInverseOffer().GetInverseOfferID())
	case scheduler.Event_HEARTBEAT:
	default:
		s.log.WithField("type", e.GetType().String()).Debug("ignoring Mesos event")
	}
	return nil
}

// handleMessage takes an executor's MESSAGE: the kubelet executor's host facts go to the agent's Node;
// anything else is logged and dropped (a MESSAGE is not acknowledged, so there is nothing to refuse).
func (s *sched) handleMessage(m *scheduler.Event_Message) {
	if m == nil {
		// A MESSAGE event without its message (FuzzSchedulerEvent's crasher): nothing to take.
		s.log.Warn("Mesos MESSAGE event without a message: ignored")
		return
	}
	log := s.log.WithFields(logrus.Fields{"agentID": m.AgentID.Value, "executorID": m.ExecutorID.Value, "bytes": len(m.Data)})
	f, err := hostfacts.Decode(m.Data)
	switch {
	case errors.Is(err, hostfacts.ErrNotFacts):
		log.Debug("executor message that is not host facts: ignored")
	case err != nil:
		log.WithError(err).Warn("executor sent malformed host facts: ignored")
	case len(validation.IsValidLabelValue(f.OperatingSystem)) > 0 || len(validation.IsValidLabelValue(f.Architecture)) > 0:
		log.WithFields(logrus.Fields{"os": f.OperatingSystem, "arch": f.Architecture}).Warn("executor's host facts are no valid label values: ignored")
	default:
		s.nodes.SetHostFacts(m.AgentID.Value, f)
	}
}

// handleSubscribed persists the FrameworkID before anything is launched and starts reconciliation.
func (s *sched) handleSubscribed(ctx context.Context, sub *scheduler.Event_Subscribed) error {
	id := sub.GetFrameworkID().GetValue()
	if id == "" {
		// Persisting it would lose the framework's identity (its tasks) at the next failover.
		return errors.New("Mesos SUBSCRIBED event without a FrameworkID")
	}
	persist := false
	var former []string
	if err := s.saveState(ctx, func(st *State) bool {
		st.FrameworkID = id
		former = append([]string(nil), st.FormerFrameworkIDs...)
		persist = id != s.persistedID
		return persist
	}); err != nil {
		return fmt.Errorf("persisting FrameworkID %s: %w", id, err)
	}
	if persist {
		s.mu.Lock()
		s.persistedID = id
		s.mu.Unlock()
	}
	// Only a stored FrameworkID marks Nodes: a crash must not leave Nodes marked with one it forgot.
	s.nodes.SetOwner(id, former)
	s.nodes.SetMasterVersion(sub.GetMasterInfo().GetVersion())
	s.log.WithFields(logrus.Fields{"frameworkID": id, "master": sub.GetMasterInfo().GetID(),
		"heartbeat": sub.GetHeartbeatIntervalSeconds()}).Info("subscribed to Mesos")
	s.mu.Lock()
	s.subscribed = true
	s.suppressed = false
	s.filtered = false
	s.mu.Unlock()
	s.ready.subscribed.Store(true)
	s.metrics.subscribed.Set(1)
	s.startReconciliation(ctx)
	s.poke()
	return nil
}

// Disconnected forgets the offers of the ended subscription (Mesos rescinds them) and stops launching
// until the next SUBSCRIBED and reconciliation.
func (s *sched) Disconnected(err error) {
	s.mu.Lock()
	s.subscribed = false
	s.reconciled = false
	s.mu.Unlock()
	s.ready.subscribed.Store(false)
	s.metrics.subscribed.Set(0)
	for _, o := range s.book.Take() {
		if s.book.Rescind(o.ID) {
			s.metrics.offersRescinded.Inc()
		}
	}
	if err != nil {
		s.log.WithError(err).Warn("disconnected from Mesos")
	}
}

func (s *sched) handleOffers(offers []mesos.Offer) {
	s.metrics.offersReceived.Add(float64(len(offers)))
	s.retryForOffers(offers)
	s.observeUnavailability(offers)
	for i := range offers {
		s.nodes.ObserveOffer(&offers[i])
		s.log.WithFields(logrus.Fields{"offerID": offers[i].ID.Value, "agentID": offers[i].AgentID.Value}).Debug("offer received")
	}
	s.book.Add(offers...)
	s.poke()
}

func (s *sched) handleFailure(ctx context.Context, f *scheduler.Event_Failure) {
	if f == nil {
		s.log.Warn("Mesos FAILURE event without its failure: ignored")
		return
	}
	agentID := f.GetAgentID().GetValue()
	if f.ExecutorID != nil {
		// The executor exited: the next pod on that agent starts a new one with the current settings.
		log := s.log.WithFields(logrus.Fields{"agentID": agentID, "executorID": f.ExecutorID.Value, "status": f.GetStatus()})
		if strings.HasPrefix(f.ExecutorID.Value, podtranslate.SandboxExecutorIDPrefix) {
			log.Debug("sandbox executor terminated") // every sandboxed pod's end; its task's updates tell
			return
		}
		log.Warn("executor terminated")
		if f.ExecutorID.Value != ExecutorID {
			return
		}
		if err := s.saveState(ctx, forgetExecutor(agentID)); err != nil {
			s.log.WithError(err).Warn("forgetting executor of agent in state")
		}
		return
	}
	s.log.WithField("agentID", agentID).Warn("Mesos agent removed")
	for _, id := range s.book.RemoveAgent(agentID) {
		s.metrics.offersRescinded.Inc()
		s.log.WithField("offerID", id.Value).Debug("offer of removed agent forgotten")
	}
	s.nodes.MarkInactive(agentID, ReasonAgentRemoved, "Mesos reported the agent failed")
	// Its executor is gone with it.
	if err := s.saveState(ctx, forgetExecutor(agentID)); err != nil {
		s.log.WithError(err).Warn("forgetting executor of removed agent in state")
	}
}

func (s *sched) handleError(ctx context.Context, msg string) error {
	s.log.WithField("message", msg).Error("Mesos sent ERROR")
	if strings.Contains(strings.ToLower(msg), "removed") || strings.Contains(strings.ToLower(msg), "torn down") {
		// The master removed this framework (failover timeout passed or teardown): its tasks are gone,
		// so subscribe anew instead of retrying a dead FrameworkID forever.
		if err := s.saveState(ctx, func(st *State) bool {
			// Its Nodes stay its own under the FrameworkID Mesos gives it next.
			st.FormerFrameworkIDs = formerIDs(st.FormerFrameworkIDs, st.FrameworkID)
			st.FrameworkID = ""
			return true
		}); err != nil {
			s.log.WithError(err).Warn("clearing FrameworkID in state")
		}
	}
	return fmt.Errorf("mesos error: %s", msg)
}

// saveState applies change to the state under s.mu and, when it reports a change, returns once a
// write holding it has succeeded. Writes go one at a time, each of a snapshot taken when it starts,
// so a later write never carries an older snapshot; and changes made while a write is under way
// (first launches on many agents at once) share the next write instead of one write each: a write
// costs the whole state, so one per agent made a warm-up of 5,000 agents O(agents²) (issue 13).
func (s *sched) saveState(ctx context.Context, change func(*State) bool) error {
	s.mu.Lock()
	if !change(&s.state) {
		s.mu.Unlock()
		return nil
	}
	s.stateGen++
	mine := s.stateGen
	s.mu.Unlock()

	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	if s.savedGen >= mine {
		return nil // a write that started after the change has carried it
	}
	s.mu.Lock()
	st, gen := s.snapshotState(), s.stateGen
	s.mu.Unlock()
	if err := s.store.Save(ctx, st); err != nil {
		return err
	}
	s.savedGen = gen
	return nil
}

// forgetExecutor drops an agent's ExecutorInfo from the state (a change only if it had one).
func forgetExecutor(agentID string) func(*State) bool {
	return func(st *State) bool {
		_, had := st.Executors[agentID]
		delete(st.Executors, agentID)
		return had
	}
}

func (s *sched) snapshotState() State {
	st := State{FrameworkID: s.state.FrameworkID, FormerFrameworkIDs: slices.Clone(s.state.FormerFrameworkIDs),
		Executors: make(map[string]mesos.ExecutorInfo, len(s.state.Executors))}
	for k, v := range s.state.Executors {
		st.Executors[k] = v
	}
	return st
}

// reconciliationAnswer reports whether a status is the master's unreliable answer to RECONCILE.
func reconciliationAnswer(st *mesos.TaskStatus) bool {
	return st.UUID == nil && st.GetReason() == mesos.REASON_RECONCILIATION
}

// terminal reports whether a task state is terminal for the task. TASK_UNREACHABLE is not terminal in
// Mesos, but the framework treats the pod as lost (its Node goes NotReady and the pod fails).
func terminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR, mesos.TASK_LOST,
		mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR, mesos.TASK_UNKNOWN:
		return true
	}
	return false
}

// handleUpdate records a task's state, fails the pod when only Mesos can tell why it ended, queues the
// pod and acknowledges the update once handled (never one without uuid).
func (s *sched) handleUpdate(ctx context.Context, st mesos.TaskStatus) {
	taskID, agentID, state := st.TaskID.Value, st.GetAgentID().GetValue(), st.GetState()
	fields := logrus.Fields{"taskID": taskID, "agentID": agentID, "state": state.String(), "source": st.GetSource().String()}
	if st.Reason != nil { // its zero value is REASON_COMMAND_EXECUTOR_FAILED
		fields["reason"] = st.GetReason().String()
	}
	log := s.log.WithFields(fields)
	log.WithField("message", st.GetMessage()).Debug("task status update")
	s.metrics.statusUpdates.WithLabelValues(state.String()).Inc()

	out := podtranslate.PodStatusForTask(st)
	requeueAll := false
	s.mu.Lock()
	rec, ok := s.tasks[taskID]
	if !ok {
		rec = &taskRecord{agentID: agentID}
		s.tasks[taskID] = rec
	}
	if agentID != "" {
		rec.agentID = agentID
	}
	rec.state = state
	wasRelaunch := rec.relaunch
	rec.relaunch = out.Action == podtranslate.ActionRelaunch || out.Action == podtranslate.ActionRelaunchIfNotStarted
	rec.ifNotStarted = out.Action == podtranslate.ActionRelaunchIfNotStarted
	if rec.relaunch && !wasRelaunch {
		// Every relaunch counts, so a launch that fails the same way each time (say, an executor URI
		// nobody serves) ends the pod after maxDrops attempts instead of looping; once per launch: the
		// answers of repeated explicit reconciliations (after an ACCEPT that timed out, each round
		// until all are answered) are one drop, not one each.
		rec.drops++
	}
	relaunch := rec.relaunch
	if _, asked := s.awaiting[taskID]; asked {
		delete(s.awaiting, taskID)
		if len(s.awaiting) == 0 && !s.reconciled {
			s.reconciled, requeueAll = true, true
		}
	}
	s.mu.Unlock()

	switch {
	case state == mesos.TASK_UNREACHABLE:
		s.nodes.MarkInactive(agentID, ReasonAgentUnreachable, "Mesos reports the agent unreachable")
	case (state == mesos.TASK_GONE || state == mesos.TASK_GONE_BY_OPERATOR) && !reconciliationAnswer(&st):
		s.nodes.MarkInactive(agentID, ReasonAgentGone, "Mesos reports the agent gone")
	case state == mesos.TASK_LOST && (st.GetReason() == mesos.REASON_AGENT_REMOVED || st.GetReason() == mesos.REASON_AGENT_DISCONNECTED):
		s.nodes.MarkInactive(agentID, ReasonAgentRemoved, "Mesos reports the agent removed")
	}

	handled := true
	uid, isPod := strings.CutPrefix(taskID, taskIDPrefix)
	if sbUID, isSandbox := strings.CutPrefix(taskID, sandboxIDPrefix); isSandbox {
		if err := s.handleSandboxUpdate(ctx, types.UID(sbUID), &st, log); err != nil {
			log.WithError(err).Warn("handling sandbox task update; not acknowledging, Mesos will resend")
			handled = false
		}
	}
	if isPod {
		pod := s.podByUID(types.UID(uid))
		switch {
		case pod == nil && !terminal(state) && !relaunch:
			// The pod is gone (deleted while the framework was away): its task must not outlive it.
			if sent, err := s.killTask(ctx, taskID, agentID, nil); err != nil {
				log.WithError(err).Warn("killing task of a deleted pod")
			} else if sent {
				log.Info("killing task of a deleted pod")
			}
		case pod == nil && (terminal(state) || relaunch):
			// Neither pod nor task remains: forget the task, end its sandbox.
			s.mu.Lock()
			delete(s.tasks, taskID)
			s.mu.Unlock()
			s.endSandbox(ctx, types.UID(uid), log)
		case pod != nil && !s.ownsPod(pod):
			// Another scheduler's pod, or one bound to a Node of another framework: its status is
			// not this framework's to write, whatever this master says about the task.
			log.WithField("pod", podKey(pod)).Debug("task update about a pod the framework does not own: left alone")
		case pod != nil:
			if err := s.applyMesosOnlyOutcome(ctx, pod, state, out.ForPod(pod)); err != nil {
				log.WithError(err).Warn("writing pod status for task update; not acknowledging, Mesos will resend")
				handled = false
			}
			// syncPod ends the sandbox once the pod task is over.
			s.queue.Add(podKey(pod))
		}
	}
	if requeueAll {
		s.log.Info("explicit reconciliation complete")
		s.requeueAllPods()
	}
	if handled && st.UUID != nil {
		if err := s.call(ctx, calls.Acknowledge(agentID, taskID, st.UUID)); err != nil {
			log.WithError(err).Warn("acknowledging status update")
		}
	}
	s.poke()
}

func (s *sched) podByUID(uid types.UID) *corev1.Pod {
	n, ok := s.podUIDs.name(uid)
	if !ok {
		return nil
	}
	pod, err := s.pods.Pods(n.Namespace).Get(n.Name)
	if err != nil || pod.UID != uid {
		return nil
	}
	return pod
}

func (s *sched) requeueAllPods() {
	pods, err := s.pods.List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pods {
		s.queue.Add(podKey(p))
	}
}

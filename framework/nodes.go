package framework

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	nodeutil "k8s.io/component-helpers/node/util"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/internal/hostfacts"
	"github.com/kubemesos/kubemesos/internal/version"
	"github.com/kubemesos/kubemesos/offerbridge"
)

// Reasons of a Node's Ready condition.
const (
	ReasonAgentActive      = "MesosAgentActive"
	ReasonAgentRemoved     = "MesosAgentRemoved"
	ReasonAgentUnreachable = "MesosAgentUnreachable"
	ReasonAgentGone        = "MesosAgentGone"
	ReasonAgentInactive    = "MesosAgentInactive"
)

// NodeLeaseNamespace is where Node heartbeats (Leases) live.
const NodeLeaseNamespace = corev1.NamespaceNodeLease

// nodeStatusReportPeriod is how often a Node's status is rewritten when nothing changed (the
// kubelet's nodeStatusReportFrequency); the Lease carries the heartbeat in between.
const nodeStatusReportPeriod = 5 * time.Minute

// nodeSyncParallelism bounds the Node and Lease writes in flight at once.
const nodeSyncParallelism = 16

// maxPodsPerNode is the Node's pods capacity (the kubelet's default).
const maxPodsPerNode = 110

// agentObservation is what one source (an offer, GET_AGENTS) tells about an agent.
type agentObservation struct {
	ID       string
	Hostname string
	// IP is the agent's IP when the source tells it (an offer's url, GET_AGENTS' pid).
	IP         string
	Attributes []mesos.Attribute
	// Total is the agent's total resources; nil when the source does not know it (offers).
	Total mesos.Resources
	// Version is the agent's Mesos version (GET_AGENTS); "" when the source does not tell it.
	Version string
}

// agentRecord is the node controller's view of one agent.
type agentRecord struct {
	agentObservation
	active  bool
	reason  string
	message string
	// synced is false while the Node does not reflect the record.
	synced bool
	// offered accumulates resources seen in offers, the capacity estimate until GET_AGENTS answers.
	offered mesos.Resources
	// conflict says why the agent has no Node: its hostname names a Node the framework does not own.
	conflict string
	// facts are what the agent's executor reported of the host (nil until it has, or until they are
	// read back from the Node the agent already has); replaced, never modified.
	facts *hostfacts.Facts
}

// nodeController keeps one Node per Mesos agent, Ready with a renewed Lease while the agent is active and
// NotReady (Lease no longer renewed) once Mesos reports it removed, unreachable or gone.
type nodeController struct {
	client        kubernetes.Interface
	clock         clock.WithTicker
	leaseDuration time.Duration
	overhead      corev1.ResourceList // the executor's own resources, not allocatable to pods
	log           logrus.FieldLogger
	// recorder and metrics are set by newScheduler; nil in tests of the controller alone.
	recorder record.EventRecorder
	metrics  *metrics
	// podCIDRAttribute names the agent attribute with the agent's pod CIDR(s) (--pod-cidr-attribute);
	// "" for none. Set before Run.
	podCIDRAttribute string

	mu     sync.Mutex
	owner  nodeOwner
	agents map[string]*agentRecord // by agent ID
	kick   chan struct{}
	// onBack, when set, is called (without locks held) when an inactive agent is seen active again.
	onBack func(agentID string)
	// leases are the Leases last written, by Node name; lastFull is when every Node was last rewritten.
	leases   map[string]*coordinationv1.Lease
	lastFull time.Time
	// masterVersion is the master's Mesos version (SUBSCRIBED), the runtime version of Nodes whose
	// agent's own version is not known yet.
	masterVersion string
	// warned holds, per Node and topic, the last warning logged, so each is logged once.
	warned map[string]string
}

func newNodeController(client kubernetes.Interface, clk clock.WithTicker, leaseDuration time.Duration, executorCPUs, executorMemMB float64, log logrus.FieldLogger) *nodeController {
	return &nodeController{
		client: client, clock: clk, leaseDuration: leaseDuration, log: log,
		overhead: corev1.ResourceList{
			corev1.ResourceCPU:    cpuQuantity(executorCPUs),
			corev1.ResourceMemory: mbQuantity(executorMemMB),
		},
		agents: map[string]*agentRecord{},
		leases: map[string]*coordinationv1.Lease{},
		warned: map[string]string{},
		kick:   make(chan struct{}, 1),
	}
}

// ObserveOffer records the agent of an offer as active.
func (c *nodeController) ObserveOffer(o *mesos.Offer) {
	var ip string
	if o.URL != nil && o.URL.Address.IP != nil {
		ip = *o.URL.Address.IP
	}
	c.observe(agentObservation{ID: o.AgentID.Value, Hostname: o.GetHostname(), IP: ip, Attributes: o.Attributes}, o.Resources, true)
}

// observe records what a source tells about an agent; inactive agents keep their Node NotReady.
func (c *nodeController) observe(obs agentObservation, offered mesos.Resources, active bool) {
	c.mu.Lock()
	back := c.observeLocked(obs, offered, active)
	onBack := c.onBack
	c.mu.Unlock()
	if back && onBack != nil {
		onBack(obs.ID)
	}
}

// observeLocked records an observation; it reports whether a known, inactive agent became active.
func (c *nodeController) observeLocked(obs agentObservation, offered mesos.Resources, active bool) bool {
	rec, ok := c.agents[obs.ID]
	if !ok {
		rec = &agentRecord{}
		c.agents[obs.ID] = rec
	}
	before := *rec
	if obs.Hostname != "" {
		rec.ID, rec.Hostname = obs.ID, obs.Hostname
	}
	if obs.IP != "" {
		rec.IP = obs.IP
	}
	if obs.Attributes != nil {
		rec.Attributes = obs.Attributes
	}
	if obs.Total != nil {
		rec.Total = obs.Total
	}
	if obs.Version != "" {
		rec.Version = obs.Version
	}
	if rec.Total == nil && len(offered) > 0 {
		// Offers show part of the agent at most; keep the largest seen until GET_AGENTS tells the total.
		if sumScalars(offered).cpus > sumScalars(rec.offered).cpus || sumScalars(offered).mem > sumScalars(rec.offered).mem {
			rec.offered = offered
		}
	}
	if active {
		rec.active, rec.reason, rec.message = true, ReasonAgentActive, "Mesos agent is active"
	} else if rec.active || rec.reason == "" {
		rec.active, rec.reason, rec.message = false, ReasonAgentInactive, "Mesos master reports the agent inactive"
	}
	if !ok || before.active != rec.active || before.reason != rec.reason || before.Hostname != rec.Hostname || before.IP != rec.IP ||
		before.Version != rec.Version || !equality.Semantic.DeepEqual(before.Attributes, rec.Attributes) ||
		!equality.Semantic.DeepEqual(before.Total, rec.Total) || !equality.Semantic.DeepEqual(before.offered, rec.offered) {
		rec.synced = false
		c.poke()
	}
	return ok && !before.active && before.reason != "" && rec.active
}

// MarkInactive records that Mesos reports the agent removed, unreachable or gone.
func (c *nodeController) MarkInactive(agentID, reason, message string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.agents[agentID]
	if !ok || (!rec.active && rec.reason == reason) {
		return
	}
	rec.active, rec.reason, rec.message, rec.synced = false, reason, message, false
	c.log.WithFields(logrus.Fields{"agentID": agentID, "hostname": rec.Hostname, "reason": reason}).Warn("Mesos agent inactive")
	c.poke()
}

// SetAgents applies a GET_AGENTS answer: listed agents are observed (active or not, as the master says),
// known agents missing from it are removed.
func (c *nodeController) SetAgents(agents []agentObservation, active map[string]bool) {
	listed := map[string]bool{}
	for _, a := range agents {
		listed[a.ID] = true
		c.observe(a, nil, active[a.ID])
	}
	c.mu.Lock()
	var missing []string
	for id, rec := range c.agents {
		if !listed[id] && (rec.active || rec.reason != ReasonAgentRemoved) {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()
	for _, id := range missing {
		c.MarkInactive(id, ReasonAgentRemoved, "agent is not registered with the Mesos master")
	}
}

// AgentOfHostname returns the ID of the agent whose Node is hostname, preferring an active agent;
// agents whose hostname names a Node of another owner have none.
func (c *nodeController) AgentOfHostname(hostname string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	found := ""
	for id, rec := range c.agents {
		if rec.Hostname != hostname || rec.conflict != "" {
			continue
		}
		if rec.active {
			return id
		}
		found = id
	}
	return found
}

// Active reports whether an agent is active; unknown agents count as active (no evidence otherwise).
func (c *nodeController) Active(agentID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.agents[agentID]
	return !ok || rec.active
}

func (c *nodeController) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run syncs Nodes when agents change and renews the Leases of active agents every quarter of the lease
// duration, until ctx is cancelled.
func (c *nodeController) Run(ctx context.Context) error {
	renew := c.clock.NewTicker(c.leaseDuration / 4)
	defer renew.Stop()
	for {
		c.SyncAll(ctx, false)
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
		case <-renew.C():
			c.SyncAll(ctx, true)
		}
	}
}

// SyncAll writes every Node that does not reflect its agent yet; with renew it also renews the Lease of
// every active agent. Failures are logged and retried on the next round. Nothing is written before the
// framework has a FrameworkID to mark its Nodes with.
func (c *nodeController) SyncAll(ctx context.Context, renew bool) {
	defer c.countNodes()
	c.mu.Lock()
	if c.owner.id == "" {
		c.mu.Unlock()
		return
	}
	var todo []agentRecord
	now := c.clock.Now()
	full := renew && now.Sub(c.lastFull) >= nodeStatusReportPeriod
	if full {
		c.lastFull = now
	}
	for _, rec := range c.agents {
		if rec.Hostname != "" && (!rec.synced || (renew && rec.active)) {
			todo = append(todo, *rec)
		}
	}
	c.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].ID < todo[j].ID })
	// Agents are synced in parallel: thousands of Lease renewals must fit in a renewal period.
	sem := make(chan struct{}, nodeSyncParallelism)
	var wg sync.WaitGroup
	for i := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.syncAgent(ctx, &todo[i], full)
		}()
	}
	wg.Wait()
}

// syncAgent writes one agent's Node when needed and renews its Lease while it is active.
func (c *nodeController) syncAgent(ctx context.Context, rec *agentRecord, full bool) {
	log := c.log.WithFields(logrus.Fields{"agentID": rec.ID, "node": rec.Hostname})
	// A synced Node is only rewritten every nodeStatusReportPeriod; in between only its Lease is
	// renewed (one request per agent), as the kubelet does.
	if !rec.synced || full {
		if err := c.syncNode(ctx, rec); err != nil {
			if !errors.Is(err, errNodeConflict) { // a conflict is reported once, by setConflict
				log.WithError(err).Warn("syncing Node")
			}
			return
		}
	}
	if rec.active {
		recreated, err := c.renewLease(ctx, rec.Hostname)
		if err != nil {
			log.WithError(err).Warn("renewing node Lease")
			return
		}
		if recreated && rec.synced {
			// The Lease was gone: the Node probably too (the Lease is owned by it). Check it next round.
			c.mu.Lock()
			if cur, ok := c.agents[rec.ID]; ok {
				cur.synced = false
			}
			c.mu.Unlock()
			c.poke()
			return
		}
	}
	c.mu.Lock()
	if cur, ok := c.agents[rec.ID]; ok && cur.active == rec.active && cur.reason == rec.reason &&
		equality.Semantic.DeepEqual(cur.Total, rec.Total) && equality.Semantic.DeepEqual(cur.offered, rec.offered) &&
		cur.Hostname == rec.Hostname && cur.IP == rec.IP && cur.Version == rec.Version && equality.Semantic.DeepEqual(cur.Attributes, rec.Attributes) &&
		cur.facts == rec.facts {
		cur.synced = true
	}
	c.mu.Unlock()
}

// desiredNode is the Node for an agent record.
func (c *nodeController) desiredNode(rec *agentRecord, now metav1.Time) *corev1.Node {
	labels := offerbridge.AgentLabels(&mesos.Offer{AgentID: mesos.AgentID{Value: rec.ID}, Hostname: rec.Hostname, Attributes: rec.Attributes})
	info := corev1.NodeSystemInfo{MachineID: rec.ID, SystemUUID: rec.ID}
	if f := rec.facts; f != nil {
		// What the host says beats the attribute or the framework's own GOARCH: the kubelet labels its
		// Node with its own runtime's OS and architecture.
		labels[corev1.LabelOSStable], labels[corev1.LabelArchStable] = f.OperatingSystem, f.Architecture
		info.KernelVersion, info.OSImage, info.BootID = f.KernelVersion, f.OSImage, f.BootID
		if f.MachineID != "" {
			info.MachineID = f.MachineID
		}
	}
	info.OperatingSystem, info.Architecture = labels[corev1.LabelOSStable], labels[corev1.LabelArchStable]
	total := rec.Total
	if total == nil {
		total = rec.offered
	}
	capacity := capacityOf(total)
	allocatable := corev1.ResourceList{}
	for name, q := range capacity {
		q = q.DeepCopy()
		if o, ok := c.overhead[name]; ok {
			q.Sub(o)
			if q.Sign() < 0 {
				q = resource.MustParse("0")
			}
		}
		allocatable[name] = q
	}
	status := corev1.ConditionTrue
	if !rec.active {
		status = corev1.ConditionFalse
	}
	runtimeVersion := rec.Version
	c.mu.Lock()
	if runtimeVersion == "" {
		runtimeVersion = c.masterVersion
	}
	annotations := map[string]string{AnnotationFrameworkID: c.owner.id}
	if c.owner.name != "" {
		annotations[AnnotationFrameworkName] = c.owner.name
	}
	if c.owner.master != "" {
		annotations[AnnotationMesosMaster] = c.owner.master
	}
	c.mu.Unlock()
	info.KubeletVersion, info.ContainerRuntimeVersion = KubeletVersion(), "mesos://"+runtimeVersion
	cidrs, _ := c.podCIDRs(rec)
	spec := corev1.NodeSpec{ProviderID: "mesos://agent/" + rec.ID, PodCIDRs: cidrs}
	if len(cidrs) > 0 {
		spec.PodCIDR = cidrs[0]
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: rec.Hostname, Labels: labels, Annotations: annotations},
		Spec:       spec,
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: allocatable,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: status, Reason: rec.reason, Message: rec.message,
				LastHeartbeatTime: now, LastTransitionTime: now,
			}},
			Addresses: nodeAddresses(rec),
			NodeInfo:  info,
		},
	}
}

// syncNode creates or updates the agent's Node (labels, capacity, Ready condition).
func (c *nodeController) syncNode(ctx context.Context, rec *agentRecord) error {
	now := metav1.NewTime(c.clock.Now())
	want := c.desiredNode(rec, now)
	c.warnAttributes(rec, want)
	nodes := c.client.CoreV1().Nodes()
	cur, err := nodes.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		created, err := nodes.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			c.poke() // created by someone else meanwhile: read whose it is next round
		}
		if err != nil {
			return fmt.Errorf("creating Node %s: %w", want.Name, err)
		}
		c.setConflict(rec, nil)
		if equality.Semantic.DeepEqual(created.Status.Conditions, want.Status.Conditions) &&
			equality.Semantic.DeepEqual(created.Status.Capacity, want.Status.Capacity) {
			return nil
		}
		// A patch, as the kubelet writes its new Node's status: an update carried the created
		// resourceVersion and conflicted with the controller-manager's first write to the Node
		// (4,901 of 5,000 new Nodes in issue 13's run), costing a failed write and a retry each.
		withStatus := created.DeepCopy()
		withStatus.Status = want.Status
		if _, _, err := nodeutil.PatchNodeStatus(c.client.CoreV1(), types.NodeName(want.Name), created, withStatus); err != nil {
			return fmt.Errorf("writing status of new Node %s: %w", want.Name, err)
		}
		c.log.WithFields(logrus.Fields{"agentID": rec.ID, "node": want.Name}).Info("created Node for Mesos agent")
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Node %s: %w", want.Name, err)
	}
	if !c.claimable(cur, rec) {
		// Another framework's Node (two frameworks whose agents share a hostname), or no kubemesos
		// Node at all: never written, and the agent gets no pods.
		c.setConflict(rec, cur)
		return errNodeConflict
	}
	c.setConflict(rec, nil)
	if rec.facts == nil && cur.Labels[offerbridge.LabelAgentID] == rec.ID {
		if f := c.adoptFacts(rec.ID, cur); f != nil {
			rec.facts = f
			want = c.desiredNode(rec, now)
		}
	}
	if cur.Labels[offerbridge.LabelAgentID] != "" && cur.Labels[offerbridge.LabelAgentID] != rec.ID {
		// Same hostname, new agent ID (the agent restarted with a new ID): the newer record owns the Node
		// only while active, so an old, removed ID never turns it NotReady.
		if !rec.active {
			return nil
		}
	}
	node := cur.DeepCopy()
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	for k := range node.Labels {
		if _, ok := want.Labels[k]; !ok && isAgentLabel(k) {
			delete(node.Labels, k)
		}
	}
	maps.Copy(node.Labels, want.Labels)
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	maps.Copy(node.Annotations, want.Annotations) // re-marks a Node of a former FrameworkID or without mark
	node.Spec.ProviderID = want.Spec.ProviderID
	c.updatePodCIDRs(rec, node, want)
	if !equality.Semantic.DeepEqual(node.ObjectMeta, cur.ObjectMeta) || !equality.Semantic.DeepEqual(node.Spec, cur.Spec) {
		if node, err = nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating Node %s: %w", want.Name, err)
		}
		node = node.DeepCopy()
	}
	before := node.Status.DeepCopy()
	node.Status.Capacity, node.Status.Allocatable = want.Status.Capacity, want.Status.Allocatable
	node.Status.Addresses, node.Status.NodeInfo = want.Status.Addresses, want.Status.NodeInfo
	setNodeCondition(&node.Status, want.Status.Conditions[0])
	if equality.Semantic.DeepEqual(before, &node.Status) {
		return nil
	}
	if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing status of Node %s: %w", want.Name, err)
	}
	return nil
}

// Reasons of the Warning Events about a Node's pod CIDRs.
const (
	EventInvalidPodCIDR  = "InvalidPodCIDR"
	EventPodCIDRMismatch = "PodCIDRMismatch"
)

// SetHostFacts records what the agent's executor reported of its host (an executor MESSAGE) for the
// agent's Node: nodeInfo's kernel, OS image, machine and boot IDs, and the OS and architecture labels.
func (c *nodeController) SetHostFacts(agentID string, f hostfacts.Facts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.agents[agentID]
	if rec == nil {
		// An executor runs only where a pod was launched, on an agent seen in an offer; a MESSAGE that
		// overtook everything else is sent again on the executor's next subscription.
		c.log.WithField("agentID", agentID).Debug("host facts of an agent not known yet: dropped")
		return
	}
	if rec.facts != nil && *rec.facts == f {
		return
	}
	rec.facts = &f
	rec.synced = false
	c.poke()
}

// adoptFacts takes the host facts a Node already shows (written before a failover) as the agent's,
// so a new leader does not blank them until the executor subscribes again.
func (c *nodeController) adoptFacts(agentID string, node *corev1.Node) *hostfacts.Facts {
	ni := node.Status.NodeInfo
	if ni.KernelVersion == "" {
		return nil
	}
	f := &hostfacts.Facts{Kind: hostfacts.Kind, KernelVersion: ni.KernelVersion, OSImage: ni.OSImage,
		OperatingSystem: ni.OperatingSystem, Architecture: ni.Architecture, BootID: ni.BootID}
	if ni.MachineID != agentID {
		f.MachineID = ni.MachineID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rec := c.agents[agentID]; rec != nil {
		if rec.facts != nil {
			return rec.facts // reported meanwhile
		}
		rec.facts = f
	}
	return f
}

// KubeletVersion is the Nodes' status.nodeInfo.kubeletVersion: the executor stands in for the kubelet,
// so it is kubemesos' version.
func KubeletVersion() string { return "kubemesos-" + version.Version }

// podCIDRs reads the agent's pod CIDRs from its --pod-cidr-attribute attribute: a text value of one
// CIDR or two comma-separated of different IP families (dual stack), as Node.spec.podCIDRs allows,
// each in its canonical form. A value that is not that is a problem and gives no CIDRs.
func (c *nodeController) podCIDRs(rec *agentRecord) (cidrs []string, problem string) {
	if c.podCIDRAttribute == "" {
		return nil, ""
	}
	for i := range rec.Attributes {
		a := &rec.Attributes[i]
		if a.GetName() != c.podCIDRAttribute {
			continue
		}
		if a.GetType() != mesos.TEXT {
			return nil, fmt.Sprintf("agent attribute %s is a %s, not a text of pod CIDRs", a.GetName(), a.GetType())
		}
		var families []bool
		for _, s := range strings.Split(a.GetText().GetValue(), ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Sprintf("agent attribute %s=%s: %v", a.GetName(), a.GetText().GetValue(), err)
			}
			cidrs = append(cidrs, p.Masked().String())
			families = append(families, p.Addr().Is4())
		}
		if len(cidrs) > 2 || (len(cidrs) == 2 && families[0] == families[1]) {
			return nil, fmt.Sprintf("agent attribute %s=%s: at most one IPv4 and one IPv6 CIDR", a.GetName(), a.GetText().GetValue())
		}
		return cidrs, ""
	}
	return nil, ""
}

// updatePodCIDRs sets the pod CIDRs of an existing Node that has none (the API server allows setting
// them once); CIDRs that differ from the agent's are never rewritten (they are immutable) but warned
// about once.
func (c *nodeController) updatePodCIDRs(rec *agentRecord, node, want *corev1.Node) {
	switch {
	case len(want.Spec.PodCIDRs) == 0:
	case node.Spec.PodCIDR == "" && len(node.Spec.PodCIDRs) == 0:
		node.Spec.PodCIDR, node.Spec.PodCIDRs = want.Spec.PodCIDR, want.Spec.PodCIDRs
		return
	case slices.Equal(node.Spec.PodCIDRs, want.Spec.PodCIDRs):
	default:
		c.warnOnce(rec.ID, "podCIDRs", node, EventPodCIDRMismatch, fmt.Sprintf(
			"Mesos agent %s has pod CIDRs %s (attribute %s), Node %s has %s, which cannot change: "+
				"the Node keeps them; delete the Node to have it re-created with the agent's",
			rec.ID, strings.Join(want.Spec.PodCIDRs, ","), c.podCIDRAttribute, node.Name, strings.Join(node.Spec.PodCIDRs, ",")))
		return
	}
	c.warnOnce(rec.ID, "podCIDRs", node, "", "")
}

// warnAttributes logs, once per agent and value, the attributes that give no Node label and a pod
// CIDR attribute that gives no pod CIDRs (also as a Warning Event on the Node).
func (c *nodeController) warnAttributes(rec *agentRecord, node *corev1.Node) {
	skipped := offerbridge.SkippedAttributes(rec.Attributes)
	msg := ""
	if len(skipped) > 0 {
		names := slices.Sorted(maps.Keys(skipped))
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = n + " (" + skipped[n] + ")"
		}
		msg = "agent attributes without a Node label: " + strings.Join(parts, ", ")
	}
	c.warnOnce(rec.ID, "labels", nil, "", msg)
	_, problem := c.podCIDRs(rec)
	if problem != "" {
		problem += ": the Node gets no pod CIDRs"
	}
	c.warnOnce(rec.ID, "podCIDRAttribute", node, EventInvalidPodCIDR, problem)
}

// warnOnce logs msg (and records it as a Warning Event with reason on obj when both are given) unless
// it is the last message of that agent and topic; an empty msg clears the topic.
func (c *nodeController) warnOnce(agentID, topic string, obj *corev1.Node, reason, msg string) {
	key := agentID + "/" + topic
	c.mu.Lock()
	same := c.warned[key] == msg
	if msg == "" {
		delete(c.warned, key)
	} else {
		c.warned[key] = msg
	}
	recorder := c.recorder
	c.mu.Unlock()
	if same || msg == "" {
		return
	}
	c.log.WithField("agentID", agentID).Warn(msg)
	if recorder != nil && obj != nil && reason != "" {
		recorder.Event(obj, corev1.EventTypeWarning, reason, msg)
	}
}

// SetMasterVersion records the master's Mesos version for Nodes whose agent's version is unknown.
func (c *nodeController) SetMasterVersion(v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v == c.masterVersion {
		return
	}
	c.masterVersion = v
	for _, rec := range c.agents {
		if rec.Version == "" {
			rec.synced = false
		}
	}
	c.poke()
}

// countNodes sets the nodes gauge from the agents' records: the framework's own agents only.
func (c *nodeController) countNodes() {
	if c.metrics == nil {
		return
	}
	counts := map[string]float64{nodeStateReady: 0, nodeStateNotReady: 0, nodeStateConflict: 0}
	c.mu.Lock()
	for _, rec := range c.agents {
		switch {
		case rec.Hostname == "":
		case rec.conflict != "":
			counts[nodeStateConflict]++
		case rec.active:
			counts[nodeStateReady]++
		default:
			counts[nodeStateNotReady]++
		}
	}
	c.mu.Unlock()
	for state, n := range counts {
		c.metrics.nodes.WithLabelValues(state).Set(n)
	}
}

func isAgentLabel(k string) bool {
	return len(k) > len(offerbridge.LabelAttrPrefix) && k[:len(offerbridge.LabelAttrPrefix)] == offerbridge.LabelAttrPrefix
}

// nodeAddresses are the agent's InternalIP (its IP when known, else its hostname, which is what
// Mesos itself uses to reach it) and Hostname.
func nodeAddresses(rec *agentRecord) []corev1.NodeAddress {
	ip := rec.IP
	if ip == "" {
		ip = rec.Hostname
	}
	return []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: ip},
		{Type: corev1.NodeHostName, Address: rec.Hostname},
	}
}

// setNodeCondition replaces the condition of the same type, keeping LastTransitionTime when the status
// does not change, as the kubelet does.
func setNodeCondition(st *corev1.NodeStatus, c corev1.NodeCondition) {
	for i := range st.Conditions {
		cur := &st.Conditions[i]
		if cur.Type != c.Type {
			continue
		}
		if cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
			if cur.Reason == c.Reason && cur.Message == c.Message {
				c.LastHeartbeatTime = cur.LastHeartbeatTime
			}
		}
		*cur = c
		return
	}
	st.Conditions = append(st.Conditions, c)
}

// renewLease creates or renews the Node's Lease in kube-node-lease, the heartbeat the node lifecycle
// controller watches. It updates the Lease last written (one request), reading it only after a
// conflict; it reports whether the Lease had to be created.
func (c *nodeController) renewLease(ctx context.Context, nodeName string) (created bool, err error) {
	leases := c.client.CoordinationV1().Leases(NodeLeaseNamespace)
	now := metav1.NewMicroTime(c.clock.Now())
	seconds := int32(c.leaseDuration / time.Second)
	c.mu.Lock()
	lease := c.leases[nodeName]
	c.mu.Unlock()
	if lease != nil {
		lease = lease.DeepCopy()
		lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = ptr.To(nodeName), ptr.To(seconds), &now
		updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
		if err == nil {
			c.rememberLease(updated)
			return false, nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("renewing Lease %s/%s: %w", NodeLeaseNamespace, nodeName, err)
		}
	}
	lease, err = leases.Get(ctx, nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: nodeName, Namespace: NodeLeaseNamespace},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: ptr.To(nodeName), LeaseDurationSeconds: ptr.To(seconds), RenewTime: &now,
			},
		}
		if node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{}); err == nil {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating Lease %s/%s: %w", NodeLeaseNamespace, nodeName, err)
		}
		c.rememberLease(created)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading Lease %s/%s: %w", NodeLeaseNamespace, nodeName, err)
	}
	lease = lease.DeepCopy()
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = ptr.To(nodeName), ptr.To(seconds), &now
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("renewing Lease %s/%s: %w", NodeLeaseNamespace, nodeName, err)
	}
	c.rememberLease(updated)
	return false, nil
}

func (c *nodeController) rememberLease(l *coordinationv1.Lease) {
	if l == nil || l.Name == "" {
		return
	}
	c.mu.Lock()
	c.leases[l.Name] = l
	c.mu.Unlock()
}

// scalars are the scalar resources a Node exposes, summed over roles.
type scalars struct{ cpus, mem, disk, gpus float64 }

func sumScalars(rs mesos.Resources) scalars {
	var s scalars
	for _, r := range rs {
		if r.GetType() != mesos.SCALAR || r.Revocable != nil {
			continue
		}
		v := r.GetScalar().GetValue()
		switch r.Name {
		case "cpus":
			s.cpus += v
		case "mem":
			s.mem += v
		case "disk":
			s.disk += v
		case "gpus":
			s.gpus += v
		}
	}
	return s
}

// capacityOf converts Mesos resources (cpus in cores, mem/disk in MB) to a Node capacity.
func capacityOf(rs mesos.Resources) corev1.ResourceList {
	s := sumScalars(rs)
	l := corev1.ResourceList{
		corev1.ResourceCPU:              cpuQuantity(s.cpus),
		corev1.ResourceMemory:           mbQuantity(s.mem),
		corev1.ResourceEphemeralStorage: mbQuantity(s.disk),
		corev1.ResourcePods:             *resource.NewQuantity(maxPodsPerNode, resource.DecimalSI),
	}
	if s.gpus > 0 {
		l["nvidia.com/gpu"] = *resource.NewQuantity(int64(s.gpus), resource.DecimalSI)
	}
	return l
}

func cpuQuantity(cores float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(cores*1000+0.5), resource.DecimalSI)
}

func mbQuantity(mb float64) resource.Quantity {
	return *resource.NewQuantity(int64(mb*1024*1024+0.5), resource.BinarySI)
}

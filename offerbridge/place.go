package offerbridge

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// Strategy chooses among the agents a pod fits on.
type Strategy int

const (
	// Spread places each pod on the least allocated agent (kube-scheduler's default LeastAllocated
	// score over cpu and memory), so replicas land on different agents and load stays even. Default.
	Spread Strategy = iota
	// BinPack places each pod on the most allocated agent it fits (MostAllocated), so pods fill the
	// fewest agents and whole agents stay free for other frameworks.
	BinPack
)

// String returns the name ParseStrategy accepts.
func (s Strategy) String() string {
	switch s {
	case Spread:
		return "spread"
	case BinPack:
		return "binpack"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// ParseStrategy parses "spread" or "binpack" (for a flag).
func ParseStrategy(s string) (Strategy, error) {
	switch strings.ToLower(s) {
	case "spread", "":
		return Spread, nil
	case "binpack":
		return BinPack, nil
	}
	return Spread, fmt.Errorf("unknown placement strategy %q (want spread or binpack)", s)
}

// ExecutorCost describes the kubemesos executor's own resources: a pod placed on an agent where the
// executor does not run yet must also fit the executor, which the same ACCEPT launches.
type ExecutorCost struct {
	CPUs, MemMB, DiskMB float64
	// ID is the ExecutorID (kubemesos-executor). An offer listing it in executor_ids comes from an agent
	// where the executor already runs. Optional.
	ID string
	// RunningOn holds the agent IDs where the executor is known to run (for example from the
	// framework's state or task status updates).
	RunningOn map[string]bool
}

// Input is everything one placement cycle looks at.
type Input struct {
	// Offers are the offers held, as received; each one ends up in exactly one Launch or in Decline.
	Offers []mesos.Offer
	// Returning are what ACCEPTs of the last moments left unused on their agents (the offers minus
	// what was launched), which Mesos offers again at its next allocation: with them placement ranks
	// every agent it knows free room on, as kube-scheduler ranks every Node, not only those whose
	// offers are in hand. A pod whose best agent is a returning one waits for it (Plan.Waiting)
	// instead of going to a worse agent in hand. Their IDs are ignored; none of them is ever in a Plan's
	// Launches or Decline. A returning entry of an agent and role that also has an offer in hand is
	// ignored (the offer is what Mesos has free there now).
	Returning []mesos.Offer
	// Nodes are the agents' Nodes by agent ID, for labels, taints and cordons. An agent without a Node
	// yet is labelled from its offer (AgentLabels) and has no taints.
	Nodes map[string]*corev1.Node
	// Pods are the pending pods in the order they should be placed (priority, then FIFO). A pod listed
	// twice (same UID) is considered once.
	Pods []*corev1.Pod
	// Translate are the framework's translation settings (pod overhead, pod network) every pod's
	// demand is computed with.
	Translate podtranslate.Options
	// Executor is the executor's cost on agents where it does not run yet.
	Executor ExecutorCost
	// Strategy chooses among feasible agents; the zero value is Spread.
	Strategy Strategy
	// Seed orders agents that score equally, so runs replay.
	Seed uint64
	// Bound are the pods already on Nodes (spec.nodeName set) that have not finished, for the Nodes'
	// pod counts, pod affinity and anti-affinity and topology spread. Pods on Nodes that are not in
	// Nodes and have no offer are not seen; pods also listed in Pods are skipped.
	Bound []*corev1.Pod
	// Namespaces are the namespaces' labels by name, for the namespaceSelector of pod affinity terms.
	Namespaces map[string]map[string]string
	// PercentageOfAgentsToScore bounds the search like kube-scheduler's percentageOfNodesToScore: once
	// that share of the agents (at least 100) was found feasible for a pod, the best of them is taken,
	// and the next pod starts looking where this one stopped. 0 is kube-scheduler's adaptive default
	// (50% minus 1% per 125 agents, at least 5%); 100 looks at every agent. Clusters of fewer than 100
	// agents are always searched completely.
	PercentageOfAgentsToScore int
	// Nominated are the pods waiting for an agent's resources after preempting pods there
	// (status.nominatedNodeName), by agent ID. For a pod of lower priority they take their room, as
	// kube-scheduler's nominated pods do, so that what the victims free goes to the preemptor.
	Nominated map[string][]*corev1.Pod
}

// Plan is the outcome of one placement cycle, for the framework to carry out.
type Plan struct {
	// Launches are the ACCEPT calls to make, sorted by agent ID and role.
	Launches []Launch
	// Decline are the offers nothing was placed on, in input order.
	Decline []mesos.OfferID
	// Unschedulable are the pods that fit nowhere, in input order.
	Unschedulable []Unfit
	// Waiting are the pods whose best agent is a returning one (Input.Returning), in input order:
	// they are neither launched nor unschedulable, and are placed again once its offer is in hand.
	// Their room there is taken for the pods placed after them, as kube-scheduler's assumed pods.
	Waiting []*corev1.Pod
}

// Launch is one ACCEPT: offers of one agent allocated to one role (Mesos refuses offers of several
// agents or roles in one ACCEPT) and the pods to launch on them.
type Launch struct {
	AgentID mesos.AgentID
	// Hostname is the agent's hostname; NodeName the Node to bind the pods to (the Node's name when
	// there is one, else the hostname).
	Hostname string
	NodeName string
	// Role is the allocation role of every offer and every carved resource.
	Role     string
	OfferIDs []mesos.OfferID
	// Executor is set when the executor does not run on the agent yet: the resources carved for it,
	// to put into ExecutorInfo.resources. Nil otherwise.
	Executor mesos.Resources
	Pods     []PodPlacement
}

// PodPlacement is one pod of a Launch and the resources carved for its task.
type PodPlacement struct {
	Pod    *corev1.Pod
	Demand podtranslate.Demand
	// Resources are carved out of the Launch's offers for the pod task: same names, roles,
	// reservations and allocation_info as offered, the actual host port numbers, and never more than
	// offered. For a sandboxed pod they are only podtranslate.PodTaskDemand.
	Resources mesos.Resources
	// Sandbox is set for a pod on a CNI pod network (podtranslate.Options.Sandboxed), which is two
	// tasks: it holds the pod's own resources (Demand) for the sandbox task and the sandbox executor's.
	Sandbox *SandboxPlacement
}

// SandboxPlacement are the resources carved for a sandboxed pod's sandbox executor and task.
type SandboxPlacement struct {
	// Executor is podtranslate.SandboxExecutorDemand, for the sandbox ExecutorInfo.resources.
	Executor mesos.Resources
	// Task is the pod's demand, host ports included, for the sandbox task.
	Task mesos.Resources
}

// Unfit is a pod no offer could take, and why.
type Unfit struct {
	Pod *corev1.Pod
	// Message is kube-scheduler style: "0/3 agents are available: 1 Insufficient cpu, 2 ...".
	Message string
	// Reasons counts the agents rejected per reason.
	Reasons map[string]int
	// Unresolvable is true when no offer can ever take the pod (it uses a field kubemesos cannot
	// honour), so retrying is pointless until the pod changes.
	Unresolvable bool
	// Waits tells which agents' offers may place the pod.
	Waits AgentsWaitedFor
}

// MaxAgentsListed bounds AgentsWaitedFor's lists.
const MaxAgentsListed = 16

// AgentsWaitedFor are the agents an unschedulable pod may go to once one of them offers: kube-scheduler
// requeues a pod on the Node events that may make it schedulable, and for a framework the event is an
// offer. A pod is only ever judged on the offers held at that moment, a fraction of the agents at a
// time when offers are held briefly and declined with a refuse filter: a pod pinned to one agent missed
// that agent's offer at every retry. Agents are listed only while there are at most MaxAgentsListed.
type AgentsWaitedFor struct {
	// Idle are the agents without an offer whose Nodes would take the pod (no check that needs no
	// offer refuses it); IdleMore says there are more than listed.
	Idle     []string
	IdleMore bool
	// Offered are the agents whose offers refused it; OfferedMore says there are more than listed.
	Offered     []string
	OfferedMore bool
}

// Any reports whether some agent's offer may place the pod, as far as the lists tell.
func (w *AgentsWaitedFor) Any() bool { return len(w.Idle) > 0 || w.IdleMore && !w.OfferedMore }

// MayPlace reports whether an offer of agentID may place the pod: its agent had no offer when the pod
// was judged and would take it, as far as the lists tell.
func (w *AgentsWaitedFor) MayPlace(agentID string) bool {
	if slices.Contains(w.Idle, agentID) {
		return true
	}
	// Too many idle agents to list, few enough offered ones: any agent but those.
	return w.IdleMore && !w.OfferedMore && !slices.Contains(w.Offered, agentID)
}

// Place matches pending pods to offers. It is pure and deterministic for a given Input.
func Place(in Input) Plan {
	agents, offerBucket, byID := buildAgents(&in)
	p := placer{in: &in, agents: agents, byID: byID, cluster: newCluster(&in, agents, byID)}
	for _, a := range agents {
		p.anyPreferTaints = p.anyPreferTaints || len(a.preferTaints) > 0
	}
	p.toFind = feasibleToFind(len(agents), in.PercentageOfAgentsToScore)
	p.nominate(byID)
	exec := [numDims]int64{dimCPU: milli(in.Executor.CPUs), dimMem: milli(in.Executor.MemMB), dimDisk: milli(in.Executor.DiskMB)}
	seen := make(map[types.UID]bool, len(in.Pods))
	for _, pod := range in.Pods {
		if pod == nil {
			continue
		}
		if pod.UID != "" {
			if seen[pod.UID] {
				continue // listed twice: placing it twice would launch its task twice
			}
			seen[pod.UID] = true
		}
		p.place(pod, exec)
	}
	for i := range p.plan.Launches {
		b := p.launchBuckets[i]
		p.plan.Launches[i].OfferIDs = b.offerIDs
	}
	sort.SliceStable(p.plan.Launches, func(i, j int) bool {
		a, b := &p.plan.Launches[i], &p.plan.Launches[j]
		if a.AgentID.Value != b.AgentID.Value {
			return a.AgentID.Value < b.AgentID.Value
		}
		return a.Role < b.Role
	})
	for i := range in.Offers {
		if b := offerBucket[i]; b == nil || b.launch < 0 {
			p.plan.Decline = append(p.plan.Decline, in.Offers[i].ID)
		}
	}
	return p.plan
}

type placer struct {
	in            *Input
	agents        []*agent // in rank order
	toFind        int      // feasible agents to find per pod before choosing
	start         int      // where the next pod's search starts
	plan          Plan
	launchBuckets []*bucket
	// unfitCache holds the reasons of pods found unschedulable, by podInfo.signature, until the next
	// placement changes what is free: a backlog of identical replicas on a full cluster costs one
	// search, not one per pod.
	unfitCache map[string]unfitReasons
	// byID are the agents with offers by agent ID; idle are the other agents of Input.Nodes, built
	// for the first unfit pod's message (idleBuilt).
	byID      map[string]*agent
	idle      []*agent
	idleBuilt bool
	// statics caches the static checkers' outcomes per constraintKey and agent rank.
	statics map[string][]staticResult
	// cluster is every Node and pod for the rules that look beyond one agent (rules.go).
	cluster *cluster
	// anyPreferTaints is true when some agent's Node has a PreferNoSchedule taint to score.
	anyPreferTaints bool
	// placedUIDs are the pods placed in this call while some agent has nominated pods: a nominated
	// pod placed takes no more room elsewhere.
	placedUIDs map[types.UID]bool
	// nominatedUIDs are the pods of Input.Nominated.
	nominatedUIDs map[types.UID]bool
	// cands, total and raw are search buffers for pods whose candidates are scored by the rules.
	cands []candidate
	total []float64
	raw   []int64
}

// candidate is a feasible agent of a scored search.
type candidate struct {
	a     *agent
	b     *bucket
	pen   int
	score float64
}

// place finds the best agent for one pod, carves its resources, or records why it fits nowhere.
func (p *placer) place(pod *corev1.Pod, exec [numDims]int64) {
	demand, err := podtranslate.PodDemand(pod, p.in.Translate)
	if err != nil {
		p.plan.Unschedulable = append(p.plan.Unschedulable, p.unsupported(pod, err))
		return
	}
	pi := newPodInfo(pod, &demand, exec, p.in.Translate.Sandboxed(pod))
	// A pod bound before (its task relaunched) is no scheduling decision: like the kubelet admitting a
	// bound pod, only its Node's resources and pod count are checked, not the scheduler's rules.
	if pod.Spec.NodeName == "" && (hasPodRules(pod) || hasPreferredNodeAffinity(pod) || p.cluster.withAffinity > 0 || p.anyPreferTaints) {
		pi.rules = p.cluster.rulesFor(pod)
	}
	if pi.constrained && useStaticCache {
		key := pi.constraintKey()
		if p.statics[key] == nil {
			if p.statics == nil {
				p.statics = make(map[string][]staticResult)
			}
			p.statics[key] = make([]staticResult, len(p.agents))
		}
		pi.statics = p.statics[key]
	}
	sig := ""
	if len(p.unfitCache) > 0 && useUnfitCache {
		sig = p.signature(pi)
		if u, ok := p.unfitCache[sig]; ok {
			p.plan.Unschedulable = append(p.plan.Unschedulable, p.unfitWith(pod, u))
			return
		}
	}
	a, b, visited := p.search(pi)
	if len(p.agents) > 0 {
		p.start = (p.start + visited) % len(p.agents)
	}
	if a == nil {
		if sig == "" {
			sig = p.signature(pi)
		}
		u := p.reasons(pi)
		if p.unfitCache == nil {
			p.unfitCache = make(map[string]unfitReasons)
		}
		p.unfitCache[sig] = u
		p.plan.Unschedulable = append(p.plan.Unschedulable, p.unfitWith(pod, u))
		return
	}
	clear(p.unfitCache)
	if p.placedUIDs != nil {
		p.placedUIDs[pod.UID] = true
	}
	if b.returning {
		p.wait(a, b, pod, pi, exec)
	} else {
		p.launch(a, b, pod, demand, pi, exec)
	}
	cp, err := newClusterPod(pod)
	if err != nil {
		cp = &clusterPod{pod: pod}
	}
	p.cluster.place(cp, a.topo)
}

// useUnfitCache and useStaticCache let a test compare plans with and without the caches.
var useUnfitCache, useStaticCache = true, true

// unfitReasons are why a pod fits no agent: the count of agents per reason, and how many agents the
// message counts.
type unfitReasons struct {
	reasons map[string]int
	agents  int
	waits   AgentsWaitedFor
}

func (p *placer) unfitWith(pod *corev1.Pod, u unfitReasons) Unfit {
	return Unfit{Pod: pod, Message: Message(u.agents, u.reasons), Reasons: maps.Clone(u.reasons), Waits: u.waits}
}

// search visits agents from p.start until p.toFind feasible ones were found (or all were visited) and
// returns the best, its bucket, and how many agents it visited.
func (p *placer) search(pi *podInfo) (best *agent, bestBucket *bucket, visited int) {
	if pi.rules != nil && (pi.rules.scored() || p.anyPreferTaints) {
		return p.searchScored(pi)
	}
	var bestScore float64
	var bestPenalty int
	found := 0
	for n := len(p.agents); visited < n && found < p.toFind; visited++ {
		a := p.agents[(p.start+visited)%n]
		nd := p.needOn(pi, a)
		if pi.static(a) != "" {
			continue
		}
		b, _ := a.fitBucket(nd)
		if b == nil || pi.rules != nil && pi.rules.filter(a.topo) != "" {
			continue
		}
		found++
		pen, s := a.penalty(nd), a.score(nd)
		switch {
		case best == nil, pen < bestPenalty:
		case pen > bestPenalty:
			continue
		case p.better(s, bestScore), s == bestScore && tieBefore(a, b, best, bestBucket):
		default:
			continue
		}
		best, bestBucket, bestScore, bestPenalty = a, b, s, pen
	}
	return best, bestBucket, visited
}

// searchScored is search for a pod whose candidates the rules score: it collects the feasible agents
// first, as kube-scheduler filters before it scores, then takes the best by penalty, then by the
// weighted sum of the normalized scores (resources, taints, node affinity, topology spread, pod affinity).
func (p *placer) searchScored(pi *podInfo) (best *agent, bestBucket *bucket, visited int) {
	cands := p.cands[:0]
	found := 0
	minPen := math.MaxInt
	for n := len(p.agents); visited < n && found < p.toFind; visited++ {
		a := p.agents[(p.start+visited)%n]
		nd := p.needOn(pi, a)
		if pi.static(a) != "" {
			continue
		}
		b, _ := a.fitBucket(nd)
		if b == nil || pi.rules.filter(a.topo) != "" {
			continue
		}
		found++
		c := candidate{a: a, b: b, pen: a.penalty(nd), score: a.score(nd)}
		minPen = min(minPen, c.pen)
		cands = append(cands, c)
	}
	p.cands = cands
	if len(cands) == 0 {
		return nil, nil, visited
	}
	// The penalty ranks first: only the candidates with the lowest are scored.
	kept := cands[:0]
	for _, c := range cands {
		if c.pen == minPen {
			kept = append(kept, c)
		}
	}
	cands = kept
	total := slices.Grow(p.total[:0], len(cands))[:len(cands)]
	raw := slices.Grow(p.raw[:0], len(cands))[:len(cands)]
	p.total, p.raw = total, raw
	for i, c := range cands {
		s := c.score // the points of the agent left free: LeastAllocated, the Spread strategy
		if p.in.Strategy == BinPack {
			s = maxNodeScore - s // MostAllocated
		}
		total[i] = s * weightResources
	}
	pi.rules.addScores(cands, total, raw)
	bi := 0
	for i := 1; i < len(cands); i++ {
		if total[i] > total[bi] || total[i] == total[bi] && tieBefore(cands[i].a, cands[i].b, cands[bi].a, cands[bi].b) {
			bi = i
		}
	}
	return cands[bi].a, cands[bi].b, visited
}

// reasons explains why no agent takes the pod. It runs the checkers again, on every agent, counting the
// reasons: search does not, because for the pods that do fit the reasons would be thrown away.
func (p *placer) reasons(pi *podInfo) (u unfitReasons) {
	reasons := make(map[string]int)
	agents := len(p.agents)
	// kube-scheduler's message counts every Node. An agent without an offer is counted when its Node
	// refuses the pod whatever it offers (node name, cordon, taints, node affinity, pod affinity,
	// anti-affinity and spread); one that would take it is not, having nothing to give now.
	for _, a := range p.idleAgents() {
		// Not pi.static: it caches by agent rank, which only agents with offers have.
		why := ""
		if pi.maybeStatic(a) {
			why = runStatic(pi, a)
		}
		if why == "" && pi.rules != nil && a.topo != nil {
			why = pi.rules.filter(a.topo)
		}
		if why != "" {
			reasons[why]++
			agents++
		} else {
			u.waits.Idle, u.waits.IdleMore = listAgent(u.waits.Idle, u.waits.IdleMore, a.id)
		}
	}
	for _, a := range p.agents {
		u.waits.Offered, u.waits.OfferedMore = listAgent(u.waits.Offered, u.waits.OfferedMore, a.id)
		if why := pi.static(a); why != "" {
			reasons[why]++
			continue
		}
		n := p.needOn(pi, a)
		_, mask := a.fitBucket(n)
		if mask == 0 && pi.rules != nil {
			if why := pi.rules.filter(a.topo); why != "" {
				reasons[why]++
			}
			continue
		}
		for bit := range fitCheckers {
			if mask&(1<<bit) == 0 {
				continue
			}
			why := fitCheckers[bit].reason()
			if bit == hostPortsBit {
				why = HostPortsReason(a.busyPorts(n.ports))
			}
			reasons[why]++
		}
	}
	u.reasons, u.agents = reasons, agents
	return u
}

// listAgent adds id to a list of at most MaxAgentsListed agents; more says the list is incomplete.
func listAgent(ids []string, more bool, id string) ([]string, bool) {
	if more || len(ids) == MaxAgentsListed {
		return nil, true
	}
	return append(ids, id), false
}

// idleAgents are the agents of Input.Nodes without an offer in this plan (in no order: only their
// reasons are counted).
func (p *placer) idleAgents() []*agent {
	if p.idleBuilt {
		return p.idle
	}
	p.idleBuilt = true
	for id, n := range p.in.Nodes {
		if n == nil || p.byID[id] != nil {
			continue
		}
		a := newAgent(&mesos.Offer{AgentID: mesos.AgentID{Value: id}, Hostname: n.Name}, p.in)
		a.topo = p.cluster.byName[n.Name]
		p.idle = append(p.idle, a)
	}
	return p.idle
}

// tieBefore breaks a tie between two equally good agents: one whose offer is in hand before a
// returning one (kube-scheduler picks any of the best Nodes; this one need not wait), then by rank.
func tieBefore(a *agent, b *bucket, than *agent, thanBucket *bucket) bool {
	if b.returning != thanBucket.returning {
		return !b.returning
	}
	return a.rank < than.rank
}

func (p *placer) better(score, than float64) bool {
	if p.in.Strategy == BinPack {
		return score < than
	}
	return score > than
}

// feasibleToFind is kube-scheduler's numFeasibleNodesToFind (pkg/scheduler/schedule_one.go).
func feasibleToFind(agents, percentage int) int {
	const minToFind, minPercentage = 100, 5
	if agents < minToFind || percentage >= 100 {
		return agents
	}
	if percentage <= 0 {
		percentage = max(50-agents/125, minPercentage)
	}
	return max(agents*percentage/100, minToFind)
}

// launch carves the pod (and the executor, when needed) out of the bucket.
func (p *placer) launch(a *agent, b *bucket, pod *corev1.Pod, demand podtranslate.Demand, pi *podInfo, exec [numDims]int64) {
	if b.launch < 0 {
		b.launch = len(p.plan.Launches)
		p.plan.Launches = append(p.plan.Launches, Launch{
			AgentID:  mesos.AgentID{Value: a.id},
			Hostname: a.hostname,
			NodeName: a.nodeName,
			Role:     b.role,
		})
		p.launchBuckets = append(p.launchBuckets, b)
	}
	l := &p.plan.Launches[b.launch]
	if !a.executorRunning && a.executorBucket == nil {
		a.executorBucket = b
		en := need{scalar: exec}
		l.Executor = b.carve(&en)
		a.take(&en)
		if l.Executor == nil {
			l.Executor = mesos.Resources{}
		}
	}
	n := &pi.need
	if pi.sandboxed {
		// One fit check for all three (search used pi.need, their sum); carved apart because each
		// goes into another TaskInfo or ExecutorInfo.
		own := need{scalar: n.scalar, ports: n.ports}
		for d := range own.scalar {
			own.scalar[d] -= sandboxExecNeed[d] + podTaskNeed[d]
		}
		sb := &SandboxPlacement{Task: b.carve(&own), Executor: b.carve(&need{scalar: sandboxExecNeed})}
		l.Pods = append(l.Pods, PodPlacement{Pod: pod, Demand: demand, Resources: b.carve(&need{scalar: podTaskNeed}), Sandbox: sb})
	} else {
		l.Pods = append(l.Pods, PodPlacement{Pod: pod, Demand: demand, Resources: b.carve(n)})
	}
	a.take(n)
}

// wait records a pod whose best agent is a returning one and takes its room there (and the executor's,
// which will be launched with it), so that the pods after it see the agent as it will be.
func (p *placer) wait(a *agent, b *bucket, pod *corev1.Pod, pi *podInfo, exec [numDims]int64) {
	if !a.executorRunning && a.executorBucket == nil {
		a.executorBucket = b
		en := need{scalar: exec}
		b.carve(&en)
		a.take(&en)
	}
	b.carve(&pi.need)
	a.take(&pi.need)
	p.plan.Waiting = append(p.plan.Waiting, pod)
}

// The sandbox executor's and the pod task's needs of a sandboxed pod, besides the pod's demand.
var (
	sandboxExecNeed = scalarNeed(podtranslate.SandboxExecutorDemand)
	podTaskNeed     = scalarNeed(podtranslate.PodTaskDemand)
)

func scalarNeed(d podtranslate.Demand) [numDims]int64 {
	return [numDims]int64{dimCPU: milli(d.CPUs), dimMem: milli(d.MemMB), dimDisk: milli(d.DiskMB), dimGPU: milli(d.GPUs)}
}

// unsupported explains a pod podtranslate refuses: like a kube-scheduler PreFilter rejection, every
// agent is rejected for each of the pod's unsupported fields, and no offer will ever change that.
func (p *placer) unsupported(pod *corev1.Pod, err error) Unfit {
	u := Unfit{Pod: pod, Unresolvable: true, Reasons: map[string]int{}}
	var ue *podtranslate.UnsupportedError
	if errors.As(err, &ue) {
		for _, f := range ue.Fields {
			u.Reasons[f.String()] = len(p.agents)
		}
		err = ue
	} else {
		u.Reasons[err.Error()] = len(p.agents)
	}
	u.Message = fmt.Sprintf("0/%d agents are available: %v.", len(p.agents), err)
	return u
}

// Message formats a FailedScheduling message the way kube-scheduler does (FitError.Error): the count of
// agents looked at, then "count reason" items sorted as strings and joined by commas.
func Message(agents int, reasons map[string]int) string {
	if agents == 0 {
		return "0/0 agents are available: no offers held."
	}
	items := make([]string, 0, len(reasons))
	for r, n := range reasons {
		items = append(items, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(items)
	return fmt.Sprintf("0/%d agents are available: %s.", agents, strings.Join(items, ", "))
}

func runStatic(pi *podInfo, a *agent) string {
	for _, c := range staticCheckers {
		if why := c.check(pi, a); why != "" {
			return why
		}
	}
	return ""
}

func newPodInfo(pod *corev1.Pod, d *podtranslate.Demand, exec [numDims]int64, sandboxed bool) *podInfo {
	pi := &podInfo{pod: pod, sandboxed: sandboxed}
	pi.need.scalar = scalarNeed(*d)
	if sandboxed {
		pi.need = pi.need.plus(sandboxExecNeed).plus(podTaskNeed)
	}
	for _, hp := range d.HostPorts {
		if hp.Port == 0 {
			continue
		}
		port := uint64(hp.Port)
		if !containsPort(pi.need.ports, port) {
			pi.need.ports = append(pi.need.ports, port)
		}
	}
	sort.Slice(pi.need.ports, func(i, j int) bool { return pi.need.ports[i] < pi.need.ports[j] })
	s := &pod.Spec
	pi.constrained = s.NodeName != "" || len(s.NodeSelector) > 0 || len(s.Tolerations) > 0 ||
		(s.Affinity != nil && s.Affinity.NodeAffinity != nil &&
			s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil)
	pi.needExec = pi.need.plus(exec)
	return pi
}

// signature is podInfo.signature, with the pod's priority while nominated pods take room for lower ones.
func (p *placer) signature(pi *podInfo) string {
	if p.placedUIDs == nil {
		return pi.signature()
	}
	if p.nominatedUIDs[pi.pod.UID] {
		return fmt.Sprintf("%s|%d|%s", pi.signature(), podPriority(pi.pod), pi.pod.UID) // its own room
	}
	return fmt.Sprintf("%s|%d", pi.signature(), podPriority(pi.pod))
}

// nominate gives each agent its nominated pods' needs.
func (p *placer) nominate(byID map[string]*agent) {
	for id, pods := range p.in.Nominated {
		a := byID[id]
		if a == nil {
			continue
		}
		for _, pod := range pods {
			d, err := podtranslate.PodDemand(pod, p.in.Translate)
			if err != nil {
				continue
			}
			n := newPodInfo(pod, &d, [numDims]int64{}, p.in.Translate.Sandboxed(pod)).need
			a.nominated = append(a.nominated, nominatedPod{uid: pod.UID, prio: podPriority(pod), scalar: n.scalar})
			if p.placedUIDs == nil {
				p.placedUIDs, p.nominatedUIDs = map[types.UID]bool{}, map[types.UID]bool{}
			}
			p.nominatedUIDs[pod.UID] = true
		}
	}
}

// needOn is the pod's need on the agent (podInfo.needOn) plus what the pods nominated there with its
// priority or higher need, until they are placed.
func (p *placer) needOn(pi *podInfo, a *agent) *need {
	n := pi.needOn(a)
	if len(a.nominated) == 0 {
		return n
	}
	prio := podPriority(pi.pod)
	var pad [numDims]int64
	padded := false
	for _, x := range a.nominated {
		if x.uid == pi.pod.UID || x.prio < prio || p.placedUIDs[x.uid] {
			continue
		}
		for d := range pad {
			pad[d] += x.scalar[d]
		}
		padded = true
	}
	if !padded {
		return n
	}
	out := n.plus(pad)
	return &out
}

// signature is equal for two pods exactly when every checker treats them alike: same need, host
// ports, and constraints.
func (pi *podInfo) signature() string {
	rules := ""
	if pi.rules != nil {
		rules = ruleKey(pi.pod)
	}
	return fmt.Sprintf("%v|%v|%v|%s|%s", pi.need.scalar, pi.needExec.scalar, pi.need.ports, pi.constraintKey(), rules)
}

// constraintKey is equal for two pods exactly when every static checker treats them alike: same node
// name, node selector, required node affinity and tolerations.
func (pi *podInfo) constraintKey() string {
	var sb strings.Builder
	s := &pi.pod.Spec
	fmt.Fprintf(&sb, "%q|", s.NodeName)
	keys := slices.Sorted(maps.Keys(s.NodeSelector))
	for _, k := range keys {
		fmt.Fprintf(&sb, "%q=%q,", k, s.NodeSelector[k])
	}
	sb.WriteByte('|')
	if a := s.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			sb.WriteString("term:")
			for _, r := range t.MatchExpressions {
				fmt.Fprintf(&sb, "e%q%q%q,", r.Key, r.Operator, r.Values)
			}
			for _, r := range t.MatchFields {
				fmt.Fprintf(&sb, "f%q%q%q,", r.Key, r.Operator, r.Values)
			}
		}
	}
	sb.WriteByte('|')
	for _, t := range s.Tolerations {
		fmt.Fprintf(&sb, "%q%q%q%q,", t.Key, t.Operator, t.Value, t.Effect)
	}
	return sb.String()
}

// staticResult is a cached outcome of the static checkers for one agent.
type staticResult struct {
	known bool
	why   string
}

// static runs the static checkers, through the pod's class cache when it has one: agents' labels,
// taints and cordons do not change within one Place call, so pods with equal constraints (replicas)
// share the outcome per agent.
func (pi *podInfo) static(a *agent) string {
	if !pi.maybeStatic(a) {
		return ""
	}
	if pi.statics == nil {
		return runStatic(pi, a)
	}
	r := &pi.statics[a.rank]
	if !r.known {
		r.why, r.known = runStatic(pi, a), true
	}
	return r.why
}

// maybeStatic reports whether a static checker can reject the pod on the agent; when false, checking
// is skipped (most pods have no constraints, most agents no taints).
func (pi *podInfo) maybeStatic(a *agent) bool {
	return pi.constrained || len(a.taints) > 0 || a.cordoned
}

// needOn is the pod's need on the agent: with the executor where it does not run and was not placed yet.
func (pi *podInfo) needOn(a *agent) *need {
	if !a.executorRunning && a.executorBucket == nil {
		return &pi.needExec
	}
	return &pi.need
}

func containsPort(ps []uint64, p uint64) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// fitBucket returns the first bucket (by role) n fits into. Once the executor was carved from a bucket
// in this plan, only that bucket is considered. When none fits, it returns the rejection mask of the
// bucket that came closest (fewest failing checkers). A Node without room for another pod fits in no
// bucket, and is reported with the resources it lacks, as NodeResourcesFit does.
func (a *agent) fitBucket(n *need) (*bucket, uint32) {
	b, m := a.fitResources(n)
	if a.pods < a.maxPods {
		return b, m
	}
	if m&(1<<hostPortsBit) != 0 {
		return nil, m // an earlier stage failed: the resources' stage did not run
	}
	return nil, m | 1<<podCountBit
}

func (a *agent) fitResources(n *need) (*bucket, uint32) {
	if a.executorBucket != nil {
		if m := fit(n, a.executorBucket); m != 0 {
			return nil, m
		}
		return a.executorBucket, 0
	}
	var bestMask uint32
	for i, b := range a.buckets {
		m := fit(n, b)
		if m == 0 {
			return b, 0
		}
		if i == 0 || bits.OnesCount32(m) < bits.OnesCount32(bestMask) {
			bestMask = m
		}
	}
	return nil, bestMask
}

// busyPorts are the ports that no bucket the pod could use has free; when each is free in some
// bucket but no bucket has them all, every port is listed.
func (a *agent) busyPorts(ports []uint64) []uint64 {
	buckets := a.buckets
	if a.executorBucket != nil {
		buckets = []*bucket{a.executorBucket}
	}
	var busy []uint64
	for _, p := range ports {
		free := false
		for _, b := range buckets {
			if b.portPool(p) >= 0 {
				free = true
				break
			}
		}
		if !free {
			busy = append(busy, p)
		}
	}
	if len(busy) == 0 {
		return ports
	}
	return busy
}

// score is the mean over cpu and memory of the share of capacity that stays free after placing n, in
// whole points of 0-100 as kube-scheduler's LeastAllocated computes it (integer division,
// MaxNodeScore 100); BinPack minimises it. Whole points make agents that differ by a few small pods
// tie, as they do for kube-scheduler, and a tie goes to an offer in hand (tieBefore): with fractions,
// a burst's pods waited for the agent an ACCEPT had just left a sliver freer (issue 13's profile).
func (a *agent) score(n *need) float64 {
	var sum, dims int64
	for _, d := range [...]int{dimCPU, dimMem} {
		if a.capacity[d] <= 0 {
			continue
		}
		free := max(a.free[d]-n.scalar[d], 0)
		sum += free * maxNodeScore / a.capacity[d]
		dims++
	}
	if dims == 0 {
		return 0
	}
	return float64(sum / dims)
}

// penalty ranks agents before their score; lower is better, 0 for most agents.
//   - An agent scheduled for maintenance (its offers carry an unavailability) is used only when no other
//     fits: its tasks may be killed when the maintenance window starts (apache/mesos docs/maintenance.md).
//   - A pod without GPUs goes to an agent offering GPUs only when no other agent fits: Mesos offers GPU
//     agents only to GPU-aware frameworks, which must keep them for GPU work (docs/gpu-support.md).
func (a *agent) penalty(n *need) int {
	pen := 0
	if a.maintenance {
		pen += 2
	}
	if n.scalar[dimGPU] == 0 && a.free[dimGPU] > 0 {
		pen++
	}
	return pen
}

func (a *agent) take(n *need) {
	for d := range n.scalar {
		a.free[d] -= n.scalar[d]
	}
}

// buildAgents groups the offers by agent and allocation role, and returns the agents in seeded order
// and, for each input offer, its bucket (nil for an offer without an agent ID), and the agents by ID.
func buildAgents(in *Input) ([]*agent, []*bucket, map[string]*agent) {
	byID := make(map[string]*agent)
	var ids []string
	offerBucket := make([]*bucket, len(in.Offers))
	for i := range in.Offers {
		o := &in.Offers[i]
		id := o.AgentID.Value
		if id == "" {
			continue
		}
		a := byID[id]
		if a == nil {
			a = newAgent(o, in)
			byID[id] = a
			ids = append(ids, id)
		}
		if o.Unavailability != nil {
			a.maintenance = true
		}
		if in.Executor.ID != "" {
			for _, e := range o.ExecutorIDs {
				if e.Value == in.Executor.ID {
					a.executorRunning = true
				}
			}
		}
		role := offerRole(o)
		var b *bucket
		for _, x := range a.buckets {
			if x.role == role {
				b = x
			}
		}
		if b == nil {
			b = &bucket{role: role, launch: -1}
			a.buckets = append(a.buckets, b)
		}
		b.offerIDs = append(b.offerIDs, o.ID)
		for j := range o.Resources {
			b.add(&o.Resources[j])
		}
		offerBucket[i] = b
	}
	for i := range in.Returning {
		o := &in.Returning[i]
		id, role := o.AgentID.Value, offerRole(o)
		if id == "" {
			continue
		}
		a := byID[id]
		if a == nil {
			a = newAgent(o, in)
			byID[id] = a
			ids = append(ids, id)
		}
		if slices.ContainsFunc(a.buckets, func(x *bucket) bool { return x.role == role }) {
			continue // in hand (or listed twice): what Mesos offered is what is free
		}
		if o.Unavailability != nil {
			a.maintenance = true
		}
		if in.Executor.ID != "" && slices.ContainsFunc(o.ExecutorIDs, func(e mesos.ExecutorID) bool { return e.Value == in.Executor.ID }) {
			a.executorRunning = true
		}
		b := &bucket{role: role, launch: -1, returning: true}
		a.buckets = append(a.buckets, b)
		for j := range o.Resources {
			b.add(&o.Resources[j])
		}
	}
	sort.Strings(ids)
	rng := rand.New(rand.NewPCG(in.Seed, in.Seed^0x9e3779b97f4a7c15))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	agents := make([]*agent, len(ids))
	for rank, id := range ids {
		a := byID[id]
		a.rank = rank
		// Offers in hand before returning room: a pod that fits both need not wait.
		sort.Slice(a.buckets, func(i, j int) bool {
			if x, y := a.buckets[i], a.buckets[j]; x.returning != y.returning {
				return !x.returning
			}
			return a.buckets[i].role < a.buckets[j].role
		})
		for _, b := range a.buckets {
			b.order()
			for d := range a.free {
				a.free[d] += b.free[d]
			}
		}
		for d := range a.capacity {
			if a.capacity[d] == 0 {
				a.capacity[d] = a.free[d]
			}
		}
		agents[rank] = a
	}
	return agents, offerBucket, byID
}

func newAgent(o *mesos.Offer, in *Input) *agent {
	a := &agent{id: o.AgentID.Value, hostname: o.Hostname, nodeName: o.Hostname, maxPods: DefaultMaxPods}
	a.executorRunning = in.Executor.RunningOn[a.id]
	node := in.Nodes[a.id]
	if node == nil {
		a.labels = AgentLabels(o)
		return a
	}
	a.nodeName = node.Name
	a.labels = node.Labels
	a.cordoned = node.Spec.Unschedulable
	a.setTaints(node.Spec.Taints)
	if q, ok := node.Status.Allocatable[corev1.ResourcePods]; ok {
		a.maxPods = int(q.Value())
	}
	if q, ok := node.Status.Allocatable[corev1.ResourceCPU]; ok {
		a.capacity[dimCPU] = q.MilliValue()
	}
	if q, ok := node.Status.Allocatable[corev1.ResourceMemory]; ok {
		a.capacity[dimMem] = q.Value() * 1000 / (1 << 20)
	}
	return a
}

// setTaints keeps the taints that keep pods off (NoSchedule, NoExecute) and formats their reasons once.
func (a *agent) setTaints(taints []corev1.Taint) {
	a.taints, a.taintReasons, a.preferTaints = nil, nil, nil
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			a.preferTaints = append(a.preferTaints, t)
		}
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			a.taints = append(a.taints, t)
			a.taintReasons = append(a.taintReasons, fmt.Sprintf(reasonTaintFormat, t.Key, t.Value))
		}
	}
}

// offerRole is the role the offer is allocated to: the offer's allocation_info, or its resources'
// (they all match it), or "" for a framework that is not MULTI_ROLE capable.
func offerRole(o *mesos.Offer) string {
	if r := o.GetAllocationInfo().GetRole(); r != "" {
		return r
	}
	for i := range o.Resources {
		if r := o.Resources[i].GetAllocationInfo().GetRole(); r != "" {
			return r
		}
	}
	return ""
}

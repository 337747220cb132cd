// Package offerbridge turns Mesos offers into pod placements.
//
// It exists because Mesos and Kubernetes schedule in opposite directions: Mesos offers resources to the
// framework, Kubernetes hands the scheduler pods that wait for a node. The framework holds the offers it
// receives for a short while (Book), then asks the pure placement core (Place) which pending pods fit on
// which offers. Place returns one value (a Plan: launch these pods on these offers, decline those offers,
// and why each remaining pod fits nowhere) that the framework loop carries out, the way raft returns a
// Ready value. Place does no I/O, reads no clock and is deterministic for a given seed.
//
// Placement is a pipeline of small feasibility checkers in the order kube-scheduler's default profile runs
// its filters (node name, unschedulable, taints, node affinity/selector, host ports, resources); every
// rejection is counted per reason so the FailedScheduling message can say why, in kube-scheduler's format:
//
//	0/3 agents are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu.
//
// As kube-scheduler counts every Node, the count includes the agents without an offer in hand whose
// Node refuses the pod whatever they would offer (node name, cordon, taints, node affinity, pod rules);
// those that would take it are left out, having nothing to give now.
//
// The host ports reason also names the ports the agent lacks, "… for the requested pod ports (port 8080)",
// since with --pod-network host every containerPort is one.
//
// The rules that look at other pods and the whole cluster (rules.go: pod affinity and anti-affinity,
// topology spread, the Node's pod count, and the scores of preferred node and pod affinity,
// ScheduleAnyway spread and PreferNoSchedule taints) follow kube-scheduler v1.37's plugins; they see
// Input.Bound and every pod placed earlier in the same Place call.
//
// Several pods are placed per offer and per cycle. The default strategy spreads pods onto the least
// allocated agent (kube-scheduler's default LeastAllocated score); BinPack packs them onto the fewest agents.
// Pods without GPUs avoid agents that offer GPUs, and every pod avoids agents scheduled for maintenance,
// while another agent fits. In large clusters the search
// stops after enough feasible agents, as kube-scheduler's percentageOfNodesToScore does.
//
// Mesos rules the carving respects (apache/mesos src/master/validation.cpp):
//   - all offers accepted in one ACCEPT must be of one agent and allocated to the same role, so a Launch
//     groups the offers of one agent and one allocation role;
//   - a task's resources must be allocated to a single role and carry that allocation_info;
//   - the task (plus its executor, when the executor is not yet running on the agent) must be contained
//     in the offered resources: never more than offered, reserved resources of the role are used before
//     unreserved ones, and revocable or shared resources and disks with DiskInfo are never used.
//
// DecideOffers is the pure suppress/revive rule: suppress when nothing is pending, revive at once when
// pods arrive (clearing the refuse filters of earlier declines).
package offerbridge

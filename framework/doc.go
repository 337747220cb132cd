// Package framework is the kubemesos Mesos framework: the process that makes Mesos agents look like
// Kubernetes Nodes and runs the pods scheduled to it as Mesos tasks on the kubemesos executor.
//
// It exists because a Mesos cluster and a Kubernetes control plane speak about the same machines in
// opposite directions: Mesos offers resources, Kubernetes has pods waiting for a node. The framework
// subscribes to the Mesos master (mesos-go v1 scheduler API), watches pods and nodes with client-go
// informers, and owns the loop in between. Run(ctx, Config) is the whole program; `kubemesos framework`
// only binds flags (Config.BindFlags) and calls it.
//
// # Pieces
//
//   - subscriber: SUBSCRIBE, the event stream, heartbeat-loss detection (no event for 5 heartbeat
//     intervals closes the stream), re-subscription with capped exponential back-off and the persisted
//     FrameworkID.
//   - sched: the core. Mesos events (offers, rescinds, updates, failures) come from the subscriber; pod
//     keys from the informer through a workqueue (syncPod, one idempotent sync per pod); placement
//     cycles run on the loop goroutine over the offers held in an offerbridge.Book and the pending pods,
//     using the pure offerbridge.Place. Shared state is behind one mutex; no I/O happens under it.
//   - nodeController: one Node per agent (offers and the master's operator API GET_AGENTS), Ready with
//     a Lease in kube-node-lease renewed while the agent is active, Ready=False once Mesos reports it
//     removed, unreachable or gone (and the Lease is then left to expire).
//   - ConfigMapStore: the ConfigMap kubemesos-framework in --state-namespace keeps the FrameworkID and
//     the ExecutorInfo launched on each agent.
//
// # Decisions
//
// Bind, then launch. For every placement the Binding subresource is written first, then one ACCEPT
// launches the agent's tasks (TaskID pod-<uid>, so Mesos refuses a second live task for a pod). The
// FrameworkID is stored before SUBSCRIBED is acted on, and a new agent's ExecutorInfo before the
// ACCEPT that starts the executor there.
//
// Crash windows. After every (re)subscription the framework reconciles explicitly every task it knows
// and every task of a pod bound to one of its agents, and launches nothing bound until every question
// is answered (with back-off). A pod bound but never launched (a crash between Binding and ACCEPT, an
// ACCEPT lost on the way, a pod bound by someone else) is then answered TASK_UNKNOWN, or TASK_GONE with
// REASON_RECONCILIATION when its agent is registered, and is launched on the agent it is bound to when
// that agent offers; a pod that had already started is failed instead (reason NodeLost), never run
// twice. Running tasks are always adopted, never killed on restart (lesson #466 of the earlier bridge).
// Tasks whose pod object is gone are killed.
//
// Executor identity. The ExecutorInfo depends only on executor settings, and the one stored for an
// agent is reused while its executor runs (offers list it in executor_ids), so a restart with changed
// flags never makes a running executor incompatible (lesson #572). Should the state have lost it, the
// running executor's ExecutorInfo is taken from the master's GET_EXECUTORS, never guessed. When the
// executor exits (FAILURE with an executor ID) or its agent is removed, the stored one is dropped and
// the next pod there starts an executor with the current settings.
//
// Task ends only Mesos knows. States the executor cannot report (lost, gone, error, or failed/killed
// by the agent or master) are written to the pod status as podtranslate.PodStatusForTask says (Failed,
// reason NodeLost/ExecutorTerminated/TaskInvalid...), and the update is acknowledged only once written,
// so Mesos resends it when the API server is down. TASK_UNREACHABLE keeps the phase and sets Ready=False; a partition-aware master sends no update
// when the agent re-registers, so the framework reconciles the agent's unreachable tasks as soon as
// the agent is seen active again, and restores the readiness it took away once they answer RUNNING.
// TASK_DROPPED cannot unbind the pod (nodeName is immutable), so the same task is launched again on the
// same agent, at most three times; then the pod fails (reason TaskDropped) and its controller replaces it.
//
// Deletion. A pod with a deletionTimestamp has its task KILLed with the deletion's grace period as kill
// policy (repeated only after 30 s); once the task is terminal, the framework deletes the pod object
// with grace 0 and the pod's UID as precondition, the kubelet's job in other clusters.
//
// Offers. Every offer ends exactly once as accepted, declined (with --refuse-seconds, also when held
// past --offer-hold) or rescinded (lesson #636). Offers are held so pods arriving shortly after can use
// them; new pods revive at once, clearing refuse filters; nothing pending suppresses. Pods that fit
// nowhere get a FailedScheduling event (kube-scheduler style message from offerbridge), the condition
// PodScheduled=False/Unschedulable, and are retried with back-off (1 s doubling to 30 s).
//
// Ownership. Several frameworks may share an API server: this one acts only on pods of its scheduler
// names that are unbound or bound to its own Nodes, and on Nodes marked kubemesos.io/framework-id with
// its FrameworkID (which survives master failovers and restarts, and differs between Mesos clusters;
// former ones are kept after Mesos removed the framework). An agent whose hostname names a Node of
// another owner gets no Node and no pods: a NodeNameConflict event on that Node, never a fight over it.
//
// Leader election on the Lease kubemesos-framework: only the leader subscribes; losing the Lease ends
// Run with an error so the process restarts and rejoins the election.
package framework

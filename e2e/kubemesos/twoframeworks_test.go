package kubemesos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Issue 9, fact 5: two kubemesos frameworks (other --scheduler-name, other Mesos cluster, other agent
// hostnames) on one API server never touch each other's pods. Each runs a Deployment; both reconcile
// every 2 s, and each is SIGKILLed and started again while the other runs. At the end every pod of
// both is Running on a Node of its own framework with its UID and restart count unchanged, no pod
// failed, neither framework recorded an event about the other's pods nor a FailedScheduling, each
// master's tasks are exactly its own pods, and explicit reconciliation never asked a master about
// the other framework's pods (against a real Mesos that asking failed all of them: TASK_UNKNOWN).
func TestTwoFrameworks(t *testing.T) {
	const replicas = 4
	names := []string{"kubemesos-a", "kubemesos-b"}
	args := twoFrameworkArgs
	envs := make([]*env, len(names))
	for i, name := range names {
		envs[i] = newEnv(t, envOptions{Agents: 2, FrameworkArgs: args(name)})
	}
	// A new Node carries the not-ready taint until the node controller sees it Ready, and a pod
	// created before that gets a FailedScheduling event (as with kube-scheduler) this test forbids.
	for _, e := range envs {
		e.waitSchedulableNodes(2)
	}
	sel := selector(map[string]string{"app": "web"})
	for i, e := range envs {
		spec := podSpec(sleeper)
		spec.SchedulerName = names[i]
		e.createDeployment(deployment("web", replicas, spec))
	}
	restarts := make([]map[string]int32, len(envs)) // pod UID → restart count, per framework
	for i, e := range envs {
		restarts[i] = restartCounts(e.waitRunningPods(sel, replicas, 2*time.Minute))
		e.waitDeploymentReady("web", replicas, time.Minute)
	}

	// reconcileSeveral waits until each framework has reconciled implicitly three more times.
	reconcileSeveral(t, "both frameworks reconciling", envs...)
	for i, e := range envs {
		e.stopFramework(true)
		e.startFramework(args(names[i])...)
		reconcileSeveral(t, fmt.Sprintf("both frameworks reconciling after %s restarted", names[i]), envs...)
	}

	ctx := context.Background()
	for i, e := range envs {
		other := names[1-i]
		// Exactly the first pods, Running and Ready, each with one RUNNING task in this master and no
		// other task there (waitRunningPods counts failed pods too).
		pods := e.waitRunningPods(sel, replicas, time.Minute)
		e.checkPodsOnAgents(pods)
		if diff := changedCounts(restarts[i], restartCounts(pods)); diff != "" {
			t.Errorf("%s: pods replaced or restarted: %s", names[i], diff)
		}
		st, err := e.mesosState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := frameworkIDs(st, frameworkName)
		if len(ids) != 1 {
			t.Fatalf("%s: Mesos knows frameworks %v, want one", names[i], ids)
		}
		ts := tasksOf(st, frameworkName)
		if len(ts.Completed) != 0 || len(ts.Unreachable) != 0 {
			t.Errorf("%s: %d completed and %d unreachable tasks, want none", names[i], len(ts.Completed), len(ts.Unreachable))
		}
		own := map[string]bool{}
		for _, p := range pods {
			own[taskIDPrefix+string(p.UID)] = true
			node, err := e.kube.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
			if err != nil {
				t.Errorf("%s: Node of pod %s: %v", names[i], p.Name, err)
				continue
			}
			if id := node.Annotations["kubemesos.io/framework-id"]; !ids[id] || !strings.HasPrefix(node.Name, e.prefix+"-") {
				t.Errorf("%s: pod %s is on Node %s marked %q, want a Node of its own framework %v", names[i], p.Name, node.Name, id, ids)
			}
		}
		for _, id := range e.ledger.snapshot().Asked {
			if !own[id] {
				t.Errorf("%s asked its master about task %s, not one of its pods", names[i], id)
			}
		}
		evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Reason == "FailedScheduling" || ev.Source.Component == other || ev.ReportingController == other {
				t.Errorf("%s: event %s %s/%s from %q: %s", names[i], ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name,
					ev.Source.Component, ev.Message)
			}
		}
	}
}

// Issue 9, fact 5: a framework whose agents have the hostnames of another framework's agents (same
// Node names) does not fight over those Nodes. It reports a NodeNameConflict Warning Event on each,
// counts its agents as kubemesos_nodes{state="hostname_conflict"} and places nothing on them; the
// first framework's Nodes stay its own and Ready, its pods keep running untouched.
func TestTwoFrameworksSameHostnames(t *testing.T) {
	const replicas = 2
	sel := selector(map[string]string{"app": "web"})
	a := newEnv(t, envOptions{Agents: 2, FrameworkArgs: twoFrameworkArgs("kubemesos-a")})
	a.waitSchedulableNodes(2)
	spec := podSpec(sleeper)
	spec.SchedulerName = "kubemesos-a"
	a.createDeployment(deployment("web", replicas, spec))
	before := restartCounts(a.waitRunningPods(sel, replicas, 2*time.Minute))

	b := newEnv(t, envOptions{Agents: 2, HostnamePrefix: a.prefix, FrameworkArgs: twoFrameworkArgs("kubemesos-b")})
	spec.SchedulerName = "kubemesos-b"
	b.createDeployment(deployment("web", replicas, spec))
	ctx := context.Background()
	b.eventually("kubemesos-b reporting both hostnames taken", time.Minute, func(ctx context.Context) (bool, error) {
		for i := 0; i < 2; i++ {
			evs, err := b.kube.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
				FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + a.agentHostname(i) + ",reason=NodeNameConflict",
			})
			if err != nil {
				return false, err
			}
			if len(evs.Items) != 1 || evs.Items[0].Type != corev1.EventTypeWarning || evs.Items[0].Source.Component != "kubemesos-b" {
				return false, fmt.Errorf("Node %s: %d NodeNameConflict events", a.agentHostname(i), len(evs.Items))
			}
		}
		m, err := b.frameworkMetrics(ctx)
		if err != nil {
			return false, err
		}
		if n := m[`kubemesos_nodes{state="hostname_conflict"}`]; n != 2 {
			return false, fmt.Errorf("kubemesos_nodes{hostname_conflict} = %v", n)
		}
		return true, nil
	})
	reconcileSeveral(t, "both frameworks reconciling", a, b)

	pods := a.waitRunningPods(sel, replicas, time.Minute)
	a.checkPodsOnAgents(pods) // Nodes labelled with a's agents, Ready
	if diff := changedCounts(before, restartCounts(pods)); diff != "" {
		t.Errorf("kubemesos-a: pods replaced or restarted: %s", diff)
	}
	st, err := a.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := frameworkIDs(st, frameworkName)
	for i := 0; i < 2; i++ {
		node, err := a.kube.CoreV1().Nodes().Get(ctx, a.agentHostname(i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if id := node.Annotations["kubemesos.io/framework-id"]; !ids[id] {
			t.Errorf("Node %s marked %q, want kubemesos-a's %v", node.Name, id, ids)
		}
	}
	podsB, err := b.pods(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range podsB {
		if p.Spec.NodeName != "" {
			t.Errorf("kubemesos-b bound pod %s to %s, a Node of kubemesos-a", p.Name, p.Spec.NodeName)
		}
	}
	stB, err := b.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ts := tasksOf(stB, frameworkName); len(ts.Active)+len(ts.Completed) != 0 {
		t.Errorf("kubemesos-b launched %d tasks on agents without a Node", len(ts.Active)+len(ts.Completed))
	}
	evs, err := a.kube.CoreV1().Events(a.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if ev.Source.Component == "kubemesos-b" {
			t.Errorf("kubemesos-b recorded %s on %s/%s: %s", ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)
		}
	}
}

// twoFrameworkArgs are the flags of one of two frameworks sharing the API server: its own scheduler
// name, no default-scheduler, and implicit reconciliation every 2 s.
func twoFrameworkArgs(name string) []string {
	return []string{"--serve-default-scheduler=false", "--scheduler-name=" + name, "--reconcile-interval=2s"}
}

// reconcileSeveral waits until each env's framework has reconciled implicitly three more times.
func reconcileSeveral(t *testing.T, what string, envs ...*env) {
	t.Helper()
	marks := make([]int, len(envs))
	for i, e := range envs {
		marks[i] = e.ledger.snapshot().Implicit
	}
	envs[0].eventually(what, time.Minute, func(context.Context) (bool, error) {
		for i, e := range envs {
			if n := e.ledger.snapshot().Implicit - marks[i]; n < 3 {
				return false, fmt.Errorf("framework of %s reconciled %d times", e.ns, n)
			}
		}
		return true, nil
	})
}

// restartCounts maps each pod's UID to the sum of its containers' restarts.
func restartCounts(pods []corev1.Pod) map[string]int32 {
	out := map[string]int32{}
	for _, p := range pods {
		var n int32
		for _, cs := range p.Status.ContainerStatuses {
			n += cs.RestartCount
		}
		out[string(p.UID)] = n
	}
	return out
}

// changedCounts says how b differs from a: pods gone, new or with other restart counts.
func changedCounts(a, b map[string]int32) string {
	var out []string
	for uid, n := range a {
		if m, ok := b[uid]; !ok {
			out = append(out, "pod "+uid+" gone")
		} else if m != n {
			out = append(out, fmt.Sprintf("pod %s restarted %d -> %d", uid, n, m))
		}
	}
	for uid := range b {
		if _, ok := a[uid]; !ok {
			out = append(out, "new pod "+uid)
		}
	}
	return strings.Join(out, "; ")
}

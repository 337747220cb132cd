package kubemesos

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The offer-leak lesson of the earlier bridge: every offer the master sends is used, declined, or
// rescinded, never silently kept. The ledger (a proxy on the scheduler API, independent of the
// framework) books each offer by ID; the framework's own /metrics counters must agree with it, and
// once nothing is pending no offer may stay with the framework.
func TestOfferAccounting(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	// Usable offers (a Deployment) and unusable ones (a pod no agent fits, which keeps the framework
	// declining).
	spec := podSpec(sleeper)
	spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("16")
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "huge"}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.createDeployment(deployment("acct", 6, podSpec(sleeper)))
	sel := selector(map[string]string{"app": "acct"})
	e.waitRunningPods(sel, 6, 2*time.Minute)
	e.eventually("the framework declining offers it cannot use", time.Minute, func(ctx context.Context) (bool, error) {
		s := e.ledger.snapshot()
		return s.Declined >= 3, fmt.Errorf("%d declined", s.Declined)
	})
	if err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, "huge", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.scale("acct", 3)
	e.waitRunningPods(sel, 3, 2*time.Minute)

	// Nothing is pending now: within a few offer-hold periods the framework holds no offer, and the
	// books balance.
	var last ledgerSnapshot
	e.eventually("every offer answered and the framework's counters equal to the ledger", time.Minute, func(ctx context.Context) (bool, error) {
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		var held []string
		for _, f := range st.GetGetFrameworks().GetFrameworks() {
			if f.FrameworkInfo.Name == frameworkName {
				for _, o := range f.Offers {
					held = append(held, o.ID.Value)
				}
			}
		}
		m, err := e.frameworkMetrics(ctx)
		if err != nil {
			return false, err
		}
		s := e.ledger.snapshot()
		last = s
		if len(held) > 0 || len(s.Unanswered) > 0 {
			return false, fmt.Errorf("offers held by the framework per Mesos: %v; unanswered per ledger: %v", held, s.Unanswered)
		}
		got := map[string]float64{
			"received": m["kubemesos_offers_received_total"], "accepted": m["kubemesos_offers_accepted_total"],
			"declined": m["kubemesos_offers_declined_total"], "rescinded": m["kubemesos_offers_rescinded_total"],
		}
		want := map[string]float64{"received": float64(s.Sent), "accepted": float64(s.Accepted), "declined": float64(s.Declined), "rescinded": float64(s.Rescinded)}
		if !mapsEqual(got, want) {
			return false, fmt.Errorf("framework counters %v, ledger %v", got, want)
		}
		return true, nil
	})
	t.Logf("ledger: %d offers sent, %d used, %d declined, %d rescinded; %d subscriptions", last.Sent, last.Accepted, last.Declined, last.Rescinded, last.Subscribes)
	if len(last.Twice) > 0 || len(last.Unknown) > 0 || len(last.Errs) > 0 {
		t.Errorf("ledger: answered twice %v, answered but never sent %v, errors %v", last.Twice, last.Unknown, last.Errs)
	}
	if last.Sent != last.Accepted+last.Declined+last.Rescinded {
		t.Errorf("ledger: %d sent != %d used + %d declined + %d rescinded", last.Sent, last.Accepted, last.Declined, last.Rescinded)
	}
	if last.Accepted == 0 || last.Declined == 0 {
		t.Errorf("ledger: %d used and %d declined offers; the scenario should produce both", last.Accepted, last.Declined)
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The virtual-kubelet lesson: a pod's terminal status must not be lost when the API server is
// unreachable at the moment the pod ends. The executors reach the API server through a proxy the test
// cuts; the pod's process exits 3 during the outage; Mesos learns the task FAILED at once, the pod's
// status can only be written after the outage, and then it is: Failed, exit code 3.
func TestTerminalStatusSurvivesAPIServerOutage(t *testing.T) {
	e := newEnv(t, envOptions{BlockableAPI: true})
	ctx := context.Background()
	gate := newHostSignals(t)
	spec := podSpec(fmt.Sprintf("until [ \"$(%s)\" = open ]; do sleep 0.2; done; exit 3", gate.get("gate")))
	spec.RestartPolicy = corev1.RestartPolicyNever
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ends-in-outage", Labels: map[string]string{"app": "outage"}}, Spec: spec}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := e.waitRunningPods(selector(map[string]string{"app": "outage"}), 1, 2*time.Minute)[0]

	e.apiProxy.Block()
	gate.set("gate", "open")
	e.eventually("the task FAILED in Mesos", time.Minute, func(ctx context.Context) (bool, error) {
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		ts := tasksOf(st, frameworkName)
		for _, task := range append(ts.Active, ts.Completed...) {
			if taskPodUID(task) == string(running.UID) {
				return task.GetState() == mesos.TASK_FAILED, fmt.Errorf("task %v", task.GetState())
			}
		}
		return false, nil
	})
	during, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if during.Status.Phase != corev1.PodRunning {
		t.Fatalf("during the outage the pod is already %s (status written by %v): the outage did not hold back the executor's write",
			during.Status.Phase, statusManagers(during))
	}

	e.apiProxy.Unblock()
	e.eventually("the pod Failed with exit code 3 after the outage", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Status.Phase != corev1.PodFailed {
			return false, fmt.Errorf("phase %s", p.Status.Phase)
		}
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Terminated == nil {
			return false, fatalf("pod Failed without a terminated container status: %+v", p.Status.ContainerStatuses)
		}
		if code := p.Status.ContainerStatuses[0].State.Terminated.ExitCode; code != 3 {
			return false, fatalf("exit code %d, want 3", code)
		}
		return true, nil
	})
}

// statusManagers lists who wrote a pod's status (managedFields of the status subresource).
func statusManagers(p *corev1.Pod) []string {
	var out []string
	for _, mf := range p.ManagedFields {
		if mf.Subresource == "status" && !slices.Contains(out, mf.Manager) {
			out = append(out, mf.Manager)
		}
	}
	sort.Strings(out)
	return out
}

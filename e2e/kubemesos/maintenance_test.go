package kubemesos

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/maintenance"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Issue 15, must show 3: a maintenance window on one agent. Its Node is cordoned, its pods are evicted
// before the window (a PDB with minAvailable holds the last replica until another is Ready), the
// inverse offer is accepted, nothing is scheduled there during the window, and the Node is
// schedulable afterwards.

// machineOf returns the agent's MachineID as Mesos' master knows it: hostname and the IP of its PID.
func (e *env) machineOf(ctx context.Context, hostname string) mesos.MachineID {
	e.t.Helper()
	resp, err := operatorCall(ctx, e.sim.URL, master.Call{Type: master.Call_GET_AGENTS})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range resp.GetAgents.Agents {
		if a.AgentInfo.Hostname != hostname {
			continue
		}
		_, addr, _ := strings.Cut(a.GetPID(), "@")
		ip, _, err := net.SplitHostPort(addr)
		if err != nil {
			e.t.Fatalf("agent %s's pid %q: %v", hostname, a.GetPID(), err)
		}
		return mesos.MachineID{Hostname: &hostname, IP: &ip}
	}
	e.t.Fatalf("agent %s not registered", hostname)
	return mesos.MachineID{}
}

func TestMaintenanceWindowDrainsAgent(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 3})
	e.waitSchedulableNodes(3)
	ctx := context.Background()
	a0 := e.agentHostname(0)

	// Two replicas that prefer agent 0 (both land there), ready 8 s after they start, and a PDB that
	// keeps one available.
	spec := podSpec(sleeper)
	spec.TerminationGracePeriodSeconds = ptr.To[int64](2)
	spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
		InitialDelaySeconds: 8, PeriodSeconds: 1,
		// An exec is a nested container session: on a loaded 2-core machine one took over the
		// default 1 s, and the replicas never became ready.
		TimeoutSeconds: 5,
	}
	spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
			Weight: 100,
			Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{a0},
			}}},
		}},
	}}
	e.createDeployment(deployment("web", 2, spec))
	sel := selector(map[string]string{"app": "web"})
	original := e.readyPods(sel, 2, 2*time.Minute)
	for _, p := range original {
		if p.Spec.NodeName != a0 {
			t.Fatalf("replica %s on %s, want both on %s (preferred)", p.Name, p.Spec.NodeName, a0)
		}
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	if _, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("the PDB allows one disruption", 30*time.Second, func(ctx context.Context) (bool, error) {
		p, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.DisruptionsAllowed == 1, fmt.Errorf("status %+v", p.Status)
	})

	// Watch the replicas: at no time may fewer than one be Ready and not terminating, and an original
	// replica may only start terminating while another replica is Ready (the PDB holds it until then).
	var mu sync.Mutex
	var violations []string
	// heldFirst and heldLast bound the polls that saw one original replica serving alone after the
	// other was evicted.
	var heldFirst, heldLast time.Time
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			pods, err := e.pods(ctx, sel)
			if err != nil {
				continue
			}
			ready, liveOriginals, readyNew := 0, 0, 0
			for _, p := range pods {
				live := p.DeletionTimestamp == nil
				isOriginal := p.UID == original[0].UID || p.UID == original[1].UID
				if live && podReady(&p) {
					ready++
					if !isOriginal {
						readyNew++
					}
				}
				if live && isOriginal {
					liveOriginals++
				}
			}
			mu.Lock()
			if ready < 1 {
				violations = append(violations, fmt.Sprintf("%s: no replica Ready", time.Now().Format(time.StampMilli)))
			}
			if liveOriginals == 1 && readyNew == 0 {
				// The drain wants it gone, the PDB keeps it until a replacement is Ready.
				if heldFirst.IsZero() {
					heldFirst = time.Now()
				}
				heldLast = time.Now()
			}
			mu.Unlock()
		}
	}()

	// The window starts in 60 s and lasts 40 s.
	start := time.Now().Add(60 * time.Second)
	duration := 40 * time.Second
	machine := e.machineOf(ctx, a0)
	_, err := operatorCall(ctx, e.sim.URL, master.Call{Type: master.Call_UPDATE_MAINTENANCE_SCHEDULE,
		UpdateMaintenanceSchedule: &master.Call_UpdateMaintenanceSchedule{Schedule: maintenance.Schedule{Windows: []maintenance.Window{{
			MachineIDs:     []mesos.MachineID{machine},
			Unavailability: mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: start.UnixNano()}, Duration: &mesos.DurationInfo{Nanoseconds: int64(duration)}},
		}}}}})
	if err != nil {
		t.Fatal(err)
	}

	e.eventually("agent 0's Node cordoned", 30*time.Second, func(ctx context.Context) (bool, error) {
		n, err := e.kube.CoreV1().Nodes().Get(ctx, a0, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return n.Spec.Unschedulable, fmt.Errorf("unschedulable %v", n.Spec.Unschedulable)
	})
	e.eventually("agent 0 drained, both replicas Ready elsewhere", 50*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, sel)
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods {
			if p.Spec.NodeName == a0 {
				return false, fmt.Errorf("%s still on %s (deleting %v)", p.Name, a0, p.DeletionTimestamp != nil)
			}
			if podReady(&p) {
				ready++
			}
		}
		return ready == 2, fmt.Errorf("%d of %d Ready", ready, len(pods))
	})
	if time.Now().After(start) {
		t.Errorf("agent 0 drained only after the window started")
	}
	close(stop)
	<-watched
	mu.Lock()
	held := heldLast.Sub(heldFirst)
	t.Logf("drained %.0f s before the window; the last original replica was held for %v", time.Until(start).Seconds(), held.Round(100*time.Millisecond))
	if len(violations) > 0 {
		t.Errorf("the PDB did not hold: %v", violations)
	}
	// The replacement is Ready 8 s after it starts: the last original is held about as long.
	if held < 3*time.Second {
		t.Errorf("the last original replica was held for %v, want the PDB to hold it until a replacement was Ready", held)
	}
	mu.Unlock()

	e.eventually("the inverse offer accepted", 30*time.Second, func(ctx context.Context) (bool, error) {
		resp, err := operatorCall(ctx, e.sim.URL, master.Call{Type: master.Call_GET_MAINTENANCE_STATUS})
		if err != nil {
			return false, err
		}
		for _, dm := range resp.GetMaintenanceStatus.Status.DrainingMachines {
			for _, s := range dm.Statuses {
				if dm.ID.GetHostname() == a0 && s.GetStatus().String() == "ACCEPT" {
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("status %+v", resp.GetMaintenanceStatus.Status)
	})

	// During the window nothing is placed on agent 0, though the new replicas prefer it.
	if d := time.Until(start); d > 0 {
		time.Sleep(d)
	}
	e.scale("web", 4)
	during := e.readyPods(sel, 4, time.Minute)
	for _, p := range during {
		if p.Spec.NodeName == a0 {
			t.Errorf("%s placed on %s during its maintenance window", p.Name, a0)
		}
	}
	if time.Now().After(start.Add(duration)) {
		t.Errorf("the replicas were placed only after the window; they prove nothing")
	}

	// After the window the Node is schedulable again, and new replicas go there.
	e.eventually("agent 0's Node uncordoned after the window", time.Until(start.Add(duration))+30*time.Second, func(ctx context.Context) (bool, error) {
		n, err := e.kube.CoreV1().Nodes().Get(ctx, a0, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, tt := range n.Spec.Taints {
			if tt.Key == corev1.TaintNodeUnschedulable {
				return false, fmt.Errorf("taint %v", tt)
			}
		}
		return !n.Spec.Unschedulable, fmt.Errorf("unschedulable %v", n.Spec.Unschedulable)
	})
	if time.Now().Before(start.Add(duration)) {
		t.Errorf("uncordoned before the window ended")
	}
	e.scale("web", 5)
	after := e.readyPods(sel, 5, 2*time.Minute)
	on0 := 0
	for _, p := range after {
		if p.Spec.NodeName == a0 {
			on0++
		}
	}
	if on0 != 1 {
		t.Errorf("%d replicas on %s after the window, want the new one there (preferred)", on0, a0)
	}
}

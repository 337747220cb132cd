package kubemesos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/master"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/mesossim"
)

// The framework's quota annotations (framework.QuotaGuaranteeAnnotation, QuotaLimitAnnotation).
const (
	quotaGuaranteeAnnotation = "kubemesos.io/mesos-quota-guarantee"
	quotaLimitAnnotation     = "kubemesos.io/mesos-quota-limit"
)

// quotaEnv is a 3-agent cluster (4 cpus, 8 GiB each) whose pods, tasks and executors are units of
// 0.5 cpu and 1 GiB, as TestNamespaceRolesShareByWeight's.
func quotaEnv(t *testing.T) *env {
	e := newEnv(t, envOptions{
		MasterTweak:   func(cfg *mesossim.Config) { cfg.FairSharingExcludedResourceNames = []string{"disk"} },
		FrameworkArgs: []string{"--executor-cpus=0.5", "--executor-mem=1024"},
	})
	e.waitSchedulableNodes(3)
	return e
}

func (e *env) annotateNamespace(name string, kv ...string) {
	e.t.Helper()
	ctx := context.Background()
	ns, err := e.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		ns.Annotations[kv[i]] = kv[i+1]
	}
	if _, err := e.kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func unitSpec() corev1.PodSpec {
	spec := podSpec(sleeper)
	spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("500m")
	spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse("1Gi")
	return spec
}

// quotaOnMaster is the master's GET_QUOTA: role → limits' cpus (0 when none), for the roles with quota.
func quotaOnMaster(ctx context.Context, e *env) (map[string]string, error) {
	resp, err := operatorCall(ctx, e.sim.URL, master.Call{Type: master.Call_GET_QUOTA})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range resp.GetGetQuota().Status.Configs {
		var parts []string
		for _, n := range []string{"cpus", "mem"} {
			if v, ok := c.Guarantees[n]; ok {
				parts = append(parts, fmt.Sprintf("g.%s=%g", n, v.Value))
			}
			if v, ok := c.Limits[n]; ok {
				parts = append(parts, fmt.Sprintf("l.%s=%g", n, v.Value))
			}
		}
		out[c.Role] = strings.Join(parts, ",")
	}
	return out, nil
}

// Must show (issue 15, quota): a namespace whose role has a Mesos quota limit below what its pending
// pods ask gets at most the limit, its pods beyond it Pending with a reason naming the quota, while
// another namespace's role gets the rest of the cluster; the limit goes when the annotation does.
//
// 12 cpus in all. tenant-l: limit cpus=3 (executors included, as Mesos counts them), 12 pods of 0.5
// cpu wanted; tenant-o: no quota, 24 pods wanted. Expected: tenant-l never above 3 cpus, tenant-o
// about 9.
func TestNamespaceQuotaLimit(t *testing.T) {
	e := quotaEnv(t)
	nsL := e.tenantNamespace("l", "tenant-l")
	nsO := e.tenantNamespace("o", "tenant-o")
	e.annotateNamespace(nsL, quotaLimitAnnotation, "cpus=3,mem=6144")
	e.eventually("the limit set on tenant-l", 30*time.Second, func(ctx context.Context) (bool, error) {
		q, err := quotaOnMaster(ctx, e)
		return err == nil && q["tenant-l"] == "l.cpus=3,l.mem=6144", fmt.Errorf("GET_QUOTA %v %v", q, err)
	})
	e.createDeploymentIn(nsL, deployment("tenant", 12, unitSpec()))
	e.createDeploymentIn(nsO, deployment("tenant", 24, unitSpec()))

	sampler := startRoleSampler(e)
	t.Cleanup(func() { sampler.stop(); sampler.report(t, 12) })
	maxL := 0.0
	e.eventually("tenant-o holding the rest (≥ 8.5 cpus) over 10 s", 150*time.Second, func(ctx context.Context) (bool, error) {
		roles, err := getRoles(ctx, e)
		if err != nil {
			return false, err
		}
		maxL = max(maxL, roles["tenant-l"].cpus)
		if maxL > 3+1e-9 {
			return false, fatalf("tenant-l holds %.2f cpus, over its limit 3", maxL)
		}
		mean, n := sampler.mean(10)
		return n == 10 && mean["tenant-o"] >= 8.5, fmt.Errorf("mean over 10 s: tenant-l %.2f, tenant-o %.2f cpus", mean["tenant-l"], mean["tenant-o"])
	})
	mean, _ := sampler.mean(10)
	ctx := context.Background()
	running, pending, quotaReason := 0, 0, 0
	var reason string
	for _, p := range e.tenantPods(ctx, nsL) {
		if p.Status.Phase == corev1.PodRunning {
			running++
			continue
		}
		if p.Spec.NodeName == "" {
			pending++
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, "quota limit") {
					quotaReason++
					reason = c.Message
				}
			}
		}
	}
	t.Logf("tenant-l (limit 3 cpus): %.2f cpus on average over 10 s, at most %.2f; %d pods running, %d pending (%d saying why: %q); tenant-o: %.2f cpus",
		mean["tenant-l"], maxL, running, pending, quotaReason, reason, mean["tenant-o"])
	if running > 5 || running == 0 {
		t.Errorf("%d pods of %s running, want 1 to 5 (3 cpus less at least one executor, in 0.5 cpu pods)", running, nsL)
	}
	if pending == 0 || quotaReason == 0 {
		t.Errorf("%d pods of %s pending, %d with PodScheduled=False naming the quota; want some of each", pending, nsL, quotaReason)
	}
	if !strings.Contains(reason, `Mesos role "tenant-l" is at its quota limit cpus:3; mem:6144`) {
		t.Errorf("reason %q does not name the role's quota", reason)
	}

	// The annotation goes: the quota is back to the default on the master.
	ns, err := e.kube.CoreV1().Namespaces().Get(ctx, nsL, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(ns.Annotations, quotaLimitAnnotation)
	if _, err := e.kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("tenant-l's quota removed", 30*time.Second, func(ctx context.Context) (bool, error) {
		q, err := quotaOnMaster(ctx, e)
		_, has := q["tenant-l"]
		return err == nil && !has, fmt.Errorf("GET_QUOTA %v %v", q, err)
	})
}

// Must show (issue 15, quota): a guarantee keeps headroom for its tenant against a greedy batch
// framework. The batch framework (role batch, tasks of 0.5 cpu and 1 GiB lasting 2 to 4 s, relaunched)
// holds the whole cluster. A namespace of role tenant-g, with no pods yet (kubemesos keeps the role
// suppressed), asks a guarantee and limit of 4 cpus and 8 GiB: as batch's tasks end, Mesos holds back
// what the guarantee lacks instead of re-offering it to batch, so batch drops to 8 cpus and 4 stay
// free. Then the tenant's pods (more than fit) come, and take the 4 held cpus at once, while batch
// keeps its 8. Without the guarantee, batch re-takes whatever it frees while no other role asks.
func TestNamespaceQuotaGuarantee(t *testing.T) {
	e := quotaEnv(t)
	batch := startBatchFramework(t, e.sim.URL, "batch", 48, 0.5, 1024, func(n int) string { return fmt.Sprintf("sleep %d", 2+n%3) })
	e.eventually("batch holding the cluster", time.Minute, func(ctx context.Context) (bool, error) {
		s := batch.stats()
		return s.Running >= 20, fmt.Errorf("%d batch tasks running", s.Running)
	})
	sampler := startRoleSampler(e)
	t.Cleanup(func() { sampler.stop(); sampler.report(t, 12) })
	e.eventually("10 samples of batch alone", time.Minute, func(ctx context.Context) (bool, error) { return sampler.count() >= 10, nil })
	alone, _ := sampler.mean(10)
	// Its tasks end and are relaunched all the time, so a cpu or two is between tasks at any moment.
	if alone["batch"] < 9.5 {
		t.Errorf("batch alone holds %.2f cpus on average, want well above the 8 it keeps with the guarantee", alone["batch"])
	}

	nsG := e.tenantNamespace("g", "tenant-g")
	sampler.mark("guarantee 4 cpus")
	e.annotateNamespace(nsG, quotaGuaranteeAnnotation, "cpus=4,mem=8192", quotaLimitAnnotation, "cpus=4,mem=8192")
	e.eventually("the guarantee set on tenant-g", 30*time.Second, func(ctx context.Context) (bool, error) {
		q, err := quotaOnMaster(ctx, e)
		return err == nil && q["tenant-g"] == "g.cpus=4,l.cpus=4,g.mem=8192,l.mem=8192", fmt.Errorf("GET_QUOTA %v %v", q, err)
	})
	set := time.Now()
	e.eventually("batch down to 8 cpus over 5 s (4 held for tenant-g)", 90*time.Second, func(ctx context.Context) (bool, error) {
		mean, n := sampler.mean(5)
		return n == 5 && mean["batch"] <= 8+1e-9, fmt.Errorf("mean over 5 s: batch %.2f cpus", mean["batch"])
	})
	freed := time.Since(set)
	held, _ := sampler.mean(5)

	sampler.mark("tenant-g's pods")
	e.createDeploymentIn(nsG, deployment("tenant", 12, unitSpec()))
	start := time.Now()
	e.eventually("tenant-g holding its 4 guaranteed cpus over 5 s", 90*time.Second, func(ctx context.Context) (bool, error) {
		mean, n := sampler.mean(5)
		return n == 5 && mean["tenant-g"] >= 4-1e-9, fmt.Errorf("mean over 5 s: tenant-g %.2f, batch %.2f cpus", mean["tenant-g"], mean["batch"])
	})
	took := time.Since(start)
	// And batch keeps the rest, never the guarantee's part again, over 10 more seconds.
	from := sampler.count()
	e.eventually("10 more samples", time.Minute, func(ctx context.Context) (bool, error) { return sampler.count() >= from+10, nil })
	mean, _ := sampler.mean(10)
	t.Logf("batch alone: %.2f cpus; guarantee set: batch down to %.2f cpus within %.0f s; tenant-g's pods holding 4 cpus %.0f s after they were created (5 s window); then over 10 s: tenant-g %.2f cpus, batch %.2f cpus (%d batch tasks running)",
		alone["batch"], held["batch"], freed.Seconds(), took.Seconds(), mean["tenant-g"], mean["batch"], batch.stats().Running)
	if mean["tenant-g"] < 4-1e-9 || mean["tenant-g"] > 4+1e-9 {
		t.Errorf("tenant-g %.2f cpus on average, want its guarantee (= limit) 4", mean["tenant-g"])
	}
	if mean["batch"] < 7 {
		t.Errorf("batch %.2f cpus on average, want the other 8 (± 1)", mean["batch"])
	}
	if s := batch.stats(); len(s.Failed) > 0 || len(s.Errs) > 0 {
		t.Errorf("batch framework: failed tasks %v, errors %v", s.Failed, s.Errs)
	}
}

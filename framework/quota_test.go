package framework

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpmaster"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/master/calls"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/mesossim"
)

func quotaNamespace(name, role, guarantee, limit string) *corev1.Namespace {
	ns := namespace(name, role)
	if guarantee != "" {
		ns.Annotations[QuotaGuaranteeAnnotation] = guarantee
	}
	if limit != "" {
		ns.Annotations[QuotaLimitAnnotation] = limit
	}
	return ns
}

func TestParseQuantities(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want quantities
		err  string
	}{
		{in: "cpus=4,mem=4096", want: quantities{"cpus": 4, "mem": 4096}},
		{in: " cpus = 0.5 , ", want: quantities{"cpus": 0.5}},
		{in: "", want: quantities{}},
		{in: "cpus", err: `"cpus" is not name=value`},
		{in: "cpus=1,cpus=2", err: "cpus is given twice"},
		{in: "mem=-1", err: "mem=-1 is not a finite non-negative number"},
		{in: "mem=lots", err: "mem=lots is not a finite non-negative number"},
	} {
		got, err := parseQuantities(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !cmp.Equal(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestDesiredQuotas(t *testing.T) {
	got := desiredQuotas([]*corev1.Namespace{
		quotaNamespace("a1", "a", "", "cpus=4"),
		quotaNamespace("a2", "a", "", "cpus=4"), // the same: fine
		namespace("a3", "a"),                    // asks nothing: does not count
		quotaNamespace("b1", "b", "cpus=1", "cpus=2"),
		quotaNamespace("b2", "b", "", "cpus=2"),
		quotaNamespace("c1", "c", "cpus=x", ""),
	}, "*")
	if w := got["a"]; w == nil || w.problem != "" || w.quota.limits.String() != "cpus:4" || len(w.namespaces) != 2 {
		t.Errorf("role a: %+v", w)
	}
	want := `namespaces of Mesos role "b" ask for different quotas (b1 asks guarantee cpus:1, limit cpus:2; b2 asks guarantee {}, limit cpus:2): the role's quota is left as it is`
	if w := got["b"]; w == nil || w.problem != EventMesosQuotaConflict || w.message != want {
		t.Errorf("role b: %+v, want the conflict %q", w, want)
	}
	want = `annotation kubemesos.io/mesos-quota-guarantee="cpus=x" of namespace c1: cpus=x is not a finite non-negative number: the quota of Mesos role "c" is left as it is`
	if w := got["c"]; w == nil || w.problem != EventInvalidMesosQuota || w.message != want {
		t.Errorf("role c: %+v, want %q", w, want)
	}
}

// quotaMaster is an in-process simulated master and the framework's operator client of it.
func quotaMaster(t *testing.T, cfg mesossim.Config) (*mesossim.Master, operatorAgents) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	cfg.Log = l
	m := mesossim.NewMaster(cfg)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() { m.Close(); srv.Close() })
	return m, operatorAgents{sender: httpmaster.NewSender(httpcli.New(httpcli.Endpoint(srv.URL + "/api/v1")).Send)}
}

func quotaOf(t *testing.T, op operatorAgents) map[string]string {
	t.Helper()
	resp, err := op.sender.Send(context.Background(), calls.NonStreaming(calls.GetQuota()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var r master.Response
	if err := resp.Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range r.GetGetQuota().Status.Configs {
		g, l := quantities{}, quantities{}
		for n, v := range c.Guarantees {
			g[n] = v.Value
		}
		for n, v := range c.Limits {
			l[n] = v.Value
		}
		out[c.Role] = mesosQuota{g, l}.String()
	}
	return out
}

func recorded(f *fixture) []string {
	var out []string
	for len(f.recorder.Events) > 0 {
		out = append(out, <-f.recorder.Events)
	}
	return out
}

// A namespace's quota annotations become its role's Mesos quota through UPDATE_QUOTA, and the role goes
// back to the default quota when the annotations go; disagreeing namespaces leave it as it is.
func TestSyncQuotas(t *testing.T) {
	_, op := quotaMaster(t, mesossim.Config{})
	f := newFixture(t, State{})
	f.s.quotaOp = op
	idx := f.withNamespaces(quotaNamespace("team", "team", "", "cpus=4,mem=4096"), namespace("other", "other"))
	f.s.syncQuotas(f.ctx, f.clock.Now())
	if got := quotaOf(t, op); !cmp.Equal(got, map[string]string{"team": "guarantee {}, limit cpus:4; mem:4096"}) {
		t.Errorf("quotas %v", got)
	}
	if ev := recorded(f); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal "+EventMesosQuotaSet+` Mesos role "team" has quota`) {
		t.Errorf("events %q", ev)
	}
	// A second namespace on the role asks otherwise: a Warning on both, nothing applied.
	_ = idx.Add(quotaNamespace("team2", "team", "", "cpus=8"))
	f.s.syncQuotas(f.ctx, f.clock.Now())
	ev := recorded(f)
	if len(ev) != 2 || !strings.HasPrefix(ev[0], "Warning "+EventMesosQuotaConflict+" ") || !strings.Contains(ev[0], "team2 asks guarantee {}, limit cpus:8") {
		t.Errorf("events %q, want a conflict warning on each namespace", ev)
	}
	if got := quotaOf(t, op); got["team"] != "guarantee {}, limit cpus:4; mem:4096" {
		t.Errorf("quota changed on a conflict: %v", got)
	}
	f.s.syncQuotas(f.ctx, f.clock.Now())
	if ev := recorded(f); len(ev) != 0 {
		t.Errorf("warned again: %q", ev)
	}
	// Resolved, then the same conflict again: warned again, as a new problem.
	_ = idx.Update(quotaNamespace("team2", "team", "", "cpus=4,mem=4096"))
	f.s.syncQuotas(f.ctx, f.clock.Now())
	_ = recorded(f)
	_ = idx.Update(quotaNamespace("team2", "team", "", "cpus=8"))
	f.s.syncQuotas(f.ctx, f.clock.Now())
	if ev := recorded(f); len(ev) != 2 || !strings.HasPrefix(ev[0], "Warning "+EventMesosQuotaConflict+" ") {
		t.Errorf("events %q, want the conflict warned again on each namespace once it had been resolved", ev)
	}
	// Both annotations gone: the default quota again.
	_ = idx.Delete(quotaNamespace("team2", "team", "", ""))
	_ = idx.Update(namespace("team", "team"))
	f.s.syncQuotas(f.ctx, f.clock.Now())
	if got := quotaOf(t, op); len(got) != 0 {
		t.Errorf("quotas %v, want none", got)
	}
}

// The master's refusals reach the namespace with Mesos' text: 400 for a guarantee above the cluster's
// capacity, 403 from the update_quotas ACLs; the call is retried only after quotaRetry.
func TestSyncQuotasRefused(t *testing.T) {
	_, op := quotaMaster(t, mesossim.Config{QuotaACLs: []mesossim.QuotaACL{{Roles: []string{"locked"}, Deny: true}}, QuotaACLsPermissive: true})
	f := newFixture(t, State{})
	f.s.quotaOp = op
	f.withNamespaces(quotaNamespace("big", "big", "cpus=1", ""), quotaNamespace("locked", "locked", "", "cpus=1"))
	f.s.syncQuotas(f.ctx, f.clock.Now())
	ev := recorded(f)
	want := []string{
		`Warning MesosQuotaRefused quota guarantee cpus:1, limit {} of Mesos role "big": the Mesos master refused UPDATE_QUOTA (HTTP 400): Invalid QuotaConfig: total quota guarantees 'cpus:1' exceed cluster capacity '{}' (use 'force' flag to bypass this check)`,
		`Warning MesosQuotaRefused quota guarantee {}, limit cpus:1 of Mesos role "locked": the Mesos master refused UPDATE_QUOTA (HTTP 403): 403 Forbidden.`,
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := quotaOf(t, op); len(got) != 0 {
		t.Errorf("quotas %v, want none", got)
	}
}

// A pod of a role at its quota limit, with no offer for the role, is unschedulable with a reason that
// names the quota; one that fits under the limit is not.
func TestQuotaBlockedMessage(t *testing.T) {
	f := newFixture(t, State{})
	f.s.quota.applied = map[string]mesosQuota{"team": {limits: quantities{"cpus": 2}}}
	f.s.quota.usage = map[string]quantities{"team": {"cpus": 1.5, "mem": 1024}}
	small := pod("small", "uid-s", inNamespace("team"))
	big := pod("big", "uid-b", inNamespace("team"), func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")}
	})
	small.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	if why := f.s.quotaBlocked(small, "team"); why != "" {
		t.Errorf("small pod blocked: %s", why)
	}
	want := `Mesos role "team" is at its quota limit cpus:2 (it holds cpus:1.5; mem:1024; the pod asks cpus:1; mem:512): cpus over the limit`
	if why := f.s.quotaBlocked(big, "team"); why != want {
		t.Errorf("big pod: %q, want %q", why, want)
	}
	f.addPod(big)
	f.drain()
	f.s.quotaUnschedulable(f.ctx, []*corev1.Pod{big}, func(*corev1.Pod) string { return "team" }, nil, f.clock.Now())
	got, _ := f.kube.CoreV1().Pods(big.Namespace).Get(f.ctx, big.Name, metav1.GetOptions{})
	var msg string
	for _, c := range got.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			msg = c.Message
		}
	}
	if msg != "0/0 agents are available: "+want+"." {
		t.Errorf("PodScheduled message %q", msg)
	}
}

package framework

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestConfigMapStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	store := &ConfigMapStore{Client: kube, Namespace: "kube-system", Name: StateName}

	st, err := store.Load(ctx)
	if err != nil {
		t.Fatalf("Load of missing ConfigMap: %v", err)
	}
	if diff := cmp.Diff(State{Executors: map[string]mesos.ExecutorInfo{}}, st); diff != "" {
		t.Errorf("empty state (-want +got):\n%s", diff)
	}

	info := NewExecutorInfo(ExecutorSettings{URI: "http://fw:10260/executor/kubemesos", LogLevel: "debug", CPUs: 0.1, MemMB: 64})
	want := State{FrameworkID: "fw-1", Executors: map[string]mesos.ExecutorInfo{"agent-S0": info}}
	if err := store.Save(ctx, want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := store.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	gotInfo := got.Executors["agent-S0"]
	if !gotInfo.Equal(&info) || got.FrameworkID != "fw-1" || len(got.Executors) != 1 {
		t.Errorf("Load() = %+v, want %+v", got, want)
	}

	// An update replaces the data; an executor forgotten disappears.
	if err := store.Save(ctx, State{FrameworkID: "fw-1"}); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	cm, err := kube.CoreV1().ConfigMaps("kube-system").Get(ctx, StateName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"frameworkID": "fw-1"}, cm.Data); diff != "" {
		t.Errorf("ConfigMap data (-want +got):\n%s", diff)
	}
	if len(cm.BinaryData) != 0 {
		t.Errorf("ConfigMap binaryData = %v, want empty", cm.BinaryData)
	}
}

func TestConfigMapStoreCorrupt(t *testing.T) {
	kube := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: StateName, Namespace: "ns"},
		BinaryData: map[string][]byte{"executor.a": []byte{0xff, 0xff, 0xff}},
	})
	store := &ConfigMapStore{Client: kube, Namespace: "ns", Name: StateName}
	if _, err := store.Load(context.Background()); err == nil {
		t.Fatal("Load of a corrupt executor entry succeeded, want an error")
	}
}

func TestNewExecutorInfoIgnoresSchedulerSettings(t *testing.T) {
	// The identity depends on executor settings only: two frameworks with different scheduler flags but the
	// same executor settings produce equal ExecutorInfos (lesson #572).
	s := ExecutorSettings{URI: "http://fw/executor/kubemesos", Kubeconfig: "/etc/k.conf", LogLevel: "info", CPUs: 0.2, MemMB: 32}
	a, b := NewExecutorInfo(s), NewExecutorInfo(s)
	if !a.Equal(&b) {
		t.Fatal("ExecutorInfo not deterministic")
	}
	if a.ExecutorID.Value != ExecutorID || a.GetType() != mesos.ExecutorInfo_CUSTOM {
		t.Errorf("id/type = %s/%s", a.ExecutorID.Value, a.GetType())
	}
	if got := time.Duration(a.GetShutdownGracePeriod().GetNanoseconds()); got != ExecutorShutdownGracePeriod {
		t.Errorf("shutdown grace period %v, want %v (a pod's default grace period must fit)", got, ExecutorShutdownGracePeriod)
	}
	uri := a.Command.URIs[0]
	if uri.Value != s.URI || !uri.GetExecutable() || uri.GetOutputFile() != "kubemesos" || a.Command.GetValue() != "./kubemesos executor" {
		t.Errorf("command = %+v", a.Command)
	}
	env := map[string]string{}
	for _, v := range a.Command.Environment.Variables {
		env[v.Name] = v.GetValue()
	}
	if diff := cmp.Diff(map[string]string{"KUBEMESOS_LOG_LEVEL": "info", "KUBEMESOS_KUBECONFIG": "/etc/k.conf"}, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

// Former FrameworkIDs survive a restart, in order.
func TestConfigMapStoreFormerFrameworkIDs(t *testing.T) {
	ctx := context.Background()
	store := &ConfigMapStore{Client: fake.NewClientset(), Namespace: "ns", Name: StateName}
	want := State{FrameworkID: "fw-3", FormerFrameworkIDs: []string{"fw-1", "fw-2"}, Executors: map[string]mesos.ExecutorInfo{}}
	if err := store.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	ids := []string{}
	for i := 0; i < maxFormerFrameworkIDs+2; i++ {
		ids = formerIDs(ids, fmt.Sprintf("fw-%d", i))
	}
	ids = formerIDs(formerIDs(ids, ""), ids[len(ids)-1])
	if len(ids) != maxFormerFrameworkIDs || ids[0] != "fw-2" || ids[len(ids)-1] != fmt.Sprintf("fw-%d", maxFormerFrameworkIDs+1) {
		t.Errorf("formerIDs kept %v, want the newest %d once each", ids, maxFormerFrameworkIDs)
	}
}

// Agents sharing an ExecutorInfo share its one stored copy; data.executors names each agent's.
func TestConfigMapStoreStoresEachExecutorInfoOnce(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	store := &ConfigMapStore{Client: kube, Namespace: "ns", Name: StateName}
	a := NewExecutorInfo(ExecutorSettings{URI: "http://fw/executor/kubemesos", LogLevel: "info", CPUs: 0.1, MemMB: 64})
	b := NewExecutorInfo(ExecutorSettings{URI: "http://fw/executor/kubemesos", LogLevel: "debug", CPUs: 0.1, MemMB: 64})
	want := State{FrameworkID: "fw-1", Executors: map[string]mesos.ExecutorInfo{"agent-S0": a, "agent-S1": a, "agent-S2": b}}
	if err := store.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	cm, err := kube.CoreV1().ConfigMaps("ns").Get(ctx, StateName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.BinaryData) != 2 {
		t.Errorf("binaryData has %d entries, want 2 (one per distinct ExecutorInfo): %v", len(cm.BinaryData), maps.Keys(cm.BinaryData))
	}
	lines := strings.Split(cm.Data[executorsKey], "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "agent-S0 ") || lines[0][len("agent-S0 "):] != lines[1][len("agent-S1 "):] || lines[2] == lines[1] {
		t.Errorf("data.executors = %q, want agents S0 and S1 on one digest, S2 on another", cm.Data[executorsKey])
	}
	got, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

// 5,000 agents' state fits a ConfigMap (1 MiB) with room to spare: one copy per agent did not.
func TestConfigMapStoreStateOfFiveThousandAgentsFits(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	store := &ConfigMapStore{Client: kube, Namespace: "ns", Name: StateName}
	info := NewExecutorInfo(ExecutorSettings{URI: "http://kubemesos-framework.kubemesos.svc:10260/executor/kubemesos",
		Kubeconfig: "/etc/kubemesos/executor.kubeconfig", LogLevel: "info", CPUs: 0.25, MemMB: 128})
	st := State{FrameworkID: "3f6b1a52-9c3e-4b8e-8d0a-2f1e5c7b9a10-0000", Executors: map[string]mesos.ExecutorInfo{}}
	for i := range 5000 {
		st.Executors[fmt.Sprintf("3f6b1a52-9c3e-4b8e-8d0a-2f1e5c7b9a10-S%d", i)] = info
	}
	if err := store.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	cm, err := kube.CoreV1().ConfigMaps("ns").Get(ctx, StateName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 512<<10 {
		t.Errorf("state of 5,000 agents is %d bytes as JSON, want at most half of a ConfigMap's 1 MiB", len(b))
	}
	raw, err := info.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state of 5,000 agents: %d bytes as JSON; a copy per agent would add %d bytes of base64", len(b), 5000*base64.StdEncoding.EncodedLen(len(raw)))
}

// A store written before issue 13 (one binaryData entry "executor.<agent>" per agent) still loads, and
// the next save rewrites it in the new form.
func TestConfigMapStoreLoadsLegacyExecutorEntries(t *testing.T) {
	ctx := context.Background()
	info := NewExecutorInfo(ExecutorSettings{URI: "http://fw/executor/kubemesos", LogLevel: "info", CPUs: 0.1, MemMB: 64})
	raw, err := info.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: StateName, Namespace: "ns"},
		Data:       map[string]string{frameworkIDKey: "fw-1"},
		BinaryData: map[string][]byte{"executor.agent-S0": raw, "executor.agent-S1": raw},
	})
	store := &ConfigMapStore{Client: kube, Namespace: "ns", Name: StateName}
	st, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := State{FrameworkID: "fw-1", Executors: map[string]mesos.ExecutorInfo{"agent-S0": info, "agent-S1": info}}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Fatalf("Load of the legacy form (-want +got):\n%s", diff)
	}
	if err := store.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	cm, err := kube.CoreV1().ConfigMaps("ns").Get(ctx, StateName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range cm.BinaryData {
		if strings.HasPrefix(k, legacyExecutorKeyPrefix) {
			t.Errorf("legacy entry %s kept after a save", k)
		}
	}
	if again, err := store.Load(ctx); err != nil || !cmp.Equal(want, again) {
		t.Errorf("Load after the save = %+v, %v; want %+v", again, err, want)
	}
}

// data.executors naming an ExecutorInfo that is not stored is an error, not an agent without executor.
func TestConfigMapStoreMissingExecutorInfo(t *testing.T) {
	kube := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: StateName, Namespace: "ns"},
		Data:       map[string]string{executorsKey: "agent-S0 0123456789abcdef"},
	})
	store := &ConfigMapStore{Client: kube, Namespace: "ns", Name: StateName}
	if _, err := store.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "executorinfo.0123456789abcdef") {
		t.Errorf("Load = %v, want an error naming the missing entry", err)
	}
}

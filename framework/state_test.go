package framework

import (
	"context"
	"fmt"
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

package podtranslate

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func strp(s string) *string { return &s }

func execInfo() mesos.ExecutorInfo {
	return mesos.ExecutorInfo{
		Type:       mesos.ExecutorInfo_CUSTOM,
		ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"},
		Command:    &mesos.CommandInfo{Value: strp("./kubemesos executor"), URIs: []mesos.CommandInfo_URI{{Value: "http://fw/executor/kubemesos"}}},
		Resources:  Resources(Demand{CPUs: 0.1, MemMB: 64}, "kubemesos"),
	}
}

func TestTaskIDAndPodUID(t *testing.T) {
	pod := testPod()
	id := TaskID(pod)
	if id.Value != "pod-11111111-2222-3333-4444-555555555555" {
		t.Errorf("TaskID = %q", id.Value)
	}
	uid, err := PodUID(id)
	if err != nil || uid != pod.UID {
		t.Errorf("PodUID(%q) = %q, %v; want %q", id.Value, uid, err, pod.UID)
	}
	for _, bad := range []string{"", "pod-", "task-1", "kubemesos-executor"} {
		if uid, err := PodUID(mesos.TaskID{Value: bad}); err == nil {
			t.Errorf("PodUID(%q) = %q, want an error", bad, uid)
		}
	}
}

func TestTaskInfo(t *testing.T) {
	grace := int64(45)
	pod := testPod(containers(ctr("app", rl("cpu", "1"), nil)), func(p *corev1.Pod) {
		p.Spec.TerminationGracePeriodSeconds = &grace
		p.Spec.NodeName = "agent-1.example"
		p.ResourceVersion = "42"
		p.Labels = map[string]string{"app": "web"}
		p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}}
	})
	before := pod.DeepCopy()
	exec := execInfo()
	res := Resources(Demand{CPUs: 1}, "kubemesos")

	got, err := TaskInfo(pod, mesos.AgentID{Value: "agent-S1"}, exec, res)
	if err != nil {
		t.Fatalf("TaskInfo: %v", err)
	}
	wantData := pod.DeepCopy()
	wantData.APIVersion, wantData.Kind = "v1", "Pod"
	wantData.ManagedFields = nil
	wantData.Status = corev1.PodStatus{}
	data, err := json.Marshal(wantData)
	if err != nil {
		t.Fatal(err)
	}
	want := mesos.TaskInfo{
		Name:      "ns/web-1",
		TaskID:    mesos.TaskID{Value: "pod-11111111-2222-3333-4444-555555555555"},
		AgentID:   mesos.AgentID{Value: "agent-S1"},
		Resources: Resources(Demand{CPUs: 1}, "kubemesos"),
		// Its container requests 1 cpu and sets no limit: no limit on the pod (Mesos' +Inf).
		Limits:     map[string]mesos.Value_Scalar{"cpus": {Value: math.Inf(1)}},
		Executor:   func() *mesos.ExecutorInfo { e := execInfo(); return &e }(),
		KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(45 * time.Second)}},
		Data:       data,
		Labels: &mesos.Labels{Labels: []mesos.Label{
			{Key: LabelNamespace, Value: strp("ns")},
			{Key: LabelName, Value: strp("web-1")},
			{Key: LabelUID, Value: strp("11111111-2222-3333-4444-555555555555")},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TaskInfo (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, pod); diff != "" {
		t.Errorf("TaskInfo modified the pod:\n%s", diff)
	}

	// The task shares nothing with the arguments.
	got.Resources[0].Scalar.Value = 99
	got.Executor.Command.URIs[0].Value = "changed"
	if res[0].Scalar.Value != 1 || exec.Command.URIs[0].Value != "http://fw/executor/kubemesos" {
		t.Error("TaskInfo result aliases its arguments")
	}

	// What the executor decodes is the pod without status and managed fields.
	decoded, err := PodFromTaskData(want.Data)
	if err != nil {
		t.Fatalf("PodFromTaskData: %v", err)
	}
	if !equality.Semantic.DeepEqual(wantData, decoded) {
		t.Errorf("decoded pod differs:\n%s", cmp.Diff(wantData, decoded))
	}

	ref, err := PodRef(got)
	if err != nil {
		t.Fatalf("PodRef: %v", err)
	}
	if diff := cmp.Diff(Ref{Namespace: "ns", Name: "web-1", UID: pod.UID}, ref); diff != "" {
		t.Errorf("PodRef (-want +got):\n%s", diff)
	}
	if ref.String() != got.Name {
		t.Errorf("Ref.String() = %q, want the task name %q", ref.String(), got.Name)
	}
}

func TestTaskInfoErrors(t *testing.T) {
	agent := mesos.AgentID{Value: "a"}
	res := Resources(Demand{CPUs: 1}, "")
	tests := []struct {
		name  string
		pod   *corev1.Pod
		agent mesos.AgentID
		exec  mesos.ExecutorInfo
		res   mesos.Resources
	}{
		{"nil pod", nil, agent, execInfo(), res},
		{"no uid", testPod(func(p *corev1.Pod) { p.UID = "" }), agent, execInfo(), res},
		{"no namespace", testPod(func(p *corev1.Pod) { p.Namespace = "" }), agent, execInfo(), res},
		{"no agent", testPod(), mesos.AgentID{}, execInfo(), res},
		{"no resources", testPod(), agent, execInfo(), nil},
		{"no executor", testPod(), agent, mesos.ExecutorInfo{}, res},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ti, err := TaskInfo(tc.pod, tc.agent, tc.exec, tc.res); err == nil {
				t.Errorf("TaskInfo succeeded with %v, want an error", ti.TaskID)
			}
		})
	}
}

func TestPodRefErrors(t *testing.T) {
	labels := func(kv ...string) *mesos.Labels {
		l := &mesos.Labels{}
		for i := 0; i < len(kv); i += 2 {
			l.Labels = append(l.Labels, mesos.Label{Key: kv[i], Value: strp(kv[i+1])})
		}
		return l
	}
	full := labels(LabelNamespace, "ns", LabelName, "n", LabelUID, "u1", "other", "x")
	tests := []struct {
		name string
		task mesos.TaskInfo
		want *Ref
	}{
		{"ok", mesos.TaskInfo{TaskID: mesos.TaskID{Value: "pod-u1"}, Labels: full}, &Ref{Namespace: "ns", Name: "n", UID: "u1"}},
		{"no labels", mesos.TaskInfo{TaskID: mesos.TaskID{Value: "pod-u1"}}, nil},
		{"missing name", mesos.TaskInfo{TaskID: mesos.TaskID{Value: "pod-u1"}, Labels: labels(LabelNamespace, "ns", LabelUID, "u1")}, nil},
		{"uid label disagrees with task id", mesos.TaskInfo{TaskID: mesos.TaskID{Value: "pod-u2"}, Labels: full}, nil},
		{"not a pod task", mesos.TaskInfo{TaskID: mesos.TaskID{Value: "sleep-1"}, Labels: full}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PodRef(tc.task)
			if tc.want == nil {
				if err == nil {
					t.Errorf("PodRef = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("PodRef: %v", err)
			}
			if diff := cmp.Diff(*tc.want, got); diff != "" {
				t.Errorf("PodRef (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKillPolicies(t *testing.T) {
	sec := func(s int64) *int64 { return &s }
	ns := func(p *mesos.KillPolicy) time.Duration { return time.Duration(p.GracePeriod.Nanoseconds) }
	tests := []struct {
		name                 string
		spec, deletion       *int64
		wantLaunch, wantKill time.Duration
	}{
		{"defaults to 30s", nil, nil, 30 * time.Second, 30 * time.Second},
		{"spec grace", sec(5), nil, 5 * time.Second, 5 * time.Second},
		{"deletion grace wins for the kill", sec(60), sec(2), 60 * time.Second, 2 * time.Second},
		{"zero", sec(0), sec(0), 0, 0},
		{"negative counts as zero", sec(-3), nil, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(func(p *corev1.Pod) {
				p.Spec.TerminationGracePeriodSeconds = tc.spec
				p.DeletionGracePeriodSeconds = tc.deletion
			})
			ti, err := TaskInfo(pod, mesos.AgentID{Value: "a"}, execInfo(), Resources(Demand{CPUs: 1}, ""))
			if err != nil {
				t.Fatal(err)
			}
			if got := ns(ti.KillPolicy); got != tc.wantLaunch {
				t.Errorf("launch kill policy = %v, want %v", got, tc.wantLaunch)
			}
			if got := ns(DeletionKillPolicy(pod)); got != tc.wantKill {
				t.Errorf("deletion kill policy = %v, want %v", got, tc.wantKill)
			}
		})
	}
}

func TestPodFromTaskDataErrors(t *testing.T) {
	tests := []struct {
		name, data, wantErr string
	}{
		{"empty", "", "empty"},
		{"not json", "{", "unexpected end"},
		{"wrong type", `{"metadata": 3}`, "cannot unmarshal"},
		{"another kind", `{"kind":"Service","apiVersion":"v1","metadata":{"namespace":"a","name":"b","uid":"c"}}`, "want v1 Pod"},
		{"another version", `{"kind":"Pod","apiVersion":"v2","metadata":{"namespace":"a","name":"b","uid":"c"}}`, "want v1 Pod"},
		{"no uid", `{"kind":"Pod","apiVersion":"v1","metadata":{"namespace":"a","name":"b"}}`, "required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod, err := PodFromTaskData([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("PodFromTaskData = %v, %v; want an error containing %q", pod, err, tc.wantErr)
			}
		})
	}
	// Unknown fields from a newer framework are ignored.
	pod, err := PodFromTaskData([]byte(`{"metadata":{"namespace":"a","name":"b","uid":"c"},"spec":{"futureField":true,"containers":[{"name":"x"}]}}`))
	if err != nil || pod.Spec.Containers[0].Name != "x" {
		t.Errorf("PodFromTaskData with an unknown field = %v, %v", pod, err)
	}
}

// FuzzPodFromTaskData: decoding arbitrary task data never panics, whatever decodes has a sane demand
// and re-encodes to data that decodes to the same pod (what the executor relies on when it checkpoints
// TaskInfo.data).
func FuzzPodFromTaskData(f *testing.F) {
	seed, err := TaskData(typicalPod())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"metadata":{"namespace":"a","name":"b","uid":"c"}}`))
	f.Add([]byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"namespace":"a","name":"b","uid":"c","creationTimestamp":"2026-01-02T03:04:05Z"},"spec":{"containers":[{"name":"x","resources":{"requests":{"cpu":"1500m"}}}]}}`))
	f.Add([]byte(`{"metadata":{"namespace":"a","name":"b","uid":"c"},"spec":{"terminationGracePeriodSeconds":-5,"containers":[{"name":"x","resources":{"limits":{"memory":"9e18","cpu":"1e-9"}}}]}}`))
	f.Add([]byte(`{"metadata":{"namespace":"\u00e9","name":"b","uid":"c","labels":{"k":"\ud800"}},"spec":{"overhead":{"cpu":"-1"}}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pod, err := PodFromTaskData(data)
		if err != nil {
			return
		}
		if pod.Namespace == "" || pod.Name == "" || pod.UID == "" {
			t.Fatalf("decoded a pod without identity: %+v", pod.ObjectMeta)
		}
		// Whatever a pod says, its demand is sane: never negative, NaN or empty.
		if d, err := PodDemand(pod, Options{}); err == nil {
			for _, v := range []float64{d.CPUs, d.MemMB, d.DiskMB, d.GPUs} {
				if !(v >= 0) || math.IsInf(v, 0) {
					t.Fatalf("PodDemand gave %+v", d)
				}
			}
			if d.CPUs <= 0 {
				t.Fatalf("PodDemand gave %v cpus: Mesos refuses a task without resources", d.CPUs)
			}
		}
		again, err := TaskData(pod)
		if err != nil {
			t.Fatalf("re-encoding a decoded pod: %v", err)
		}
		back, err := PodFromTaskData(again)
		if err != nil {
			t.Fatalf("decoding re-encoded data %s: %v", again, err)
		}
		pod.APIVersion, pod.Kind = "v1", "Pod"
		pod.ManagedFields, pod.Status = nil, corev1.PodStatus{}
		if !equality.Semantic.DeepEqual(pod, back) {
			t.Fatalf("round trip changed the pod:\n%s", cmp.Diff(pod, back))
		}
		if RefOf(back) != (Ref{Namespace: pod.Namespace, Name: pod.Name, UID: types.UID(pod.UID)}) {
			t.Fatal("round trip changed the pod's identity")
		}
	})
}

func BenchmarkTaskInfo(b *testing.B) {
	pod := typicalPod()
	exec := execInfo()
	res := Resources(Demand{CPUs: 0.1, MemMB: 128, DiskMB: 1024, GPUs: 1}, "kubemesos")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TaskInfo(pod, mesos.AgentID{Value: "a"}, exec, res); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPodFromTaskData(b *testing.B) {
	data, err := TaskData(typicalPod())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PodFromTaskData(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTaskInfoPodNetworkLabel(t *testing.T) {
	tests := []struct {
		name        string
		o           Options
		hostNetwork bool
		want        string
	}{
		{"host mode (zero options)", Options{}, false, ""},
		{"host mode (named)", Options{PodNetwork: PodNetworkHost}, false, ""},
		{"pod network", Options{PodNetwork: "kubemesos"}, false, "kubemesos"},
		{"pod network, hostNetwork pod", Options{PodNetwork: "kubemesos"}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(func(p *corev1.Pod) { p.Spec.HostNetwork = tc.hostNetwork })
			ti, err := tc.o.TaskInfo(pod, mesos.AgentID{Value: "a"}, execInfo(), Resources(Demand{CPUs: 1}, ""))
			if err != nil {
				t.Fatal(err)
			}
			if got := PodNetworkOf(ti.Labels); got != tc.want {
				t.Errorf("PodNetworkOf = %q, want %q", got, tc.want)
			}
			var keys []string
			for _, l := range ti.Labels.Labels {
				keys = append(keys, l.Key)
			}
			want := []string{LabelNamespace, LabelName, LabelUID}
			wantSandbox := ""
			if tc.want != "" {
				want = append(want, LabelPodNetwork, LabelSandboxExecutor)
				wantSandbox = "kubemesos-pod-" + string(pod.UID)
			}
			if diff := cmp.Diff(want, keys); diff != "" {
				t.Errorf("label keys (-want +got):\n%s", diff)
			}
			if got := SandboxExecutorOf(ti.Labels); got != wantSandbox {
				t.Errorf("SandboxExecutorOf = %q, want %q", got, wantSandbox)
			}
			if got := tc.o.Sandboxed(pod); got != (tc.want != "") {
				t.Errorf("Sandboxed = %v", got)
			}
			if _, err := PodRef(ti); err != nil {
				t.Errorf("PodRef: %v", err)
			}
		})
	}
}

package podtranslate

import (
	"encoding/json"
	"math"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzTranslatePod takes any Pod JSON the API server could hand over (whatever decodes) through
// everything the framework does with a pod: Check, PodDemand, TaskInfo, and on a pod network the
// sandbox executor and task. Nothing may panic; a pod Check accepts has a sane demand, and its task
// carries the pod back intact.
//
//	go test ./podtranslate -run '^$' -fuzz '^FuzzTranslatePod$' -fuzztime 1000000x
func FuzzTranslatePod(f *testing.F) {
	for _, p := range []*corev1.Pod{typicalPod(), testPod(func(p *corev1.Pod) { p.Spec.HostNetwork = true })} {
		b, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"metadata":{"namespace":"a","name":"b","uid":"c"},"spec":{"containers":[{"name":"x","ports":[{"containerPort":80,"hostPort":80}]}],"initContainers":[{"name":"i","restartPolicy":"Always"}]}}`))
	f.Add([]byte(`{"metadata":{"namespace":"a","name":"b","uid":"c"},"spec":{"overhead":{"cpu":"-1"},"containers":[{"name":"x","resources":{"limits":{"memory":"9e18"}}}]}}`))
	opts := Options{PodNetwork: "kubemesos"}
	exec := mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"}, Command: &mesos.CommandInfo{Value: strp("./kubemesos executor")}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pod corev1.Pod
		if err := json.Unmarshal(data, &pod); err != nil {
			return
		}
		unsupported := opts.Check(&pod)
		d, err := PodDemand(&pod, opts)
		if err != nil {
			return
		}
		for _, v := range []float64{d.CPUs, d.MemMB, d.DiskMB, d.GPUs} {
			if !(v >= 0) || math.IsInf(v, 0) {
				t.Fatalf("PodDemand gave %+v", d)
			}
		}
		if len(unsupported) > 0 || pod.Namespace == "" || pod.Name == "" || pod.UID == "" {
			return
		}
		res := Resources(d, "kubemesos")
		ti, err := opts.TaskInfo(&pod, mesos.AgentID{Value: "a1"}, exec, res)
		if err != nil {
			t.Fatalf("TaskInfo of an accepted pod: %v", err)
		}
		back, err := PodFromTaskData(ti.Data)
		if err != nil || back.UID != pod.UID || back.Name != pod.Name {
			t.Fatalf("the task's data does not carry the pod back: %v", err)
		}
		if opts.NetworkOf(&pod) != "" {
			sb, err := opts.SandboxExecutorInfo(&pod, exec, Resources(Demand{CPUs: 0.01, MemMB: 32}, "kubemesos"))
			if err != nil {
				t.Fatalf("SandboxExecutorInfo of an accepted pod: %v", err)
			}
			if _, err := opts.SandboxTaskInfo(&pod, mesos.AgentID{Value: "a1"}, sb, res); err != nil {
				t.Fatalf("SandboxTaskInfo of an accepted pod: %v", err)
			}
		}
	})
}

// FuzzPodStatusForTask takes any TaskStatus (whatever decodes as one) to a pod outcome and applies it
// to a running pod: nothing may panic, a terminal outcome has a terminal phase, and a pod already in a
// terminal phase never changes (Kubernetes forbids leaving Succeeded or Failed).
//
//	go test ./podtranslate -run '^$' -fuzz '^FuzzPodStatusForTask$' -fuzztime 1000000x
func FuzzPodStatusForTask(f *testing.F) {
	for _, st := range []mesos.TaskStatus{
		{TaskID: mesos.TaskID{Value: "pod-u"}, State: mesos.TASK_RUNNING.Enum(), Source: mesos.SOURCE_EXECUTOR.Enum()},
		{TaskID: mesos.TaskID{Value: "pod-u"}, State: mesos.TASK_FAILED.Enum(), Source: mesos.SOURCE_AGENT.Enum(),
			Reason: mesos.REASON_CONTAINER_LIMITATION_MEMORY.Enum(), Message: strp("Memory limit exceeded")},
		{TaskID: mesos.TaskID{Value: "pod-u"}, State: mesos.TASK_UNREACHABLE.Enum(), Source: mesos.SOURCE_MASTER.Enum()},
		{TaskID: mesos.TaskID{Value: "pod-u"}, State: mesos.TASK_GONE_BY_OPERATOR.Enum(), Reason: mesos.REASON_AGENT_REMOVED_BY_OPERATOR.Enum()},
	} {
		b, err := st.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	now := metav1.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		var st mesos.TaskStatus
		if err := st.Unmarshal(data); err != nil {
			return
		}
		o := PodStatusForTask(st)
		if o.Terminal && o.Phase != corev1.PodSucceeded && o.Phase != corev1.PodFailed {
			t.Fatalf("terminal outcome with phase %q", o.Phase)
		}
		running := typicalPod()
		running.Status.Phase = corev1.PodRunning
		ApplyOutcome(running, o, now)
		for _, phase := range []corev1.PodPhase{corev1.PodSucceeded, corev1.PodFailed} {
			done := typicalPod()
			done.Status.Phase = phase
			if got, changed := ApplyOutcome(done, o, now); changed || got.Phase != phase {
				t.Fatalf("a %s pod changed to %s by %v", phase, got.Phase, st.GetState())
			}
		}
	})
}

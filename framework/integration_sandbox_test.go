package framework

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpmaster"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	mastercalls "github.com/mesos/mesos-go/api/v1/lib/master/calls"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// masterCall sends an operator call to the simulated master.
func (e *simEnv) masterCall(c *master.Call) *master.Response {
	e.t.Helper()
	cli := httpcli.New(httpcli.Endpoint(e.cluster.URL+"/api/v1"), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]))
	resp, err := httpmaster.NewSender(cli.Send).Send(context.Background(), mastercalls.NonStreaming(c))
	if err != nil {
		e.t.Fatalf("%s: %v", c.GetType(), err)
	}
	defer resp.Close()
	var r master.Response
	if err := resp.Decode(&r); err != nil {
		e.t.Fatalf("decoding %s: %v", c.GetType(), err)
	}
	return &r
}

// Design P against the simulator (with stand-in executors: this is the framework's side of Mesos): the
// master takes a pod's task on the kubelet executor and its sandbox task on a new executor of its own in
// one LAUNCH; deleting the pod kills the pod task, then the sandbox; a sandbox executor that cannot
// start fails a pending pod with FailedCreatePodSandBox and Mesos' text, and its pod task is killed.
func TestSimulatorSandboxTasks(t *testing.T) {
	var failSandbox atomic.Bool
	e := startSimEnvHook(t, 1, func(ctx context.Context, env map[string]string) error {
		if strings.HasPrefix(env["MESOS_EXECUTOR_ID"], podtranslate.SandboxExecutorIDPrefix) && failSandbox.Load() {
			return errors.New("stand-in sandbox executor refuses to start")
		}
		return runStandIn(ctx, env)
	})
	e.cfg.PodNetwork = "kubemesos"
	e.start()
	web := sleepPod("web", "250m")
	web.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 31080}}
	e.createPod(web)
	e.eventually("pod and sandbox tasks running", func() (bool, string) {
		tasks := e.mesosTasks()
		return len(tasks) == 2 && tasks["pod-uid-web"] == "TASK_RUNNING" && tasks["sandbox-uid-web"] == "TASK_RUNNING",
			fmt.Sprintf("Mesos tasks %v", tasks)
	})

	got := map[string]string{}
	for _, task := range e.masterCall(mastercalls.GetTasks()).GetGetTasks().GetTasks() {
		got[task.TaskID.Value] = task.GetExecutorID().GetValue() + " " + stripAlloc(mesos.Resources(task.Resources).Format())
	}
	for _, ex := range e.masterCall(mastercalls.GetExecutors()).GetGetExecutors().GetExecutors() {
		info := ex.ExecutorInfo
		if info.ExecutorID.Value != "kubemesos-pod-uid-web" {
			continue
		}
		nets := info.GetContainer().GetNetworkInfos()
		if len(nets) != 1 || nets[0].GetName() != "kubemesos" || len(nets[0].PortMappings) != 1 || nets[0].PortMappings[0].HostPort != 31080 {
			t.Errorf("sandbox executor's networks = %v", nets)
		}
		got["sandbox executor"] = info.GetCommand().GetValue() + " " + stripAlloc(mesos.Resources(info.Resources).Format())
	}
	want := map[string]string{
		"pod-uid-web":      ExecutorID + " cpus:0.01",
		"sandbox-uid-web":  "kubemesos-pod-uid-web cpus:0.25;mem:64;ports:[31080]",
		"sandbox executor": "./kubemesos pod-sandbox cpus:0.01;mem:32",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}

	p, err := e.kube.CoreV1().Pods("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.DeletionTimestamp = ptr.To(metav1.Now())
	p.DeletionGracePeriodSeconds = ptr.To[int64](2)
	if _, err := e.kube.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("deleted pod removed, both tasks over", func() (bool, string) {
		_, err := e.kube.CoreV1().Pods("default").Get(context.Background(), "web", metav1.GetOptions{})
		tasks := e.mesosTasks()
		return apierrors.IsNotFound(err) && len(tasks) == 0, fmt.Sprintf("get: %v, Mesos tasks %v", err, tasks)
	})
	completed := map[string]string{}
	for _, task := range e.masterCall(mastercalls.GetTasks()).GetGetTasks().GetCompletedTasks() {
		completed[task.TaskID.Value] = task.GetState().String()
	}
	if completed["pod-uid-web"] != "TASK_KILLED" || completed["sandbox-uid-web"] != "TASK_KILLED" {
		t.Errorf("completed tasks = %v, want both KILLED", completed)
	}

	failSandbox.Store(true)
	e.createPod(sleepPod("bad", "250m"))
	var bad *corev1.Pod
	e.eventually("pod failed for its sandbox", func() (bool, string) {
		bad, err = e.kube.CoreV1().Pods("default").Get(context.Background(), "bad", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return bad.Status.Phase == corev1.PodFailed, fmt.Sprintf("phase %s", bad.Status.Phase)
	})
	if bad.Status.Reason != PodReasonFailedCreatePodSandBox || !strings.HasPrefix(bad.Status.Message, "Failed to create pod sandbox: ") {
		t.Errorf("status = %s: %q", bad.Status.Reason, bad.Status.Message)
	}
	t.Logf("pod status message: %s", bad.Status.Message)
	e.eventually("its pod task killed", func() (bool, string) {
		tasks := e.mesosTasks()
		return len(tasks) == 0, fmt.Sprintf("Mesos tasks %v", tasks)
	})
	e.stop()
}

// stripAlloc drops the allocation role from formatted resources.
func stripAlloc(s string) string { return strings.ReplaceAll(s, "(allocated: kubemesos)", "") }

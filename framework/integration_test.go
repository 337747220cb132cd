package framework

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpmaster"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	mastercalls "github.com/mesos/mesos-go/api/v1/lib/master/calls"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/executor"
	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/mesossim"
)

// simEnv is the simulator, a fake API server (clientset) shared by the framework and the in-process
// kubemesos executors, and the framework running on them.
type simEnv struct {
	t       *testing.T
	cluster *mesossim.Cluster
	kube    *fake.Clientset
	cfg     Config
	log     logrus.FieldLogger
	events  *fake.Clientset // the Events' own client; kube when nil

	cancel context.CancelFunc
	done   chan error
}

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if os.Getenv("KUBEMESOS_TEST_LOG") != "" {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return l
}

func startSimEnv(t *testing.T, agents int) *simEnv {
	t.Helper()
	return startSimEnvHook(t, agents, nil)
}

// startSimEnvHook is startSimEnv with the given in-process executors (nil: the kubemesos executor).
func startSimEnvHook(t *testing.T, agents int, hook func(ctx context.Context, env map[string]string) error) *simEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test with the simulator")
	}
	log := quiet()
	kube := fake.NewClientset()
	kube.PrependReactor("create", "pods", bindingReactor(kube))

	// The executor "binary" agents fetch: a small file served by the framework's own handler.
	bin := filepath.Join(t.TempDir(), "kubemesos")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	artifact, err := newExecutorArtifact(bin)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(newMetrics().registry, func() error { return nil }, artifact, false))
	t.Cleanup(srv.Close)

	var execWG sync.WaitGroup
	t.Cleanup(execWG.Wait)
	// The agents provision busybox from a local image store, as Mesos agents with the docker provider.
	registry := t.TempDir()
	if err := imagearchive.Write(registry, "busybox", imagearchive.BusyboxConfig); err != nil {
		t.Fatal(err)
	}
	c, err := mesossim.StartCluster(mesossim.ClusterConfig{
		Master:          mesossim.Config{Log: log, AllocationInterval: 50 * time.Millisecond, HeartbeatInterval: time.Second},
		Agents:          agents,
		AgentResources:  "cpus:2;mem:2048;disk:10000;ports:[31000-31100]",
		AgentAttributes: "rack:r%d",
		WorkDir:         t.TempDir(),
		ImageProviders:  "docker",
		DockerRegistry:  registry,
		Isolation:       "filesystem/linux,docker/runtime",
		ExecutorHook: func(ctx context.Context, env map[string]string) error {
			execWG.Add(1)
			defer execWG.Done()
			if hook != nil {
				return hook(ctx, env)
			}
			cfg := executor.DefaultConfig()
			cfg.Getenv = func(k string) string { return env[k] }
			cfg.KubeClient = kube
			cfg.Log = log
			cfg.HostIP = "127.0.0.1"
			return executor.Run(ctx, cfg)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	cfg := DefaultConfig()
	cfg.Master = c.URL
	cfg.LeaderElect = false
	cfg.ExecutorURI = srv.URL + ExecutorPath
	cfg.OfferHold = 200 * time.Millisecond
	cfg.RefuseSeconds = 1
	cfg.AgentPollInterval = 200 * time.Millisecond
	return &simEnv{t: t, cluster: c, kube: kube, cfg: cfg, log: log}
}

// start runs the framework (runLeader, as Run does once leading) until stop.
func (e *simEnv) start() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() {
		var events kubernetes.Interface
		if e.events != nil {
			events = e.events
		}
		e.done <- runLeader(ctx, e.cfg, leaderDeps{kube: e.kube, eventKube: events, clock: clock.RealClock{}, log: e.log,
			metrics: newMetrics(), ready: &readiness{}, hostname: "framework-host"})
	}()
	e.t.Cleanup(e.stop)
}

// stop ends the framework process (as a crash or restart would; tasks stay with Mesos).
func (e *simEnv) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("framework returned %v", err)
		}
	case <-time.After(20 * time.Second):
		e.t.Error("framework did not stop")
	}
	e.cancel = nil
}

// eventually polls cond until it holds, failing with the last reason after a deadline.
func (e *simEnv) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, why = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("%s: not reached: %s", what, why)
}

func sleepPod(name string, cpu string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.Now()},
		Spec: corev1.PodSpec{
			SchedulerName:                 "kubemesos",
			TerminationGracePeriodSeconds: ptr.To[int64](2),
			RestartPolicy:                 corev1.RestartPolicyAlways,
			Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("64Mi")}}}},
		},
	}
}

func (e *simEnv) createPod(p *corev1.Pod) {
	e.t.Helper()
	if _, err := e.kube.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *simEnv) pods() []corev1.Pod {
	l, err := e.kube.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

// mesosTasks asks the master's operator API (GET_TASKS) for the non-terminal tasks: task ID → state.
func (e *simEnv) mesosTasks() map[string]string {
	e.t.Helper()
	cli := httpcli.New(httpcli.Endpoint(e.cluster.URL+"/api/v1"), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]))
	resp, err := httpmaster.NewSender(cli.Send).Send(context.Background(), mastercalls.NonStreaming(mastercalls.GetTasks()))
	if err != nil {
		e.t.Fatalf("GET_TASKS: %v", err)
	}
	defer resp.Close()
	var r master.Response
	if err := resp.Decode(&r); err != nil {
		e.t.Fatalf("decoding GET_TASKS: %v", err)
	}
	out := map[string]string{}
	for _, task := range r.GetGetTasks().GetTasks() {
		if !terminal(task.GetState()) {
			out[task.TaskID.Value] = task.GetState().String()
		}
	}
	return out
}

func runningPods(pods []corev1.Pod) (names []string, nodes map[string]string) {
	nodes = map[string]string{}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			names = append(names, p.Name)
			nodes[p.Name] = p.Spec.NodeName
		}
	}
	sort.Strings(names)
	return names, nodes
}

func (e *simEnv) waitRunning(want ...string) map[string]string {
	e.t.Helper()
	sort.Strings(want)
	var nodes map[string]string
	e.eventually("pods running", func() (bool, string) {
		var names []string
		names, nodes = runningPods(e.pods())
		return strings.Join(names, ",") == strings.Join(want, ","), fmt.Sprintf("running %v, want %v", names, want)
	})
	e.eventually("tasks running in Mesos", func() (bool, string) {
		tasks := e.mesosTasks()
		running := 0
		for _, s := range tasks {
			if s == mesos.TASK_RUNNING.String() {
				running++
			}
		}
		return running == len(want) && len(tasks) == len(want), fmt.Sprintf("Mesos tasks %v, want %d running", tasks, len(want))
	})
	return nodes
}

// The vertical slice against the simulator: pods run as Mesos tasks on Nodes named after agents; a
// deleted pod's task is killed and its object removed; a restarted framework adopts running tasks
// and keeps launching; a removed agent's Node goes NotReady and its pods fail.
func TestSimulatorVerticalSlice(t *testing.T) {
	e := startSimEnv(t, 2)
	e.start()
	for i := 0; i < 3; i++ {
		e.createPod(sleepPod(fmt.Sprintf("p%d", i), "250m"))
	}
	nodes := e.waitRunning("p0", "p1", "p2")
	for name, node := range nodes {
		if !strings.HasPrefix(node, "mesos-agent-") {
			t.Errorf("pod %s on node %q, want a Mesos agent", name, node)
		}
	}
	e.eventually("Nodes for agents", func() (bool, string) {
		l, _ := e.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		var names []string
		for _, n := range l.Items {
			if st, _ := readyOf(t, e.kube, n.Name); st == corev1.ConditionTrue {
				names = append(names, n.Name)
			}
		}
		sort.Strings(names)
		return strings.Join(names, ",") == "mesos-agent-0,mesos-agent-1", fmt.Sprintf("ready nodes %v", names)
	})

	// kubectl delete pod: the API server sets deletionTimestamp; the framework KILLs, then removes it.
	p, err := e.kube.CoreV1().Pods("default").Get(context.Background(), "p0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.DeletionTimestamp = ptr.To(metav1.Now())
	p.DeletionGracePeriodSeconds = ptr.To[int64](2)
	if _, err := e.kube.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("deleted pod removed", func() (bool, string) {
		_, err := e.kube.CoreV1().Pods("default").Get(context.Background(), "p0", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprintf("get: %v", err)
	})
	e.waitRunning("p1", "p2")

	// Restart the framework with a changed flag: running tasks are adopted, new pods still land.
	e.stop()
	e.cfg.ExecutorCPUs = 0.2
	e.start()
	e.createPod(sleepPod("p3", "250m"))
	e.createPod(sleepPod("p4", "250m"))
	e.waitRunning("p1", "p2", "p3", "p4")

	// A pod no agent can hold stays Pending with a FailedScheduling event naming cpu.
	e.createPod(sleepPod("huge", "16"))
	e.eventually("FailedScheduling for huge", func() (bool, string) {
		l, _ := e.kube.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		for _, ev := range l.Items {
			if ev.InvolvedObject.Name == "huge" && ev.Reason == EventFailedScheduling && strings.Contains(ev.Message, "cpu") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(l.Items))
	})

	// Remove an agent: its Node goes NotReady and its pods fail (their controllers replace them).
	victim := e.cluster.Agents()[0]
	host := victim.Info().Hostname
	var onVictim []string
	for name, node := range e.waitRunning("p1", "p2", "p3", "p4") {
		if node == host {
			onVictim = append(onVictim, name)
		}
	}
	if err := e.cluster.RemoveAgent(victim.ID().Value); err != nil {
		t.Fatal(err)
	}
	e.eventually("Node NotReady", func() (bool, string) {
		st, reason := readyOf(t, e.kube, host)
		return st == corev1.ConditionFalse, fmt.Sprintf("Ready=%s (%s)", st, reason)
	})
	e.eventually("pods of the removed agent failed", func() (bool, string) {
		for _, name := range onVictim {
			p, err := e.kube.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
			if err != nil || p.Status.Phase != corev1.PodFailed {
				return false, fmt.Sprintf("%s: %v %v", name, err, p.Status.Phase)
			}
		}
		return true, ""
	})
	e.stop()
}

// Restarting the framework while pods are being created and launched ends with every pod running
// exactly once: no duplicate and no orphan task (issue 5, must-show 8).
func TestSimulatorRestartMidway(t *testing.T) {
	e := startSimEnv(t, 2)
	e.start()
	const n = 12
	var want []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("r%02d", i)
		want = append(want, name)
		e.createPod(sleepPod(name, "100m"))
		if i == n/2 {
			// Crash once some pods are bound and launched, others not yet.
			e.eventually("some pods bound", func() (bool, string) {
				bound := 0
				for _, p := range e.pods() {
					if p.Spec.NodeName != "" {
						bound++
					}
				}
				return bound > 0, "none bound"
			})
			e.stop()
			e.start()
		}
	}
	e.waitRunning(want...)
	tasks := e.mesosTasks()
	if len(tasks) != n {
		t.Errorf("Mesos has %d tasks, want %d: %v", len(tasks), n, tasks)
	}
	for _, name := range want {
		if _, ok := tasks["pod-uid-"+name]; !ok {
			t.Errorf("no task for pod %s", name)
		}
	}
	e.stop()
}

// Faults: a force-deleted pod's task is killed; a killed executor fails its pods (ExecutorTerminated)
// and the next pod there starts a new executor; a partitioned agent's Node goes NotReady and its pods
// NotReady, and the Node is Ready again once the partition heals.
func TestSimulatorFaults(t *testing.T) {
	e := startSimEnv(t, 2)
	e.start()
	for i := 0; i < 4; i++ {
		e.createPod(sleepPod(fmt.Sprintf("f%d", i), "250m"))
	}
	nodes := e.waitRunning("f0", "f1", "f2", "f3")

	// Force deletion: the object is gone at once; its task must not outlive it.
	if err := e.kube.CoreV1().Pods("default").Delete(context.Background(), "f0", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	e.eventually("task of the force-deleted pod killed", func() (bool, string) {
		tasks := e.mesosTasks()
		_, ok := tasks["pod-uid-f0"]
		return !ok && len(tasks) == 3, fmt.Sprintf("tasks %v", tasks)
	})

	// Kill the executor of f1's agent: its pods fail with ExecutorTerminated.
	var agentID, frameworkID string
	for _, a := range e.cluster.Agents() {
		if a.Info().Hostname == nodes["f1"] {
			agentID = a.ID().Value
			for _, ts := range a.Tasks() {
				frameworkID = ts.FrameworkID.Value
			}
		}
	}
	var onAgent []string
	for name, node := range nodes {
		if node == nodes["f1"] && name != "f0" {
			onAgent = append(onAgent, name)
		}
	}
	if err := e.cluster.KillExecutor(agentID, frameworkID, ExecutorID); err != nil {
		t.Fatal(err)
	}
	e.eventually("pods of the killed executor failed", func() (bool, string) {
		for _, name := range onAgent {
			p, err := e.kube.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
			if err != nil || p.Status.Phase != corev1.PodFailed {
				return false, fmt.Sprintf("%s: %v %s %s", name, err, p.Status.Phase, p.Status.Reason)
			}
		}
		return true, ""
	})
	// A new pod pinned to that agent starts a new executor there.
	pinned := sleepPod("pinned", "250m")
	pinned.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": nodes["f1"]}
	e.createPod(pinned)
	var survivors []string
	for _, name := range []string{"f1", "f2", "f3"} {
		if !contains(onAgent, name) {
			survivors = append(survivors, name)
		}
	}
	e.waitRunning(append(survivors, "pinned")...)

	// Partition the agent: Node NotReady, pods NotReady (phase kept); heal: Node Ready again.
	if err := e.cluster.PartitionAgent(agentID); err != nil {
		t.Fatal(err)
	}
	e.eventually("Node NotReady while partitioned", func() (bool, string) {
		st, reason := readyOf(t, e.kube, nodes["f1"])
		return st == corev1.ConditionFalse, fmt.Sprintf("Ready=%s (%s)", st, reason)
	})
	e.eventually("pinned pod NotReady while partitioned", func() (bool, string) {
		p, err := e.kube.CoreV1().Pods("default").Get(context.Background(), "pinned", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse {
				return p.Status.Phase == corev1.PodRunning, fmt.Sprintf("phase %s", p.Status.Phase)
			}
		}
		return false, fmt.Sprintf("conditions %v", p.Status.Conditions)
	})
	if err := e.cluster.HealAgent(agentID); err != nil {
		t.Fatal(err)
	}
	e.eventually("Node Ready after healing", func() (bool, string) {
		st, reason := readyOf(t, e.kube, nodes["f1"])
		return st == corev1.ConditionTrue, fmt.Sprintf("Ready=%s (%s)", st, reason)
	})
	e.eventually("pinned pod Ready after healing", func() (bool, string) {
		p, err := e.kube.CoreV1().Pods("default").Get(context.Background(), "pinned", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue, fmt.Sprintf("Ready=%s (%s)", c.Status, c.Reason)
			}
		}
		return false, "no Ready condition"
	})

	// Master failover with duplicated status updates: the framework re-subscribes with its FrameworkID,
	// reconciles, keeps its tasks and goes on launching.
	e.cluster.SetStatusUpdateFaults(0, true)
	e.cluster.FailoverMaster()
	e.createPod(sleepPod("after-failover", "250m"))
	e.waitRunning(append(survivors, "pinned", "after-failover")...)
	e.stop()
}

// Events go through a client of their own (kube-scheduler's eventClient), so that they never take a
// Binding's place in the framework client's rate limit.
func TestEventsHaveTheirOwnClient(t *testing.T) {
	e := startSimEnv(t, 1)
	e.events = fake.NewClientset()
	e.start()
	e.createPod(sleepPod("p0", "250m"))
	e.waitRunning("p0")
	e.eventually("a Scheduled event through the events client", func() (bool, string) {
		l, err := e.events.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range l.Items {
			if ev.Reason == EventScheduled && ev.InvolvedObject.Name == "p0" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none Scheduled for p0", len(l.Items))
	})
	// (The in-process executors write theirs, Started and the like, through kube.)
	l, _ := e.kube.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	for _, ev := range l.Items {
		if ev.Source.Component == e.cfg.SchedulerName {
			t.Errorf("event %s %s through the Bindings' client", ev.Reason, ev.InvolvedObject.Name)
		}
	}
}

package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/podtranslate"
)

func imagePod(name, image string, command, args []string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: &grace, NodeName: "agent0",
			Containers: []corev1.Container{{Name: "main", Image: image, Command: command, Args: args}},
		},
	}
}

// Issue 9: a busybox container with args only runs args[0] (Kubernetes' rule), although busybox has
// no Entrypoint and the agent applies Mesos' docker/runtime rule (which runs `sh <args…>` for
// arguments without a value).
func TestArgsOnlyRunAsKubernetesRunsThem(t *testing.T) {
	env := newSimEnv(t)
	marker := filepath.Join(env.dir, "ran")
	task := env.launch(imagePod("args", "busybox", nil, []string{"sh", "-c", "echo ran > " + marker}))
	waitFor(t, "the task's end", func() bool {
		s := env.master.last(task)
		return s != nil && (s.GetState() == mesos.TASK_FINISHED || s.GetState() == mesos.TASK_FAILED)
	})
	if st := env.master.last(task); st.GetState() != mesos.TASK_FINISHED {
		t.Errorf("task %s: %s", st.GetState(), st.GetMessage())
	}
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "ran" {
		t.Errorf("marker %q, %v", b, err)
	}
}

func eventsOf(t *testing.T, env *simEnv, ns string) []corev1.Event {
	t.Helper()
	evs, err := env.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return evs.Items
}

func waiting(p *corev1.Pod) *corev1.ContainerStateWaiting {
	if len(p.Status.ContainerStatuses) == 0 {
		return nil
	}
	return p.Status.ContainerStatuses[0].State.Waiting
}

// An image the agent's store lacks: the pod waits in ErrImagePull with Mesos' message and the
// kubelet's Failed event; the task stays STARTING.
func TestMissingImageIsErrImagePull(t *testing.T) {
	env := newSimEnv(t)
	task := env.launch(imagePod("missing", "nosuch:1", []string{"true"}, nil))
	waitFor(t, "ErrImagePull", func() bool {
		w := waiting(env.pod("missing"))
		return w != nil && w.Reason == podworker.ReasonErrImagePull
	})
	w := waiting(env.pod("missing"))
	if !strings.HasPrefix(w.Message, "Failed to find archive for image 'nosuch:1' at '") || !strings.HasSuffix(w.Message, "/nosuch:1.tar'") {
		t.Errorf("message %q, want Mesos' image tar puller failure", w.Message)
	}
	waitFor(t, "the Failed event", func() bool {
		for _, ev := range eventsOf(t, env, "default") {
			if ev.Reason == podworker.EventFailed && ev.Message == `Failed to pull image "nosuch:1": `+w.Message {
				return true
			}
		}
		return false
	})
	if states := env.master.states(task); len(states) != 1 || states[0] != "TASK_STARTING" {
		t.Errorf("task states %v, want only TASK_STARTING", states)
	}
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: task}, podtranslate.KillPolicy(time.Second))
	env.awaitState(task, "TASK_KILLED")
}

// An agent without image provider: ErrImagePull with the agent's answer, and a Warning on the Node
// naming the agent flags to set.
func TestAgentWithoutImageProviderWarnsOnTheNode(t *testing.T) {
	env := newImageEnv(t, false, map[string]v1.Config{"busybox": imagearchive.BusyboxConfig})
	task := env.launch(imagePod("noprov", "busybox", []string{"true"}, nil))
	waitFor(t, "ErrImagePull", func() bool {
		w := waiting(env.pod("noprov"))
		return w != nil && w.Reason == podworker.ReasonErrImagePull && strings.HasPrefix(w.Message, "Unsupported container image type: ")
	})
	waitFor(t, "the Node event", func() bool {
		for _, ev := range eventsOf(t, env, "") {
			if ev.InvolvedObject.Kind == "Node" && ev.InvolvedObject.Name == "agent0" && ev.Type == corev1.EventTypeWarning &&
				ev.Reason == podworker.EventImageProviderMissing &&
				strings.Contains(ev.Message, "--image_providers=docker --isolation=...,docker/runtime,filesystem/linux") {
				return true
			}
		}
		return false
	})
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: task}, podtranslate.KillPolicy(time.Second))
	env.awaitState(task, "TASK_KILLED")
}

// newImageEnv is newSimEnv with its own image store holding images; withProvider starts the agent
// with the docker image provider and that store as --docker_registry, else without any (the
// executor then reads configs from the store, as the agent's default registry is Docker Hub).
func newImageEnv(t *testing.T, withProvider bool, images map[string]v1.Config) *simEnv {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	env := &simEnv{t: t, master: &fakeMaster{}, kube: fake.NewClientset(), done: make(chan error, 10), dir: t.TempDir()}
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4}})
	res.Add(mesos.Resource{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1024}})
	store := t.TempDir()
	for name, cfg := range images {
		if err := imagearchive.Write(store, name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	cfg := agent.Config{
		ID: mesos.AgentID{Value: "agent-S0"}, Hostname: "agent0", Resources: res, WorkDir: t.TempDir(),
		Master: env.master, Log: log, ExecutorShutdownGracePeriod: 5 * time.Second,
	}
	var registryFlag string
	if withProvider {
		cfg.ImageProviders, cfg.DockerRegistry, cfg.Isolation = "docker", store, "filesystem/linux,docker/runtime"
		cfg.ProcessMode = true
	} else {
		registryFlag = store
	}
	cfg.ExecutorHook = func(ctx context.Context, vars map[string]string) error {
		err := Run(ctx, Config{Getenv: func(k string) string { return vars[k] }, KubeClient: env.kube, Log: log,
			ShutdownMargin: time.Second, StatusFlushTimeout: 5 * time.Second, DockerRegistry: registryFlag})
		env.done <- err
		return err
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.master.mu.Lock()
	env.master.agent = a
	env.master.mu.Unlock()
	env.agent = a
	t.Cleanup(a.Stop)
	checkpoint := true
	env.fw = mesos.FrameworkInfo{ID: &mesos.FrameworkID{Value: "fw-1"}, Name: "kubemesos", User: "root", Checkpoint: &checkpoint}
	env.exec = mesos.ExecutorInfo{Type: mesos.ExecutorInfo_CUSTOM, ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"},
		FrameworkID: env.fw.ID, Command: &mesos.CommandInfo{Value: strPtr("./kubemesos executor")}}
	return env
}

// Every way a container combines command and args with an image runs what Kubernetes runs, on an
// agent that merges CommandInfo with the image by Mesos' docker/runtime rule. Each container writes
// what it ran into $MARK.
func TestCommandsRunAsKubernetesOnTheAgent(t *testing.T) {
	report := `echo "$0|$*" > "$MARK"`
	env := newImageEnv(t, true, map[string]v1.Config{
		"withep": {Entrypoint: []string{"sh", "-c", report}, Cmd: []string{"default"}},
		"noep":   {Cmd: []string{"sh", "-c", report, "cmd0"}},
		"onlyep": {Entrypoint: []string{"sh", "-c", report, "ep0"}},
	})
	workDir := t.TempDir()
	for _, tc := range []struct {
		name, image   string
		command, args []string
		workingDir    string
		want          string
	}{
		{name: "neither-ep", image: "withep", want: "default|"},
		{name: "args-ep", image: "withep", args: []string{"a", "b"}, want: "a|b"},
		{name: "command-ep", image: "withep", command: []string{"sh", "-c", report, "cmd"}, want: "cmd|"},
		{name: "command-args", image: "withep", command: []string{"sh", "-c", report}, args: []string{"x", "y"}, want: "x|y"},
		{name: "neither-noep", image: "noep", want: "cmd0|"},
		{name: "args-noep", image: "noep", args: []string{"sh", "-c", report, "args0"}, want: "args0|"},
		{name: "empty-cmd", image: "onlyep", want: "ep0|"},
		{name: "workingdir", image: "noep", args: []string{"sh", "-c", `pwd > "$MARK"`}, workingDir: workDir, want: workDir},
	} {
		pod := imagePod(tc.name, tc.image, tc.command, tc.args)
		c := &pod.Spec.Containers[0]
		c.WorkingDir = tc.workingDir
		c.Env = []corev1.EnvVar{{Name: "MARK", Value: filepath.Join(env.dir, tc.name)}}
		task := env.launch(pod)
		waitFor(t, tc.name+" ended", func() bool {
			s := env.master.last(task)
			return s != nil && (s.GetState() == mesos.TASK_FINISHED || s.GetState() == mesos.TASK_FAILED)
		})
		b, err := os.ReadFile(filepath.Join(env.dir, tc.name))
		if got := strings.TrimSpace(string(b)); err != nil || got != tc.want {
			t.Errorf("%s: ran %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestDockerRegistryFlag(t *testing.T) {
	for reg, ok := range map[string]bool{"": true, "/var/lib/images": true, "https://registry-1.docker.io": true,
		"http://10.0.0.5:5000": true, "images": false, "registry.example.com": false} {
		c := DefaultConfig()
		c.DockerRegistry = reg
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("--docker-registry %q: %v", reg, err)
		}
	}
}

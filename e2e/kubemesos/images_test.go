package kubemesos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

// TestImageBusyboxArgsOnly: `kubectl run r1 --image=busybox -- sleep 3600` gives the container args
// only. Kubernetes runs them in place of busybox's Cmd ["sh"]: `sleep 3600`. Mesos' docker/runtime
// merge would run `sh sleep 3600` (a real Mesos 1.12 agent: "sh: can't open 'sleep'"); the executor
// sends the kubelet's argv, so the pod runs and keeps running.
func TestImageBusyboxArgsOnly(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	if _, stderr, code, err := e.kubectl(ctx, "run", "r1", "--image=busybox", "--restart=Never", "--", "sleep", "3600"); err != nil || code != 0 {
		t.Fatalf("kubectl run: exit %d, %v: %s", code, err, stderr)
	}
	e.waitRunningPods("run=r1", 1, 2*time.Minute)
	// Still running a while later (`sh sleep 3600` would have ended at once), never restarted.
	time.Sleep(3 * time.Second)
	p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "r1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Running == nil || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Fatalf("pod r1: phase %s, containers %s", p.Status.Phase, containerSummary(p))
	}
	// The container's process, in a sandbox of this env's agent, is `sleep 3600` itself.
	var argvs []string
	for _, argv := range processArgvIn(filepath.Join(e.dir, "mesos")) {
		argvs = append(argvs, strings.Join(argv, " "))
	}
	// An isolated container's cwd is in its own root filesystem: find it by its cgroup instead.
	for _, p := range envProcesses(e) {
		argvs = append(argvs, p.cmdline)
	}
	if !slices.Contains(argvs, "sleep 3600") || slices.Contains(argvs, "sh sleep 3600") {
		t.Errorf("processes in the agent's sandboxes: %q, want one `sleep 3600`", argvs)
	}
}

// processArgvIn lists the argv of live processes whose working directory is under dir.
func processArgvIn(dir string) [][]string {
	var out [][]string
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		if _, err := strconv.Atoi(en.Name()); err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", en.Name(), "cwd"))
		if err != nil || !strings.HasPrefix(cwd, dir+"/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		out = append(out, strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"))
	}
	return out
}

// TestImageCommandAndArgs: with the stand-in image kubemesos/echo-entrypoint (Entrypoint ["echo",
// "entry"], Cmd ["default-cmd"]) and busybox (Cmd ["sh"]), each combination of command and args runs
// the argv Kubernetes defines: args replace Cmd after the Entrypoint; a command replaces the
// Entrypoint and drops Cmd; neither runs Entrypoint + Cmd. The containers share one pod, kept running
// by a last container so that the finished ones' logs stay readable.
func TestImageCommandAndArgs(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	entry := imagearchive.EchoEntrypointImage
	c := func(name, image string, command, args []string) corev1.Container {
		return corev1.Container{Name: name, Image: image, Command: command, Args: args,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}
	}
	cases := []struct {
		container corev1.Container
		wantLog   string
	}{
		{c("neither", entry, nil, nil), "entry default-cmd\n"},
		{c("args", entry, nil, []string{"a", "b c"}), "entry a b c\n"},
		{c("command", entry, []string{"echo", "cmd"}, nil), "cmd\n"},
		{c("command-args", entry, []string{"echo", "cmd"}, []string{"x"}), "cmd x\n"},
		// busybox with neither runs its Cmd, `sh`, which ends at once without a terminal.
		{c("busybox-neither", "busybox", nil, nil), ""},
		{c("busybox-command", "busybox", []string{"echo", "bb"}, nil), "bb\n"},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "argv", Labels: map[string]string{"app": "argv"}},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To[int64](5)},
	}
	for _, tc := range cases {
		pod.Spec.Containers = append(pod.Spec.Containers, tc.container)
	}
	keep := container(sleeper)
	keep.Name = "keep"
	pod.Spec.Containers = append(pod.Spec.Containers, keep)
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("every container but keep to complete", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		done := 0
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "keep" {
				continue
			}
			if tr := cs.State.Terminated; tr != nil {
				if tr.ExitCode != 0 {
					return false, fatalf("container %s exited %d (%s: %s)", cs.Name, tr.ExitCode, tr.Reason, tr.Message)
				}
				done++
			}
		}
		if done != len(cases) {
			return false, fmt.Errorf("containers %s", containerSummary(p))
		}
		return true, nil
	})
	for _, tc := range cases {
		b, err := e.kube.CoreV1().Pods(e.ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: tc.container.Name}).DoRaw(ctx)
		if err != nil {
			t.Errorf("%s: logs: %v", tc.container.Name, err)
		} else if string(b) != tc.wantLog {
			t.Errorf("%s (command %q, args %q): output %q, want %q", tc.container.Name, tc.container.Command, tc.container.Args, b, tc.wantLog)
		}
	}
}

// TestImageNotInStore: an image the agent's registry does not hold fails the launch with Mesos'
// answer, which the container shows as the kubelet does: waiting with ErrImagePull and the message,
// then ImagePullBackOff.
func TestImageNotInStore(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	image := "registry.example.com/team/missing:v1"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "missing", Labels: map[string]string{"app": "missing"}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "main", Image: image, Args: []string{"serve"}}},
			TerminationGracePeriodSeconds: ptr.To[int64](5),
		},
	}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mesosMsg := "Failed to find archive for image '" + image + "' at '" + imagearchive.Path(e.imageRegistry, image) + "'"
	want := map[string]string{
		"ErrImagePull":     mesosMsg,
		"ImagePullBackOff": fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", image, mesosMsg),
	}
	seen := map[string]string{}
	e.eventually("the container to show ErrImagePull then ImagePullBackOff", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if len(p.Status.ContainerStatuses) != 1 {
			return false, fmt.Errorf("no container status yet (phase %s)", p.Status.Phase)
		}
		cs := p.Status.ContainerStatuses[0]
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return false, fatalf("container %s: it ran", containerSummary(p))
		}
		if w := cs.State.Waiting; w != nil {
			if _, ok := want[w.Reason]; ok {
				if _, dup := seen[w.Reason]; !dup {
					seen[w.Reason] = w.Message
				}
			}
		}
		if _, ok := seen["ImagePullBackOff"]; !ok {
			return false, fmt.Errorf("seen %v", seen)
		}
		return true, nil
	})
	for reason, msg := range want {
		if got, ok := seen[reason]; !ok {
			t.Errorf("the container never showed %s (seen %v)", reason, seen)
		} else if got != msg {
			t.Errorf("%s message %q, want %q", reason, got, msg)
		}
	}
	p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("pod phase %s, want Pending", p.Status.Phase)
	}
}

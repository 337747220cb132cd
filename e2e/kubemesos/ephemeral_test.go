package kubemesos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEphemeralContainers: `kubectl debug` adds an ephemeral container to a running pod (the
// pods/ephemeralcontainers subresource) and the executor runs it, as a kubelet does: a nested
// container of the pod, its state in status.ephemeralContainerStatuses, its logs, exec and attach
// (kubectl debug -i) through the executor's kubelet API. One that exits keeps its exit code and is never restarted, and the pod's
// own container is untouched.
func TestEphemeralContainers(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "target", Labels: map[string]string{"app": "ephemeral"}}, Spec: podSpec(sleeper)}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, target, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitRunningPods(selector(target.Labels), 1, 2*time.Minute)

	for _, args := range [][]string{
		{"debug", "target", "--image=busybox", "--container=debugger", "--", "sh", "-c", "while true; do echo polo; sleep 1; done"},
		{"debug", "target", "--image=busybox", "--container=quitter", "--", "sh", "-c", "echo bye; exit 3"},
	} {
		if _, stderr, code, err := e.kubectl(ctx, args...); err != nil || code != 0 {
			t.Fatalf("kubectl %s: exit %d, %v: %s", strings.Join(args, " "), code, err, stderr)
		}
	}
	ephemeral := func(p *corev1.Pod, name string) *corev1.ContainerStatus {
		for i := range p.Status.EphemeralContainerStatuses {
			if cs := &p.Status.EphemeralContainerStatuses[i]; cs.Name == name {
				return cs
			}
		}
		return nil
	}
	var quitterFinished time.Time
	e.eventually("debugger running and quitter terminated with 3", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "target", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		d, q := ephemeral(p, "debugger"), ephemeral(p, "quitter")
		if d == nil || q == nil || d.State.Running == nil || q.State.Terminated == nil {
			return false, nil
		}
		if q.State.Terminated.ExitCode != 3 || q.State.Terminated.Reason != "Error" || q.RestartCount != 0 {
			return false, fatalf("quitter = %+v, want terminated Error exit 3, no restart", q)
		}
		if !strings.HasPrefix(d.ContainerID, "mesos://") || d.Ready {
			return false, fatalf("debugger = %+v, want a mesos:// container ID, not ready", d)
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready {
			return false, fatalf("pod %s, containers %+v: the pod's own container must stay running and ready", p.Status.Phase, p.Status.ContainerStatuses)
		}
		quitterFinished = q.State.Terminated.FinishedAt.Time
		return true, nil
	})

	e.eventually("kubectl logs -c debugger", 30*time.Second, func(ctx context.Context) (bool, error) {
		out, stderr, code, err := e.kubectl(ctx, "logs", "target", "-c", "debugger")
		if err != nil || code != 0 {
			return false, fmt.Errorf("exit %d, %v: %s", code, err, stderr)
		}
		return strings.Contains(out, "polo\n"), nil
	})
	if out, stderr, code, err := e.kubectl(ctx, "logs", "target", "-c", "quitter"); err != nil || code != 0 || out != "bye\n" {
		t.Errorf("kubectl logs target -c quitter = %q (exit %d, %v: %s), want \"bye\\n\"", out, code, err, stderr)
	}
	if out, stderr, code, err := e.kubectl(ctx, "exec", "target", "-c", "debugger", "--", "echo", "marco"); err != nil || code != 0 || out != "marco\n" {
		t.Errorf("kubectl exec -c debugger = %q (exit %d, %v: %s), want \"marco\\n\"", out, code, err, stderr)
	}

	// kubectl debug -i: the new ephemeral container gets our input and we see its answer (attach).
	stdout, stderr, code, err := e.kubectlStdin(ctx, "ping\n", "debug", "-i", "target", "--image=busybox", "--container=shell",
		"--", "sh", "-c", `read l; echo "got:$l"`)
	if err != nil || code != 0 || !strings.Contains(stdout, "got:ping") {
		t.Errorf("kubectl debug -i: exit %d, %v, stdout %q, stderr %q; want got:ping", code, err, stdout, stderr)
	}

	// Past the first crash-loop back-off (10 s), the ended one is still the same terminated attempt.
	time.Sleep(12 * time.Second)
	p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "target", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q := ephemeral(p, "quitter"); q == nil || q.State.Terminated == nil || q.RestartCount != 0 || !q.State.Terminated.FinishedAt.Time.Equal(quitterFinished) {
		t.Errorf("quitter later = %+v, want the same terminated attempt (ephemeral containers are never restarted)", q)
	}
}

package kubemesos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestKubectlLogsOfFinishedPods (issue 12, must show 2), as a user types it: `kubectl logs job/<j>`
// after the Job completed and its pod's Mesos task finished, `kubectl logs` of a Failed pod, and
// `kubectl logs --previous` after a container restarted. The kubelet keeps a terminated container's
// log until its pod is deleted (container GC keeps the last dead container of each container), so
// the executor serves them after the pod's task ended, and forgets them once the pod is deleted.
//
// (Each container sleeps between its stdout and its stderr line: Mesos keeps them in two files, whose
// lines the executor can only order by when it sees them.)
func TestKubectlLogsOfFinishedPods(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	attempts := newHostSignals(t)

	pi := job("pi", corev1.RestartPolicyNever, 0, "echo 3.14159; sleep 0.2; echo done >&2")
	if _, err := e.kube.BatchV1().Jobs(e.ns).Create(ctx, pi, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	failed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "fails"}, Spec: podSpec("echo about to fail; sleep 0.2; echo oops >&2; exit 3")}
	failed.Spec.RestartPolicy = corev1.RestartPolicyNever
	restarts := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "restarts"}, Spec: podSpec(fmt.Sprintf(
		`n=$(%s); echo attempt-$n; if [ "$n" = 0 ]; then sleep 0.2; echo first-fails >&2; exit 1; fi; `+sleeper, attempts.get("restarts")))}
	for _, p := range []*corev1.Pod{failed, restarts} {
		if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitJobCondition("pi", batchv1.JobComplete, 2*time.Minute)
	piPods, err := e.pods(ctx, selector(map[string]string{"job": "pi"}))
	if err != nil || len(piPods) != 1 {
		t.Fatalf("pods of job pi: %d, %v; want 1", len(piPods), err)
	}
	e.waitTaskEnded(piPods[0].UID, mesos.TASK_FINISHED)
	e.waitPhase("fails", corev1.PodFailed)
	failedPod, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "fails", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitTaskEnded(failedPod.UID, mesos.TASK_FAILED)
	e.eventually("pod restarts to run its second attempt", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "restarts", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount == 1 && cs[0].State.Running != nil, nil
	})

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"logs", "job/pi"}, "3.14159\ndone\n"},
		{[]string{"logs", "fails"}, "about to fail\noops\n"},
		{[]string{"logs", "restarts", "--previous"}, "attempt-0\nfirst-fails\n"},
		{[]string{"logs", "restarts"}, "attempt-1\n"},
	} {
		cmd := "kubectl " + strings.Join(tc.args, " ")
		e.eventually(cmd, 30*time.Second, func(ctx context.Context) (bool, error) {
			stdout, stderr, code, err := e.kubectl(ctx, tc.args...)
			if err != nil || code != 0 {
				return false, fmt.Errorf("%s: exit %d, %v: %s", cmd, code, err, stderr)
			}
			if stdout != tc.want {
				return false, fmt.Errorf("%s = %q, want %q", cmd, stdout, tc.want)
			}
			return true, nil
		})
	}
	// The kubelet's answer for a container without a previous attempt.
	_, stderr, code, err := e.kubectl(ctx, "logs", "fails", "--previous")
	if want := `previous terminated container "main" in pod "fails" not found`; err != nil || code == 0 || !strings.Contains(stderr, want) {
		t.Errorf("kubectl logs fails --previous: exit %d, %v, stderr %q; want an error with %q", code, err, stderr, want)
	}

	// Deleting the pod forgets its logs: the executor removes them from its sandbox.
	dirs := e.podLogDirs(piPods[0].UID)
	if len(dirs) != 1 {
		t.Fatalf("log directories of pod %s in executor sandboxes: %v, want 1", piPods[0].UID, dirs)
	}
	if _, stderr, code, err := e.kubectl(ctx, "delete", "pod", piPods[0].Name, "--wait=true"); err != nil || code != 0 {
		t.Fatalf("kubectl delete pod: exit %d, %v: %s", code, err, stderr)
	}
	// The executor asks about an ended pod less and less often, at most every 2 min.
	e.eventually("the deleted pod's logs to be removed from the executor's sandbox", 3*time.Minute, func(context.Context) (bool, error) {
		_, err := os.Stat(dirs[0])
		return os.IsNotExist(err), nil
	})
}

// waitTaskEnded waits until Mesos lists the pod's task as completed in state.
func (e *env) waitTaskEnded(uid types.UID, state mesos.TaskState) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("task of pod %s to be %s", uid, state), time.Minute, func(ctx context.Context) (bool, error) {
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		for _, task := range tasksOf(st, frameworkName).Completed {
			if taskPodUID(task) == string(uid) {
				if task.GetState() != state {
					return false, fatalf("task of pod %s ended %s, want %s", uid, task.GetState(), state)
				}
				return true, nil
			}
		}
		return false, nil
	})
}

func (e *env) waitPhase(name string, phase corev1.PodPhase) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("pod %s %s", name, phase), 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return p.Status.Phase == phase, nil
	})
}

// podLogDirs lists the executors' log directories of a pod (logs/<pod UID> in an executor's
// sandbox, package containerlogs) under the env's Mesos work directories.
func (e *env) podLogDirs(uid types.UID) []string {
	e.t.Helper()
	var dirs []string
	root := filepath.Join(e.dir, "mesos")
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == string(uid) && filepath.Base(filepath.Dir(path)) == "logs" {
			dirs = append(dirs, path)
			return filepath.SkipDir
		}
		return nil
	})
	return dirs
}

// TestKubectlAttach (issue 12, must show 2), as a user types it: `kubectl attach` to a container
// writing output shows what it writes; `kubectl attach -i` sends input to a container with
// `stdin: true`; `kubectl run -i --rm` runs a pod, sends it input and shows its answer. A container
// with stdin or tty is launched with a TTYInfo, so Mesos gives it an I/O switchboard (its terminal
// echoes the input and ends lines with "\r\n"); a plain container's output comes from its log.
func TestKubectlAttach(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	ticker := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ticker", Labels: map[string]string{"app": "attach"}},
		Spec: podSpec(`i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.3; done`)}
	reader := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reader", Labels: map[string]string{"app": "attach"}},
		Spec: podSpec(`while read l; do echo "got:$l"; done`)}
	reader.Spec.Containers[0].Stdin = true
	for _, p := range []*corev1.Pod{ticker, reader} {
		if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitRunningPods(selector(reader.Labels), 2, 2*time.Minute)

	// kubectl attach ticker: new ticks, until we stop it.
	out, err := e.kubectlUntil(ctx, nil, regexpLine(`^tick [0-9]+$`, 2), "attach", "ticker")
	if err != nil {
		t.Errorf("kubectl attach ticker: %v; output %q", err, out)
	}

	// kubectl attach -i reader: our line comes back answered.
	// An open stdin (an *os.File: exec copies no other reader without a goroutine that Wait awaits).
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	defer stdinR.Close()
	if _, err := io.WriteString(stdinW, "hello\n"); err != nil {
		t.Fatal(err)
	}
	out, err = e.kubectlUntil(ctx, stdinR, func(out string) bool { return strings.Contains(out, "got:hello") }, "attach", "-i", "reader")
	if err != nil {
		t.Errorf("kubectl attach -i reader: %v; output %q", err, out)
	}
	// Its log has both its terminal's echo and its answer.
	e.eventually("kubectl logs reader", 30*time.Second, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "logs", "reader")
		if err != nil || code != 0 {
			return false, fmt.Errorf("kubectl logs reader: exit %d, %v: %s", code, err, stderr)
		}
		if want := "hello\r\ngot:hello\r\n"; stdout != want {
			return false, fmt.Errorf("kubectl logs reader = %q, want %q", stdout, want)
		}
		return true, nil
	})

	// kubectl run -i --rm: stdin: true and stdinOnce: true; the end of our input ends the container's.
	stdout, stderr, code, err := e.kubectlStdin(ctx, "ping\n", "run", "once", "--image=busybox", "--restart=Never", "-i", "--rm",
		"--", "sh", "-c", `read l; echo "got:$l"`)
	if err != nil || code != 0 || !strings.Contains(stdout, "got:ping") {
		t.Errorf("kubectl run -i --rm: exit %d, %v, stdout %q, stderr %q; want got:ping", code, err, stdout, stderr)
	}
	e.eventually("pod once to be deleted by kubectl run --rm", time.Minute, func(ctx context.Context) (bool, error) {
		_, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "once", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// regexpLine is a kubectlUntil condition: n lines of the output match pattern.
func regexpLine(pattern string, n int) func(string) bool {
	re := regexp.MustCompile(pattern)
	return func(out string) bool {
		count := 0
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if re.MatchString(strings.TrimSuffix(sc.Text(), "\r")) {
				count++
			}
		}
		return count >= n
	}
}

// kubectlUntil runs the real kubectl (with stdin, when not nil) until its stdout satisfies done, then
// stops it; an error says it ended before or did not get there within 30 s.
func (e *env) kubectlUntil(ctx context.Context, stdin *os.File, done func(string) bool, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cp.Binaries.Kubectl, append([]string{"--kubeconfig=" + e.cp.KubeconfigPath, "--namespace=" + e.ns}, args...)...)
	cmd.Env = cleanEnv()
	cmd.Stdin = stdin
	cmd.WaitDelay = 2 * time.Second
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := pipe.Read(buf)
		out = append(out, buf[:n]...)
		if done(string(out)) {
			return string(out), nil
		}
		if err != nil {
			return string(out), fmt.Errorf("kubectl %s ended (%v) before the expected output; stderr %q", strings.Join(args, " "), err, errOut.String())
		}
	}
}

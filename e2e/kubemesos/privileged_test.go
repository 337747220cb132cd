package kubemesos

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// A privileged pod on the pod network runs (the upstream PrivilegedPod and hostPath r/w specs failed
// it with "Failed to set process capabilities: operation not permitted": it asked the agent for every
// capability of Mesos' enum, and this host's bounding set lacks some), with the capabilities this
// host has, effective: SYS_ADMIN, which an unprivileged container lacks, among them. Its mount of a
// tmpfs, which needs SYS_ADMIN, works.
func TestPrivilegedPodRuns(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "priv"}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To[int64](2),
		Containers: []corev1.Container{{Name: "main", Image: "busybox",
			Command:         []string{"sh", "-c", "grep -E '^Cap(Eff|Bnd):' /proc/self/status && mkdir /m && mount -t tmpfs tmpfs /m && echo mounted"},
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("the privileged pod to succeed", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "priv", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && (w.Reason == "CreateContainerError" || w.Reason == "RunContainerError") {
				return false, fatalf("privileged container refused: %s: %s", w.Reason, w.Message)
			}
			if tr := cs.State.Terminated; tr != nil {
				if tr.ExitCode != 0 {
					return false, fatalf("privileged container exited %d (%s): %s", tr.ExitCode, tr.Reason, tr.Message)
				}
				return true, nil
			}
		}
		return false, fmt.Errorf("pod priv: %s", containerSummary(p))
	})
	b, err := e.kube.CoreV1().Pods(e.ns).GetLogs("priv", &corev1.PodLogOptions{Container: "main"}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The capabilities of Mesos' enum (kernel numbers 0-37) that this host's bounding set holds.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var host uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			if host, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				t.Fatal(err)
			}
		}
	}
	mask := fmt.Sprintf("%016x", host&(1<<38-1))
	want := fmt.Sprintf("CapEff:\t%s\nCapBnd:\t%s\nmounted\n", mask, mask)
	if string(b) != want {
		t.Errorf("privileged container's log:\n%s\nwant\n%s", b, want)
	}
	if host&(1<<21) == 0 {
		t.Errorf("this host's bounding set %#x lacks SYS_ADMIN: the test shows nothing", host)
	}
}

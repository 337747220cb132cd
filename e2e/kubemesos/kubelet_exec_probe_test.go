package kubemesos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestKubeletExecProbeAndHookRunInTheContainer (issue 12): an exec postStart hook and an exec readiness
// probe run inside their container, as the kubelet's do: the hook writes, with the container's
// environment, into the container's own root filesystem (/tmp of its busybox image), which the main
// process waits for and copies into an emptyDir; the readiness probe reads that copy, so the pod turns
// Ready only when both ran in the container. (They ran in a nested container on the agent host's
// filesystem, where neither file exists.) kubectl exec starts in the container's workingDir with its
// capabilities (none). A failing exec readiness probe's Unhealthy event carries the command's output,
// as the kubelet's.
func TestKubeletExecProbeAndHookRunInTheContainer(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()

	c := container(`until [ -f /tmp/poststart ]; do sleep 0.2; done; cp /tmp/poststart /shared/ready; ` + sleeper)
	c.Env = []corev1.EnvVar{{Name: "MARK", Value: "written-by-the-hook"}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"sh", "-c", `echo "$MARK in $(pwd)" > /tmp/poststart`}}}}
	c.WorkingDir = "/tmp"
	c.SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"grep", "-q", "written-by-the-hook in /tmp", "/shared/ready"}}},
		PeriodSeconds: 1, TimeoutSeconds: 5,
	}
	ready := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "exec-ready"}, Spec: corev1.PodSpec{
		Containers:                    []corev1.Container{c},
		Volumes:                       []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		TerminationGracePeriodSeconds: ptr.To[int64](2),
	}}

	// The control: its probe's command fails inside the container, with output on stdout and stderr.
	u := container(sleeper)
	u.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo probing; cat /tmp/never"}}},
		PeriodSeconds: 1, TimeoutSeconds: 5,
	}
	unready := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "exec-unready"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{u}, TerminationGracePeriodSeconds: ptr.To[int64](2)}}
	for _, p := range []*corev1.Pod{ready, unready} {
		if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	e.eventually("exec-ready to be Ready", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "exec-ready", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=exec-ready"}); err == nil {
			for _, ev := range evs.Items {
				if ev.Reason == "FailedPostStartHook" {
					return false, fatalf("the postStart hook failed: %s", ev.Message)
				}
			}
		}
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].Ready && cs[0].RestartCount == 0, nil
	})
	stdout, stderr, code, err := e.kubectl(ctx, "exec", "exec-ready", "--", "cat", "/tmp/poststart", "/shared/ready")
	if want := "written-by-the-hook in /tmp\nwritten-by-the-hook in /tmp\n"; err != nil || code != 0 || stdout != want {
		t.Errorf("kubectl exec cat: exit %d, %v, %q (stderr %q), want %q", code, err, stdout, stderr, want)
	}

	// kubectl exec too starts in the container's workingDir with its (no) capabilities.
	stdout, stderr, code, err = e.kubectl(ctx, "exec", "exec-ready", "--", "sh", "-c", "pwd; grep CapEff /proc/self/status")
	if want := "/tmp\nCapEff:\t0000000000000000\n"; err != nil || code != 0 || stdout != want {
		t.Errorf("kubectl exec pwd and CapEff: exit %d, %v, %q (stderr %q), want %q", code, err, stdout, stderr, want)
	}

	want := "Readiness probe failed: probing\ncat: can't open '/tmp/never': No such file or directory\n"
	e.eventually("exec-unready's Unhealthy event", 2*time.Minute, func(ctx context.Context) (bool, error) {
		evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=exec-unready,reason=Unhealthy"})
		if err != nil {
			return false, err
		}
		var got []string
		for _, ev := range evs.Items {
			if ev.Message == want {
				return true, nil
			}
			got = append(got, fmt.Sprintf("%q", ev.Message))
		}
		return false, fmt.Errorf("Unhealthy events %s, want %q", strings.Join(got, ", "), want)
	})
	p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "exec-unready", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].Ready || cs[0].State.Running == nil {
		t.Errorf("exec-unready: statuses %+v, want running and not ready", cs)
	}
}

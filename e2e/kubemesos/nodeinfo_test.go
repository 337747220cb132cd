package kubemesos

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod with the nodeSelector most public charts carry (kubernetes.io/os: linux) schedules and runs,
// and once the agent's executor has subscribed, its Node reports the host as a kubelet reports its
// machine: the kernel release, the OS image (os-release's PRETTY_NAME), the architecture and the
// container runtime mesos://<agent version>.
func TestNodeInfoFromTheAgentsHost(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	spec := podSpec(sleeper)
	spec.NodeSelector = map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: runtime.GOARCH}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "charted", Labels: map[string]string{"app": "charted"}}, Spec: spec}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitRunningPods(selector(map[string]string{"app": "charted"}), 1, time.Minute)

	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	kernel := unix.ByteSliceToString(u.Release[:])
	osImage := prettyName(t)
	var info corev1.NodeSystemInfo
	e.eventually("the Node's nodeInfo from the agent's host", time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "charted", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		n, err := e.kube.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		info = n.Status.NodeInfo
		return info.KernelVersion == kernel && info.OSImage == osImage,
			fmt.Errorf("nodeInfo %+v, want kernel %q OS image %q", info, kernel, osImage)
	})
	t.Logf("nodeInfo: %+v", info)
	if info.OperatingSystem != "linux" || info.Architecture != runtime.GOARCH || !strings.HasPrefix(info.ContainerRuntimeVersion, "mesos://") {
		t.Errorf("nodeInfo %+v: want linux/%s and runtime mesos://<version>", info, runtime.GOARCH)
	}
}

// prettyName is this host's os-release PRETTY_NAME (the agents run here).
func prettyName(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	t.Fatal("no PRETTY_NAME in /etc/os-release")
	return ""
}

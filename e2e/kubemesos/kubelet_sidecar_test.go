package kubemesos

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// agnhostImage serves grpc-health-checking (grpc.health.v1) from the agents' image store.
const agnhostImage = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"

// TestKubeletTerminationMessage (issue 12, must show 2): a container's terminationMessagePath content
// is its terminated state's message, read from the file the executor bind-mounts there through a
// Mesos SANDBOX_PATH volume; with FallbackToLogsOnError a failed container without one gets the end of
// its log. As a user reads it: `kubectl get pod -o jsonpath=…state.terminated.message`.
func TestKubeletTerminationMessage(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	file := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "termination-file"},
		Spec: podSpec("printf 'all done: 42' > /dev/termination-log; echo to the log")}
	file.Spec.RestartPolicy = corev1.RestartPolicyNever
	// A path of the user's choice, with a message longer than the kubelet keeps (4096 bytes: its end).
	custom := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "termination-custom"},
		Spec: podSpec(`awk 'BEGIN { while (i++ < 5000) printf "x" }' > /tmp/status; printf END >> /tmp/status; exit 3`)}
	custom.Spec.RestartPolicy = corev1.RestartPolicyNever
	custom.Spec.Containers[0].TerminationMessagePath = "/tmp/status"
	fallback := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "termination-fallback"}, Spec: podSpec("echo starting; echo -n DONE; exit 1")}
	fallback.Spec.RestartPolicy = corev1.RestartPolicyNever
	fallback.Spec.Containers[0].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	for _, p := range []*corev1.Pod{file, custom, fallback} {
		if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitPhase("termination-file", corev1.PodSucceeded)
	e.waitPhase("termination-custom", corev1.PodFailed)
	e.waitPhase("termination-fallback", corev1.PodFailed)
	for _, tc := range []struct{ pod, want string }{
		{"termination-file", "all done: 42"},
		{"termination-custom", strings.Repeat("x", 4096-3) + "END"},
		{"termination-fallback", "starting\nDONE"},
	} {
		stdout, stderr, code, err := e.kubectl(ctx, "get", "pod", tc.pod, "-o", "jsonpath={.status.containerStatuses[0].state.terminated.message}")
		if err != nil || code != 0 {
			t.Fatalf("kubectl get pod %s: exit %d, %v: %s", tc.pod, code, err, stderr)
		}
		if stdout != tc.want {
			t.Errorf("pod %s: terminated message %q (%d bytes), want %q (%d bytes)", tc.pod, short(stdout), len(stdout), short(tc.want), len(tc.want))
		}
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:20] + "…" + s[len(s)-20:]
	}
	return s
}

// TestKubeletGRPCLivenessProbe (issue 12, must show 2): a gRPC liveness probe on a healthy server
// (agnhost grpc-health-checking) keeps the container running; one that asks about a service the
// server does not know fails with the kubelet's text and restarts the container, so the probes do run.
func TestKubeletGRPCLivenessProbe(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	// Pods share the agent's network here: each server gets free ports of its own.
	ports := hostPorts(t, 4)
	grpcPod := func(name string, service *string) *corev1.Pod {
		grpcPort, httpPort := ports[0], ports[1]
		ports = ports[2:]
		c := corev1.Container{
			Name:    "server",
			Image:   agnhostImage,
			Command: []string{"/agnhost", "grpc-health-checking", "--port=" + strconv.Itoa(grpcPort), "--http-port=" + strconv.Itoa(httpPort)},
			LivenessProbe: &corev1.Probe{
				ProbeHandler:        corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(grpcPort), Service: service}},
				InitialDelaySeconds: 2, PeriodSeconds: 1, TimeoutSeconds: 2, FailureThreshold: 3,
			},
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{c}, TerminationGracePeriodSeconds: ptr.To[int64](2)}}
	}
	for _, p := range []*corev1.Pod{grpcPod("grpc-healthy", nil), grpcPod("grpc-unknown-service", ptr.To("nope"))} {
		if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The control: its probe fails thrice a second apart and the container is restarted.
	want := "Liveness probe failed: error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
	e.eventually("the unknown service's probe to fail and restart its container", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "grpc-unknown-service", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].RestartCount < 1 {
			return false, nil
		}
		evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=grpc-unknown-service,reason=Unhealthy"})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Message == want {
				return true, nil
			}
		}
		return false, fmt.Errorf("no Unhealthy event %q among %d", want, len(evs.Items))
	})
	// By now the healthy server's probe has passed about as many times: it still runs, never restarted.
	p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "grpc-healthy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := p.Status.ContainerStatuses
	if p.Status.Phase != corev1.PodRunning || len(cs) != 1 || cs[0].State.Running == nil || cs[0].RestartCount != 0 ||
		time.Since(cs[0].State.Running.StartedAt.Time) < 8*time.Second {
		for _, args := range [][]string{{"logs", "grpc-healthy"}, {"logs", "grpc-healthy", "--previous"}} {
			stdout, stderr, _, _ := e.kubectl(ctx, args...)
			t.Logf("kubectl %s:\n%s%s", strings.Join(args, " "), stdout, stderr)
		}
		t.Fatalf("healthy server: phase %s, statuses %+v; want running for 8 s or more without a restart", p.Status.Phase, cs)
	}
	evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=grpc-healthy,reason=Unhealthy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) != 0 {
		t.Errorf("the healthy server's probe failed: %s", evs.Items[0].Message)
	}
}

// TestKubeletSidecar (issue 12, must show 2): a Job's pod with a sidecar (an init container with
// restartPolicy Always). The sidecar starts first and the main container only once the sidecar's
// startup probe passed (the main container fails unless the sidecar's mark is in the shared emptyDir);
// the Job completes when the main container is done: the sidecar is then stopped, and writes whether
// the main container had finished into its termination message. The pod Succeeds, its task FINISHED.
func TestKubeletSidecar(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	j := job("with-sidecar", corev1.RestartPolicyNever, 0,
		"grep -q sidecar-up /shared/log || exit 7; sleep 2; echo main-done >> /shared/log")
	spec := &j.Spec.Template.Spec
	spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mount := []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	spec.Containers[0].VolumeMounts = mount
	// The sidecar serves (busybox httpd) only after its mark is written: its TCP startup probe passes
	// then. (The pod shares the agent's network: a free port of its own.)
	port := hostPorts(t, 1)[0]
	sidecar := container(`trap 'if grep -q main-done /shared/log; then m=after-main; else m=before-main; fi; ` +
		`printf "stopped $m" > /dev/termination-log; exit 0' TERM; sleep 1; echo sidecar-up >> /shared/log; ` +
		`httpd -p ` + strconv.Itoa(port) + ` -h /shared; while true; do sleep 1 & wait $!; done`)
	sidecar.Name = "sidecar"
	sidecar.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	sidecar.VolumeMounts = mount
	sidecar.StartupProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(port)}},
		PeriodSeconds: 1, FailureThreshold: 30,
	}
	spec.InitContainers = []corev1.Container{sidecar}
	if _, err := e.kube.BatchV1().Jobs(e.ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// While the main container runs, the sidecar is listed as a started, ready init container.
	e.eventually("the main container to run beside the started sidecar", 2*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, selector(map[string]string{"job": "with-sidecar"}))
		if err != nil || len(pods) != 1 {
			return false, err
		}
		st := pods[0].Status
		if len(st.ContainerStatuses) != 1 || st.ContainerStatuses[0].State.Running == nil {
			return false, nil
		}
		if ics := st.InitContainerStatuses; len(ics) != 1 || ics[0].State.Running == nil || ics[0].Started == nil || !*ics[0].Started || !ics[0].Ready {
			return false, fatalf("main runs while the sidecar's status is %+v", st.InitContainerStatuses)
		}
		return true, nil
	})
	e.waitJobCondition("with-sidecar", batchv1.JobComplete, 2*time.Minute)
	pods, err := e.pods(ctx, selector(map[string]string{"job": "with-sidecar"}))
	if err != nil || len(pods) != 1 {
		t.Fatalf("pods of the job: %d, %v", len(pods), err)
	}
	p := pods[0]
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", p.Status.Phase)
	}
	main, side := p.Status.ContainerStatuses[0].State.Terminated, p.Status.InitContainerStatuses[0].State.Terminated
	if main == nil || main.ExitCode != 0 || side == nil || side.ExitCode != 0 {
		t.Fatalf("main %+v, sidecar %+v: want both terminated with 0", p.Status.ContainerStatuses[0].State, p.Status.InitContainerStatuses[0].State)
	}
	if side.Message != "stopped after-main" {
		t.Errorf("sidecar's termination message %q, want %q", side.Message, "stopped after-main")
	}
	if side.StartedAt.After(main.StartedAt.Time) || side.FinishedAt.Before(&main.FinishedAt) {
		t.Errorf("sidecar ran %v–%v, main %v–%v: want the sidecar around the main container",
			side.StartedAt, side.FinishedAt, main.StartedAt, main.FinishedAt)
	}
	if n := p.Status.InitContainerStatuses[0].RestartCount; n != 0 {
		t.Errorf("sidecar restarted %d times", n)
	}
	e.waitTaskEnded(p.UID, mesos.TASK_FINISHED)
}

// hostPorts returns n distinct ports free on every address of the host (the agents' and the
// executors' included), for servers of pods on the agent's network.
func hostPorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	for range n {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out
}

package nested_test

import (
	"bytes"
	"context"
	"errors"
	"os/user"
	"testing"
	"time"

	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// Exec probes and hooks run inside the container, as the kubelet's (CRI ExecSync): in its image's root
// filesystem with its emptyDir, with its environment, working directory and user; the exit code is the
// result, the output the failure's message, and a command past the probe's timeout is killed. (They
// ran in a non-DEBUG nested container, which Mesos puts on the agent host's filesystem: issue 12.)
func TestIsolatedExecProbeRunsInTheContainer(t *testing.T) {
	registry := busyboxRegistry(t)
	if _, err := user.LookupId("1000"); err != nil {
		var unknown user.UnknownUserIdError
		if errors.As(err, &unknown) {
			t.Skip("this host has no user with uid 1000 for runAsUser 1000")
		}
		t.Fatal(err)
	}
	r := isolatingRuntime(t, "filesystem/linux,docker/runtime,namespaces/pid,linux/capabilities,volume/sandbox_path", func(c *agent.Config) {
		c.ImageProviders, c.DockerRegistry, c.DockerStoreDir = "docker", registry, t.TempDir()
	})
	uid := int64(1000)
	pod := shPod("probed", "echo ready > /shared/log && echo inside > /tmp/only-in-rootfs && exec sleep 60",
		&corev1.PodSecurityContext{RunAsUser: &uid}, nil, corev1.ResourceRequirements{})
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	c := &pod.Spec.Containers[0]
	c.Image, c.WorkingDir = "busybox", "/tmp"
	c.Env = []corev1.EnvVar{{Name: "GREETING", Value: "from the pod spec"}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	withSandbox(t, r, pod, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := r.Start(ctx, pod, c, 0)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() {
		_ = r.Signal(ctx, h, 9)
		_, _ = r.Wait(ctx, h)
		_ = r.Remove(ctx, h)
	}()
	prober := &podworker.NetProber{Runtime: r}
	probe := func(timeout time.Duration, cmd ...string) error {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return prober.Probe(pctx, pod, c, h, &corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}})
	}
	deadline := time.Now().Add(20 * time.Second)
	for probe(10*time.Second, "grep", "-q", "ready", "/shared/log") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the exec probe `grep -q ready /shared/log` never succeeded: %v", probe(10*time.Second, "grep", "ready", "/shared/log"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	var stdout, stderr bytes.Buffer
	code, err := r.Exec(ctx, h, []string{"sh", "-c", `cat /tmp/only-in-rootfs; echo "$GREETING"; pwd; id -u; ls /bin/busybox; echo to-stderr >&2`}, &stdout, &stderr)
	if want := "inside\nfrom the pod spec\n/tmp\n1000\n/bin/busybox\n"; err != nil || code != 0 || stdout.String() != want || stderr.String() != "to-stderr\n" {
		t.Errorf("exec: exit %d, %v, stdout %q, stderr %q; want exit 0, stdout %q (the container's file, env, working directory, user)",
			code, err, stdout.String(), stderr.String(), want)
	}

	err = probe(10*time.Second, "sh", "-c", "echo not yet; cat /shared/missing")
	if want := "not yet\ncat: can't open '/shared/missing': No such file or directory\n"; err == nil || err.Error() != want {
		t.Errorf("failing probe: %v, want the message %q", err, want)
	}

	timedOut := make(chan error, 1)
	go func() { timedOut <- probe(2*time.Second, "sleep", "30") }()
	for len(nestedUnder(t, r, h.ID)) == 0 { // the session runs under the container
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("no exec container under %s while the probe runs", h.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-timedOut; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("probe past its timeout: %v, want a deadline error", err)
	}
	// The timed-out command was killed and its session container removed: only the pod's container is left
	// under the sandbox.
	for {
		ids := nestedUnder(t, r, h.ID)
		if len(ids) == 0 {
			break
		}
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("exec containers left under %s: %v", h.ID, ids)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nestedUnder lists the agent's containers whose parent is the container with ID value parent.
func nestedUnder(t *testing.T, r *nested.Runtime, parent string) []string {
	t.Helper()
	a := agentOf(t, r).agent
	cli := httpcli.New(httpcli.Endpoint("http://"+a.Endpoint()+"/api/v1"), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]))
	s := httpagent.NewSender(cli.Send)
	yes := true
	call := &agentapi.Call{Type: agentapi.Call_GET_CONTAINERS, GetContainers: &agentapi.Call_GetContainers{ShowNested: &yes}}
	resp, err := s.Send(context.Background(), agentcalls.NonStreaming(call))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var out agentapi.Response
	if err := resp.Decode(&out); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range out.GetGetContainers().GetContainers() {
		// Mesos names the container by its own value; its parents are in its container_status.
		if p := c.GetContainerStatus().GetContainerID().GetParent(); p != nil && p.Value == parent {
			ids = append(ids, c.ContainerID.Value)
		}
	}
	return ids
}

// BenchmarkIsolatedExec is one exec probe's command (`true`) in a running container on an isolating
// agent: LAUNCH_NESTED_CONTAINER_SESSION, its input and WAIT_CONTAINER, then KILL and REMOVE.
func BenchmarkIsolatedExec(b *testing.B) {
	r := isolatingRuntime(b, "filesystem/linux,namespaces/pid,linux/capabilities", nil)
	pod := shPod("bench-exec", "exec sleep 600", nil, nil, corev1.ResourceRequirements{})
	withSandbox(b, r, pod, "")
	ctx := context.Background()
	h, err := r.Start(ctx, pod, &pod.Spec.Containers[0], 0)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = r.Signal(ctx, h, 9)
		_, _ = r.Wait(ctx, h)
		_ = r.Remove(ctx, h)
	}()
	for b.Loop() {
		if code, err := r.Exec(ctx, h, []string{"true"}, nil, nil); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

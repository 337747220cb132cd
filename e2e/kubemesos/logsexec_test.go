package kubemesos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestLogsAndExec: `kubectl logs` and `kubectl exec` reach a pod's container through the API server
// and its Node's "kubelet" (the executor's kubelet API, on the Node's InternalIP and published port),
// which authenticates and authorizes the caller against the API server.
func TestLogsAndExec(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "talker", Labels: map[string]string{"app": "talker"}},
		// stdout and stderr take turns; the simulated agent (as Mesos' launcher does for a container with
		// an image) writes its own lines to stderr first, which the logs must not show.
		Spec: podSpec("for i in 1 2 3; do echo line-$i; sleep 0.2; echo err-$i >&2; sleep 0.2; done; " + sleeper),
	}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := e.waitRunningPods(selector(pod.Labels), 1, 2*time.Minute)[0]

	wantLogs := "line-1\nerr-1\nline-2\nerr-2\nline-3\nerr-3\n"
	e.eventually("kubectl logs to show the container's lines", time.Minute, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "logs", running.Name)
		if err != nil || code != 0 {
			return false, fmt.Errorf("kubectl logs: exit %d, %v: %s", code, err, stderr)
		}
		if stdout != wantLogs {
			return false, fmt.Errorf("kubectl logs = %q, want %q", stdout, wantLogs)
		}
		return true, nil
	})
	// --tail counts the newest lines of both streams in the order they were written.
	if stdout, stderr, code, err := e.kubectl(ctx, "logs", "--tail=2", running.Name); err != nil || code != 0 || stdout != "line-3\nerr-3\n" {
		t.Errorf("kubectl logs --tail=2 = %q (exit %d, %v: %s), want %q", stdout, code, err, stderr, "line-3\nerr-3\n")
	}
	// client-go's GetLogs, as controllers and tools do, with tailLines.
	tail := int64(1)
	b, err := e.kube.CoreV1().Pods(e.ns).GetLogs(running.Name, &corev1.PodLogOptions{Container: "main", TailLines: &tail}).DoRaw(ctx)
	if err != nil {
		t.Errorf("GetLogs tailLines=1: %v", err)
	} else if string(b) != "err-3\n" {
		t.Errorf("GetLogs tailLines=1 = %q, want %q", b, "err-3\n")
	}

	// exec: stdout and the remote exit code come back through kubectl.
	type result struct {
		Stdout string
		Code   int
	}
	stdout, stderr, code, err := e.kubectl(ctx, "exec", running.Name, "--", "sh", "-c", "echo $((6*7)); exit 3")
	if err != nil {
		t.Fatalf("kubectl exec: %v (stderr %q)", err, stderr)
	}
	if diff := cmp.Diff(result{Stdout: "42\n", Code: 3}, result{Stdout: stdout, Code: code}); diff != "" {
		t.Errorf("kubectl exec (-want +got):\n%s\nstderr: %s", diff, stderr)
	}
	// exec with stdin.
	stdout, stderr, code, err = e.kubectlStdin(ctx, "hello from stdin\n", "exec", "-i", running.Name, "--", "sh", "-c", "read l; echo got:$l")
	if err != nil {
		t.Fatalf("kubectl exec -i: %v (stderr %q)", err, stderr)
	}
	if diff := cmp.Diff(result{Stdout: "got:hello from stdin\n"}, result{Stdout: stdout, Code: code}); diff != "" {
		t.Errorf("kubectl exec -i (-want +got):\n%s\nstderr: %s", diff, stderr)
	}

	// Someone without RBAC rights is refused logs: by the API server, and by the executor's kubelet
	// API itself when called directly with a client certificate of the cluster's CA.
	nobody, _, err := e.cp.UserKubeconfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	nobodyClient, err := kubernetes.NewForConfig(nobody)
	if err != nil {
		t.Fatal(err)
	}
	_, err = nobodyClient.CoreV1().Pods(e.ns).GetLogs(running.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if !apierrors.IsForbidden(err) {
		t.Errorf("logs as nobody through the API server: %v, want 403 Forbidden", err)
	}
	node, err := e.kube.CoreV1().Nodes().Get(ctx, running.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	var internalIP string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internalIP = a.Address
		}
	}
	if port == 0 || internalIP == "" {
		t.Fatalf("Node %s: kubelet port %d, InternalIP %q; want both set", node.Name, port, internalIP)
	}
	url := fmt.Sprintf("https://%s:%d/containerLogs/%s/%s/main", internalIP, port, e.ns, running.Name)
	for _, tc := range []struct {
		who  string
		cfg  *rest.Config
		want int
	}{
		{who: "nobody", cfg: nobody, want: http.StatusForbidden},
		{who: "admin", cfg: e.cp.Config, want: http.StatusOK},
	} {
		code, body, err := kubeletGet(ctx, tc.cfg, url)
		if err != nil {
			t.Errorf("GET %s as %s: %v", url, tc.who, err)
			continue
		}
		if code != tc.want {
			t.Errorf("GET %s as %s: HTTP %d (%q), want %d", url, tc.who, code, body, tc.want)
		}
		if code == http.StatusOK && body != wantLogs {
			t.Errorf("GET %s as %s = %q, want %q", url, tc.who, body, wantLogs)
		}
	}
}

// kubectl runs the real kubectl as the admin in the env's namespace; code is its exit code.
func (e *env) kubectl(ctx context.Context, args ...string) (stdout, stderr string, code int, err error) {
	return e.kubectlStdin(ctx, "", args...)
}

func (e *env) kubectlStdin(ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cp.Binaries.Kubectl, append([]string{"--kubeconfig=" + e.cp.KubeconfigPath, "--namespace=" + e.ns}, args...)...)
	cmd.Env = cleanEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errOut, strings.NewReader(stdin)
	err = cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return out.String(), errOut.String(), exitErr.ExitCode(), nil
	}
	return out.String(), errOut.String(), 0, err
}

// kubeletGet calls an executor's kubelet API directly with cfg's client certificate, without
// verifying its self-signed serving certificate (as the API server does without
// --kubelet-certificate-authority).
func kubeletGet(ctx context.Context, cfg *rest.Config, url string) (int, string, error) {
	c := rest.CopyConfig(cfg)
	c.TLSClientConfig.Insecure = true
	c.TLSClientConfig.CAData, c.TLSClientConfig.CAFile = nil, ""
	tr, err := rest.TransportFor(c)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	return resp.StatusCode, body.String(), err
}

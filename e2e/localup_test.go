package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubemesos/kubemesos/e2e/kubebins"
)

// TestLocalUp runs the real local-up binary as `make local-up` does, then the real kubectl against
// the kubeconfig it wrote: /readyz answers ok and `kubectl get nodes` succeeds; the simulated Mesos
// master has its 3 agents. SIGTERM then stops everything: local-up exits 0 and its kube-apiserver
// and kube-controller-manager are gone.
func TestLocalUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // includes a first build
	defer cancel()
	bins, err := kubebins.Ensure(ctx, kubebins.Options{Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	localUp := filepath.Join(dir, "local-up")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", localUp, "./cmd/local-up").CombinedOutput(); err != nil {
		t.Fatalf("building local-up: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, "out", "kubeconfig")
	// A random Mesos port: other tests may run a simulator on the default 5050.
	cmd := exec.Command(localUp, "--dir", filepath.Join(dir, "state"), "--kubeconfig-out", kubeconfig, "--mesos-listen", "127.0.0.1:0", "--framework-listen", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // and local-up's own children follow it
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("local-up stderr:\n%s", stderr.String())
		}
	})

	// Wait for the ready line, collecting the usage text and the subprocesses' pids.
	var usage []string
	pids := map[string]int{}
	pidLine := regexp.MustCompile(`^\s*(kube-[a-z-]+)\s+pid (\d+),`)
	frameworkLine := regexp.MustCompile(`^\s*(kubemesos framework)\s+http://\S+ \(pid (\d+)\)`)
	mesosLine := regexp.MustCompile(`^\s*mesos master\s+(http://\S+) `)
	var mesosURL string
	readyDeadline := time.After(3 * time.Minute)
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				waited = true
				t.Fatalf("local-up ended before it was ready: %v\n%s", <-exited, strings.Join(usage, "\n"))
			}
			if line == "local-up: ready" {
				break wait
			}
			usage = append(usage, line)
			if m := frameworkLine.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[2])
				pids[m[1]] = pid
			}
			if m := pidLine.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[2])
				pids[m[1]] = pid
			}
			if m := mesosLine.FindStringSubmatch(line); m != nil {
				mesosURL = m[1]
			}
		case <-readyDeadline:
			t.Fatalf("local-up not ready after 3 minutes; output so far:\n%s", strings.Join(usage, "\n"))
		}
	}
	text := strings.Join(usage, "\n")
	for _, want := range []string{"export KUBECONFIG=" + kubeconfig, "export PATH=" + bins.Dir, "kubectl get ns"} {
		if !strings.Contains(text, want) {
			t.Errorf("usage text lacks %q:\n%s", want, text)
		}
	}
	// kube-proxy is listed too when the agents are on the pod network and it got the host's kube-proxy lock.
	for name := range pids {
		switch name {
		case "kube-apiserver", "kube-controller-manager", "kubemesos framework", "kube-proxy":
		default:
			t.Errorf("unexpected pid %q in usage text", name)
		}
	}
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kubemesos framework"} {
		if pids[name] == 0 {
			t.Errorf("pids in usage text = %v, want kube-apiserver, kube-controller-manager and kubemesos framework", pids)
		}
	}

	kubectl := func(args ...string) string {
		t.Helper()
		c := exec.CommandContext(ctx, bins.Kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if got := kubectl("get", "--raw", "/readyz"); got != "ok" {
		t.Errorf("kubectl get --raw /readyz = %q, want ok", got)
	}
	kubectl("get", "nodes")
	if got := kubectl("get", "ns", "default", "-o", "name"); strings.TrimSpace(got) != "namespace/default" {
		t.Errorf("kubectl get ns default = %q", got)
	}

	// What a newcomer types next just works: pods of an ordinary Deployment run on the Mesos agents,
	// which the framework shows as Nodes.
	kubectl("create", "deployment", "hello", "--image=nginx", "--replicas=2")
	kubectl("wait", "--for=condition=Available", "deployment/hello", "--timeout=180s")
	nodes := strings.Fields(kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"))
	if diff := cmp.Diff([]string{"mesos-agent-0", "mesos-agent-1", "mesos-agent-2"}, nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	for _, node := range strings.Fields(kubectl("get", "pods", "-l", "app=hello", "-o", "jsonpath={.items[*].spec.nodeName}")) {
		if !strings.HasPrefix(node, "mesos-agent-") {
			t.Errorf("a hello pod runs on %q, want a Mesos agent", node)
		}
	}

	// The simulated Mesos master answers with its agents.
	if mesosURL == "" {
		t.Fatalf("no mesos master line in the usage text:\n%s", text)
	}
	if diff := cmp.Diff([]string{"mesos-agent-0", "mesos-agent-1", "mesos-agent-2"}, mesosAgents(ctx, t, mesosURL)); diff != "" {
		t.Errorf("mesos agents (-want +got):\n%s", diff)
	}

	// Ctrl-C equivalent: everything stops, nothing is left behind.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		waited = true
		if err != nil {
			t.Errorf("local-up exited with %v after SIGTERM, want success", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("local-up still running a minute after SIGTERM")
	}
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after local-up stopped (kill 0: %v)", name, pid, err)
		}
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		t.Errorf("kubeconfig gone after stop: %v", err)
	}
}

// mesosAgents lists the hostnames of the agents in a Mesos master's /master/state.
func mesosAgents(ctx context.Context, t *testing.T, master string) []string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, master+"/master/state", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("mesos state: %v", err)
	}
	defer resp.Body.Close()
	var state struct {
		Slaves []struct {
			Hostname string `json:"hostname"`
		} `json:"slaves"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatalf("decoding mesos state: %v", err)
	}
	var hosts []string
	for _, s := range state.Slaves {
		hosts = append(hosts, s.Hostname)
	}
	slices.Sort(hosts)
	return hosts
}

// testWriter sends build progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

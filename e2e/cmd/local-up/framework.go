package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubemesos/kubemesos/internal/deathsig"
)

// kubemesosFramework builds cmd/kubemesos and runs `kubemesos framework` as a subprocess. It must be the
// real binary, not this process: the framework serves its own executable to the agents, which run it as
// the executor.
type kubemesosFramework struct {
	cmd    *exec.Cmd
	exited chan error
}

func (f *kubemesosFramework) Name() string { return "kubemesos framework" }

func (f *kubemesosFramework) Start(ctx context.Context, env *environment) error {
	bin := filepath.Join(env.cfg.dir, "bin", "kubemesos")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kubemesos")
	build.Dir = env.cfg.repoDir
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building kubemesos: %w\n%s", err, out)
	}
	addr, err := resolveListen(env.cfg.frameworkListen)
	if err != nil {
		return err
	}
	url := "http://" + addr
	logPath := filepath.Join(env.cfg.dir, "framework.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating framework log: %w", err)
	}
	defer logFile.Close()

	args := []string{
		"framework",
		"--master=" + env.mesosMaster,
		"--kubeconfig=" + env.cfg.kubeconfigOut,
		// Executors bootstrap their Node's certificate as kubelets do (the API server runs the Node
		// authorizer and NodeRestriction) and trust the client CA in their kubelet API.
		"--executor-env=KUBEMESOS_BOOTSTRAP_KUBECONFIG=" + env.cp.ExecutorBootstrapKubeconfigPath,
		"--executor-env=KUBEMESOS_CLIENT_CA_FILE=" + env.cp.Files.ClientCA,
		"--serve-default-scheduler", // no kube-scheduler here: kubemesos serves ordinary pods
		"--leader-elect=false",
		"--http-address=" + addr,
		"--advertise-url=" + url,
		"--agent-poll-interval=2s",
	}
	args = append(args, env.network.FrameworkArgs()...)
	f.cmd = exec.Command(bin, args...)
	f.cmd.Stdout, f.cmd.Stderr = logFile, logFile
	// Its own process group, and SIGKILL if local-up dies without stopping it.
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := deathsig.Start(f.cmd); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	f.exited = make(chan error, 1)
	go func() { f.exited <- f.cmd.Wait() }()

	if err := waitReady(ctx, url+"/readyz", f.exited, 2*time.Minute); err != nil {
		return fmt.Errorf("%w (log: %s)", err, logPath)
	}
	env.notes = append(env.notes, fmt.Sprintf("%-24s %s (pid %d), log %s", "kubemesos framework", url, f.cmd.Process.Pid, logPath))
	return nil
}

func (f *kubemesosFramework) Stop() {
	if f.cmd == nil || f.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.exited
	}
}

// resolveListen turns host:0 into host:<a free port>, because the agents need the real port in the
// executor URI before the framework starts.
func resolveListen(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--framework-listen %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer l.Close()
	return net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

// waitReady polls url until it answers 200, the process exits, or the timeout passes.
func waitReady(ctx context.Context, url string, exited <-chan error, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-exited:
			return false, fmt.Errorf("framework exited before it was ready: %v", err)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil && ctx.Err() == nil && wait.Interrupted(err) {
		return fmt.Errorf("framework not ready at %s after %s", url, timeout)
	}
	return err
}

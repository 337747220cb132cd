package cluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// crashHelperEnv makes TestCrashHelper start a control plane and die without stopping it.
const crashHelperEnv = "KUBEMESOS_CLUSTER_CRASH_HELPER_DIR"

// TestCrashHelper is not a test on its own: TestSubprocessesDieWithTheirParent runs the test binary
// with it, as a process that starts a control plane, prints the pids and panics (what a failed or
// timed-out `go test` does).
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestSubprocessesDieWithTheirParent")
	}
	cp, err := Start(context.Background(), Options{Dir: dir})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	pids := cp.PIDs()
	fmt.Printf("PIDS %d %d\n", pids["kube-apiserver"], pids["kube-controller-manager"])
	panic("crashing with a running control plane")
}

// TestSubprocessesDieWithTheirParent: when the process that started a control plane dies without
// Stop (a panic, a test timeout, SIGKILL), kube-apiserver and kube-controller-manager die with it.
func TestSubprocessesDieWithTheirParent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real control plane")
	}
	// Orphans are re-parented to the nearest "child subreaper": make that this test process, so the
	// dead subprocesses come back to us to be reaped (and we learn how they died) instead of
	// lingering as zombies under a PID 1 that may not reap.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
	defer syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = nil // the panic's trace is noise here
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "PIDS "); ok {
			for _, f := range strings.Fields(rest) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("bad pid line %q", line)
				}
				pids = append(pids, pid)
			}
		}
		if strings.HasPrefix(line, "ERROR") {
			t.Errorf("helper: %s", line)
		}
	}
	waitErr := cmd.Wait()
	if waitErr == nil {
		t.Fatal("helper exited successfully; want a panic")
	}
	if len(pids) != 2 {
		t.Fatalf("helper reported pids %v, want 2", pids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pid := range pids {
		var status syscall.WaitStatus
		err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
			got, err := syscall.Wait4(pid, &status, syscall.WNOHANG, nil)
			if err != nil {
				return false, fmt.Errorf("wait4(%d): %w", pid, err)
			}
			return got == pid, nil
		})
		if err != nil {
			t.Errorf("pid %d did not end after its parent died: %v", pid, err)
			_ = syscall.Kill(pid, syscall.SIGKILL) // started by this test; do not leave it behind
			_, _ = syscall.Wait4(pid, &status, 0, nil)
			continue
		}
		if !status.Signaled() || status.Signal() != syscall.SIGKILL {
			t.Errorf("pid %d ended with status %v, want killed by SIGKILL (Pdeathsig)", pid, status)
		}
	}
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

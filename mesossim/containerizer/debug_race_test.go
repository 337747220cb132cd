package containerizer

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A DEBUG container (kubectl exec) may come right after its parent's launch, while the parent's
// launch helper is still on its way to the command (the upstream "memory backed volumes of specified
// size" spec execs df as soon as the pod runs; on a loaded host a stage took longer than the 500 ms
// commandPid used to wait, and the session joined the stage's pid namespace instead of the
// container's: "df: /proc/mounts: No such file or directory"). commandPid waits for the command.
func TestCommandPidWaitsForASlowHelper(t *testing.T) {
	requireRoot(t)
	infoR, infoW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{HelperName, HelperCommand}, Env: []string{},
		ExtraFiles: []*os.File{infoR, syncR}, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	infoR.Close()
	syncR.Close()
	t.Cleanup(func() { killTree(cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	// A nested container with a pid namespace of its own: a second stage clones it.
	cfg := helperConfig{Launch: LaunchInfo{Argv: []string{"sleep", "1000"}}, Env: []string{"PATH=" + HostDefaultPath}, ClonePID: true}
	if err := json.NewEncoder(infoW).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	infoW.Close()
	go func() {
		time.Sleep(1500 * time.Millisecond) // the agent's isolation, a loaded host
		_, _ = syncW.Write([]byte{1})
		syncW.Close()
	}()
	start := time.Now()
	pid := commandPid(cmd.Process.Pid)
	took := time.Since(start)
	if pid == cmd.Process.Pid {
		t.Fatalf("commandPid after %v = the first stage %d, want the second stage's command", took, pid)
	}
	// The pid may be read in the middle of its execve (an empty cmdline): it is the command's.
	var b []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); strings.HasPrefix(string(b), "sleep\x00") {
			return
		}
	}
	t.Errorf("commandPid after %v = %d (%q), want the second stage's command, sleep", took, pid, b)
}

// A process forked to become the launch helper has the agent's command line until its execve: it is a
// stage to wait for, not the command (TestCommandPidWaitsForASlowHelper once read the first stage 169 µs
// after its fork, before its execve).
func TestForkedHelperBeforeItsExecIsAHelper(t *testing.T) {
	if !isHelper(os.Getpid()) {
		t.Error("a process with the agent's own command line is not taken for a helper stage")
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for deadline := time.Now().Add(5 * time.Second); !hasCmdline(cmd.Process.Pid) || isHelper(cmd.Process.Pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("sleep, once exec'd, is taken for a helper stage")
		}
	}
}

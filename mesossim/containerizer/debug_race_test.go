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

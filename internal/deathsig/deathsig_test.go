package deathsig

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestMain keeps the main thread for the main goroutine: the runtime never retires the main thread, so a
// goroutine that locked it could not show the trap below.
func TestMain(m *testing.M) {
	runtime.LockOSThread()
	os.Exit(m.Run())
}

// A child must survive the exit of a locked goroutine on whatever thread asked for it: the trap that
// plain Pdeathsig falls into.
func TestChildSurvivesRetiredThreads(t *testing.T) {
	var cmd *exec.Cmd
	started := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread is retired when the goroutine ends
		cmd = exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		started <- Start(cmd)
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if cmd.SysProcAttr.Pdeathsig != syscall.SIGKILL || !cmd.SysProcAttr.Setpgid {
		t.Fatalf("SysProcAttr = %+v, want Pdeathsig SIGKILL and Setpgid kept", cmd.SysProcAttr)
	}

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	// Retire more locked threads while the child runs; none of them may take it along.
	for range 20 {
		done := make(chan struct{})
		go func() { runtime.LockOSThread(); close(done) }()
		<-done
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("child died with a retired thread: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("child gone: %v", err)
	}
}

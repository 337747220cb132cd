// Package deathsig starts child processes that die with this process and not before.
//
// Linux's Pdeathsig fires when the *thread* that forked a child exits, not the process, and the Go runtime
// retires any thread whose goroutine exits while locked to it. A child forked from an arbitrary thread is
// therefore SIGKILLed whenever unrelated code (a test harness, client-go, another component) happens to
// retire that thread — seen as containers exiting 137 in the middle of a test. Forking every child from
// one goroutine that stays locked to its thread for the life of the process ties the children's fate to
// the process, which is what a simulator's agents and a test's control plane want.
package deathsig

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

type request struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	once     sync.Once
	requests = make(chan request)
)

// Start starts cmd like cmd.Start, with SIGKILL as its parent-death signal, from the one thread that
// lives as long as this process. Other SysProcAttr settings of cmd (e.g. Setpgid) are kept.
func Start(cmd *exec.Cmd) error {
	once.Do(func() { go forkLoop() })
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	r := request{cmd: cmd, done: make(chan error, 1)}
	requests <- r
	return <-r.done
}

// forkLoop never returns and never unlocks, so its thread is never retired.
func forkLoop() {
	runtime.LockOSThread()
	for r := range requests {
		r.done <- r.cmd.Start()
	}
}

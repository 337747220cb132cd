// Package replicas runs `kubemesos framework` replicas the way a Deployment's container runs them
// (restarted shortly after every exit, killable, pausable, held down on demand), and reads the API
// server's audit log of Binding creates, the independent count of what those replicas bound. The
// two-replica e2e test (e2e/kubemesos TestLeaderTakeovers) and the chaos run (e2e/cmd/chaos) share it.
package replicas

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kubemesos/kubemesos/internal/deathsig"
)

// RestartDelay is the pause between a replica's exit and its restart.
const RestartDelay = 200 * time.Millisecond

// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
const StopGrace = 10 * time.Second

// Replica is one framework process under supervision. Set the exported fields, then Start.
type Replica struct {
	// Name tells replicas apart in log file names: <Dir>/framework-<Name>-<run>.log.
	Name string
	// Port is the replica's HTTP port on 127.0.0.1 (its --http-address; URL).
	Port int
	// Binary and Args are the command.
	Binary string
	Args   []string
	// Dir holds the logs, one per run.
	Dir string
	// Env is the process' environment; nil inherits this process'.
	Env []string
	// OnError is told why the supervision ended early (a run could not start); nil ignores it.
	OnError func(error)

	once    sync.Once
	stopped chan struct{}
	wg      sync.WaitGroup

	mu   sync.Mutex
	cmd  *exec.Cmd
	runs int
	logs []string
	hold chan struct{} // set: stay down after an exit until closed
}

// URL is the replica's HTTP base URL.
func (r *Replica) URL() string { return "http://127.0.0.1:" + strconv.Itoa(r.Port) }

func (r *Replica) init() { r.once.Do(func() { r.stopped = make(chan struct{}) }) }

// Start runs the process until Stop, restarting it RestartDelay after every exit (or once Release
// lets it, after Hold). The process leads its own process group (Signal reaches its children) and is
// SIGKILLed if this process dies.
func (r *Replica) Start() {
	r.init()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			done, err := r.run()
			if err != nil {
				if r.OnError != nil {
					r.OnError(fmt.Errorf("starting replica %s: %w", r.Name, err))
				}
				return
			}
			select {
			case <-r.stopped:
				r.terminate(done)
				return
			case <-done:
			}
			r.mu.Lock()
			hold := r.hold
			r.mu.Unlock()
			if hold != nil {
				select {
				case <-r.stopped:
					return
				case <-hold:
				}
			}
			select {
			case <-r.stopped:
				return
			case <-time.After(RestartDelay):
			}
		}
	}()
}

// run starts the next run; done is closed once it is reaped.
func (r *Replica) run() (chan struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs++
	logPath := filepath.Join(r.Dir, fmt.Sprintf("framework-%s-%d.log", r.Name, r.runs))
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(r.Binary, r.Args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = r.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := deathsig.Start(cmd); err != nil {
		return nil, err
	}
	r.cmd = cmd
	r.logs = append(r.logs, logPath)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return done, nil
}

// terminate ends a run for Stop: resumed (it may be SIGSTOPped), SIGTERM, SIGKILL after StopGrace.
func (r *Replica) terminate(done chan struct{}) {
	pid := r.PID()
	_ = syscall.Kill(-pid, syscall.SIGCONT)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(StopGrace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
}

// Stop ends the supervision and the process, and returns once it is reaped. Safe more than once.
func (r *Replica) Stop() {
	r.init()
	r.mu.Lock()
	select {
	case <-r.stopped:
	default:
		close(r.stopped)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Hold keeps the replica down once its process exits, until Release: a killed leader restarted at
// once may win the Lease back, and the takeover would not be one.
func (r *Replica) Hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hold == nil {
		r.hold = make(chan struct{})
	}
}

// Release lets a held replica restart.
func (r *Replica) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hold != nil {
		close(r.hold)
		r.hold = nil
	}
}

// Signal sends sig to the current run's process group.
func (r *Replica) Signal(sig syscall.Signal) {
	if pid := r.PID(); pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
}

// PID is the current run's process (0 before the first).
func (r *Replica) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Runs is how many times the process was started.
func (r *Replica) Runs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs
}

// Logs are the runs' log files, oldest first.
func (r *Replica) Logs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logs...)
}

// Subscribed reports whether the replica answers and says it is subscribed to Mesos (only the
// leader subscribes).
func (r *Replica) Subscribed(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := get(ctx, r.URL()+"/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if sc.Text() == "kubemesos_mesos_subscribed 1" {
			_, _ = io.Copy(io.Discard, resp.Body)
			return true
		}
	}
	return false
}

// Serving reports whether the replica's HTTP server answers (it then takes part in the election).
func (r *Replica) Serving(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := get(ctx, r.URL()+"/healthz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

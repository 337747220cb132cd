// Package hollow is a podworker.Runtime whose containers only report running, as kubemark's hollow
// kubelet runs pods on a fake container runtime: the executor's task handling, pod worker (phases,
// conditions, probes) and status writer run as for real pods, while nothing is launched on the agent.
// It exists for the scheduling benchmark (e2e/cmd/bench-scheduling), where thousands of pods on a
// 2-core machine would otherwise measure process creation instead of scheduling and status writing.
//
// What it skips, compared with the nested runtime: the agent's LAUNCH_NESTED_CONTAINER,
// WAIT_NESTED_CONTAINER and KILL_NESTED_CONTAINER calls, image configs, volumes (ConfigMaps, Secrets,
// the service account token), resolv.conf and hosts files, container logs, and the processes
// themselves. A container runs until it is signalled (no command ever exits on its own, so a Job's
// pod never completes), and exec or port-forward reach nothing.
package hollow

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/executor/podworker"
)

// Name is the executor's --runtime value that selects this runtime.
const Name = "hollow"

// Runtime is the hollow container runtime. The zero value is not usable; call New.
type Runtime struct {
	mu         sync.Mutex
	containers map[string]*container
}

type container struct {
	done   chan struct{}
	status podworker.ExitStatus
}

// New returns an empty hollow runtime.
func New() *Runtime { return &Runtime{containers: map[string]*container{}} }

var _ podworker.Runtime = (*Runtime)(nil)

// Start records a running container; its ID is unique per pod, container and attempt, as a real
// runtime's is.
func (r *Runtime) Start(_ context.Context, pod *corev1.Pod, c *corev1.Container, attempt int32) (podworker.Handle, error) {
	id := fmt.Sprintf("%s-%s-%d", pod.UID, c.Name, attempt)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.containers[id]; ok {
		return podworker.Handle{}, fmt.Errorf("container %s already exists", id)
	}
	r.containers[id] = &container{done: make(chan struct{})}
	return podworker.Handle{ID: id, PodUID: pod.UID}, nil
}

func (r *Runtime) get(h podworker.Handle) (*container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[h.ID]
	if !ok {
		return nil, fmt.Errorf("no container %s", h.ID)
	}
	return c, nil
}

// Wait blocks until a signal ended the container.
func (r *Runtime) Wait(ctx context.Context, h podworker.Handle) (podworker.ExitStatus, error) {
	c, err := r.get(h)
	if err != nil {
		return podworker.ExitStatus{}, err
	}
	select {
	case <-c.done:
		return c.status, nil
	case <-ctx.Done():
		return podworker.ExitStatus{}, ctx.Err()
	}
}

// Signal ends the container as a process with the signal's default action would end: the signals
// whose default is to be ignored or to stop (and signal 0, a liveness check) leave it running.
func (r *Runtime) Signal(_ context.Context, h podworker.Handle, sig syscall.Signal) error {
	c, err := r.get(h)
	if err != nil {
		return err
	}
	switch sig {
	case 0, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGWINCH, syscall.SIGCONT, syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-c.done: // already ended
	default:
		// As kubelets report a signalled process: 128+signal.
		c.status = podworker.ExitStatus{ExitCode: 128 + int32(sig), Signal: int32(sig)}
		close(c.done)
	}
	return nil
}

// Remove forgets an ended container; a running one is refused, as runtimes refuse to remove it.
func (r *Runtime) Remove(_ context.Context, h podworker.Handle) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[h.ID]
	if !ok {
		return nil
	}
	select {
	case <-c.done:
		delete(r.containers, h.ID)
		return nil
	default:
		return fmt.Errorf("container %s is running", h.ID)
	}
}

// Running is the number of containers that have not ended.
func (r *Runtime) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.containers {
		select {
		case <-c.done:
		default:
			n++
		}
	}
	return n
}

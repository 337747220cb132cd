// Package nested runs each pod as a Mesos standalone container (its sandbox, see sandbox.go) with the
// pod's containers nested under it, through the agent operator API (LAUNCH_CONTAINER, WAIT_CONTAINER,
// KILL_CONTAINER, REMOVE_CONTAINER), much as Mesos' default executor runs task groups. Isolation and images come from the Mesos agent; on
// the simulator the containers are local processes. It implements podworker.Runtime.
package nested

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/executor/imageconfig"
	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// Config configures a Runtime.
type Config struct {
	// AgentURL is the agent's operator API, http://<MESOS_AGENT_ENDPOINT>/api/v1.
	AgentURL string
	// WorkDir is the agent's --work_dir (GET_FLAGS): a pod's sandbox directory is
	// <WorkDir>/containers/kubemesos-pod-<pod UID>, its containers' <that>/containers/<id>, with
	// their stdout and stderr files.
	WorkDir string
	// FrameworkID is the executor's framework, written into its sandboxes' directories so that the
	// orphan reaper of another framework's executor leaves them alone.
	FrameworkID string
	// Log receives what the runtime does on its own (reaping orphaned sandboxes); logrus'
	// standard logger when nil.
	Log logrus.FieldLogger
	// Env is what environment variables may refer to (IPs, ConfigMaps, Secrets).
	Env PodEnv
	// CallTimeout bounds the response time of every call but WAIT_CONTAINER (default 30 s).
	CallTimeout time.Duration
	// WaitRecovery is how long WAIT_CONTAINER is retried while the agent is unreachable (default
	// 15 min, Mesos' default agent recovery timeout).
	WaitRecovery time.Duration
	// RetryInitial and RetryMax bound the back-off of those retries (defaults 500 ms and 10 s).
	RetryInitial, RetryMax time.Duration
	// Images resolves image configs, from which the command is computed as the kubelet does (nil:
	// no image is resolved, see Command).
	Images ImageConfigs
	// Event, when set, records pod events (an image whose config could not be read).
	Event func(pod *corev1.Pod, eventType, reason, message string)
	// Users is the agent host's user database, where runAsUser is looked up (default OSUsers: the
	// executor runs on the agent host).
	Users HostUsers
	// SandboxCommand is the pod sandbox's argv: `<executor binary> pod-sandbox` (see sandbox.go).
	SandboxCommand []string
	// DNS is what the pods' resolv.conf and hosts files are made of.
	DNS DNS
}

// Runtime launches nested containers. Set the parent with SetParent once SUBSCRIBED arrived.
type Runtime struct {
	cfg    Config
	sender agentcalls.Sender // bounded calls
	waiter agentcalls.Sender // WAIT_CONTAINER, unbounded

	mu       sync.Mutex
	parent   *mesos.ContainerID
	execs    int                // counter for exec container IDs
	prepared map[types.UID]bool // pods whose volumes are materialized
	// caps are the capabilities each started container got, which its exec containers get too: Mesos
	// would give a nested container without them the agent's default set (for root: every one).
	caps map[string]*mesos.LinuxInfo
	// sandboxes are the pods' running sandboxes; sigkilled the containers the executor SIGKILLed.
	sandboxes map[types.UID]*podSandbox
	sigkilled map[string]bool
	// owned are the sandbox IDs this runtime launched and has not removed yet.
	owned    map[string]bool
	reapOnce sync.Once
}

var (
	_ podworker.Runtime    = (*Runtime)(nil)
	_ podworker.Execer     = (*Runtime)(nil)
	_ podworker.PodCleaner = (*Runtime)(nil)
)

// New returns a Runtime talking to the agent at cfg.AgentURL.
func New(cfg Config) *Runtime {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.WaitRecovery <= 0 {
		cfg.WaitRecovery = 15 * time.Minute
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 500 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.Users == nil {
		cfg.Users = OSUsers{}
	}
	mk := func(responseTimeout time.Duration) agentcalls.Sender {
		cli := httpcli.New(
			httpcli.Endpoint(cfg.AgentURL),
			httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
			httpcli.Do(httpcli.With(httpcli.Transport(func(t *http.Transport) {
				// mesos-go's default of 5 s would cut WAIT_CONTAINER, which answers when the container exits.
				t.ResponseHeaderTimeout = responseTimeout
			}))),
		)
		return httpagent.NewSender(cli.Send)
	}
	return &Runtime{cfg: cfg, sender: mk(cfg.CallTimeout), waiter: mk(0), prepared: map[types.UID]bool{}, caps: map[string]*mesos.LinuxInfo{},
		sandboxes: map[types.UID]*podSandbox{}, sigkilled: map[string]bool{}, owned: map[string]bool{}}
}

// WorkDir is the agent's work_dir the runtime places the pods' sandboxes in.
func (r *Runtime) WorkDir() string { return r.cfg.WorkDir }

func (r *Runtime) log() logrus.FieldLogger {
	if r.cfg.Log != nil {
		return r.cfg.Log
	}
	return logrus.StandardLogger()
}

// SetParent takes the executor's container ID (from SUBSCRIBED); the first one starts the reaping of
// the sandboxes a killed executor left (the agent is known to answer then).
func (r *Runtime) SetParent(id mesos.ContainerID) {
	r.mu.Lock()
	first := r.parent == nil
	r.parent = &id
	r.mu.Unlock()
	if first && r.cfg.WorkDir != "" {
		go r.reapOnce.Do(func() { r.reapOrphans(context.Background()) })
	}
}

// ContainerID is the nested container ID of one attempt of a pod's container.
func ContainerID(pod *corev1.Pod, c *corev1.Container, attempt int32) string {
	return fmt.Sprintf("%s-%s-%d", pod.UID, c.Name, attempt)
}

// handleID is the ContainerID of a pod's container: a child of the pod's sandbox.
func (r *Runtime) handleID(h podworker.Handle) (mesos.ContainerID, error) {
	sandbox := SandboxContainerID(h.PodUID)
	return mesos.ContainerID{Value: h.ID, Parent: &sandbox}, nil
}

// Start launches one attempt of a container (LAUNCH_CONTAINER). An attempt that is already running
// (a retried launch) counts as started.
func (r *Runtime) Start(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt int32) (podworker.Handle, error) {
	idValue := ContainerID(pod, c, attempt)
	sandbox := SandboxContainerID(pod.UID)
	id := mesos.ContainerID{Value: idValue, Parent: &sandbox}
	pe := r.cfg.Env
	r.mu.Lock()
	sb := r.sandboxes[pod.UID]
	r.mu.Unlock()
	if sb != nil && sb.podIP != "" {
		pe.PodIP = sb.podIP
	}
	env, err := Environment(ctx, pod, c, pe)
	if err != nil {
		// The kubelet's generateContainerConfig fails the same way (a missing ConfigMap key, …).
		return podworker.Handle{}, &podworker.CreateError{Reason: podworker.ReasonCreateContainerConfigError, Message: err.Error()}
	}
	var (
		image      *v1.Config
		resolveErr error
	)
	if c.Image != "" && r.cfg.Images != nil {
		image, resolveErr = r.cfg.Images.Resolve(ctx, pod, c)
	}
	if err := verifyRunAsNonRoot(pod, c, image, resolveErr); err != nil {
		return podworker.Handle{}, err
	}
	userName, uid, err := RunAs(pod, c, r.cfg.Users)
	if err != nil {
		return podworker.Handle{}, err
	}
	linux, err := LinuxInfo(c, uid)
	if err != nil {
		return podworker.Handle{}, err
	}
	cmd, err := Command(c, env, image)
	if err != nil {
		return podworker.Handle{}, err
	}
	if userName != "" {
		cmd.User = &userName
	}
	if resolveErr != nil && !errors.Is(resolveErr, imageconfig.ErrNoImageProvider) && len(c.Command) == 0 && len(c.Args) > 0 && r.cfg.Event != nil {
		// The agent may still provision the image, but merges args by Mesos' rule.
		r.cfg.Event(pod, corev1.EventTypeWarning, EventInspectFailed, fmt.Sprintf(
			"Failed to inspect image %q: %v; container %s has args but no command, so the agent runs them after the image's Entrypoint, or after its Cmd[0] when it has none (Mesos' docker/runtime rule; Kubernetes would run args[0])",
			c.Image, resolveErr, c.Name))
	}
	vols, err := MesosVolumes(pod, c)
	if err != nil {
		return podworker.Handle{}, err
	}
	if sb != nil {
		vols = append(vols, networkVolumes(c)...)
	}
	if err := r.prepareVolumes(ctx, pod, pe); err != nil {
		return podworker.Handle{}, err
	}
	var pullConfig []byte
	if c.Image != "" {
		pullConfig = dockerConfig(ctx, pod, r.cfg.Env.Lookup)
	}
	// Its own cgroups under its sandbox's (the pod's), as the kubelet nests them.
	call := agentcalls.LaunchContainer(id, cmd, ContainerInfo(c, vols, pullConfig, linux), nil)
	call.LaunchContainer.Resources, call.LaunchContainer.Limits = Resources(c)
	if err := r.call(ctx, call); err != nil {
		if pe := imagePullError(c.Image, err); c.Image != "" && pe != nil {
			return podworker.Handle{}, pe
		}
		if ce := launchRefused(err); ce != nil {
			return podworker.Handle{}, ce
		}
		return podworker.Handle{}, fmt.Errorf("launching nested container %s: %w", idValue, err)
	}
	r.mu.Lock()
	r.caps[idValue] = &mesos.LinuxInfo{BoundingCapabilities: linux.BoundingCapabilities, EffectiveCapabilities: linux.EffectiveCapabilities}
	r.mu.Unlock()
	return podworker.Handle{ID: idValue, LogPath: filepath.Join(ContainerDir(r.cfg.WorkDir, pod.UID, idValue), "stdout"), PodUID: pod.UID}, nil
}

// prepareVolumes materializes the pod's volumes once (retried by the next Start after a failure).
func (r *Runtime) prepareVolumes(ctx context.Context, pod *corev1.Pod, pe PodEnv) error {
	r.mu.Lock()
	done := r.prepared[pod.UID]
	r.mu.Unlock()
	if done || len(pod.Spec.Volumes) == 0 {
		return nil
	}
	if err := PrepareVolumes(ctx, r.cfg.WorkDir, pod, pe); err != nil {
		return fmt.Errorf("preparing volumes of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	r.mu.Lock()
	r.prepared[pod.UID] = true
	r.mu.Unlock()
	return nil
}

// CleanupPod removes the pod's materialized volumes once its containers and sandbox are gone.
func (r *Runtime) CleanupPod(_ context.Context, pod *corev1.Pod) error {
	r.mu.Lock()
	delete(r.prepared, pod.UID)
	delete(r.sandboxes, pod.UID)
	r.mu.Unlock()
	if err := RemoveVolumes(r.cfg.WorkDir, pod); err != nil {
		return fmt.Errorf("removing volumes of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	// REMOVE_CONTAINER of the sandbox deleted its directory; a launch that failed left it (the
	// agent forgets such a container), with the files the executor may have written into it.
	if err := os.RemoveAll(SandboxDir(r.cfg.WorkDir, pod.UID)); err != nil {
		return fmt.Errorf("removing the sandbox directory of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// Wait blocks in WAIT_CONTAINER until the container exits. While the agent is unreachable (it
// restarts; nested containers of a checkpointing framework survive that) the call is retried with
// back-off for up to Config.WaitRecovery; a container the agent does not know (404) is an error.
func (r *Runtime) Wait(ctx context.Context, h podworker.Handle) (podworker.ExitStatus, error) {
	id, err := r.handleID(h)
	if err != nil {
		return podworker.ExitStatus{}, err
	}
	delay, since := r.cfg.RetryInitial, time.Now()
	for {
		w, err := r.waitOnce(ctx, id)
		if err == nil {
			return r.sandboxLimited(ctx, h, exitStatus(w)), nil
		}
		if !retriable(err) || time.Since(since) > r.cfg.WaitRecovery {
			return podworker.ExitStatus{}, fmt.Errorf("waiting for nested container %s: %w", h.ID, err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return podworker.ExitStatus{}, fmt.Errorf("waiting for nested container %s: %w", h.ID, ctx.Err())
		}
		delay = min(2*delay, r.cfg.RetryMax)
	}
}

// retriable tells agent unavailability (transport errors, 503, 429) from real answers.
func retriable(err error) bool {
	var apiErr *apierrors.Error
	if errors.As(err, &apiErr) {
		return apiErr.Temporary()
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func (r *Runtime) waitOnce(ctx context.Context, id mesos.ContainerID) (*agent.Response_WaitContainer, error) {
	return WaitContainer(ctx, r.waiter, id)
}

// WaitContainer sends one WAIT_CONTAINER for id through s (a sender without a deadline: the agent
// answers when the container ends) and returns the agent's answer.
func WaitContainer(ctx context.Context, s agentcalls.Sender, id mesos.ContainerID) (*agent.Response_WaitContainer, error) {
	resp, err := s.Send(ctx, agentcalls.NonStreaming(agentcalls.WaitContainer(id)))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		return nil, err
	}
	var out agent.Response
	if err := resp.Decode(&out); err != nil {
		return nil, fmt.Errorf("decoding WAIT_CONTAINER: %w", err)
	}
	w := out.GetWaitContainer()
	if w == nil {
		return nil, apierrors.CodeMalformedRequest.Error("response without wait_container")
	}
	return w, nil
}

// exitStatus converts Mesos' wait result to the kubelet's view.
func exitStatus(w *agent.Response_WaitContainer) podworker.ExitStatus {
	code, sig := podtranslate.ExitFromWaitStatus(w.GetExitStatus())
	st := podworker.ExitStatus{ExitCode: code, Signal: sig, Message: w.GetMessage()}
	if w.ExitStatus == nil {
		// Mesos destroyed the container without an exit status (for example a launch failure).
		st.ExitCode = 128 + int32(syscall.SIGKILL)
	}
	if w.GetReason() == mesos.REASON_CONTAINER_LIMITATION_MEMORY {
		st.Reason = podtranslate.ReasonOOMKilled
	}
	return st
}

// Signal sends sig to the container (KILL_CONTAINER with signal).
func (r *Runtime) Signal(ctx context.Context, h podworker.Handle, sig syscall.Signal) error {
	id, err := r.handleID(h)
	if err != nil {
		return err
	}
	if sig == syscall.SIGKILL {
		r.mu.Lock()
		r.sigkilled[h.ID] = true
		r.mu.Unlock()
	}
	call := agentcalls.KillContainer(id)
	s := int32(sig)
	call.KillContainer.Signal = &s
	if err := r.call(ctx, call); err != nil {
		return fmt.Errorf("signalling nested container %s with %v: %w", h.ID, sig, err)
	}
	return nil
}

// Remove deletes an exited container's sandbox (REMOVE_CONTAINER); a container the agent does not
// know is already gone.
func (r *Runtime) Remove(ctx context.Context, h podworker.Handle) error {
	id, err := r.handleID(h)
	if err != nil {
		return err
	}
	err = r.call(ctx, agentcalls.RemoveContainer(id))
	if err == nil || apierrors.CodeNotFound.Matches(err) {
		r.mu.Lock()
		delete(r.caps, h.ID)
		delete(r.sigkilled, h.ID)
		r.mu.Unlock()
	}
	if apierrors.CodeNotFound.Matches(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing nested container %s: %w", h.ID, err)
	}
	return nil
}

// Exec runs command in a nested container under the container of h (as Mesos debug containers do:
// it shares the container's namespaces on a real agent) and returns its exit code.
func (r *Runtime) Exec(ctx context.Context, h podworker.Handle, command []string) (int32, error) {
	if len(command) == 0 {
		return 0, errors.New("exec: empty command")
	}
	parent, err := r.handleID(h)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.execs++
	id := mesos.ContainerID{Value: fmt.Sprintf("exec-%d", r.execs), Parent: &parent}
	var ci *mesos.ContainerInfo
	if linux := r.caps[h.ID]; linux != nil {
		// Its own cgroups and resources are refused at the second level; the capabilities are not.
		ci = &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: linux}
	}
	r.mu.Unlock()
	shell := false
	cmd := &mesos.CommandInfo{Shell: &shell, Value: &command[0], Arguments: command}
	if err := r.call(ctx, agentcalls.LaunchContainer(id, cmd, ci, nil)); err != nil {
		return 0, fmt.Errorf("launching exec container in %s: %w", h.ID, err)
	}
	defer func() {
		// Remove with a fresh context: ctx may have expired (probe timeout) while the command ran.
		rctx, cancel := context.WithTimeout(context.Background(), r.cfg.CallTimeout)
		defer cancel()
		_ = r.call(rctx, agentcalls.KillContainer(id))
		_ = r.call(rctx, agentcalls.RemoveContainer(id))
	}()
	resp, err := r.waiter.Send(ctx, agentcalls.NonStreaming(agentcalls.WaitContainer(id)))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		return 0, fmt.Errorf("waiting for exec container in %s: %w", h.ID, err)
	}
	var out agent.Response
	if err := resp.Decode(&out); err != nil {
		return 0, fmt.Errorf("decoding WAIT_CONTAINER of an exec in %s: %w", h.ID, err)
	}
	return exitStatus(out.GetWaitContainer()).ExitCode, nil
}

func (r *Runtime) call(ctx context.Context, call *agent.Call) error {
	resp, err := r.sender.Send(ctx, agentcalls.NonStreaming(call))
	if resp != nil {
		resp.Close()
	}
	return err
}

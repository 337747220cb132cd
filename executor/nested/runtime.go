// Package nested runs each pod's containers as Mesos nested containers one level under the pod's
// sandbox (its sandbox executor's container on a CNI pod network, the kubelet executor's own on the
// host's network, see sandbox.go), through the agent operator API (LAUNCH_CONTAINER, WAIT_CONTAINER,
// KILL_CONTAINER, REMOVE_CONTAINER), much as Mesos' default executor runs task groups. Isolation and
// images come from the Mesos agent; on the simulator the containers are local processes. It
// implements podworker.Runtime.
package nested

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/executor/agentclient"
	"github.com/kubemesos/kubemesos/executor/imageconfig"
	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// Config configures a Runtime.
type Config struct {
	// AgentURL is the agent's operator API, http(s)://<MESOS_AGENT_ENDPOINT>/api/v1 (agentclient.Options.URL).
	AgentURL string
	// Agent is the token and TLS configuration of the calls (package agentclient).
	Agent agentclient.Options
	// Sandbox is the kubelet executor's sandbox directory on the host (MESOS_SANDBOX): the pods'
	// sandbox executors' sandboxes are its siblings (see sandbox.go).
	Sandbox string
	// FrameworkID is the executor's framework: a sandbox executor is looked up among its containers.
	FrameworkID string
	// SandboxTimeout bounds the wait for a pod's sandbox executor (default nested.SandboxTimeout).
	SandboxTimeout time.Duration
	// Log receives what the runtime does on its own; logrus' standard logger when nil.
	Log logrus.FieldLogger
	// Env is what environment variables may refer to (IPs, ConfigMaps, Secrets).
	Env PodEnv
	// CallTimeout bounds the response time of every call but WAIT_CONTAINER and LAUNCH_CONTAINER
	// (default 30 s).
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
	// DNS is what the pods' resolv.conf and hosts files are made of.
	DNS DNS
	// Executable is this binary on the agent host, which the tmpfs helper containers of memory
	// emptyDirs run (default os.Executable(): the executor has no root filesystem of its own).
	Executable string
	// VolumeSyncPeriod is how often the content of a pod's configMap, secret, downwardAPI and
	// projected volumes is brought up to date (SyncVolumes); default 1 min, the kubelet's
	// syncFrequency, on which it re-mounts them.
	VolumeSyncPeriod time.Duration
}

// Runtime launches nested containers. Set the parent with SetParent once SUBSCRIBED arrived.
type Runtime struct {
	cfg    Config
	sender agentcalls.Sender // bounded calls
	waiter agentcalls.Sender // WAIT_CONTAINER and LAUNCH_CONTAINER, unbounded

	sessions Sessions // exec probes and hooks

	mu       sync.Mutex
	parent   *mesos.ContainerID
	prepared map[types.UID]bool // pods whose volumes are materialized
	// caps are the capabilities each started container got, which its exec containers get too: Mesos
	// would give a nested container without them the agent's default set (for root: every one).
	caps map[string]*mesos.LinuxInfo
	// workdirs are the workingDirs of the started containers that have one, where their execs start.
	workdirs map[string]string
	// sandboxes are the pods' ready sandboxes; sigkilled the containers the executor SIGKILLed.
	sandboxes map[types.UID]*podSandbox
	sigkilled map[string]bool
	// parents and dirs are, until CleanupPod, the container the pod's containers are nested under and
	// its sandbox directory (they outlive the sandbox's readiness: removals come after StopPodSandbox).
	parents map[types.UID]mesos.ContainerID
	dirs    map[types.UID]string
	// podDirs are the pods' directories (volumes, network files) on the host.
	podDirs map[types.UID]string
	// volumeSyncs stop the pods' volume sync loops and tell when they ended.
	volumeSyncs map[types.UID]volumeSync
	// volumeLocks serialize the writers of each pod's volumes (its containers' Starts, its sync).
	volumeLocks map[types.UID]*sync.Mutex
}

type volumeSync struct {
	stop context.CancelFunc
	done <-chan struct{}
	// updates carries the pod as the API server has it now (PodUpdated): its labels and annotations
	// are downwardAPI content. Buffered 1; a newer pod replaces one not yet taken.
	updates chan *corev1.Pod
}

// PodUpdated gives the runtime the pod as the API server now has it: its volumes are synced from it
// at once (downwardAPI labels and annotations, as the kubelet's pod sync re-mounts them on a pod
// update), and from then on.
func (r *Runtime) PodUpdated(pod *corev1.Pod) {
	r.mu.Lock()
	vs, ok := r.volumeSyncs[pod.UID]
	r.mu.Unlock()
	if !ok {
		return
	}
	for {
		select {
		case vs.updates <- pod:
			return
		default:
		}
		select {
		case <-vs.updates: // drop the older one
		default:
		}
	}
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
	if cfg.VolumeSyncPeriod <= 0 {
		cfg.VolumeSyncPeriod = time.Minute
	}
	mk := func(responseTimeout time.Duration) agentcalls.Sender {
		cli := cfg.Agent.Client(cfg.AgentURL, httpcli.Transport(func(t *http.Transport) {
			// mesos-go's default of 5 s would cut WAIT_CONTAINER, which answers when the container exits.
			t.ResponseHeaderTimeout = responseTimeout
		}))
		return httpagent.NewSender(cli.Send)
	}
	sender, waiter := mk(cfg.CallTimeout), mk(0)
	return &Runtime{cfg: cfg, sender: sender, waiter: waiter, sessions: Sessions{Bounded: sender, Streamer: waiter, CallTimeout: cfg.CallTimeout, Log: cfg.Log}, prepared: map[types.UID]bool{}, caps: map[string]*mesos.LinuxInfo{}, workdirs: map[string]string{},
		sandboxes: map[types.UID]*podSandbox{}, sigkilled: map[string]bool{}, parents: map[types.UID]mesos.ContainerID{},
		dirs: map[types.UID]string{}, podDirs: map[types.UID]string{}, volumeSyncs: map[types.UID]volumeSync{}, volumeLocks: map[types.UID]*sync.Mutex{}}
}

func (r *Runtime) log() logrus.FieldLogger {
	if r.cfg.Log != nil {
		return r.cfg.Log
	}
	return logrus.StandardLogger()
}

// SetParent takes the executor's container ID (from SUBSCRIBED): the parent of the containers of
// pods on the host's network.
func (r *Runtime) SetParent(id mesos.ContainerID) {
	r.mu.Lock()
	r.parent = &id
	r.mu.Unlock()
}

// ContainerID is the nested container ID of one attempt of a pod's container.
func ContainerID(pod *corev1.Pod, c *corev1.Container, attempt int32) string {
	return fmt.Sprintf("%s-%s-%d", pod.UID, c.Name, attempt)
}

// handleID is the ContainerID of a pod's container: a child of the pod's sandbox.
func (r *Runtime) handleID(h podworker.Handle) (mesos.ContainerID, error) {
	r.mu.Lock()
	parent, ok := r.parents[h.PodUID]
	r.mu.Unlock()
	if !ok {
		return mesos.ContainerID{}, fmt.Errorf("container %s: its pod %s has no sandbox", h.ID, h.PodUID)
	}
	return mesos.ContainerID{Value: h.ID, Parent: &parent}, nil
}

// Start launches one attempt of a container (LAUNCH_CONTAINER). An attempt that is already running
// (a retried launch) counts as started.
func (r *Runtime) Start(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt int32) (podworker.Handle, error) {
	idValue := ContainerID(pod, c, attempt)
	sb := r.sandboxOf(pod.UID)
	if sb == nil {
		return podworker.Handle{}, fmt.Errorf("launching nested container %s: the pod has no ready sandbox", idValue)
	}
	parent := sb.parent
	id := mesos.ContainerID{Value: idValue, Parent: &parent}
	pe := r.cfg.Env
	if sb.podIP != "" {
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
	userName, uid, err := RunAs(pod, withImageUser(pod, c, image), r.cfg.Users)
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
	vols, err := MesosVolumes(pod, c, sb.prefix)
	if err != nil {
		return podworker.Handle{}, err
	}
	if err := PrepareHostPaths(pod, c); err != nil {
		// The kubelet keeps such a container ContainerCreating (its volume is not mounted) and retries.
		return podworker.Handle{}, &podworker.CreateError{Reason: podworker.ReasonContainerCreating, Message: err.Error()}
	}
	vols = append(vols, networkVolumes(c, sb.prefix)...)
	if err := r.prepareVolumes(ctx, pod, sb.filesDir(), pe); err != nil {
		return podworker.Handle{}, err
	}
	var termination string
	if c.Image != "" {
		// Only into a root filesystem, where Mesos' launcher makes the mount point; a container on the
		// host's filesystem would need the path (/dev/termination-log) to exist on the host.
		tv, host, err := TerminationMessageVolume(sb.filesDir(), sb.prefix, c, idValue)
		if err != nil {
			return podworker.Handle{}, err
		}
		vols, termination = append(vols, tv...), host
	}
	var pullConfig []byte
	if c.Image != "" {
		pullConfig = dockerConfig(ctx, pod, r.cfg.Env.Lookup)
	}
	// Its own cgroups under its parent's (the pod's, with a sandbox executor), as the kubelet nests them.
	call := agentcalls.LaunchContainer(id, cmd, ContainerInfo(c, vols, pullConfig, linux), nil)
	call.LaunchContainer.Resources, call.LaunchContainer.Limits = Resources(c)
	if err := r.launch(ctx, call); err != nil {
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
	if c.WorkingDir != "" {
		r.workdirs[idValue] = c.WorkingDir
	}
	r.mu.Unlock()
	out := filepath.Join(sb.dir, "containers", idValue)
	return podworker.Handle{ID: idValue, LogPath: filepath.Join(out, "stdout"), StderrPath: filepath.Join(out, "stderr"),
		TerminationMessagePath: termination, PodUID: pod.UID}, nil
}

// prepareVolumes materializes the pod's volumes once (retried by the next Start after a failure).
// The pod's containers start concurrently: the first prepares, the others wait for it.
func (r *Runtime) prepareVolumes(ctx context.Context, pod *corev1.Pod, podDir string, pe PodEnv) error {
	r.mu.Lock()
	r.podDirs[pod.UID] = podDir
	vmu := r.volumeLocks[pod.UID]
	if vmu == nil {
		vmu = &sync.Mutex{}
		r.volumeLocks[pod.UID] = vmu
	}
	r.mu.Unlock()
	vmu.Lock()
	defer vmu.Unlock()
	r.mu.Lock()
	done := r.prepared[pod.UID]
	r.mu.Unlock()
	if done || len(pod.Spec.Volumes) == 0 {
		return nil
	}
	if err := PrepareVolumes(ctx, podDir, pod, pe); err != nil {
		return fmt.Errorf("preparing volumes of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if err := r.mountTmpfsVolumes(ctx, pod, podDir, pe); err != nil {
		return err
	}
	r.mu.Lock()
	r.prepared[pod.UID] = true
	if _, running := r.volumeSyncs[pod.UID]; !running && NeedsSync(pod) {
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		updates := make(chan *corev1.Pod, 1)
		r.volumeSyncs[pod.UID] = volumeSync{stop: stop, done: done, updates: updates}
		go r.syncVolumesLoop(ctx, done, updates, vmu, pod.DeepCopy(), podDir, pe)
	}
	r.mu.Unlock()
	return nil
}

// syncVolumesLoop rewrites the pod's API-backed volumes every VolumeSyncPeriod until ctx ends, as
// the kubelet's pod sync re-mounts them (the e2e specs "optional updates should be reflected in
// volume" give it the ConfigMap cache's TTL plus the sync period).
func (r *Runtime) syncVolumesLoop(ctx context.Context, done chan<- struct{}, updates <-chan *corev1.Pod, vmu *sync.Mutex, pod *corev1.Pod, podDir string, pe PodEnv) {
	defer close(done)
	t := time.NewTicker(r.cfg.VolumeSyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case p := <-updates:
			// Only what a pod update may change; the volumes stay those the pod started with.
			np := pod.DeepCopy()
			np.Labels, np.Annotations = p.Labels, p.Annotations
			if apiequality.Semantic.DeepEqual(np.ObjectMeta, pod.ObjectMeta) {
				continue
			}
			pod = np
		}
		sctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
		vmu.Lock()
		err := SyncVolumes(sctx, podDir, pod, pe)
		vmu.Unlock()
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log().WithError(err).WithField("pod", pod.Namespace+"/"+pod.Name).Warn("updating the pod's volumes")
		}
	}
}

// CleanupPod removes the pod's materialized volumes once its containers are gone, and on the host's
// network the pod's directory in the kubelet executor's sandbox (a sandbox executor's goes with it).
func (r *Runtime) CleanupPod(ctx context.Context, pod *corev1.Pod) error {
	r.mu.Lock()
	// On the host's network the pod's directory is pods/<uid> in the parent's sandbox, not the sandbox.
	podDir, hostNetwork := r.podDirs[pod.UID], r.podDirs[pod.UID] != r.dirs[pod.UID]
	vs, syncing := r.volumeSyncs[pod.UID]
	delete(r.volumeSyncs, pod.UID)
	delete(r.volumeLocks, pod.UID)
	delete(r.prepared, pod.UID)
	delete(r.sandboxes, pod.UID)
	delete(r.parents, pod.UID)
	delete(r.dirs, pod.UID)
	delete(r.podDirs, pod.UID)
	r.mu.Unlock()
	if syncing {
		// Before the volumes go: a sync in flight would write them again.
		vs.stop()
		<-vs.done
	}
	if podDir == "" {
		return nil
	}
	// Ended containers keep no reference: the tmpfs goes (and RemoveVolumes could not remove its
	// mount point).
	// The other volumes go even when a tmpfs could not be unmounted.
	if err := errors.Join(r.unmountTmpfsVolumes(ctx, pod, podDir), RemoveVolumes(podDir)); err != nil {
		return fmt.Errorf("removing volumes of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if hostNetwork {
		if err := os.RemoveAll(podDir); err != nil {
			return fmt.Errorf("removing the directory of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
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
		delete(r.workdirs, h.ID)
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

// Exec runs command inside the container of h, as the kubelet's exec probes and hooks run (CRI
// ExecSync): a DEBUG container of a LAUNCH_NESTED_CONTAINER_SESSION under it (see Sessions), so the
// command sees the container's root filesystem and volumes, its environment, working directory, user
// and namespaces, with the container's capabilities. Its output goes to stdout and stderr. It returns
// the command's exit code; an error means it could not be run to its end (ctx's end kills it).
func (r *Runtime) Exec(ctx context.Context, h podworker.Handle, command []string, stdout, stderr io.Writer) (int32, error) {
	if len(command) == 0 {
		return 0, errors.New("exec: empty command")
	}
	parent, err := r.handleID(h)
	if err != nil {
		return 0, err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("generating an exec container ID: %w", err)
	}
	// Random, not counted: a restarted executor must not reuse a leftover session's ID.
	id := mesos.ContainerID{Value: "exec-" + hex.EncodeToString(b[:]), Parent: &parent}
	command, ci := r.ExecIn(h.ID, command)
	code, err := r.sessions.Run(ctx, SessionRequest{ID: id, Command: command, Container: ci, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", h.ID, err)
	}
	return code, nil
}

// ExecIn is how an exec session (a probe's, a hook's, kubectl exec's) under the container with ID
// value containerID runs command as the kubelet's exec would: the command, changing first into the
// container's workingDir if it has one, and the session's ContainerInfo with the container's
// capabilities.
func (r *Runtime) ExecIn(containerID string, command []string) ([]string, *mesos.ContainerInfo) {
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Mesos would give a session without them the agent's default set (for root: every capability).
	ci.LinuxInfo = r.caps[containerID]
	if dir := r.workdirs[containerID]; dir != "" {
		// A session starts in its parent's Mesos working directory (the image's WorkingDir or the
		// sandbox), not in the workingDir the container's sh changed into (see Command); the
		// kubelet's exec starts in the container's.
		command = append([]string{"/bin/sh", "-c", `cd "$1" && shift && exec "$@"`, "sh", dir}, command...)
	}
	return command, ci
}

func (r *Runtime) call(ctx context.Context, call *agent.Call) error {
	return send(ctx, r.sender, call)
}

// launch sends a LAUNCH_CONTAINER without a bound on its response, as Mesos' default executor posts
// it: the agent answers once the container runs, after its image is pulled and its isolators are
// prepared, which takes as long as it takes. A launch given up on would go on at the agent while the
// next attempt started beside it.
func (r *Runtime) launch(ctx context.Context, call *agent.Call) error {
	return send(ctx, r.waiter, call)
}

func send(ctx context.Context, s agentcalls.Sender, call *agent.Call) error {
	resp, err := s.Send(ctx, agentcalls.NonStreaming(call))
	if resp != nil {
		resp.Close()
	}
	return err
}

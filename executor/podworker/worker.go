// Package podworker runs one pod the way the kubelet does: init containers in order, then the regular
// containers, restarts per restartPolicy with the kubelet's crash-loop back-off, graceful termination
// (SIGTERM, SIGKILL after the grace period), and the pod status (phase, conditions, container states)
// computed like the kubelet computes it. Containers run through the small Runtime interface, so the
// lifecycle is tested without processes; the lifecycle itself is a pure state machine (core) driven by
// one goroutine per pod (Worker).
package podworker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// ReasonContainerStatusUnknown is the termination reason when the runtime lost track of a container.
const ReasonContainerStatusUnknown = "ContainerStatusUnknown"

// Status is what a Worker reports after every change of its pod.
type Status struct {
	// Seq increases with every report of one worker; a newer report supersedes an older one.
	Seq uint64
	// Pod is the pod the worker runs (not to be modified), with the ephemeral containers, the
	// activeDeadlineSeconds and the conditions of its latest Update.
	Pod *corev1.Pod
	// PodStatus is the status the kubelet would write.
	PodStatus corev1.PodStatus
	// AllStarted: every regular container has run at least once (the Mesos task is RUNNING).
	AllStarted bool
	// Done: nothing runs and nothing will be started again; this is the worker's last report.
	Done bool
	// Killed: Kill was called; a Done report then means the pod was terminated on request.
	Killed bool
}

// Config holds a Worker's collaborators.
type Config struct {
	// Runtime runs the containers (required).
	Runtime Runtime
	// Clock drives back-off and grace periods; clock.RealClock{} when nil.
	Clock clock.Clock
	// HostIP and PodIP are written to the pod status (the agent's IP). A sandbox on a pod network
	// (SandboxRuntime) replaces PodIP with its own; PodIP is empty until then for such a pod.
	HostIP, PodIP string
	// PodNetwork is the CNI network of the pod's sandbox (empty: the host's network) and
	// SandboxExecutor the ExecutorID of the sandbox executor holding it; they matter only with a
	// SandboxRuntime.
	PodNetwork, SandboxExecutor string
	// OnStatus receives every changed status, in order, from the worker's goroutine (required). It
	// must not block for long.
	OnStatus func(Status)
	// Log is the logger; logrus.StandardLogger() when nil.
	Log logrus.FieldLogger
	// Prober runs startup, readiness and liveness probes; a NetProber for PodIP when nil.
	Prober Prober
	// Event, when set, receives the kubelet's pod events (Started, Killing, BackOff, Unhealthy,
	// Failed) from the worker's goroutines; it must not block for long.
	Event func(pod *corev1.Pod, eventType, reason, message string)
	// NodeEvent, when set, receives events about the node the pod runs on (a node that cannot
	// provision images: ImagePullError.NodeMessage); it must not block for long.
	NodeEvent func(eventType, reason, message string)
	// Admit, when set, is the kubelet's pod admission: a reason (and message) rejects the pod before
	// anything of it starts (Reject).
	Admit func(*corev1.Pod) (reason, message string)
}

// Event reasons, as the kubelet records them.
const (
	EventStarted   = "Started"
	EventKilling   = "Killing"
	EventBackOff   = "BackOff"
	EventUnhealthy = "Unhealthy"
	// EventProbeWarning is the kubelet's ContainerProbeWarning.
	EventProbeWarning = "ProbeWarning"
	EventFailed       = "Failed"
	// EventFailedPostStartHook: the postStart hook failed and the container is stopped.
	EventFailedPostStartHook = "FailedPostStartHook"
	// EventFailedPreStopHook: the preStop hook failed; the container is stopped all the same.
	EventFailedPreStopHook = "FailedPreStopHook"
)

type eventKind int

const (
	evStarted eventKind = iota
	evStartFailed
	evNotCreated // Start created nothing: an ImagePullError or a CreateError
	evExited
	evProbe
	evSandbox     // RunPodSandbox returned
	evPreStopDone // the preStop hook of a sidecar stopped with its pod returned
)

type event struct {
	kind    eventKind
	index   int
	attempt int32 // counted from 1
	handle  Handle
	exit    ExitStatus
	err     error
	probe   probeKind
	ok      bool
	msg     string
	pull    *ImagePullError
	create  *CreateError
	sandbox Sandbox
}

// Worker runs one pod. Create it with New, call Run in a goroutine, Kill to terminate the pod.
type Worker struct {
	pod   *corev1.Pod
	cfg   Config
	log   logrus.FieldLogger
	kills chan struct{}
	evs   chan event

	mu          sync.Mutex
	pendingKill *time.Duration
	pendingPod  *corev1.Pod // the latest Update, not yet taken
	updates     chan struct{}
	done        chan struct{}

	seq    uint64
	last   *Status
	killed bool
	// reconcile: the API server's copy of the pod disagrees with the last status reported, which is
	// then reported again even though unchanged.
	reconcile bool
	// netProber is the default prober, whose host becomes the sandbox's pod IP.
	netProber *NetProber
}

// New validates cfg and returns a worker for pod (which the worker keeps and never modifies).
func New(pod *corev1.Pod, cfg Config) (*Worker, error) {
	if pod == nil {
		return nil, errors.New("podworker: nil pod")
	}
	if cfg.Runtime == nil || cfg.OnStatus == nil {
		return nil, errors.New("podworker: Runtime and OnStatus are required")
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, fmt.Errorf("podworker: pod %s/%s has no containers", pod.Namespace, pod.Name)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	var netProber *NetProber
	if cfg.Prober == nil {
		netProber = &NetProber{Host: cfg.PodIP, Runtime: cfg.Runtime}
		cfg.Prober = netProber
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Worker{
		pod:     pod,
		cfg:     cfg,
		log:     log.WithFields(logrus.Fields{"pod": pod.Namespace + "/" + pod.Name, "podUID": pod.UID}),
		kills:   make(chan struct{}, 1),
		updates: make(chan struct{}, 1),
		evs:     make(chan event),
		done:    make(chan struct{}),

		netProber: netProber,
	}, nil
}

// GracePeriod returns the pod's terminationGracePeriodSeconds (DefaultGracePeriod when unset).
func GracePeriod(pod *corev1.Pod) time.Duration {
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
		return time.Duration(*s) * time.Second
	}
	return DefaultGracePeriod
}

// Kill asks the worker to terminate the pod: SIGTERM to its containers now, SIGKILL to what still runs
// after grace. It never blocks; a later Kill may shorten the grace period, never extend it.
func (w *Worker) Kill(grace time.Duration) {
	w.mu.Lock()
	if w.pendingKill == nil || grace < *w.pendingKill {
		w.pendingKill = &grace
	}
	w.mu.Unlock()
	select {
	case w.kills <- struct{}{}:
	default:
	}
}

// reject ends a pod its admission refused as the kubelet's rejectPod: a Warning event with the
// reason, and the pod Failed with it and "Pod was rejected: <message>", nothing started.
func (w *Worker) reject(reason, msg string) {
	w.log.WithFields(logrus.Fields{"reason": reason, "message": msg}).Warn("pod rejected")
	w.event(corev1.EventTypeWarning, reason, msg)
	w.seq++
	st := Status{Pod: w.pod, Seq: w.seq, Done: true, PodStatus: corev1.PodStatus{
		QOSClass: w.pod.Status.QOSClass, Phase: corev1.PodFailed, Reason: reason, Message: "Pod was rejected: " + msg,
	}}
	w.last = &st
	w.cfg.OnStatus(st)
}

// Update gives the worker the pod as the API server now has it, as the kubelet's pod manager hands
// its pod workers every update. Of a running pod's spec only activeDeadlineSeconds may change (the
// API's ValidatePodUpdate) and ephemeral containers be added (its ephemeralcontainers subresource);
// the worker starts those, enforces the new deadline from the pod's start, and derives
// Ready from the conditions of the pod's readiness gates in its status. It never blocks; a later
// Update replaces one not yet taken.
func (w *Worker) Update(pod *corev1.Pod) {
	if pod == nil || pod.UID != w.pod.UID {
		return
	}
	w.mu.Lock()
	w.pendingPod = pod
	w.mu.Unlock()
	select {
	case w.updates <- struct{}{}:
	default:
	}
}

func (w *Worker) takeUpdate() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pendingPod
	w.pendingPod = nil
	return p
}

func (w *Worker) takeKill() (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pendingKill == nil {
		return 0, false
	}
	g := *w.pendingKill
	w.pendingKill = nil
	return g, true
}

// Done is closed when Run has returned.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Run runs the pod until it is done (its last Status has Done set) and returns nil, or until ctx is
// cancelled (containers are then left to the runtime) and returns ctx.Err(). It joins every goroutine
// it started.
func (w *Worker) Run(ctx context.Context) error {
	defer close(w.done)
	if w.cfg.Admit != nil {
		if reason, msg := w.cfg.Admit(w.pod); reason != "" {
			w.reject(reason, msg)
			return nil
		}
	}
	inner, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	clk := w.cfg.Clock
	c := newCore(w.pod, w.cfg.HostIP, w.cfg.PodIP, clk.Now())
	sandboxes, withSandbox := w.cfg.Runtime.(SandboxRuntime)
	// A kill while the sandbox is being readied stops that (its sandbox executor may never come).
	sbCtx, stopSandbox := context.WithCancel(inner)
	defer stopSandbox()
	if withSandbox {
		c.sandboxStarting()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sb, err := sandboxes.RunPodSandbox(sbCtx, w.pod, SandboxSpec{Network: w.cfg.PodNetwork, Executor: w.cfg.SandboxExecutor})
			select {
			case w.evs <- event{kind: evSandbox, sandbox: sb, err: err}:
			case <-inner.Done():
			}
		}()
	}
	var handles []Handle
	probes := map[int]context.CancelFunc{} // probes of each container's running attempt
	stopProbes := func(i int) {
		if cancel := probes[i]; cancel != nil {
			cancel()
			delete(probes, i)
		}
	}
	// track registers cancel to be called when container i's attempt ends.
	track := func(i int, cancel context.CancelFunc) {
		prev := probes[i]
		if prev == nil {
			prev = func() {}
		}
		probes[i] = func() { prev(); cancel() }
	}
	startProbes := func(i int, attempt int32, h Handle, kinds ...probeKind) {
		ct := c.containers[i]
		for _, kind := range kinds {
			p := [...]*corev1.Probe{ct.spec.StartupProbe, ct.spec.ReadinessProbe, ct.spec.LivenessProbe}[kind]
			if p == nil || (ct.init && !ct.sidecar) {
				continue
			}
			pctx, cancel := context.WithCancel(inner)
			track(i, cancel)
			wg.Add(1)
			go func(kind probeKind, spec *corev1.Container) {
				defer wg.Done()
				probeLoop(pctx, clk, w.cfg.Prober, kind, w.pod, spec, h, p, func(ok bool, msg string) {
					select {
					case w.evs <- event{kind: evProbe, index: i, attempt: attempt, probe: kind, ok: ok, msg: msg}:
					case <-pctx.Done():
					}
				}, func(output string) {
					// The kubelet's prober: Warning ProbeWarning "<Kind> probe warning: <output>".
					w.event(corev1.EventTypeWarning, EventProbeWarning, fmt.Sprintf("%s probe warning: %s", titled(kind), output))
				})
			}(kind, ct.spec)
		}
	}
	for {
		now := clk.Now()
		acts, wake := c.next(now)
		for _, a := range acts {
			ct := c.containers[a.index]
			switch a.kind {
			case actStart:
				w.log.WithFields(logrus.Fields{"container": ct.spec.Name, "attempt": ct.attempts - 1}).Info("starting container")
				wg.Add(1)
				go func(i int, spec *corev1.Container, attempt int32) {
					defer wg.Done()
					w.attempt(inner, i, spec, attempt)
				}(a.index, ct.spec, ct.attempts-1)
			case actStopBegin:
				w.event(corev1.EventTypeNormal, EventKilling, "Stopping container "+ct.spec.Name)
				if ct.preStopping {
					hctx, cancel := context.WithCancel(inner)
					track(a.index, cancel)
					wg.Add(1)
					go func(i int, attempt int32, spec *corev1.Container, h Handle, hook *corev1.LifecycleHandler) {
						defer wg.Done()
						if err := w.runHook(hctx, spec, h, hook); err != nil {
							w.preStopFailed(spec, err)
						}
						select {
						case w.evs <- event{kind: evPreStopDone, index: i, attempt: attempt}:
						case <-hctx.Done():
						}
					}(a.index, ct.attempts, ct.spec, ct.handle, ct.spec.Lifecycle.PreStop)
				}
			case actSignal:
				if a.begun {
					// Its Killing event and preStop hook came with actStopBegin.
					w.signalQuietly(inner, ct.spec, ct.handle, a.signal)
					continue
				}
				if a.signal == syscall.SIGTERM && ct.spec.Lifecycle != nil && ct.spec.Lifecycle.PreStop != nil {
					// The kubelet runs preStop, then sends SIGTERM; SIGKILL still comes at the deadline.
					hctx, cancel := context.WithCancel(inner)
					track(a.index, cancel)
					wg.Add(1)
					go func(spec *corev1.Container, h Handle, hook *corev1.LifecycleHandler) {
						defer wg.Done()
						if err := w.runHook(hctx, spec, h, hook); err != nil {
							w.preStopFailed(spec, err)
						}
						if hctx.Err() == nil {
							w.signal(hctx, spec, h, syscall.SIGTERM)
						}
					}(ct.spec, ct.handle, ct.spec.Lifecycle.PreStop)
					continue
				}
				w.signal(inner, ct.spec, ct.handle, a.signal)
			case actPullBackOff:
				// The kubelet's image manager records BackOff; its startContainer then fails with
				// ErrImagePullBackOff.
				w.event(corev1.EventTypeNormal, EventBackOff, fmt.Sprintf("Back-off pulling image %q", ct.spec.Image))
				w.event(corev1.EventTypeWarning, EventFailed, "Error: "+ReasonImagePullBackOff)
			}
		}
		done := c.done()
		if done {
			for _, h := range handles {
				if err := w.cfg.Runtime.Remove(inner, h); err != nil {
					w.log.WithError(err).WithField("containerID", h.ID).Warn("removing container failed")
				}
			}
			if withSandbox {
				// After its containers, as the kubelet's KillPod: the agent detaches the network then.
				if err := sandboxes.StopPodSandbox(inner, w.pod); err != nil {
					w.log.WithError(err).Warn("stopping the pod sandbox failed")
				}
			}
			if pc, ok := w.cfg.Runtime.(PodCleaner); ok {
				if err := pc.CleanupPod(inner, w.pod); err != nil {
					w.log.WithError(err).Warn("cleaning up the pod failed")
				}
			}
		}
		w.emit(c, now, done)
		if done {
			w.log.WithField("phase", c.phase()).Info("pod worker done")
			return nil
		}

		var timerC <-chan time.Time
		var timer clock.Timer
		if !wake.IsZero() {
			timer = clk.NewTimer(wake.Sub(now))
			timerC = timer.C()
		}
		select {
		case ev := <-w.evs:
			now = clk.Now()
			ct := c.containers[ev.index]
			switch ev.kind {
			case evSandbox:
				if ev.err != nil && c.terminating && sbCtx.Err() != nil {
					w.log.Info("pod killed before its sandbox was ready")
					c.sandboxAbandoned()
					break
				}
				if ev.err != nil {
					w.log.WithError(ev.err).Warn("the pod sandbox could not be created")
					w.event(corev1.EventTypeWarning, EventFailedCreatePodSandBox, SandboxFailureMessage(ev.err.Error()))
					c.sandboxFailed(ev.err.Error())
					break
				}
				w.log.WithField("podIP", ev.sandbox.PodIP).Info("pod sandbox running")
				if w.netProber != nil && ev.sandbox.PodIP != "" {
					// Before any container starts, so before any probe reads it.
					w.netProber.Host = ev.sandbox.PodIP
				}
				c.sandboxReady(ev.sandbox.PodIP)
			case evStarted:
				handles = append(handles, ev.handle)
				c.started(ev.index, ev.handle, now)
				w.event(corev1.EventTypeNormal, EventStarted, "Started container "+ct.spec.Name)
				if lc := ct.spec.Lifecycle; lc != nil && lc.PostStart != nil {
					hctx, cancel := context.WithCancel(inner)
					track(ev.index, cancel)
					wg.Add(1)
					go func(i int, attempt int32, spec *corev1.Container, h Handle, hook *corev1.LifecycleHandler) {
						defer wg.Done()
						// Its end matters either way: a sidecar's start is only complete then.
						err := w.runHook(hctx, spec, h, hook)
						if hctx.Err() != nil {
							return
						}
						ev := event{kind: evProbe, index: i, attempt: attempt, probe: hookPostStart, ok: err == nil}
						if err != nil {
							ev.msg = err.Error()
						}
						select {
						case w.evs <- ev:
						case <-hctx.Done():
						}
					}(ev.index, ev.attempt, ct.spec, ev.handle, lc.PostStart)
				}
				if ct.spec.StartupProbe != nil {
					startProbes(ev.index, ev.attempt, ev.handle, probeStartup)
				} else {
					startProbes(ev.index, ev.attempt, ev.handle, probeReadiness, probeLiveness)
				}
			case evStartFailed:
				w.log.WithError(ev.err).WithField("container", ct.spec.Name).Warn("container failed to start")
				w.event(corev1.EventTypeWarning, EventFailed, "Error: "+ev.err.Error())
				c.startFailed(ev.index, ev.err, now)
				if c.shouldRestart(ct) && !c.terminating {
					w.event(corev1.EventTypeWarning, EventBackOff, "Back-off restarting failed container "+ct.spec.Name)
				}
			case evNotCreated:
				log := w.log.WithField("container", ct.spec.Name)
				if p := ev.pull; p != nil {
					log.WithFields(logrus.Fields{"image": ct.spec.Image, "error": p.Message}).Warn("pulling the image failed")
					w.event(corev1.EventTypeWarning, EventFailed, fmt.Sprintf("Failed to pull image %q: %s", ct.spec.Image, p.Message))
					w.event(corev1.EventTypeWarning, EventFailed, "Error: "+ReasonErrImagePull)
					if p.NodeMessage != "" && w.cfg.NodeEvent != nil {
						w.cfg.NodeEvent(corev1.EventTypeWarning, EventImageProviderMissing, p.NodeMessage)
					}
					c.notCreated(ev.index, ReasonErrImagePull, p.Message, true, now)
					break
				}
				log.WithFields(logrus.Fields{"reason": ev.create.Reason, "error": ev.create.Message}).Warn("container could not be created")
				w.event(corev1.EventTypeWarning, EventFailed, "Error: "+ev.create.Message)
				c.notCreated(ev.index, ev.create.Reason, ev.create.Message, false, now)
			case evPreStopDone:
				c.preStopDone(ev.index, ev.attempt)
			case evExited:
				stopProbes(ev.index)
				w.log.WithFields(logrus.Fields{"container": ct.spec.Name, "exitCode": ev.exit.ExitCode}).Info("container exited")
				c.exited(ev.index, ev.exit, now)
				if ev.exit.ExitCode != 0 && c.shouldRestart(ct) && !c.terminating && !c.terminal() {
					w.event(corev1.EventTypeWarning, EventBackOff, "Back-off restarting failed container "+ct.spec.Name)
				}
			case evProbe:
				if ev.attempt != ct.attempts || !ct.running {
					break
				}
				log := w.log.WithFields(logrus.Fields{"container": ct.spec.Name, "probe": ev.probe, "ok": ev.ok})
				switch {
				case ev.ok:
					log.Debug("probe result")
				case ev.probe == hookPostStart:
					log.WithField("error", ev.msg).Warn("postStart hook failed")
					// The kubelet's text, without the hook's message: "so that secrets won't leak from the server".
					w.event(corev1.EventTypeWarning, EventFailedPostStartHook, "PostStartHook failed")
				default:
					log.WithField("error", ev.msg).Info("probe failed")
					w.event(corev1.EventTypeWarning, EventUnhealthy, fmt.Sprintf("%s probe failed: %s", titled(ev.probe), ev.msg))
				}
				c.probed(ev.index, ev.attempt, ev.probe, ev.ok, now)
				if ev.probe == probeStartup && ev.ok {
					startProbes(ev.index, ev.attempt, ct.handle, probeReadiness, probeLiveness)
				}
			}
		case <-w.kills:
			if grace, ok := w.takeKill(); ok {
				w.killed = true
				w.log.WithField("grace", grace).Info("terminating pod")
				c.kill(grace, clk.Now())
				if c.sandbox == sbPending {
					stopSandbox()
				}
			}
		case <-w.updates:
			if p := w.takeUpdate(); p != nil {
				c.update(p.Spec.ActiveDeadlineSeconds, p.Status.Conditions)
				c.addEphemeral(p.Spec.EphemeralContainers)
				w.reconcile = w.reconcile || w.needsReconcile(p.Status)
			}
		case <-timerC:
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return ctx.Err()
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (w *Worker) signal(ctx context.Context, c *corev1.Container, h Handle, sig syscall.Signal) {
	if sig == syscall.SIGTERM {
		w.event(corev1.EventTypeNormal, EventKilling, "Stopping container "+c.Name)
	}
	w.signalQuietly(ctx, c, h, sig)
}

// signalQuietly signals without the Killing event.
func (w *Worker) signalQuietly(ctx context.Context, c *corev1.Container, h Handle, sig syscall.Signal) {
	w.log.WithFields(logrus.Fields{"container": c.Name, "signal": sig}).Info("signalling container")
	if err := w.cfg.Runtime.Signal(ctx, h, sig); err != nil {
		w.log.WithError(err).WithField("container", c.Name).Warn("signalling container failed")
	}
}

// preStopFailed logs a failed preStop hook with its message and records the kubelet's event, which
// leaves the message out "so that secrets won't leak from the server" (executePreStopHook).
func (w *Worker) preStopFailed(c *corev1.Container, err error) {
	w.log.WithError(err).WithField("container", c.Name).Warn("preStop hook failed")
	w.event(corev1.EventTypeWarning, EventFailedPreStopHook, "PreStopHook failed")
}

// runHook runs a lifecycle hook handler (exec, httpGet, tcpSocket through the Prober; sleep on the
// clock). A failed preStop hook only gets logged: the kubelet goes on terminating the container.
func (w *Worker) runHook(ctx context.Context, c *corev1.Container, h Handle, hook *corev1.LifecycleHandler) error {
	if hook.Sleep != nil {
		t := w.cfg.Clock.NewTimer(time.Duration(hook.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C():
		case <-ctx.Done():
		}
		return nil
	}
	ph := corev1.ProbeHandler{Exec: hook.Exec, HTTPGet: hook.HTTPGet, TCPSocket: hook.TCPSocket}
	if err := w.cfg.Prober.Probe(ctx, w.pod, c, h, &ph); err != nil {
		if pw := (*ProbeWarning)(nil); errors.As(err, &pw) {
			return nil // a redirect answer: the kubelet's HTTP hook handler only fails on transport errors
		}
		if ee := (*ExecError)(nil); hook.Exec != nil && errors.As(err, &ee) {
			// The kubelet's handlerRunner.Run (pkg/kubelet/lifecycle/handlers.go), format.Pod's name.
			return fmt.Errorf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %s, message: %q",
				hook.Exec.Command, c.Name, fmt.Sprintf("%s_%s(%s)", w.pod.Name, w.pod.Namespace, w.pod.UID), ee.runError(), ee.Output)
		}
		return fmt.Errorf("hook of container %s: %w", c.Name, err)
	}
	return nil
}

// attempt starts one container attempt and waits for it to end, reporting both to Run.
func (w *Worker) attempt(ctx context.Context, i int, spec *corev1.Container, attempt int32) {
	post := func(ev event) {
		select {
		case w.evs <- ev:
		case <-ctx.Done():
		}
	}
	h, err := w.cfg.Runtime.Start(ctx, w.pod, spec, attempt)
	var (
		pullErr   *ImagePullError
		createErr *CreateError
	)
	switch {
	case errors.As(err, &pullErr):
		post(event{kind: evNotCreated, index: i, pull: pullErr})
		return
	case errors.As(err, &createErr):
		post(event{kind: evNotCreated, index: i, create: createErr})
		return
	case err != nil:
		post(event{kind: evStartFailed, index: i, err: fmt.Errorf("starting container %s: %w", spec.Name, err)})
		return
	}
	post(event{kind: evStarted, index: i, attempt: attempt + 1, handle: h})
	st, err := w.cfg.Runtime.Wait(ctx, h)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		st = ExitStatus{ExitCode: 128 + int32(syscall.SIGKILL), Reason: ReasonContainerStatusUnknown,
			Message: fmt.Sprintf("waiting for container %s: %v", h.ID, err)}
	} else {
		st = withTerminationMessage(spec, h, st)
	}
	post(event{kind: evExited, index: i, exit: st})
}

func (w *Worker) event(eventType, reason, message string) {
	if w.cfg.Event != nil {
		w.cfg.Event(w.pod, eventType, reason, message)
	}
}

func titled(k probeKind) string {
	return [...]string{"Startup", "Readiness", "Liveness"}[k]
}

// emit reports the status if it changed since the last report.
func (w *Worker) emit(c *core, now time.Time, done bool) {
	st := Status{
		Pod:        c.pod, // the worker's pod with the ephemeral containers added since
		PodStatus:  c.status(now),
		AllStarted: c.allStarted(),
		Done:       done,
		Killed:     w.killed,
	}
	if !w.reconcile && w.last != nil && w.last.Done == st.Done && w.last.Killed == st.Killed && w.last.AllStarted == st.AllStarted &&
		apiequality.Semantic.DeepEqual(w.last.PodStatus, st.PodStatus) {
		return
	}
	w.reconcile = false
	w.seq++
	st.Seq = w.seq
	w.last = &st
	w.cfg.OnStatus(st)
}

// needsReconcile reports whether the API server's status of the pod contradicts the readiness the
// worker last reported, as the kubelet's status manager checks ("when pod status is inconsistent
// between apiserver and kubelet, kubelet should forcibly send an update to reconcile the
// inconsistence, because kubelet should be the source of truth of pod status", needsReconcile in
// pkg/kubelet/status/status_manager.go): the node lifecycle controller sets Ready=False on the pods of
// a Node it found NotReady (after an API-server outage, or while the framework was away), and only
// the kubelet sets it back.
//
// The framework's own marking (reason NodeLost: Mesos reported the task unreachable, its agent
// partitioned from the master) is left alone: the framework stands for the Node's heartbeat, keeps
// the Node NotReady meanwhile, and puts the conditions back itself once the agent returns.
func (w *Worker) needsReconcile(api corev1.PodStatus) bool {
	if w.last == nil || w.last.Done {
		return false
	}
	for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		mine, theirs := findCondition(w.last.PodStatus.Conditions, t), findCondition(api.Conditions, t)
		if theirs != nil && theirs.Reason == podtranslate.ReasonNodeLost {
			return false
		}
		if mine != nil && (theirs == nil || theirs.Status != mine.Status) {
			return true
		}
	}
	return false
}

func findCondition(conds []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

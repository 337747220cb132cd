package podworker

import (
	"fmt"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Kubelet constants this package reproduces.
const (
	// InitialBackOff is the first crash-loop delay; it doubles after every restart.
	InitialBackOff = 10 * time.Second
	// MaxBackOff caps the crash-loop delay (the kubelet's MaxContainerBackOff).
	MaxBackOff = 5 * time.Minute
	// BackOffReset is how long a container must have run for its back-off to start over.
	BackOffReset = 10 * time.Minute
	// DefaultGracePeriod is used when a pod sets no terminationGracePeriodSeconds.
	DefaultGracePeriod = 30 * time.Second
	// MinGracePeriod is the shortest stop window: the kubelet never SIGKILLs sooner after SIGTERM
	// (minimumGracePeriodInSeconds), even for a grace period of 0.
	MinGracePeriod = 2 * time.Second
)

// Container state reasons, as the kubelet writes them.
const (
	ReasonContainerCreating = "ContainerCreating"
	ReasonPodInitializing   = "PodInitializing"
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonCompleted         = "Completed"
	ReasonError             = "Error"
	ReasonStartError        = "StartError"
	// ReasonDeadlineExceeded is the pod reason once activeDeadlineSeconds has passed.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonPodCompleted is the reason of the Ready/ContainersReady conditions of a finished pod
	// (and of its True Initialized condition), ReasonPodFailed of a failed one's.
	ReasonPodCompleted = "PodCompleted"
	ReasonPodFailed    = "PodFailed"
	// ReasonContainersNotReady / ReasonContainersNotInitialized explain False conditions.
	ReasonContainersNotReady       = "ContainersNotReady"
	ReasonContainersNotInitialized = "ContainersNotInitialized"
	// ReasonReadinessGatesNotReady explains a False Ready while readiness gates are not all True.
	ReasonReadinessGatesNotReady = "ReadinessGatesNotReady"
)

// RuntimeScheme prefixes container IDs in the pod status.
const RuntimeScheme = "mesos"

// termination records one ended container attempt.
type termination struct {
	exit     ExitStatus
	started  time.Time
	finished time.Time
	id       string
}

func (t *termination) reason() string {
	switch {
	case t.exit.Reason != "":
		return t.exit.Reason
	case t.exit.ExitCode == 0:
		return ReasonCompleted
	default:
		return ReasonError
	}
}

// container is what the core knows about one container of the pod.
type container struct {
	spec *corev1.Container
	init bool
	// sidecar: a restartable init container (restartPolicy Always, KEP-753).
	sidecar bool
	// ephemeral: one of spec.ephemeralContainers (added to the running pod through its
	// ephemeralcontainers subresource): started once, never restarted, not part of the pod's phase,
	// readiness or initialization (see ephemeral.go).
	ephemeral bool

	restarts  int32 // attempts started after the first
	attempts  int32 // attempts started (or being started)
	starting  bool  // Start issued, not returned yet
	running   bool  // started and not exited
	handle    Handle
	startedAt time.Time
	sentTERM  bool
	sentKILL  bool
	// stopAt is set while this attempt is being stopped on its own (a failed liveness or startup
	// probe): SIGTERM now, SIGKILL at stopAt.
	stopping bool
	stopAt   time.Time
	// startupOK: the startup probe succeeded (or there is none). readyOK: the readiness probe's latest
	// result (true without a readiness probe).
	startupOK bool
	readyOK   bool
	// postStartDone: the attempt's postStart hook returned (true without one).
	postStartDone bool
	// initDone (sidecars): the sidecar has been started once, so the init containers after it may
	// start; it stays set while the sidecar is restarted.
	initDone bool
	// Stopping a sidecar with its pod: stopBegun once its Killing event (and preStop hook) was
	// issued, preStopping while that hook runs, termAt when it got SIGTERM on its turn.
	stopBegun   bool
	preStopping bool
	termAt      time.Time

	last *termination // latest ended attempt
	prev *termination // the one before, shown as lastState while last is the current state

	backOff   time.Duration // delay used for the latest restart
	notBefore time.Time     // no restart before this instant
	everRan   bool

	// waiting is set while the latest Start could not create the container (ImagePullError,
	// CreateError): it shows as the container's state, and the pod is synced again at syncAt.
	waiting *corev1.ContainerStateWaiting
	syncAt  time.Time
	pullErr bool // waiting because its image could not be pulled
}

func (c *container) active() bool { return c.starting || c.running }

func (c *container) succeeded() bool {
	return !c.active() && c.last != nil && c.last.exit.ExitCode == 0
}

// actionKind says what the driver must do for a container.
type actionKind int

const (
	actStart actionKind = iota
	actSignal
	// actPullBackOff: a pod sync found the container's image in back-off (the kubelet's BackOff
	// event); nothing is started.
	actPullBackOff
	// actStopBegin: a sidecar's stop begins with its pod's termination (the Killing event, its
	// preStop hook); its SIGTERM waits for its turn.
	actStopBegin
)

// action is one thing the driver must do, produced by core.next.
type action struct {
	kind   actionKind
	index  int // into core.containers
	signal syscall.Signal
	// begun: an actStopBegin already recorded the Killing event and ran the preStop hook.
	begun bool
}

// core is the pod lifecycle as a pure state machine: inputs come in as method calls with the current
// time, core.next says what to start or signal and when to be woken. No goroutines, I/O or clock here.
type core struct {
	pod        *corev1.Pod
	hostIP     string
	podIP      string
	containers []*container // init containers first, in order, then regular containers, then ephemeral ones
	nInit      int
	nMain      int // end of the regular containers in containers

	startTime   time.Time
	terminating bool
	deadline    time.Time // SIGKILL remaining containers at this instant
	// deadlineExceeded: activeDeadlineSeconds passed; the pod is Failed and being stopped.
	deadlineExceeded bool

	conditions map[corev1.PodConditionType]corev1.PodCondition
	// pulls is the image back-off of each image of the pod (the kubelet keys it by pod UID and image).
	pulls map[string]*imageBackOff

	// sandbox is the pod sandbox's state (sbNone for runtimes without sandboxes); sandboxErr is why
	// it could not be created.
	sandbox    sandboxState
	sandboxErr string
}

func newCore(pod *corev1.Pod, hostIP, podIP string, now time.Time) *core {
	c := &core{
		pod:        pod,
		hostIP:     hostIP,
		podIP:      podIP,
		startTime:  now,
		nInit:      len(pod.Spec.InitContainers),
		conditions: map[corev1.PodConditionType]corev1.PodCondition{},
		pulls:      map[string]*imageBackOff{},
	}
	for i := range pod.Spec.InitContainers {
		spec := &pod.Spec.InitContainers[i]
		c.containers = append(c.containers, &container{spec: spec, init: true, sidecar: isSidecar(spec)})
	}
	for i := range pod.Spec.Containers {
		c.containers = append(c.containers, &container{spec: &pod.Spec.Containers[i]})
	}
	c.nMain = len(c.containers)
	c.addEphemeral(pod.Spec.EphemeralContainers)
	return c
}

// regular returns the pod's regular containers (spec.containers).
func (c *core) regular() []*container { return c.containers[c.nInit:c.nMain] }

// restartPolicy returns the pod's policy; the API server defaults it to Always.
func (c *core) restartPolicy() corev1.RestartPolicy {
	if p := c.pod.Spec.RestartPolicy; p != "" {
		return p
	}
	return corev1.RestartPolicyAlways
}

// isSidecar tells a restartable init container (podutil.IsRestartableInitContainer).
func isSidecar(spec *corev1.Container) bool {
	return spec.RestartPolicy != nil && *spec.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// shouldRestart says whether an ended container is started again under the pod's policy. Init
// containers are restarted unless the policy is Never (as the kubelet does); sidecars always are.
func (c *core) shouldRestart(ct *container) bool {
	if ct.ephemeral {
		// computePodActions: "Ephemeral Containers are never restarted".
		return ct.last == nil
	}
	if ct.last == nil || ct.sidecar {
		return true
	}
	if ct.init {
		return ct.last.exit.ExitCode != 0 && c.restartPolicy() != corev1.RestartPolicyNever
	}
	switch c.restartPolicy() {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return ct.last.exit.ExitCode != 0
	default:
		return true
	}
}

// initialized reports whether the pod is initialized as the kubelet's Initialized condition says:
// a regular container has run, or every init container is (a regular one succeeded, a sidecar is
// started).
func (c *core) initialized() bool {
	if c.hasInitialized() {
		return true
	}
	for _, ct := range c.containers[:c.nInit] {
		if !c.initContainerInitialized(ct) {
			return false
		}
	}
	return true
}

// initContainerInitialized is the kubelet's isInitContainerInitialized.
func (c *core) initContainerInitialized(ct *container) bool {
	if ct.sidecar {
		return ct.running && ct.startupOK
	}
	return ct.succeeded()
}

// hasInitialized: a regular container has run (kubelet: HasAnyRegularContainerStarted), so the init
// containers are done for good, however the sidecars are doing.
func (c *core) hasInitialized() bool {
	for _, ct := range c.regular() {
		if ct.everRan {
			return true
		}
	}
	return false
}

// sidecarStarted is the kubelet's condition to start the init container after a sidecar: it runs,
// its startup probe passed, and its postStart hook returned (the kubelet's startContainer returns
// only then).
func sidecarStarted(ct *container) bool {
	return ct.running && ct.startupOK && ct.postStartDone && !ct.stopping
}

// mainsDone: the pod is initialized and no regular container runs or will run again; the kubelet
// then kills the pod (computePodActions: nothing to keep, nothing to start), i.e. its sidecars.
func (c *core) mainsDone() bool {
	if !c.hasInitialized() {
		return false
	}
	for _, ct := range c.regular() {
		if ct.active() || ct.waiting != nil || ct.last == nil || c.shouldRestart(ct) {
			return false
		}
	}
	return true
}

// sidecarTurn: the kubelet's terminationOrdering lets sidecar i be stopped once every regular
// container and every later sidecar has exited.
func (c *core) sidecarTurn(i int) bool {
	for j, ct := range c.containers {
		if (j > i && ct.sidecar || !ct.init && !ct.ephemeral) && ct.active() {
			return false
		}
	}
	return true
}

// initFailed reports whether an init container failed for good (restartPolicy Never).
func (c *core) initFailed() bool {
	for _, ct := range c.containers[:c.nInit] {
		if ct.sidecar {
			continue
		}
		if !ct.active() && ct.last != nil && ct.last.exit.ExitCode != 0 && !c.shouldRestart(ct) {
			return true
		}
	}
	return false
}

// update takes what a pod update may change for the worker: activeDeadlineSeconds (next enforces it)
// and the conditions others set in the pod's status (readiness gates, see readinessGated). The pod is
// copied: the worker's own pod stays as it was given.
func (c *core) update(ads *int64, conds []corev1.PodCondition) {
	p := *c.pod
	if ads != nil {
		v := *ads
		ads = &v
	}
	p.Spec.ActiveDeadlineSeconds = ads
	p.Status.Conditions = append([]corev1.PodCondition(nil), conds...)
	c.pod = &p
}

// readinessGated is the kubelet's GeneratePodReadyCondition (pkg/kubelet/status/generate.go): Ready
// is ContainersReady ("If the status of ContainersReady is not True, return the same status, reason
// and message as ContainersReady"), but False with ReadinessGatesNotReady while the condition of a
// readiness gate is missing from the pod's status or not True.
func readinessGated(containersReady corev1.PodCondition, pod *corev1.Pod) corev1.PodCondition {
	ready := containersReady
	ready.Type = corev1.PodReady
	if ready.Status != corev1.ConditionTrue {
		return ready
	}
	var unready []string
	for _, rg := range pod.Spec.ReadinessGates {
		var found *corev1.PodCondition
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == rg.ConditionType {
				found = &pod.Status.Conditions[i]
			}
		}
		switch {
		case found == nil:
			unready = append(unready, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(rg.ConditionType)))
		case found.Status != corev1.ConditionTrue:
			unready = append(unready, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(rg.ConditionType), found.Status))
		}
	}
	if len(unready) > 0 {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, ReasonReadinessGatesNotReady, strings.Join(unready, ", ")
	}
	return ready
}

// next returns what to do now and when to call next again without any other input (zero: never).
func (c *core) next(now time.Time) ([]action, time.Time) {
	var (
		acts []action
		wake time.Time
	)
	wakeAt := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	if !c.terminating && !c.terminal() {
		if ads := c.pod.Spec.ActiveDeadlineSeconds; ads != nil {
			limit := c.startTime.Add(time.Duration(*ads) * time.Second)
			if now.Before(limit) {
				wakeAt(limit)
			} else {
				c.deadlineExceeded = true
				c.kill(GracePeriod(c.pod), now)
			}
		}
	}
	// Sidecars outlive the containers they serve only as long as those run: a Job's pod completes
	// once its regular containers are done, a failed initialization ends the pod. The kubelet's
	// KillPod then stops the sidecars with the pod's grace period.
	if !c.terminating && c.anyActive() && (c.mainsDone() || c.initFailed()) {
		c.kill(GracePeriod(c.pod), now)
	}
	// Containers being stopped: SIGTERM at once, SIGKILL at their deadline. A sidecar stopped with
	// its pod gets its Killing event and preStop hook at once, its SIGTERM on its turn (after the
	// regular containers and the later sidecars, within the grace period), and SIGKILL at the
	// deadline but never sooner than MinGracePeriod after SIGTERM (the kubelet's killContainer with
	// terminationOrdering).
	for i, ct := range c.containers {
		if c.terminating && ct.sidecar && ct.running && !ct.sentTERM {
			if !ct.stopBegun {
				ct.stopBegun = true
				ct.preStopping = ct.spec.Lifecycle != nil && ct.spec.Lifecycle.PreStop != nil
				acts = append(acts, action{kind: actStopBegin, index: i})
			}
			if now.Before(c.deadline) && (ct.preStopping || !c.sidecarTurn(i)) {
				wakeAt(c.deadline)
				continue
			}
			ct.sentTERM, ct.termAt = true, now
			acts = append(acts, action{kind: actSignal, index: i, signal: syscall.SIGTERM, begun: true})
		}
		if c.terminating && ct.sidecar && ct.running && !ct.termAt.IsZero() {
			killAt := c.deadline
			if min := ct.termAt.Add(MinGracePeriod); killAt.Before(min) {
				killAt = min
			}
			if now.Before(killAt) {
				wakeAt(killAt)
			} else if !ct.sentKILL {
				ct.sentKILL = true
				acts = append(acts, action{kind: actSignal, index: i, signal: syscall.SIGKILL})
			}
			continue
		}
		stopAt, stopping := ct.stopAt, ct.stopping
		if c.terminating && (!stopping || c.deadline.Before(stopAt)) {
			stopAt, stopping = c.deadline, true
		}
		if !ct.running || !stopping {
			continue
		}
		if !ct.sentTERM {
			ct.sentTERM = true
			acts = append(acts, action{kind: actSignal, index: i, signal: syscall.SIGTERM})
		}
		if now.Before(stopAt) {
			wakeAt(stopAt)
		} else if !ct.sentKILL {
			ct.sentKILL = true
			acts = append(acts, action{kind: actSignal, index: i, signal: syscall.SIGKILL})
		}
	}
	if c.terminating {
		return acts, wake
	}
	if c.terminal() {
		return nil, time.Time{}
	}
	if c.sandbox == sbPending {
		return acts, wake
	}
	start := func(i int) {
		ct := c.containers[i]
		if ct.active() {
			return
		}
		if ct.waiting != nil {
			// The container could not be created: a pod sync tries again, unless its image is in
			// back-off (restart policy and crash-loop back-off do not apply: it never ran).
			if now.Before(ct.syncAt) {
				wakeAt(ct.syncAt)
				return
			}
			if b := c.pulls[ct.spec.Image]; ct.pullErr && b != nil && b.inBackOff(now) {
				ct.waiting = &corev1.ContainerStateWaiting{Reason: ReasonImagePullBackOff,
					Message: fmt.Sprintf("Back-off pulling image %q: %s", ct.spec.Image, b.prevErr)}
				ct.syncAt = now.Add(PodSyncBackOff)
				wakeAt(ct.syncAt)
				acts = append(acts, action{kind: actPullBackOff, index: i})
				return
			}
		} else if ct.last != nil {
			if !c.shouldRestart(ct) {
				return
			}
			if now.Before(ct.notBefore) {
				wakeAt(ct.notBefore)
				return
			}
		}
		ct.starting = true
		ct.attempts++
		if ct.last != nil {
			ct.restarts++
		}
		acts = append(acts, action{kind: actStart, index: i})
	}
	// Ephemeral containers first, as the kubelet's SyncPod (step 7) starts them "prior" to init
	// containers: they may run while the pod is still initializing.
	for i := c.nMain; i < len(c.containers); i++ {
		start(i)
	}
	// Init containers one at a time, in order: a regular one must succeed, a sidecar must have
	// started, before the next one starts (computeInitContainerActions). Sidecars are then kept
	// running: restarted with back-off whatever the pod's restartPolicy.
	for i, ct := range c.containers[:c.nInit] {
		if ct.sidecar {
			if sidecarStarted(ct) {
				ct.initDone = true
			}
			start(i)
			if !ct.initDone {
				return acts, wake
			}
			continue
		}
		if ct.succeeded() || c.hasInitialized() {
			continue
		}
		start(i)
		return acts, wake
	}
	for i := c.nInit; i < c.nMain; i++ {
		start(i)
	}
	return acts, wake
}

// started records that a Start returned.
func (c *core) started(i int, h Handle, now time.Time) {
	ct := c.containers[i]
	ct.starting, ct.running, ct.everRan = false, true, true
	ct.waiting, ct.pullErr = nil, false
	ct.handle, ct.startedAt = h, now
	ct.sentTERM, ct.sentKILL, ct.stopping = false, false, false
	ct.startupOK = ct.spec.StartupProbe == nil
	ct.readyOK = ct.spec.ReadinessProbe == nil
	ct.postStartDone = ct.spec.Lifecycle == nil || ct.spec.Lifecycle.PostStart == nil
	ct.stopBegun, ct.preStopping, ct.termAt = false, false, time.Time{}
}

// preStopDone records that the preStop hook of a sidecar being stopped with its pod returned.
func (c *core) preStopDone(i int, attempt int32) {
	if ct := c.containers[i]; ct.attempts == attempt {
		ct.preStopping = false
	}
}

// probeKind names the three kubelet probes.
type probeKind int

const (
	probeStartup probeKind = iota
	probeReadiness
	probeLiveness
	// hookPostStart reports a failed postStart hook, which stops the container like a liveness failure.
	hookPostStart
)

func (k probeKind) String() string {
	return [...]string{"startup", "readiness", "liveness", "postStart"}[k]
}

// probed records a probe result that crossed its threshold for attempt (counted from 1) of container
// i; results of older attempts are ignored. A failed startup or liveness probe stops the container
// with the pod's grace period (the probe's own terminationGracePeriodSeconds when set); it is then
// restarted per the restart policy, as the kubelet does.
func (c *core) probed(i int, attempt int32, kind probeKind, ok bool, now time.Time) {
	ct := c.containers[i]
	if !ct.running || ct.attempts != attempt {
		return
	}
	switch kind {
	case probeStartup:
		ct.startupOK = ok
	case probeReadiness:
		ct.readyOK = ok
	case hookPostStart:
		ct.postStartDone = true
	}
	if !ok && kind != probeReadiness && !ct.stopping {
		var p *corev1.Probe
		switch kind {
		case probeStartup:
			p = ct.spec.StartupProbe
		case probeLiveness:
			p = ct.spec.LivenessProbe
		}
		grace := GracePeriod(c.pod)
		if p != nil && p.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
		}
		ct.stopping, ct.stopAt = true, now.Add(max(grace, MinGracePeriod))
	}
}

// startFailed records a Start that failed; it counts as an attempt that ended with exit code 128,
// as container runtimes report a StartError.
func (c *core) startFailed(i int, err error, now time.Time) {
	ct := c.containers[i]
	ct.waiting, ct.pullErr = nil, false
	ct.starting = true
	ct.running = true
	ct.startedAt = now
	c.exited(i, ExitStatus{ExitCode: 128, Reason: ReasonStartError, Message: err.Error()}, now)
}

// notCreated records a Start that created nothing (an ImagePullError when pull is set, else a
// CreateError): the container waits with reason and message, its restart count stays, and the pod is
// synced again after PodSyncBackOff. A failed pull also advances the image's back-off.
func (c *core) notCreated(i int, reason, message string, pull bool, now time.Time) {
	ct := c.containers[i]
	if !ct.starting {
		return
	}
	ct.starting = false
	if ct.last != nil {
		ct.restarts-- // counted when the start was issued
	}
	if pull {
		b := c.pulls[ct.spec.Image]
		if b == nil {
			b = &imageBackOff{}
			c.pulls[ct.spec.Image] = b
		}
		b.failed(now, message)
	}
	ct.waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: message}
	ct.pullErr = pull
	ct.syncAt = now.Add(PodSyncBackOff)
}

// exited records that a running container ended and computes its crash-loop back-off.
func (c *core) exited(i int, st ExitStatus, now time.Time) {
	ct := c.containers[i]
	if !ct.active() {
		return
	}
	ct.starting, ct.running = false, false
	if ct.last != nil {
		ct.prev = ct.last
	}
	ct.last = &termination{exit: st, started: ct.startedAt, finished: now, id: ct.handle.ID}
	if now.Sub(ct.startedAt) >= BackOffReset {
		ct.backOff = 0
	}
	switch {
	case ct.backOff == 0:
		ct.backOff = InitialBackOff
	default:
		ct.backOff = min(2*ct.backOff, MaxBackOff)
	}
	ct.notBefore = now.Add(ct.backOff)
}

// sandboxStarting marks the pod sandbox as being created: no container starts before sandboxReady.
func (c *core) sandboxStarting() { c.sandbox = sbPending }

// sandboxReady records the created sandbox; a podIP replaces the host's.
func (c *core) sandboxReady(podIP string) {
	if c.sandbox != sbPending {
		return
	}
	c.sandbox = sbReady
	if podIP != "" {
		c.podIP = podIP
	}
}

// sandboxFailed records that no sandbox could be created: the pod has failed (the kubelet would retry
// forever; a Mesos task ends instead, and the framework may place the pod again).
func (c *core) sandboxFailed(msg string) {
	if c.sandbox != sbPending {
		return
	}
	c.sandbox, c.sandboxErr = sbFailed, msg
}

// sandboxAbandoned records that a killed pod's sandbox was never readied: nothing of it remains.
func (c *core) sandboxAbandoned() {
	if c.sandbox == sbPending {
		c.sandbox = sbNone
	}
}

// kill starts graceful termination: SIGTERM now, SIGKILL after grace (at least MinGracePeriod). A
// second kill can only shorten
// the deadline, as the kubelet does for a shorter deletion grace period.
func (c *core) kill(grace time.Duration, now time.Time) {
	deadline := now.Add(max(grace, MinGracePeriod))
	if c.terminating && !deadline.Before(c.deadline) {
		return
	}
	c.terminating = true
	c.deadline = deadline
}

// anyActive reports whether a container (or the sandbox) is starting or running.
func (c *core) anyActive() bool {
	if c.sandbox == sbPending {
		return true
	}
	for _, ct := range c.containers {
		if ct.active() {
			return true
		}
	}
	return false
}

// done reports that nothing runs any more and nothing will be started again.
func (c *core) done() bool {
	if c.anyActive() {
		return false
	}
	return c.terminating || c.terminal()
}

// terminal reports whether the pod reached Succeeded or Failed without being killed.
func (c *core) terminal() bool {
	p := c.phase()
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

// allStarted reports whether every regular container has run at least once (Mesos TASK_RUNNING).
func (c *core) allStarted() bool {
	for _, ct := range c.regular() {
		if !ct.everRan {
			return false
		}
	}
	return true
}

// phase computes the pod phase the way the kubelet's getPhase does.
func (c *core) phase() corev1.PodPhase {
	if c.initFailed() || c.deadlineExceeded || c.sandbox == sbFailed {
		return corev1.PodFailed
	}
	stoppedForGood := c.terminating && !c.anyActive()
	if !c.initialized() && !stoppedForGood {
		return corev1.PodPending
	}
	var running, waiting, stopped, succeeded int
	// A running sidecar keeps the pod Running (a Job's pod stays Running while its sidecars are
	// stopped); an ended one is not counted (getPhase).
	for _, ct := range c.containers[:c.nInit] {
		if ct.sidecar && ct.running {
			running++
		}
	}
	for _, ct := range c.regular() {
		switch {
		case ct.running:
			running++
		case ct.last != nil:
			stopped++
			if ct.last.exit.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	if stoppedForGood {
		if waiting == 0 && stopped == succeeded && c.initialized() {
			return corev1.PodSucceeded
		}
		return corev1.PodFailed
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		// Every container has stopped: done unless the policy restarts some.
		switch {
		case c.restartPolicy() == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case c.restartPolicy() == corev1.RestartPolicyNever:
			return corev1.PodFailed
		default:
			return corev1.PodRunning
		}
	default:
		return corev1.PodPending
	}
}

// status computes the pod status as the kubelet would write it.
func (c *core) status(now time.Time) corev1.PodStatus {
	phase := c.phase()
	st := corev1.PodStatus{
		Phase:     phase,
		HostIP:    c.hostIP,
		PodIP:     c.podIP,
		StartTime: ptrTime(c.startTime),
		QOSClass:  c.pod.Status.QOSClass,
	}
	switch {
	case c.sandbox == sbFailed:
		st.Reason = EventFailedCreatePodSandBox
		st.Message = SandboxFailureMessage(c.sandboxErr)
	case c.deadlineExceeded:
		st.Reason = ReasonDeadlineExceeded
		st.Message = "Pod was active on the node longer than the specified deadline"
	}
	if c.hostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: c.hostIP}}
	}
	if c.podIP != "" {
		st.PodIPs = []corev1.PodIP{{IP: c.podIP}}
	}
	initialized := c.initialized()
	for _, ct := range c.containers {
		cs := c.containerStatus(ct, initialized, now)
		switch {
		case ct.ephemeral:
			st.EphemeralContainerStatuses = append(st.EphemeralContainerStatuses, cs)
		case ct.init:
			st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		default:
			st.ContainerStatuses = append(st.ContainerStatuses, cs)
		}
	}

	terminal := phase == corev1.PodSucceeded || phase == corev1.PodFailed
	// Sidecars count in readiness (GenerateContainersReadyCondition).
	allReady := true
	for _, cs := range st.ContainerStatuses {
		allReady = allReady && cs.Ready
	}
	for i, cs := range st.InitContainerStatuses {
		allReady = allReady && (!c.containers[i].sidecar || cs.Ready)
	}
	initCond := corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
	if !initialized {
		initCond.Status, initCond.Reason = corev1.ConditionFalse, ReasonContainersNotInitialized
		initCond.Message = "containers with incomplete status: " + c.names(func(ct *container) bool {
			return ct.init && !c.initContainerInitialized(ct)
		})
	}
	if phase == corev1.PodSucceeded {
		// GeneratePodInitializedCondition: a completed pod was initialized.
		initCond = corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, Reason: ReasonPodCompleted}
	}
	readyCond := corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}
	switch {
	case terminal && phase == corev1.PodSucceeded:
		readyCond.Status, readyCond.Reason = corev1.ConditionFalse, ReasonPodCompleted
	case phase == corev1.PodFailed:
		// generateContainersReadyConditionForTerminalPhase: no list of containers.
		readyCond.Status, readyCond.Reason = corev1.ConditionFalse, ReasonPodFailed
	case !allReady || terminal:
		readyCond.Status, readyCond.Reason = corev1.ConditionFalse, ReasonContainersNotReady
		readyCond.Message = "containers with unready status: " + c.names(func(ct *container) bool {
			return (!ct.init && !ct.ephemeral || ct.sidecar) && !(ct.running && ct.startupOK && ct.readyOK)
		})
	}
	podReady := readinessGated(readyCond, c.pod)
	conds := []corev1.PodCondition{
		c.readyToStartContainers(terminal),
		initCond,
		podReady,
		readyCond,
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	}
	for _, cond := range conds {
		st.Conditions = append(st.Conditions, c.transition(cond, now))
	}
	return st
}

// readyToStartContainers is the kubelet's PodReadyToStartContainers: True while a sandbox runs.
func (c *core) readyToStartContainers(terminal bool) corev1.PodCondition {
	cond := corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionFalse, Reason: ReasonPodSandboxNotReady}
	switch {
	case c.sandbox == sbPending || c.sandbox == sbFailed:
		cond.Message = MsgNoPodSandbox
	case terminal && !c.anyActive():
		// The sandbox is stopped with the pod's last container.
		cond.Message = MsgSandboxNotReady
	default:
		cond.Status, cond.Reason = corev1.ConditionTrue, ""
	}
	return cond
}

// SandboxFailureMessage is the kubelet's text for a sandbox that could not be created.
func SandboxFailureMessage(err string) string { return "Failed to create pod sandbox: " + err }

// transition stamps a condition with the time its status last changed.
func (c *core) transition(cond corev1.PodCondition, now time.Time) corev1.PodCondition {
	old, ok := c.conditions[cond.Type]
	if ok && old.Status == cond.Status {
		cond.LastTransitionTime = old.LastTransitionTime
	} else {
		cond.LastTransitionTime = metaTime(now)
	}
	c.conditions[cond.Type] = cond
	return cond
}

// names lists the containers pick selects, init containers first, as the kubelet's messages do.
func (c *core) names(pick func(*container) bool) string {
	out := "["
	first := true
	for _, ct := range c.containers {
		if !pick(ct) {
			continue
		}
		if !first {
			out += " "
		}
		first = false
		out += ct.spec.Name
	}
	return out + "]"
}

func (c *core) containerStatus(ct *container, initialized bool, now time.Time) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{
		Name:         ct.spec.Name,
		Image:        ct.spec.Image,
		RestartCount: ct.restarts,
		Started:      ptrBool(ct.running && ct.startupOK),
		Ready:        ct.running && (!ct.init || ct.sidecar) && ct.startupOK && ct.readyOK,
	}
	if ct.init && !ct.sidecar {
		cs.Ready = ct.succeeded()
	}
	if ct.ephemeral {
		// The prober manager's UpdatePodStatus sets Ready and Started of init and regular
		// containers only: an ephemeral container's stay false and unset.
		cs.Ready, cs.Started = false, nil
	}
	switch {
	case ct.running:
		cs.ContainerID = RuntimeScheme + "://" + ct.handle.ID
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metaTime(ct.startedAt)}
		if ct.last != nil {
			cs.LastTerminationState.Terminated = ct.last.state()
		}
	case ct.waiting != nil:
		w := *ct.waiting
		cs.State.Waiting = &w
		if ct.last != nil {
			cs.ContainerID = RuntimeScheme + "://" + ct.last.id
			cs.LastTerminationState.Terminated = ct.last.state()
		}
	case ct.last != nil && !ct.starting && (!c.shouldRestart(ct) || c.terminating || c.terminal()):
		cs.ContainerID = RuntimeScheme + "://" + ct.last.id
		cs.State.Terminated = ct.last.state()
		if ct.prev != nil {
			cs.LastTerminationState.Terminated = ct.prev.state()
		}
	case ct.last != nil:
		cs.ContainerID = RuntimeScheme + "://" + ct.last.id
		w := &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating}
		if !ct.starting {
			w.Reason = ReasonCrashLoopBackOff
			w.Message = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				ct.backOff, ct.spec.Name, c.pod.Name, c.pod.Namespace, c.pod.UID)
		}
		cs.State.Waiting = w
		cs.LastTerminationState.Terminated = ct.last.state()
	default:
		// The kubelet's default waiting state (convertToAPIContainerStatuses): "PodInitializing" for
		// every container, init or regular, of a pod with init containers, else "ContainerCreating".
		reason := ReasonContainerCreating
		if c.nInit > 0 {
			reason = ReasonPodInitializing
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason}
	}
	return cs
}

func (t *termination) state() *corev1.ContainerStateTerminated {
	return &corev1.ContainerStateTerminated{
		ExitCode:    t.exit.ExitCode,
		Signal:      t.exit.Signal,
		Reason:      t.reason(),
		Message:     t.exit.Message,
		StartedAt:   metaTime(t.started),
		FinishedAt:  metaTime(t.finished),
		ContainerID: RuntimeScheme + "://" + t.id,
	}
}

func boolCond(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

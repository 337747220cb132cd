// Package statuswriter writes pod statuses to the API server for the executor. It keeps only the
// newest unwritten status of each pod and retries it with back-off while the API server fails, so a
// terminal status is never lost because the API server was down at that moment (virtual-kubelet#712),
// and a status is never written over a newer one. Like the kubelet's status manager, each write sends the
// two-way strategic merge patch from the pod's current status, with the UID as precondition. Unlike it,
// the current status comes from what the last patch returned or the executor's pod watch, with that
// resourceVersion as a precondition too, and the pod is read only when that copy turns out stale (a
// conflict): a GET per write was 40% of the API requests a launched pod cost (issue 13).
package statuswriter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Defaults of Config.
const (
	DefaultInitialBackOff = 500 * time.Millisecond
	DefaultMaxBackOff     = 30 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultWorkers        = 8
	DefaultPendingDelay   = 250 * time.Millisecond
)

// Config configures a Writer. Zero fields take the defaults above.
type Config struct {
	Clock          clock.Clock
	InitialBackOff time.Duration
	MaxBackOff     time.Duration
	WriteTimeout   time.Duration
	// Workers is how many writes may be in flight at once (so one slow pod does not hold up others).
	Workers int
	// PendingDelay is how long a Pending status waits for a newer one to replace it: a pod whose
	// containers start within it gets one write (Running) instead of two. A status of another phase is
	// written at once. Negative: no delay.
	PendingDelay time.Duration
	// Cached returns the newest copy of a pod the caller holds (an informer's), or nil; a write diffs
	// against it instead of reading the pod when the writer has no newer copy of its own.
	Cached func(namespace, name string) *corev1.Pod
	Log    logrus.FieldLogger
}

// known is a pod's status as of one resourceVersion, what a write diffs against.
type known struct {
	resourceVersion string
	status          corev1.PodStatus
}

// entry is the newest unwritten status of one pod.
type entry struct {
	namespace, name string
	uid             types.UID
	seq             uint64
	status          corev1.PodStatus
	failures        int
	notBefore       time.Time
}

// Writer writes pod statuses. Set may be called from any goroutine; Run does the writing.
type Writer struct {
	client kubernetes.Interface
	cfg    Config
	log    logrus.FieldLogger

	mu       sync.Mutex
	pending  map[types.UID]*entry
	inflight map[types.UID]uint64 // seq being written
	written  map[types.UID]uint64 // newest seq written (or given up on)
	forgot   map[types.UID]bool   // drop written[uid] once nothing is pending
	last     map[types.UID]known  // what the last patch of each pod returned
	notify   chan struct{}
	changed  chan struct{} // closed and replaced whenever pending shrinks
}

// New returns a Writer using client.
func New(client kubernetes.Interface, cfg Config) *Writer {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.InitialBackOff <= 0 {
		cfg.InitialBackOff = DefaultInitialBackOff
	}
	if cfg.MaxBackOff <= 0 {
		cfg.MaxBackOff = DefaultMaxBackOff
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.PendingDelay == 0 {
		cfg.PendingDelay = DefaultPendingDelay
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Writer{
		client:   client,
		cfg:      cfg,
		log:      log,
		pending:  map[types.UID]*entry{},
		inflight: map[types.UID]uint64{},
		written:  map[types.UID]uint64{},
		forgot:   map[types.UID]bool{},
		last:     map[types.UID]known{},
		notify:   make(chan struct{}, 1),
		changed:  make(chan struct{}),
	}
}

// Set records status as the newest status of pod, version seq (increasing per pod). A status older
// than one already written or queued is ignored.
func (w *Writer) Set(pod *corev1.Pod, seq uint64, status corev1.PodStatus) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq <= w.written[pod.UID] || seq <= w.inflight[pod.UID] {
		return
	}
	old, ok := w.pending[pod.UID]
	if ok && seq <= old.seq {
		return
	}
	e := &entry{namespace: pod.Namespace, name: pod.Name, uid: pod.UID, seq: seq, status: *status.DeepCopy()}
	if status.Phase == corev1.PodPending && w.cfg.PendingDelay > 0 {
		// The wait runs from the first Pending status, so a stream of them still gets written.
		e.notBefore = w.cfg.Clock.Now().Add(w.cfg.PendingDelay)
		if ok && old.failures == 0 && !old.notBefore.IsZero() && old.notBefore.Before(e.notBefore) {
			e.notBefore = old.notBefore
		}
	}
	w.pending[pod.UID] = e
	w.wakeUp()
}

// wakeUp makes Run look at the pending statuses again.
func (w *Writer) wakeUp() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// Forget drops what is known about a pod once nothing will be written for it any more (its worker is
// done and its last status written); a pending status is still written.
func (w *Writer) Forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forgot[uid] = true
	w.dropForgotten(uid)
}

func (w *Writer) dropForgotten(uid types.UID) {
	_, pending := w.pending[uid]
	_, busy := w.inflight[uid]
	if w.forgot[uid] && !pending && !busy {
		delete(w.written, uid)
		delete(w.forgot, uid)
		delete(w.last, uid)
	}
}

// Pending returns how many pods have a status not yet written.
func (w *Writer) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + len(w.inflight)
}

// Flush blocks until every status set so far is written (or given up on because the pod is gone), or
// ctx ends.
func (w *Writer) Flush(ctx context.Context) error {
	for {
		w.mu.Lock()
		n := len(w.pending) + len(w.inflight)
		ch := w.changed
		w.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("flushing %d pod statuses: %w", n, ctx.Err())
		}
	}
}

// Run writes statuses until ctx ends. It joins its writes before returning.
func (w *Writer) Run(ctx context.Context) error {
	var g errgroup.Group
	g.SetLimit(w.cfg.Workers)
	defer func() { _ = g.Wait() }()
	for {
		ready, wake := w.take()
		for _, e := range ready {
			g.Go(func() error {
				w.finish(e, w.write(ctx, e))
				w.wakeUp()
				return nil
			})
		}
		if len(ready) > 0 {
			continue
		}
		var timerC <-chan time.Time
		var timer clock.Timer
		if !wake.IsZero() {
			timer = w.cfg.Clock.NewTimer(wake.Sub(w.cfg.Clock.Now()))
			timerC = timer.C()
		}
		select {
		case <-w.notify:
		case <-timerC:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// take moves the entries due now to inflight and returns them, with the earliest later due time.
func (w *Writer) take() (ready []*entry, wake time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Now()
	for uid, e := range w.pending {
		if _, busy := w.inflight[uid]; busy {
			continue
		}
		if e.notBefore.After(now) {
			if wake.IsZero() || e.notBefore.Before(wake) {
				wake = e.notBefore
			}
			continue
		}
		delete(w.pending, uid)
		w.inflight[uid] = e.seq
		ready = append(ready, e)
	}
	return ready, wake
}

// errGone marks a pod that no longer exists (or was replaced by one with another UID).
var errGone = errors.New("pod is gone")

// finish records the outcome of writing e.
func (w *Writer) finish(e *entry, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inflight, e.uid)
	log := w.log.WithFields(logrus.Fields{"pod": e.namespace + "/" + e.name, "podUID": e.uid, "seq": e.seq, "phase": e.status.Phase})
	switch {
	case err == nil || errors.Is(err, errGone):
		if err != nil {
			log.WithError(err).Info("dropping status of a pod that is gone")
		} else {
			log.Debug("pod status written")
		}
		if e.seq > w.written[e.uid] {
			w.written[e.uid] = e.seq
		}
	default:
		if newer, ok := w.pending[e.uid]; ok && newer.seq > e.seq {
			// A newer status arrived meanwhile; it replaces this one and inherits its back-off.
			newer.failures = e.failures + 1
			newer.notBefore = w.cfg.Clock.Now().Add(w.backOff(newer.failures))
			log.WithError(err).Warn("writing pod status failed; a newer one will be retried")
		} else {
			e.failures++
			e.notBefore = w.cfg.Clock.Now().Add(w.backOff(e.failures))
			w.pending[e.uid] = e
			log.WithError(err).WithField("retryIn", w.backOff(e.failures)).Warn("writing pod status failed; will retry")
		}
	}
	w.dropForgotten(e.uid)
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *Writer) backOff(failures int) time.Duration {
	d := w.cfg.InitialBackOff
	for i := 1; i < failures && d < w.cfg.MaxBackOff; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxBackOff)
}

// statusPatch is the two-way strategic merge patch from the pod's current status to status, with the
// pod's UID and resourceVersion (unless empty) as preconditions, or nil when there is nothing to
// change. A plain merge of the new status would leave fields the new one no longer has (a condition's
// old reason, a container's waiting state) in place; the two-way patch deletes them, as the kubelet's
// status manager does.
func statusPatch(uid types.UID, resourceVersion string, current, status corev1.PodStatus) ([]byte, error) {
	oldJSON, err := json.Marshal(corev1.Pod{Status: current})
	if err != nil {
		return nil, err
	}
	newJSON, err := json.Marshal(corev1.Pod{Status: status})
	if err != nil {
		return nil, err
	}
	diff, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, corev1.Pod{})
	if err != nil {
		return nil, err
	}
	var patch map[string]any
	if err := json.Unmarshal(diff, &patch); err != nil {
		return nil, err
	}
	if len(patch) == 0 {
		return nil, nil
	}
	meta := map[string]any{"uid": uid}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	patch["metadata"] = meta
	return json.Marshal(patch)
}

// keepTerminalReason keeps a pod already ended by someone else (the framework ends pods whose sandbox
// Mesos could not create) ended: like the kubelet's status manager it never moves a terminal phase back,
// and it keeps the reason and message when the executor's status has none, so the executor's writes
// after such a kill do not erase why the pod failed.
func keepTerminalReason(current, status corev1.PodStatus) corev1.PodStatus {
	terminal := func(p corev1.PodPhase) bool { return p == corev1.PodFailed || p == corev1.PodSucceeded }
	if !terminal(current.Phase) {
		return status
	}
	if !terminal(status.Phase) {
		status.Phase = current.Phase
	}
	if current.Phase == status.Phase && status.Reason == "" && status.Message == "" {
		status.Reason, status.Message = current.Reason, current.Message
	}
	return status
}

// kubeletConditions are the pod conditions the kubelet owns (pkg/kubelet/types
// PodConditionsByKubelet, with PodReadyToStartContainers): the executor's status replaces them.
var kubeletConditions = map[corev1.PodConditionType]bool{
	corev1.PodScheduled: true, corev1.PodReady: true, corev1.PodInitialized: true, corev1.ContainersReady: true,
	corev1.PodResizeInProgress: true, corev1.PodResizePending: true, corev1.PodReadyToStartContainers: true,
}

// keepForeignConditions keeps the conditions others wrote into the pod's status (a readiness gate's
// controller, DisruptionTarget), as the kubelet's status manager does (mergePodStatus: "keep the
// pod conditions that are not owned by kubelet"); the two-way patch would delete them.
func keepForeignConditions(current, status corev1.PodStatus) corev1.PodStatus {
	var foreign []corev1.PodCondition
	for _, c := range current.Conditions {
		if kubeletConditions[c.Type] {
			continue
		}
		ours := false
		for _, o := range status.Conditions {
			ours = ours || o.Type == c.Type
		}
		if !ours {
			foreign = append(foreign, c)
		}
	}
	if len(foreign) == 0 {
		return status
	}
	status.Conditions = append(append([]corev1.PodCondition(nil), status.Conditions...), foreign...)
	return status
}

func (w *Writer) write(ctx context.Context, e *entry) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	defer cancel()
	if cur, ok := w.current(e); ok {
		err := w.patch(ctx, e, cur)
		if !apierrors.IsConflict(err) {
			return patchError(e, err)
		}
		// The copy was stale, or the pod was replaced: read it, as the kubelet does for every write.
	}
	current, err := w.client.CoreV1().Pods(e.namespace).Get(ctx, e.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("reading pod %s/%s: %w (%w)", e.namespace, e.name, errGone, err)
	case err != nil:
		return fmt.Errorf("reading pod %s/%s: %w", e.namespace, e.name, err)
	case current.UID != e.uid:
		return fmt.Errorf("pod %s/%s is now UID %s: %w", e.namespace, e.name, current.UID, errGone)
	}
	w.remember(e.uid, current)
	// Without a resourceVersion precondition the API server retries its own conflicts, so a conflict
	// here is the UID's.
	return patchError(e, w.patch(ctx, e, known{status: current.Status}))
}

// current is the newest copy of e's pod the writer knows without reading it: what its last patch
// returned, else the cache's.
func (w *Writer) current(e *entry) (known, bool) {
	w.mu.Lock()
	k, ok := w.last[e.uid]
	w.mu.Unlock()
	if ok {
		return k, true
	}
	if w.cfg.Cached != nil {
		if p := w.cfg.Cached(e.namespace, e.name); p != nil && p.UID == e.uid && p.ResourceVersion != "" {
			return known{resourceVersion: p.ResourceVersion, status: p.Status}, true
		}
	}
	return known{}, false
}

// patch writes e's status as a patch from cur, with cur's resourceVersion (if any) as precondition, and
// remembers what the API server answered.
func (w *Writer) patch(ctx context.Context, e *entry, cur known) error {
	body, err := statusPatch(e.uid, cur.resourceVersion, cur.status, keepForeignConditions(cur.status, keepTerminalReason(cur.status, e.status)))
	if err != nil {
		return fmt.Errorf("encoding status of pod %s/%s: %w", e.namespace, e.name, err)
	}
	if body == nil {
		return nil
	}
	p, err := w.client.CoreV1().Pods(e.namespace).Patch(ctx, e.name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
	if err != nil {
		return err
	}
	w.remember(e.uid, p)
	return nil
}

func (w *Writer) remember(uid types.UID, p *corev1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last[uid] = known{resourceVersion: p.ResourceVersion, status: p.Status}
}

func patchError(e *entry, err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return fmt.Errorf("patching status of pod %s/%s: %w (%w)", e.namespace, e.name, errGone, err)
	default:
		return fmt.Errorf("patching status of pod %s/%s: %w", e.namespace, e.name, err)
	}
}

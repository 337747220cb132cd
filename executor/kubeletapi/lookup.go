package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/executor/containerlogs"
)

// Sentinel errors of a PodLookup (wrapped with the names): the handlers answer them with 404.
var (
	ErrPodNotFound       = errors.New("pod not found on this node")
	ErrContainerNotFound = errors.New("container not found in pod")
)

// Attempt is one run of a container: its Mesos nested container ID and where its log is.
type Attempt struct {
	// ID is the nested container's ContainerID.value (its parent is the executor's container).
	ID string
	// LogPath is the attempt's log in the CRI format (package containerlogs writes it).
	LogPath string
	// Running tells whether the attempt still runs.
	Running bool
}

// ContainerRef is what the server knows about one container of a hosted pod.
type ContainerRef struct {
	PodUID types.UID
	// Current is the latest attempt; nil before the first start.
	Current *Attempt
	// Previous is the attempt before the latest one (for `kubectl logs --previous`); nil if none.
	Previous *Attempt
	// Waiting is the waiting reason (ContainerCreating, PodInitializing...) while Current is nil.
	Waiting string
	// Stdin, StdinOnce and TTY are the container's spec (what attach may do).
	Stdin, StdinOnce, TTY bool
}

// PodLookup maps namespace/pod/container to the container's attempts. Errors wrap ErrPodNotFound or
// ErrContainerNotFound. It is called from many goroutines.
type PodLookup interface {
	Container(namespace, pod, container string) (ContainerRef, error)
	// PodUID is the UID of the hosted pod namespace/pod.
	PodUID(namespace, pod string) (types.UID, error)
}

// Registry is a PodLookup fed with the pod statuses the executor computes (Update) and told when a
// pod is gone (Forget). Container IDs come from the statuses' containerID fields
// ("mesos://<nested container ID>"); logs are containerlogs.Path(<Sandbox>, <pod UID>, <ID>), where
// the executor's containerlogs.Manager writes them.
//
// A pod whose Mesos task is over (Ended) stays, as a kubelet keeps a terminated pod's containers and
// their logs until the pod is deleted: ForgetDeleted asks the API server which of them are gone.
type Registry struct {
	sandbox string

	mu    sync.RWMutex
	pods  map[string]hostedPod    // by namespace/name
	ended map[types.UID]*endedRef // pods whose task is over, until they are forgotten
}

// endedRef names a pod of a given UID whose task is over, and when ForgetDeleted asks about it next.
type endedRef struct {
	namespace, name string
	due             time.Time     // zero: at the next round
	wait            time.Duration // after the next answer that it still exists
}

// The wait between two questions about an ended pod grows from forgetFirstWait to forgetMaxWait:
// a pod is often deleted soon after its end (a Deployment's, a killed one's), while completed Jobs'
// pods may stay for days, and asking about each of them every round would cost the API server
// one GET per pod per round.
const (
	forgetFirstWait = 10 * time.Second
	forgetMaxWait   = 2 * time.Minute
)

type hostedPod struct {
	pod    *corev1.Pod
	status corev1.PodStatus
}

var _ PodLookup = (*Registry)(nil)

// NewRegistry returns an empty Registry for an executor whose sandbox is sandbox (MESOS_SANDBOX).
func NewRegistry(sandbox string) *Registry {
	return &Registry{sandbox: sandbox, pods: map[string]hostedPod{}, ended: map[types.UID]*endedRef{}}
}

// Update records the latest status of a pod the executor runs (it keeps pod and status; callers must
// not modify them afterwards). A pod with the same name and another UID replaces the older one.
func (r *Registry) Update(pod *corev1.Pod, status corev1.PodStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pods[pod.Namespace+"/"+pod.Name] = hostedPod{pod: pod, status: status}
	delete(r.ended, pod.UID) // a task of the pod runs again
}

// Forget removes a pod once the executor no longer hosts it; a newer pod of the same name (another
// UID) is kept.
func (r *Registry) Forget(namespace, name string, uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := namespace + "/" + name
	if p, ok := r.pods[key]; ok && p.pod.UID == uid {
		delete(r.pods, key)
	}
	delete(r.ended, uid)
}

// Ended records that a pod's Mesos task is over (after its last Update): its containers' logs are
// still served until ForgetDeleted finds the pod deleted.
func (r *Registry) Ended(namespace, name string, uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended[uid] = &endedRef{namespace: namespace, name: name, wait: forgetFirstWait}
}

// PodGetter reads a pod from the API server (a client-go Get); an error that
// apierrors.IsNotFound recognizes means the pod is deleted.
type PodGetter func(ctx context.Context, namespace, name string) (*corev1.Pod, error)

// ForgetDeleted asks the API server about the ended pods that are due at now and forgets those that
// are deleted: not found, or found with another UID (a new pod of the same name). gone is called with
// each one's UID (the executor removes its logs). A pod that still exists is asked about again after
// a wait that doubles up to forgetMaxWait; one it could not ask about, at the next round.
func (r *Registry) ForgetDeleted(ctx context.Context, now time.Time, get PodGetter, gone func(types.UID)) {
	r.mu.RLock()
	due := map[types.UID]endedRef{}
	for uid, e := range r.ended {
		if !now.Before(e.due) {
			due[uid] = *e
		}
	}
	r.mu.RUnlock()
	for uid, ref := range due {
		p, err := get(ctx, ref.namespace, ref.name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			continue
		case p.UID == uid:
			r.mu.Lock()
			if e := r.ended[uid]; e != nil {
				e.due = now.Add(e.wait)
				e.wait = min(2*e.wait, forgetMaxWait)
			}
			r.mu.Unlock()
			continue
		}
		r.Forget(ref.namespace, ref.name, uid)
		if gone != nil {
			gone(uid)
		}
	}
}

// RunForgetDeleted runs ForgetDeleted every interval (with jitter) until ctx ends. The kubelet
// learns of deletions from its pod watch; the executor may only get pods (a kubelet's node
// authorizer lets it get the pods bound to its Node), so it asks about the ended ones.
func (r *Registry) RunForgetDeleted(ctx context.Context, interval time.Duration, clk clock.PassiveClock, get PodGetter, gone func(types.UID)) {
	wait.JitterUntilWithContext(ctx, func(ctx context.Context) { r.ForgetDeleted(ctx, clk.Now(), get, gone) }, interval, 0.2, true)
}

// Container implements PodLookup.
func (r *Registry) Container(namespace, pod, container string) (ContainerRef, error) {
	r.mu.RLock()
	p, ok := r.pods[namespace+"/"+pod]
	r.mu.RUnlock()
	if !ok {
		return ContainerRef{}, fmt.Errorf("pod %s/%s: %w", namespace, pod, ErrPodNotFound)
	}
	spec := findContainer(p.pod, container)
	if spec == nil {
		return ContainerRef{}, fmt.Errorf("container %q in pod %s/%s: %w", container, namespace, pod, ErrContainerNotFound)
	}
	ref := ContainerRef{PodUID: p.pod.UID, Waiting: "ContainerCreating", Stdin: spec.Stdin, StdinOnce: spec.StdinOnce, TTY: spec.TTY}
	cs := findStatus(p.status, container)
	if cs == nil {
		return ref, nil
	}
	if w := cs.State.Waiting; w != nil && w.Reason != "" {
		ref.Waiting = w.Reason
	}
	if id := runtimeID(cs.ContainerID); id != "" {
		ref.Current = &Attempt{ID: id, LogPath: containerlogs.Path(r.sandbox, p.pod.UID, id), Running: cs.State.Running != nil}
	}
	if t := cs.LastTerminationState.Terminated; t != nil {
		if id := runtimeID(t.ContainerID); id != "" {
			ref.Previous = &Attempt{ID: id, LogPath: containerlogs.Path(r.sandbox, p.pod.UID, id)}
		}
	}
	return ref, nil
}

// PodUID implements PodLookup.
func (r *Registry) PodUID(namespace, pod string) (types.UID, error) {
	r.mu.RLock()
	p, ok := r.pods[namespace+"/"+pod]
	r.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("pod %s/%s: %w", namespace, pod, ErrPodNotFound)
	}
	return p.pod.UID, nil
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	// Ephemeral containers are logged, exec'd and attached to by name like the others.
	for i := range pod.Spec.EphemeralContainers {
		if ec := &pod.Spec.EphemeralContainers[i]; ec.Name == name {
			c := corev1.Container(ec.EphemeralContainerCommon)
			return &c
		}
	}
	return nil
}

func findStatus(st corev1.PodStatus, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// runtimeID strips the runtime scheme from a status' containerID ("mesos://abc" → "abc").
func runtimeID(containerID string) string {
	if _, id, ok := strings.Cut(containerID, "://"); ok {
		return id
	}
	return containerID
}

package framework

import (
	"encoding/binary"
	"reflect"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// The pod cache is most of the framework's memory: at 30,000 pods every byte per pod is 30 KB. The
// informer's transform (cacheTransform) makes each cached pod smaller without changing what the
// framework reads from it:
//
//   - metadata.managedFields go (nothing here reads them);
//   - a bound pod keeps of its spec only what placement, quota, preemption and its status need: its
//     volumes and its containers' commands, environment, mounts, probes and security contexts go.
//     A bound pod to launch (after a failover, or a relaunch) is read whole from the API server
//     first (syncPod, pendingPod.full), since its task carries the pod's spec;
//   - a pod that started on its Node (Running, Succeeded or Failed) keeps of its status what the
//     framework reads from the cache: phase, reason, addresses, start time, and of its conditions
//     only an unreachable agent's NotReady (restoreReady) and DisruptionTarget (preemption).
//     Its container statuses and the executor's conditions go: most of a running pod's bytes. The
//     framework's status writes for a pod on a Node start from the API server's copy (freshPod);
//   - equal resource lists, label sets, a bound pod's containers, tolerations, owner references and
//     security contexts share one copy across pods (a ReplicaSet's pods differ in little else), and
//     strings that repeat across pods (namespaces, Node names, images, condition types and reasons)
//     share one copy.

// cacheTransform is the pod informer factory's transform.
func (in *interner) cacheTransform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return in.compactPod(o), nil
	case *corev1.Node:
		return withoutManagedFields(o), nil
	case *corev1.Namespace:
		return withoutManagedFields(o), nil
	}
	return obj, nil
}

// podUIDs finds a cached pod by UID (a task ID is pod-<uid>). client-go's indexer would keep a set
// per UID, about 270 bytes a pod (BenchmarkPodUIDLookup); this keeps the pod's own namespace and name
// strings. The transform
// notes every pod before the informer stores it, and lookups go through the store, so an entry is
// never missing while its pod is cached, and a stale one (deleted pod) finds nothing: the delete
// handler drops it.
type podUIDs struct {
	mu   sync.RWMutex
	pods map[types.UID]cache.ObjectName
}

func newPodUIDs() *podUIDs { return &podUIDs{pods: map[types.UID]cache.ObjectName{}} }

func (u *podUIDs) note(p *corev1.Pod) {
	u.mu.Lock()
	u.pods[p.UID] = cache.ObjectName{Namespace: p.Namespace, Name: p.Name}
	u.mu.Unlock()
}

func (u *podUIDs) forget(uid types.UID) {
	u.mu.Lock()
	delete(u.pods, uid)
	u.mu.Unlock()
}

func (u *podUIDs) name(uid types.UID) (cache.ObjectName, bool) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	n, ok := u.pods[uid]
	return n, ok
}

// compactPod returns the pod as the cache keeps it. It changes a copy: a watch may hand over an object
// its source still holds (client-go's fake tracker does).
func (in *interner) compactPod(o *corev1.Pod) *corev1.Pod {
	p := *o
	p.ManagedFields = nil
	in.mu.Lock()
	defer in.mu.Unlock()
	in.meta(&p)
	bound := p.Spec.NodeName != ""
	if bound {
		p.Spec.Volumes = nil
	}
	p.Spec.InitContainers = in.containers(p.Spec.InitContainers, bound)
	p.Spec.Containers = in.containers(p.Spec.Containers, bound)
	if bound {
		p.Spec.InitContainers = shared(in, p.Spec.InitContainers)
		p.Spec.Containers = shared(in, p.Spec.Containers)
		p.Spec.EphemeralContainers = copied(p.Spec.EphemeralContainers, func(ec corev1.EphemeralContainer) corev1.EphemeralContainer {
			return corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: ec.Name, Image: ec.Image, Ports: ec.Ports, Resources: ec.Resources, RestartPolicy: ec.RestartPolicy,
			}, TargetContainerName: ec.TargetContainerName}
		})
	}
	s := &p.Spec
	s.NodeName = in.str(s.NodeName)
	s.SchedulerName = in.str(s.SchedulerName)
	s.ServiceAccountName = in.str(s.ServiceAccountName)
	s.DeprecatedServiceAccount = in.str(s.DeprecatedServiceAccount)
	s.PriorityClassName = in.str(s.PriorityClassName)
	s.Overhead = in.resources(s.Overhead)
	s.Tolerations = shared(in, s.Tolerations)
	s.SecurityContext = sharedPtr(in, s.SecurityContext)
	in.status(&p.Status, bound && startedPhase(p.Status.Phase))
	in.uids.note(&p)
	return &p
}

// startedPhase reports whether a pod in this phase has run on its Node: the cache keeps only part of
// such a pod's status.
func startedPhase(phase corev1.PodPhase) bool {
	return phase == corev1.PodRunning || phase == corev1.PodSucceeded || phase == corev1.PodFailed
}

// containers is a copy of cs with resource lists and strings shared; for a bound pod, only the fields
// the framework reads.
func (in *interner) containers(cs []corev1.Container, bound bool) []corev1.Container {
	return copied(cs, func(c corev1.Container) corev1.Container {
		if bound {
			c = corev1.Container{Name: c.Name, Image: c.Image, Ports: c.Ports, Resources: c.Resources, RestartPolicy: c.RestartPolicy}
		}
		c.Name, c.Image = in.str(c.Name), in.str(c.Image)
		c.Resources.Requests = in.resources(c.Resources.Requests)
		c.Resources.Limits = in.resources(c.Resources.Limits)
		return c
	})
}

// copied is a copy of xs with f applied to each element; the cache never changes what a watch handed
// over.
func copied[T any](xs []T, f func(T) T) []T {
	if len(xs) == 0 {
		return xs
	}
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// framedConditions returns, of a started pod's conditions, those the framework reads from the cache:
// its own NotReady for an unreachable agent (restoreReady) and DisruptionTarget (a preemptor waits
// for its victims to terminate, offerbridge's terminatingByPreemption).
func framedConditions(conds []corev1.PodCondition) []corev1.PodCondition {
	var out []corev1.PodCondition
	for _, c := range conds {
		if c.Reason == podtranslate.ReasonNodeLost || c.Type == corev1.DisruptionTarget {
			out = append(out, c)
		}
	}
	return out
}

// wireForm is what a generated API type's protobuf methods give: its encoding is its identity.
type wireForm[T any] interface {
	*T
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// shared returns the slice equal to xs (by wire encoding) that the interner already handed out, or a
// copy of xs that it hands out from now on. Cached objects are read-only, so pods may share it.
func shared[T any, P wireForm[T]](in *interner, xs []T) []T {
	if len(xs) == 0 {
		return xs
	}
	key, ok := wireKey[T, P](xs)
	if !ok {
		return xs
	}
	if c, ok := in.wire[key]; ok {
		return c.([]T)
	}
	c := append([]T(nil), xs...)
	in.keep(key, c)
	return c
}

// sharedPtr is shared for one optional value (a pod's security context).
func sharedPtr[T any, P wireForm[T]](in *interner, x *T) *T {
	if x == nil {
		return nil
	}
	return &shared[T, P](in, []T{*x})[0]
}

// wireKey is the type's name and each element's length-prefixed protobuf encoding.
func wireKey[T any, P wireForm[T]](xs []T) (string, bool) {
	b := []byte(reflect.TypeFor[T]().String())
	for i := range xs {
		e := P(&xs[i])
		n := e.Size()
		b = binary.AppendUvarint(b, uint64(n))
		b = append(b, make([]byte, n)...)
		if _, err := e.MarshalToSizedBuffer(b[len(b)-n:]); err != nil {
			return "", false
		}
	}
	return string(b), true
}

func (in *interner) keep(key string, v any) {
	if len(in.wire) >= internLimit {
		clear(in.wire)
	}
	in.wire[key] = v
}

func (in *interner) meta(p *corev1.Pod) {
	p.Namespace = in.str(p.Namespace)
	p.GenerateName = in.str(p.GenerateName)
	p.Labels = in.labels(p.Labels)
	p.OwnerReferences = shared(in, p.OwnerReferences)
}

// status makes st the cached status; started: keep only what the framework reads of a pod that ran.
func (in *interner) status(st *corev1.PodStatus, started bool) {
	st.Phase = corev1.PodPhase(in.str(string(st.Phase)))
	st.HostIP = in.str(st.HostIP)
	st.QOSClass = corev1.PodQOSClass(in.str(string(st.QOSClass)))
	st.HostIPs = copied(st.HostIPs, func(ip corev1.HostIP) corev1.HostIP { return corev1.HostIP{IP: in.str(ip.IP)} })
	if started {
		st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses = nil, nil, nil
		st.Conditions = framedConditions(st.Conditions)
	}
	st.Conditions = copied(st.Conditions, func(c corev1.PodCondition) corev1.PodCondition {
		c.Type = corev1.PodConditionType(in.str(string(c.Type)))
		c.Status = corev1.ConditionStatus(in.str(string(c.Status)))
		c.Reason = in.str(c.Reason)
		return c
	})
	st.InitContainerStatuses = copied(st.InitContainerStatuses, in.containerStatus)
	st.ContainerStatuses = copied(st.ContainerStatuses, in.containerStatus)
}

func (in *interner) containerStatus(cs corev1.ContainerStatus) corev1.ContainerStatus {
	cs.Name, cs.Image, cs.ImageID = in.str(cs.Name), in.str(cs.Image), in.str(cs.ImageID)
	cs.AllocatedResources = in.resources(cs.AllocatedResources)
	return cs
}

// interner hands out shared copies of strings, resource lists and label sets. Only values that repeat
// across pods are given to it; its tables are dropped when they grow past internLimit entries (a
// long-lived framework sees many Deployment revisions), which only costs some sharing.
type interner struct {
	mu        sync.Mutex
	strs      map[string]string
	lists     map[string]corev1.ResourceList
	labelMaps map[string]map[string]string
	wire      map[string]any // shared and sharedPtr's, by wireKey
	uids      *podUIDs
}

const (
	internLimit = 1 << 16
	// internMaxLen leaves long strings (annotations' JSON, messages) alone: they rarely repeat.
	internMaxLen = 256
)

func newInterner() *interner {
	return &interner{strs: map[string]string{}, lists: map[string]corev1.ResourceList{}, labelMaps: map[string]map[string]string{}, wire: map[string]any{}, uids: newPodUIDs()}
}

func (in *interner) str(s string) string {
	if s == "" || len(s) > internMaxLen {
		return s
	}
	if c, ok := in.strs[s]; ok {
		return c
	}
	if len(in.strs) >= internLimit {
		clear(in.strs)
	}
	in.strs[s] = s
	return s
}

// labels returns the shared map equal to m: a ReplicaSet's pods have the same labels.
func (in *interner) labels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	keys := make([]string, 0, len(m))
	size := 0
	for k, v := range m {
		keys = append(keys, k)
		size += len(k) + len(v) + 2
	}
	sort.Strings(keys)
	var b strings.Builder
	b.Grow(size)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	if c, ok := in.labelMaps[b.String()]; ok {
		return c
	}
	if len(in.labelMaps) >= internLimit {
		clear(in.labelMaps)
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[in.str(k)] = in.str(v)
	}
	in.labelMaps[b.String()] = c
	return c
}

// resources returns the shared list equal to l (by name and canonical quantity). Cached objects are
// read-only, so sharing a map between pods is safe.
func (in *interner) resources(l corev1.ResourceList) corev1.ResourceList {
	if len(l) == 0 {
		return l
	}
	names := make([]string, 0, len(l))
	for name := range l {
		names = append(names, string(name))
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		q := l[corev1.ResourceName(name)]
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(q.String())
		b.WriteByte(';')
	}
	if c, ok := in.lists[b.String()]; ok {
		return c
	}
	if len(in.lists) >= internLimit {
		clear(in.lists)
	}
	c := make(corev1.ResourceList, len(l))
	for name, q := range l {
		c[corev1.ResourceName(in.str(string(name)))] = canonicalQuantity(q)
	}
	in.lists[b.String()] = c
	return c
}

// canonicalQuantity is q with its text cached: readers get copies of a map's values (they cannot
// change the shared map), and a copy whose text is cached need not format it again.
func canonicalQuantity(q resource.Quantity) resource.Quantity {
	c := q.DeepCopy()
	_ = c.String()
	return c
}

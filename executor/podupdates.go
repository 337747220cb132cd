package executor

import (
	"context"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubemesos/kubemesos/executor/podworker"
)

// podUpdates hands the pod workers the API server's updates of their pods, as the kubelet's
// apiserver config source (a watch of the pods with spec.nodeName = its Node) feeds its pod
// workers: a task carries the pod as it was at launch, and a running pod's activeDeadlineSeconds
// may change afterwards.
type podUpdates struct {
	workers sync.Map // types.UID → *podworker.Worker
	started bool     // the watch runs (set by the executor loop only)
	runtime podUpdatedRuntime
	store   atomic.Pointer[cache.Store] // the watch's pods, once it runs
}

// cached returns the watch's copy of a pod, or nil: the status writer diffs against it instead of
// reading the pod.
func (u *podUpdates) cached(namespace, name string) *corev1.Pod {
	store := u.store.Load()
	if store == nil {
		return nil
	}
	obj, ok, err := (*store).GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	pod, _ := obj.(*corev1.Pod)
	return pod
}

// podUpdatedRuntime is a runtime that follows pod updates too (the nested runtime's downwardAPI
// volumes).
type podUpdatedRuntime interface{ PodUpdated(*corev1.Pod) }

func (u *podUpdates) add(uid types.UID, w *podworker.Worker) { u.workers.Store(uid, w) }

func (u *podUpdates) remove(uid types.UID, w *podworker.Worker) { u.workers.CompareAndDelete(uid, w) }

func (u *podUpdates) deliver(pod *corev1.Pod) {
	if w, ok := u.workers.Load(pod.UID); ok {
		w.(*podworker.Worker).Update(pod)
		if u.runtime != nil {
			u.runtime.PodUpdated(pod)
		}
	}
}

// run watches the pods bound to node until ctx ends; rt gets them too when it follows pod updates.
func (u *podUpdates) run(ctx context.Context, client kubernetes.Interface, node string, rt any) {
	u.runtime, _ = rt.(podUpdatedRuntime)
	selector := fields.OneTermEqualSelector("spec.nodeName", node).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return client.CoreV1().Pods(metav1.NamespaceAll).Watch(ctx, o)
		},
	}
	// With the client: a fake clientset has no WatchList (streaming lists), the API server does.
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), &corev1.Pod{}, 0, cache.Indexers{})
	store := inf.GetStore()
	u.store.Store(&store)
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				u.deliver(pod)
			}
		},
	})
	inf.RunWithContext(ctx)
}

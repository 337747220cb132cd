package framework

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// servedPod is a Deployment's pod as the API server serves it once its executor reported it Running:
// defaulted, with the service account's projected volume and the status an executor writes.
func servedPod(i int, node string) *corev1.Pod {
	t := metav1.NewTime(time.Date(2026, 12, 7, 7, 0, i%60, 0, time.UTC))
	req := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	mounts := []corev1.VolumeMount{{Name: "kube-api-access-x7k2p", ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("web-7d4b9c8f5d-%05d", i), GenerateName: "web-7d4b9c8f5d-", Namespace: "shop",
			UID: types.UID(fmt.Sprintf("0b6b2c1e-5d8a-4a51-9c7e-%012d", i)), ResourceVersion: fmt.Sprint(100000 + i),
			CreationTimestamp: t, Labels: map[string]string{"app": "web", "pod-template-hash": "7d4b9c8f5d"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d4b9c8f5d",
				UID: "5a1c9e77-3f0b-4c8e-8f1e-2d6a0b9c4e11", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &t,
					FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"5a1c9e77\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:env":{},"f:image":{},"f:name":{},"f:resources":{}}}}}`)}},
				{Manager: "kubemesos-executor", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &t, Subresource: "status",
					FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:conditions":{},"f:containerStatuses":{},"f:hostIP":{},"f:phase":{},"f:podIP":{},"f:startTime":{}}}`)}},
			},
		},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				DefaultMode: ptr.To[int32](420),
				Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3607), Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
						Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
						FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
				}}}}},
			Containers: []corev1.Container{{
				Name: "web", Image: "registry.example.com/shop/web:1.42.0", Args: []string{"--port=8080", "--log-level=info"},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env: []corev1.EnvVar{{Name: "DB_HOST", Value: "db.shop.svc"}, {Name: "CACHE_TTL", Value: "30s"}, {Name: "POD_NAME",
					ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
				Resources:    corev1.ResourceRequirements{Requests: req, Limits: req.DeepCopy()},
				VolumeMounts: mounts,
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTP}},
					TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3},
				TerminationMessagePath: corev1.TerminationMessagePathDefault, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ImagePullPolicy: corev1.PullIfNotPresent,
			}},
			RestartPolicy: corev1.RestartPolicyAlways, TerminationGracePeriodSeconds: ptr.To[int64](30),
			DNSPolicy: corev1.DNSClusterFirst, ServiceAccountName: "default", DeprecatedServiceAccount: "default",
			NodeName: node, SecurityContext: &corev1.PodSecurityContext{}, SchedulerName: "kubemesos",
			Tolerations: []corev1.Toleration{
				{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
				{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
			},
			Priority: ptr.To[int32](0), EnableServiceLinks: ptr.To(true), PreemptionPolicy: ptr.To(corev1.PreemptLowerPriority),
		},
	}
	if node == "" {
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSGuaranteed}
		return p
	}
	ip := fmt.Sprintf("10.244.%d.%d", i/250%250, i%250+2)
	cond := func(typ corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: typ, Status: corev1.ConditionTrue, LastTransitionTime: t}
	}
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{cond(corev1.PodReadyToStartContainers), cond(corev1.PodInitialized), cond(corev1.PodReady),
			cond(corev1.ContainersReady), cond(corev1.PodScheduled)},
		HostIP: "192.168.7.21", HostIPs: []corev1.HostIP{{IP: "192.168.7.21"}}, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		StartTime: &t, QOSClass: corev1.PodQOSGuaranteed,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "web", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t}}, Ready: true,
			Image: "registry.example.com/shop/web:1.42.0", ImageID: "registry.example.com/shop/web@sha256:3f1c9a0d5e7b2c4f6a8e0d2b4c6e8f0a1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a",
			ContainerID: fmt.Sprintf("mesos://3d2c1b0a-9f8e-4d7c-b6a5-%012d", i), Started: ptr.To(true),
			VolumeMounts: []corev1.VolumeMountStatus{{Name: mounts[0].Name, MountPath: mounts[0].MountPath, ReadOnly: true}},
		}},
	}
	return p
}

// The cache keeps what the framework reads: an unbound pod's spec whole; a bound pod's placement,
// resources, ports and status, so that its demand and conditions are the same as the served pod's.
func TestCacheTransformKeepsWhatTheFrameworkReads(t *testing.T) {
	in := newInterner()
	pending := servedPod(1, "")
	out, err := in.cacheTransform(pending)
	if err != nil {
		t.Fatal(err)
	}
	cached := out.(*corev1.Pod)
	if cached.ManagedFields != nil {
		t.Error("a cached pod keeps its managedFields")
	}
	if pending.ManagedFields == nil {
		t.Error("the transform changed the object it was given (a watch's source may still hold it)")
	}
	want := pending.DeepCopy()
	want.ManagedFields = nil
	if !equality.Semantic.DeepEqual(cached, want) {
		t.Error("an unbound pod's cached copy differs from the served pod (beyond managedFields)")
	}

	running := servedPod(2, "h1")
	served := running.DeepCopy()
	cached = in.compactPod(running)
	if !reflect.DeepEqual(running, served) {
		t.Error("the transform changed the object it was given")
	}
	if cached.Spec.Volumes != nil || cached.Spec.Containers[0].Env != nil || cached.Spec.Containers[0].ReadinessProbe != nil ||
		cached.Spec.Containers[0].VolumeMounts != nil || cached.Spec.Containers[0].Args != nil {
		t.Errorf("a bound pod's cached spec keeps what no placement reads: %+v", cached.Spec)
	}
	if !reflect.DeepEqual(cached.ObjectMeta.Labels, served.Labels) || !reflect.DeepEqual(cached.Spec.Tolerations, served.Spec.Tolerations) ||
		cached.Spec.NodeName != "h1" || !reflect.DeepEqual(cached.OwnerReferences, served.OwnerReferences) {
		t.Error("a bound pod's cached labels, tolerations, owners or Node differ from the served pod's")
	}
	// A running pod keeps of its status what the framework reads from the cache; its writes start
	// from the API server's copy (freshPod).
	wantStatus := corev1.PodStatus{Phase: served.Status.Phase, HostIP: served.Status.HostIP, HostIPs: served.Status.HostIPs,
		PodIP: served.Status.PodIP, PodIPs: served.Status.PodIPs, StartTime: served.Status.StartTime, QOSClass: served.Status.QOSClass}
	if served.Status.ContainerStatuses == nil || served.Status.Conditions == nil {
		t.Fatal("the served running pod has no container statuses or conditions")
	}
	if !equality.Semantic.DeepEqual(cached.Status, wantStatus) {
		t.Errorf("a running pod's cached status = %+v, want %+v", cached.Status, wantStatus)
	}
	if !podtranslate.PodStarted(cached) {
		t.Error("a running pod's cached copy does not show it started")
	}
	lost := servedPod(3, "h1")
	for i := range lost.Status.Conditions {
		if lost.Status.Conditions[i].Type == corev1.PodReady {
			lost.Status.Conditions[i].Status, lost.Status.Conditions[i].Reason = corev1.ConditionFalse, podtranslate.ReasonNodeLost
		}
	}
	if c := in.compactPod(lost); !markedNodeLost(c) || len(c.Status.Conditions) != 1 {
		t.Errorf("a pod the framework marked NotReady keeps conditions %+v, want only its NodeLost one", c.Status.Conditions)
	}
	// A pod on its Node that has not started keeps its container statuses: they tell whether a
	// container ran (podtranslate.PodStarted), which decides between relaunching and failing it.
	starting := servedPod(4, "h1")
	starting.Status.Phase = corev1.PodPending
	if c := in.compactPod(starting); !reflect.DeepEqual(c.Status, starting.Status) {
		t.Error("a bound pending pod's cached status differs from the served one")
	}
	var o podtranslate.Options
	dServed, err1 := podtranslate.PodDemand(served, o)
	dCached, err2 := podtranslate.PodDemand(cached, o)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(dServed, dCached) {
		t.Errorf("demand of the cached pod %+v (%v), of the served pod %+v (%v)", dCached, err2, dServed, err1)
	}
	st := served.Status
	if a, b := podtranslate.KubeletConditions(served, st.Phase, st.InitContainerStatuses, st.ContainerStatuses),
		podtranslate.KubeletConditions(cached, st.Phase, st.InitContainerStatuses, st.ContainerStatuses); !reflect.DeepEqual(a, b) {
		t.Errorf("conditions from the cached pod %v, from the served pod %v", b, a)
	}

	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "h1", ManagedFields: served.ManagedFields}}
	if out, _ := in.cacheTransform(n); out.(*corev1.Node).ManagedFields != nil {
		t.Error("a Node keeps its managedFields")
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "shop/p", Obj: served}
	if out, err := in.cacheTransform(tomb); err != nil || out != any(tomb) {
		t.Errorf("cacheTransform(tombstone) = %v, %v; want it unchanged", out, err)
	}
}

// Pods with equal requests share one map and equal strings one copy; different values stay apart.
func TestCacheSharesRepeatedValues(t *testing.T) {
	in := newInterner()
	a, b := in.compactPod(servedPod(1, "h1")), in.compactPod(servedPod(2, "h1"))
	same := func(x, y corev1.ResourceList) bool {
		return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer()
	}
	if !same(a.Spec.Containers[0].Resources.Requests, b.Spec.Containers[0].Resources.Requests) {
		t.Error("equal requests of two pods are two maps")
	}
	if !same(a.Spec.Containers[0].Resources.Requests, a.Spec.Containers[0].Resources.Limits) {
		t.Error("a container's requests and equal limits are two maps")
	}
	if reflect.ValueOf(a.Labels).UnsafePointer() != reflect.ValueOf(b.Labels).UnsafePointer() {
		t.Error("the same labels of two pods are two maps")
	}
	if unsafe.StringData(a.Status.HostIP) != unsafe.StringData(b.Status.HostIP) {
		t.Error("the same host IP of two pods is two strings")
	}
	sameSlice := func(x, y any) bool { return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer() }
	if !sameSlice(a.Spec.Containers, b.Spec.Containers) || !sameSlice(a.Spec.Tolerations, b.Spec.Tolerations) ||
		!sameSlice(a.OwnerReferences, b.OwnerReferences) {
		t.Error("two pods of one ReplicaSet on their Nodes do not share their containers, tolerations and owners")
	}
	c := servedPod(3, "h1")
	c.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	cc := in.compactPod(c)
	if same(cc.Spec.Containers[0].Resources.Requests, a.Spec.Containers[0].Resources.Requests) ||
		sameSlice(cc.Spec.Containers, a.Spec.Containers) {
		t.Error("different requests share a map or a container list")
	}
	if q := cc.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; q.MilliValue() != 200 {
		t.Errorf("cached cpu request %v, want 200m", q.String())
	}
	other := servedPod(6, "h1")
	other.Labels = map[string]string{"app": "web", "pod-template-hash": "55c6d8b9f4"}
	if oc := in.compactPod(other); reflect.ValueOf(oc.Labels).UnsafePointer() == reflect.ValueOf(a.Labels).UnsafePointer() ||
		oc.Labels["pod-template-hash"] != "55c6d8b9f4" {
		t.Errorf("different labels share a map: %v", oc.Labels)
	}
	// "1" and "1000m" are the same quantity: sharing them is right.
	d := servedPod(4, "h1")
	d.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000m")}
	e := servedPod(5, "h1")
	e.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	if dc, ec := in.compactPod(d), in.compactPod(e); !same(dc.Spec.Containers[0].Resources.Requests, ec.Spec.Containers[0].Resources.Requests) {
		t.Error("1000m and 1 cpu are two maps")
	}
}

// The interner's tables are dropped past their limit, and values given out before stay intact.
func TestInternerTablesStayBounded(t *testing.T) {
	in := newInterner()
	first := in.str("image-0")
	for i := 1; i <= internLimit+10; i++ {
		in.str(fmt.Sprintf("image-%d", i))
	}
	if len(in.strs) > internLimit {
		t.Errorf("%d interned strings, limit %d", len(in.strs), internLimit)
	}
	if first != "image-0" {
		t.Errorf("an interned string changed: %q", first)
	}
}

// BenchmarkPodCache reports the heap a cached pod takes ("B/pod"), decoded from the API server's
// protobuf as the informer receives it: as decoded (the informer without transform), and as the
// framework caches it, for pods that run (bound) and pods that wait (pending). Issue 13's memory
// target (300 MiB at 30,000 pods) leaves the pod cache well under 10 KB a pod.
func BenchmarkPodCache(b *testing.B) {
	const pods = 5000
	decoded := func(_ *interner, p *corev1.Pod) *corev1.Pod { return p }
	stripped := func(_ *interner, p *corev1.Pod) *corev1.Pod { return withoutManagedFields(p) }
	cached := (*interner).compactPod
	// decoded: as an informer without transform keeps it; stripped: what the framework cached before
	// podcache.go (the pod without managedFields); cached: as it caches it now.
	for _, bc := range []struct {
		name      string
		node      string
		transform func(*interner, *corev1.Pod) *corev1.Pod
	}{
		{"decoded/bound", "h1", decoded}, {"stripped/bound", "h1", stripped}, {"cached/bound", "h1", cached},
		{"decoded/pending", "", decoded}, {"stripped/pending", "", stripped}, {"cached/pending", "", cached},
	} {
		b.Run(bc.name, func(b *testing.B) {
			wire := make([][]byte, pods)
			for i := range wire {
				p := servedPod(i, "")
				if bc.node != "" {
					p = servedPod(i, fmt.Sprintf("h%d", i%1000))
				}
				var err error
				if wire[i], err = p.Marshal(); err != nil {
					b.Fatal(err)
				}
			}
			var perPod float64
			for b.Loop() {
				in := newInterner()
				kept := make([]*corev1.Pod, pods)
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for i, w := range wire {
					p := &corev1.Pod{}
					if err := p.Unmarshal(w); err != nil {
						b.Fatal(err)
					}
					kept[i] = bc.transform(in, p)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perPod = float64(after.HeapAlloc-before.HeapAlloc) / pods
				runtime.KeepAlive(kept)
				runtime.KeepAlive(in)
			}
			b.ReportMetric(perPod, "B/pod")
		})
	}
}

// A task's pod is found by UID while the cache holds it, and never another pod that took its name.
func TestPodByUIDFollowsTheCache(t *testing.T) {
	f := newFixture(t, State{}, pod("p", "uid-a", bound("h1"), running))
	if p := f.s.podByUID("uid-a"); p == nil || p.Name != "p" {
		t.Fatalf("podByUID(uid-a) = %v, want pod p", p)
	}
	if p := f.s.podByUID("uid-unknown"); p != nil {
		t.Errorf("podByUID(uid-unknown) = %s", p.UID)
	}
	old, _, _ := f.podIndex.GetByKey("default/p")
	if err := f.podIndex.Delete(old); err != nil {
		t.Fatal(err)
	}
	if p := f.s.podByUID("uid-a"); p != nil {
		t.Error("a pod deleted from the cache is still found by its UID")
	}
	// Recreated under the same name before the delete handler ran.
	f.updateCache(pod("p", "uid-b", bound("h2"), running))
	if p := f.s.podByUID("uid-a"); p != nil {
		t.Errorf("the old UID finds the new pod %s", p.UID)
	}
	if p := f.s.podByUID("uid-b"); p == nil || p.Spec.NodeName != "h2" {
		t.Errorf("podByUID(uid-b) = %v, want the new pod", p)
	}
	f.s.podHandlers().OnDelete(old)
	if _, ok := f.s.podUIDs.name("uid-a"); ok {
		t.Error("the delete handler left the deleted pod's UID")
	}
	if p := f.s.podByUID("uid-b"); p == nil {
		t.Error("deleting the old pod lost the new one")
	}
}

// BenchmarkPodUIDLookup reports what finding 30,000 pods by UID costs beside the cache ("B/pod"):
// client-go's indexer with a UID index against the transform's podUIDs table.
func BenchmarkPodUIDLookup(b *testing.B) {
	const pods = 30000
	cached := make([]*corev1.Pod, pods)
	in := newInterner()
	for i := range cached {
		cached[i] = in.compactPod(servedPod(i, fmt.Sprintf("h%d", i%1000)))
	}
	uidIndex := func(obj any) ([]string, error) { return []string{string(obj.(*corev1.Pod).UID)}, nil }
	measure := func(b *testing.B, fill func() any) {
		var perPod float64
		for b.Loop() {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			kept := fill()
			runtime.GC()
			runtime.ReadMemStats(&after)
			perPod = float64(after.HeapAlloc-before.HeapAlloc) / pods
			runtime.KeepAlive(kept)
		}
		b.ReportMetric(perPod, "B/pod")
	}
	b.Run("indexer+uid-index", func(b *testing.B) {
		measure(b, func() any {
			idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{"uid": uidIndex})
			for _, p := range cached {
				_ = idx.Add(p)
			}
			return idx
		})
	})
	b.Run("indexer+podUIDs", func(b *testing.B) {
		measure(b, func() any {
			idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
			uids := newPodUIDs()
			for _, p := range cached {
				uids.note(p)
				_ = idx.Add(p)
			}
			return []any{idx, uids}
		})
	})
}

package kubeletapi

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

func endedPod(name string, uid types.UID) (*corev1.Pod, corev1.PodStatus) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: uid},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}},
	}
	status := corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "main", ContainerID: "mesos://" + string(uid) + "-main-0",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ContainerID: "mesos://" + string(uid) + "-main-0"}},
	}}}
	return pod, status
}

// TestRegistryKeepsEndedPodsUntilDeleted: a pod whose task ended is still looked up (its terminated
// container's log is served, as a kubelet serves it until the pod is deleted); ForgetDeleted forgets
// the ended pods the API server no longer has (not found, or a new pod of the same name) and keeps
// those it has or could not ask about.
func TestRegistryKeepsEndedPodsUntilDeleted(t *testing.T) {
	r := NewRegistry("/sandbox")
	for _, p := range []struct {
		name string
		uid  types.UID
	}{{"deleted", "u1"}, {"kept", "u2"}, {"replaced", "u3"}, {"unreachable", "u4"}} {
		pod, st := endedPod(p.name, p.uid)
		r.Update(pod, st)
		r.Ended("ns", p.name, p.uid)
	}
	running, st := endedPod("running", "u5")
	r.Update(running, st)

	ref, err := r.Container("ns", "deleted", "main")
	if err != nil {
		t.Fatalf("an ended pod's container: %v", err)
	}
	if ref.Current == nil || ref.Current.ID != "u1-main-0" || ref.Current.Running {
		t.Errorf("an ended pod's container = %+v, want its terminated attempt u1-main-0", ref.Current)
	}

	var asked []string
	get := func(_ context.Context, ns, name string) (*corev1.Pod, error) {
		asked = append(asked, name)
		switch name {
		case "deleted":
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
		case "kept":
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: "u2"}}, nil
		case "replaced":
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: "u3-new"}}, nil
		}
		return nil, errors.New("connection refused")
	}
	gone := map[types.UID]bool{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.ForgetDeleted(context.Background(), t0, get, func(uid types.UID) { gone[uid] = true })
	if diff := cmp.Diff(map[types.UID]bool{"u1": true, "u3": true}, gone); diff != "" {
		t.Errorf("pods found deleted (-want +got):\n%s", diff)
	}
	if len(asked) != 4 {
		t.Errorf("asked the API server about %v, want the 4 ended pods only", asked)
	}
	for name, want := range map[string]bool{"deleted": false, "kept": true, "replaced": false, "unreachable": true, "running": true} {
		_, err := r.Container("ns", name, "main")
		if got := err == nil; got != want {
			t.Errorf("pod %s still served: %v (%v), want %v", name, got, err, want)
		}
	}

	// A pod that runs again (its task relaunched) is no longer an ended one; one that still exists is
	// asked about after 10 s, then 20 s, ... up to 2 min; one it could not ask about, at every round.
	pod, st := endedPod("unreachable", "u4")
	r.Update(pod, st)
	r.Ended("ns", "unreachable2", "u6")
	for _, tc := range []struct {
		after time.Duration
		want  []string
	}{
		{5 * time.Second, []string{"unreachable2"}},
		{10 * time.Second, []string{"kept", "unreachable2"}},
		{29 * time.Second, []string{"unreachable2"}},
		{30 * time.Second, []string{"kept", "unreachable2"}},
		{69 * time.Second, []string{"unreachable2"}},
		{70 * time.Second, []string{"kept", "unreachable2"}},
	} {
		asked = nil
		r.ForgetDeleted(context.Background(), t0.Add(tc.after), get, nil)
		sort.Strings(asked)
		if diff := cmp.Diff(tc.want, asked); diff != "" {
			t.Errorf("asked about at t0+%s (-want +got):\n%s", tc.after, diff)
		}
	}
}

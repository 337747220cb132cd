package executor

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Once the Node is known, whether an ended pod still exists is asked as the Node authorizer lets a
// kubelet ask: a list selected by spec.nodeName (a GET of a deleted pod is 403, not 404), and an
// empty answer is "not found".
func TestNodePodGetterListsByNodeName(t *testing.T) {
	client := fake.NewClientset()
	var selectors []string
	client.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "p", nil) // the Node authorizer's answer
	})
	client.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sel := a.(k8stesting.ListAction).GetListRestrictions().Fields.String()
		selectors = append(selectors, sel)
		if sel != "metadata.name=p,spec.nodeName=agent-1" {
			return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", nil)
		}
		return true, &corev1.PodList{}, nil
	})
	node := ""
	get := nodePodGetter(client, func() string { return node })
	if _, err := get(context.Background(), "ns", "p"); !apierrors.IsForbidden(err) {
		t.Fatalf("before the Node is known: %v, want the GET's answer", err)
	}
	node = "agent-1"
	if _, err := get(context.Background(), "ns", "p"); !apierrors.IsNotFound(err) {
		t.Fatalf("a pod no longer on the Node: %v, want not found", err)
	}
	if len(selectors) != 1 {
		t.Fatalf("lists %v", selectors)
	}

	// A pod still there is returned.
	client = fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}, Spec: corev1.PodSpec{NodeName: "agent-1"}})
	p, err := nodePodGetter(client, func() string { return "agent-1" })(context.Background(), "ns", "p")
	if err != nil || p.UID != "u1" {
		t.Fatalf("existing pod: %v %v", p, err)
	}
}

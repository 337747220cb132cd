package executor

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeAllocatable reads the status.allocatable of a Node (the framework's, from the agent's
// resources): the downward API's default for limits a container does not set, which the kubelet
// takes from its own Node object (getNodeAnyWay).
func (l kubeLookup) NodeAllocatable(ctx context.Context, name string) (corev1.ResourceList, error) {
	n, err := l.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return n.Status.Allocatable, nil
}

// Services lists a namespace's Services, for the service link variables of its pods' containers
// (the kubelet reads them from its Service informer).
func (l kubeLookup) Services(ctx context.Context, namespace string) ([]corev1.Service, error) {
	list, err := l.client.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

package kubeletapi

import (
	"context"
	"fmt"
	"net"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// PublishEndpoint writes the server's port to the Node's status.daemonEndpoints.kubeletEndpoint.Port
// (a merge patch of the status subresource, so the framework's other status fields stay), which is
// where the API server looks for the kubelet port of `kubectl logs` and `exec`. addr is what Start
// returned. The caller needs patch on nodes/status and retries while the Node does not exist yet.
func PublishEndpoint(ctx context.Context, client kubernetes.Interface, nodeName, addr string) error {
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("kubelet API address %q: %w", addr, err)
	}
	port, err := strconv.ParseInt(portText, 10, 32)
	if err != nil || port <= 0 {
		return fmt.Errorf("kubelet API address %q has no port", addr)
	}
	patch := fmt.Sprintf(`{"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":%d}}}}`, port)
	if _, err := client.CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("publishing the kubelet port %d on Node %s: %w", port, nodeName, err)
	}
	return nil
}

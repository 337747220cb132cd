package kubeletapi

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestPublishEndpoint(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent0"}, Status: corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}},
	}}
	client := fake.NewClientset(node)
	if err := PublishEndpoint(context.Background(), client, "agent0", "[::]:40123"); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().Nodes().Get(context.Background(), "agent0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := node.Status.DeepCopy()
	want.DaemonEndpoints.KubeletEndpoint.Port = 40123
	if diff := cmp.Diff(*want, got.Status); diff != "" {
		t.Errorf("Node status (-want +got):\n%s", diff)
	}
	if err := PublishEndpoint(context.Background(), client, "agent9", "127.0.0.1:1"); !apierrors.IsNotFound(err) {
		t.Errorf("publishing on a missing Node = %v, want NotFound", err)
	}
	if err := PublishEndpoint(context.Background(), client, "agent0", "no-port"); err == nil {
		t.Error("publishing an address without port succeeded")
	}
}

// TestNodeNameUnknown: until the executor knows its node (SUBSCRIBED), authenticated requests get
// 503 rather than an authorization check against the wrong name; /healthz works.
func TestNodeNameUnknown(t *testing.T) {
	s, err := New(Config{Pods: NewRegistry(t.TempDir()), Authenticator: anyUser, Authorizer: allowAll, Log: quietLog(), Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.Wait() }()
	addr, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := insecureClient()
	if code, body := get(t, c, "https://"+addr+"/containerLogs/default/web/main"); code != http.StatusServiceUnavailable {
		t.Errorf("before SetNodeName: %d %q, want 503", code, body)
	}
	if code, _ := get(t, c, "https://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz before SetNodeName: %d, want 200", code)
	}
	s.SetNodeName("agent0")
	if code, body := get(t, c, "https://"+addr+"/containerLogs/default/web/main"); code != http.StatusNotFound {
		t.Errorf("after SetNodeName: %d %q, want 404 (no such pod)", code, body)
	}
}

package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// fakeAPIServices answers the apiregistration endpoint: the first POST creates, later ones are
// AlreadyExists; PATCHes are recorded.
type fakeAPIServices struct {
	mu       sync.Mutex
	requests []string // method path
	bodies   []map[string]any
	created  bool
}

func (f *fakeAPIServices) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.bodies = append(f.bodies, body)
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost && f.created {
		st := errors.NewAlreadyExists(schema.GroupResource{Group: "apiregistration.k8s.io", Resource: "apiservices"}, MetricsAPIService).Status()
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	f.created = true
	_, _ = w.Write(b)
}

func restFor(t *testing.T, h http.Handler) rest.Interface {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rc, err := rest.RESTClientFor(&rest.Config{Host: srv.URL, ContentConfig: rest.ContentConfig{
		GroupVersion: &schema.GroupVersion{}, NegotiatedSerializer: scheme.Codecs.WithoutConversion()}})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestDeployMetricsServer(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	apis := &fakeAPIServices{}
	opts := MetricsServerOptions{Namespace: "e2e-1", Image: "metrics-server:v0.8.0", APIServices: restFor(t, apis)}
	for range 2 { // the second run updates what exists
		if err := DeployMetricsServer(ctx, client, opts); err != nil {
			t.Fatal(err)
		}
	}
	dep, err := client.AppsV1().Deployments("e2e-1").Get(ctx, "metrics-server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	want := []string{"--cert-dir=/tmp", "--secure-port=10250", "--kubelet-preferred-address-types=InternalIP",
		"--kubelet-use-node-status-port", "--kubelet-insecure-tls", "--metric-resolution=15s"}
	if !slices.Equal(c.Args, want) {
		t.Errorf("args = %q, want %q", c.Args, want)
	}
	if c.Image != "metrics-server:v0.8.0" || pod.SchedulerName != "kubemesos" || pod.ServiceAccountName != "metrics-server" ||
		pod.PriorityClassName != "" || *c.SecurityContext.RunAsUser != 65534 {
		t.Errorf("pod spec = %+v", pod)
	}
	if p := c.ReadinessProbe.HTTPGet; p.Path != "/readyz" || p.Port.StrVal != "https" || p.Scheme != "HTTPS" {
		t.Errorf("readiness probe = %+v", p)
	}
	svc, err := client.CoreV1().Services("e2e-1").Get(ctx, "metrics-server", metav1.GetOptions{})
	if err != nil || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.StrVal != "https" {
		t.Errorf("service = %+v, %v", svc, err)
	}
	role, err := client.RbacV1().ClusterRoles().Get(ctx, "system:metrics-server", metav1.GetOptions{})
	if err != nil || role.Rules[0].Resources[0] != "nodes/metrics" {
		t.Errorf("system:metrics-server = %+v, %v (it must get nodes/metrics: the executors authorize scrapes with it)", role, err)
	}
	for _, name := range []string{"metrics-server:system:auth-delegator:e2e-1", "system:metrics-server:e2e-1"} {
		b, err := client.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
		if err != nil || b.Subjects[0].Namespace != "e2e-1" {
			t.Errorf("binding %s = %+v, %v", name, b, err)
		}
	}
	if _, err := client.RbacV1().RoleBindings("kube-system").Get(ctx, "metrics-server-auth-reader:e2e-1", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	wantReqs := []string{"POST " + apiServicesPath, "POST " + apiServicesPath, "PATCH " + apiServicesPath + "/" + MetricsAPIService}
	if !slices.Equal(apis.requests, wantReqs) {
		t.Fatalf("APIService requests = %q, want %q", apis.requests, wantReqs)
	}
	spec, _ := apis.bodies[0]["spec"].(map[string]any)
	svcRef, _ := spec["service"].(map[string]any)
	if svcRef["namespace"] != "e2e-1" || svcRef["name"] != "metrics-server" || spec["group"] != "metrics.k8s.io" || spec["insecureSkipTLSVerify"] != true {
		t.Errorf("APIService = %v", apis.bodies[0])
	}
	if patch, _ := apis.bodies[2]["spec"].(map[string]any); patch["version"] != "v1beta1" {
		t.Errorf("APIService patch = %v", apis.bodies[2])
	}
}

func TestDeployMetricsServerInKubeSystem(t *testing.T) {
	client := fake.NewClientset()
	opts := MetricsServerOptions{Image: "m", APIServices: restFor(t, &fakeAPIServices{}), MetricResolution: 30e9}
	if err := DeployMetricsServer(context.Background(), client, opts); err != nil {
		t.Fatal(err)
	}
	dep, err := client.AppsV1().Deployments("kube-system").Get(context.Background(), "metrics-server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pc := dep.Spec.Template.Spec.PriorityClassName; pc != "system-cluster-critical" {
		t.Errorf("priority class %q", pc)
	}
	if a := dep.Spec.Template.Spec.Containers[0].Args; a[len(a)-1] != "--metric-resolution=30s" {
		t.Errorf("args %q", a)
	}
	// Upstream's names in kube-system.
	if _, err := client.RbacV1().ClusterRoleBindings().Get(context.Background(), "system:metrics-server", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	if err := DeployMetricsServer(context.Background(), client, MetricsServerOptions{}); err == nil {
		t.Error("no image accepted")
	}
}

// The API server reaches metrics-server's pod without kube-proxy (envs without Services).
func TestAPIServerRoutesAggregatedAPIsToEndpoints(t *testing.T) {
	for _, a := range (&ControlPlane{Dir: "/cp"}).apiServerArgs(6443) {
		if a == "--enable-aggregator-routing=true" {
			return
		}
	}
	t.Error("kube-apiserver runs without --enable-aggregator-routing=true")
}

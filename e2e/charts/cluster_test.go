package charts

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/cluster"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// One control plane for the tests of this package that need a real API server, started on first use and
// stopped in TestMain. Tests stay apart through namespaces.
var shared = cluster.Shared{Timeout: 20 * time.Minute}

func controlPlane(t *testing.T) *cluster.ControlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP in -short mode: needs the e2e control plane (kube-apiserver)")
	}
	return shared.Get(t)
}

func TestMain(m *testing.M) {
	// Isolating agents (helminstall_test.go) re-execute this binary as Mesos' launch helper.
	containerizer.MaybeRunHelper()
	code := m.Run()
	shared.Close(code != 0)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Every object the chart renders, for every representative install, is accepted by the real API server:
// a server-side dry run with strict field validation (unknown or duplicate fields are errors), so
// defaulting, validation and admission all run without anything being stored.
func TestRenderedObjectsPassServerSideDryRun(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	installServiceMonitorCRD(t, ctx, cp)
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))

	for _, tc := range overrideSets {
		t.Run(tc.name, func(t *testing.T) {
			ns := cp.Namespace(t)
			r, err := renderChart(t, valuesYAML(t, tc.values), ns)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Objects) < 4 {
				t.Fatalf("only %d objects rendered", len(r.Objects))
			}
			for _, obj := range r.Objects {
				u, err := toUnstructured(obj)
				if err != nil {
					t.Fatal(err)
				}
				gvk := u.GroupVersionKind()
				mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Errorf("%s %s: the API server does not serve it: %v", gvk, u.GetName(), err)
					continue
				}
				var res dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
				if mapping.Scope.Name() == "namespace" {
					if u.GetNamespace() == "" {
						t.Errorf("%s %s: namespaced but rendered without a namespace", gvk.Kind, u.GetName())
					}
					res = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
				} else if u.GetNamespace() != "" {
					t.Errorf("%s %s: cluster-scoped but rendered in namespace %s", gvk.Kind, u.GetName(), u.GetNamespace())
				}
				_, err = res.Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
				if err != nil {
					t.Errorf("%s %s/%s refused: %v", gvk.Kind, u.GetNamespace(), u.GetName(), err)
				}
			}
		})
	}
}

func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", obj, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// installServiceMonitorCRD serves monitoring.coreos.com/v1 ServiceMonitor (schema-less: the Prometheus
// Operator's own schema is not vendored here), so the optional ServiceMonitor is at least checked for
// its group, version, kind, scope and metadata.
func installServiceMonitorCRD(t *testing.T, ctx context.Context, cp *cluster.ControlPlane) {
	t.Helper()
	client, err := apiextensionsclient.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "servicemonitors", Singular: "servicemonitor", Kind: "ServiceMonitor", ListKind: "ServiceMonitorList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", XPreserveUnknownFields: ptr.To(true)},
					},
				}},
			}},
		},
	}
	if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the ServiceMonitor CRD: %v", err)
	}
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for the ServiceMonitor CRD: %v", err)
	}
}

// access is one API request, as RBAC sees it.
type access struct {
	verb, group, resource, subresource, namespace, name string
}

func (a access) String() string {
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.group != "" {
		r += "." + a.group
	}
	return fmt.Sprintf("%s %s %s/%s", a.verb, r, a.namespace, a.name)
}

// The chart's RBAC, installed for real, lets its ServiceAccounts make every call the framework (and the
// executors) make and nothing chosen to be out of bounds: asked of the API server's authorizer as each
// ServiceAccount, with a token minted for it.
func TestChartRBACGrantsTheFrameworkItsCallsAndNoMore(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := cp.Namespace(t)
	r, err := renderChart(t, valuesYAML(t, "executor:\n  serviceAccount:\n    create: true\n"), ns)
	if err != nil {
		t.Fatal(err)
	}
	applyRBAC(t, ctx, cp.Client, r)

	const state = "kubemesos-framework"
	for _, tc := range []struct {
		serviceAccount  string
		allowed, denied []access
	}{
		{
			serviceAccount: testFullname,
			allowed: []access{
				{verb: "list", resource: "pods"}, {verb: "watch", resource: "pods"},
				// Namespaces' labels, for pod affinity's namespaceSelector.
				{verb: "list", resource: "namespaces"}, {verb: "watch", resource: "namespaces"},
				{verb: "get", resource: "pods", namespace: "team-a", name: "web-0"},
				{verb: "update", resource: "pods", namespace: "team-a", name: "web-0"},
				{verb: "patch", resource: "pods", namespace: "team-a", name: "web-0"},
				{verb: "delete", resource: "pods", namespace: "team-a", name: "web-0"},
				{verb: "create", resource: "pods", subresource: "binding", namespace: "team-a", name: "web-0"},
				{verb: "update", resource: "pods", subresource: "status", namespace: "team-a", name: "web-0"},
				{verb: "patch", resource: "pods", subresource: "status", namespace: "team-a", name: "web-0"},
				{verb: "list", resource: "nodes"}, {verb: "watch", resource: "nodes"}, {verb: "create", resource: "nodes"},
				{verb: "get", resource: "nodes", name: "agent-1"}, {verb: "update", resource: "nodes", name: "agent-1"},
				{verb: "patch", resource: "nodes", name: "agent-1"}, {verb: "delete", resource: "nodes", name: "agent-1"},
				{verb: "update", resource: "nodes", subresource: "status", name: "agent-1"},
				{verb: "patch", resource: "nodes", subresource: "status", name: "agent-1"},
				{verb: "create", resource: "events", namespace: "team-a"}, {verb: "patch", resource: "events", namespace: "team-a", name: "e"},
				{verb: "get", resource: "configmaps", namespace: ns, name: state},
				{verb: "create", resource: "configmaps", namespace: ns},
				{verb: "update", resource: "configmaps", namespace: ns, name: state},
				{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: state},
				{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: ns},
				{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: state},
				{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease", name: "agent-1"},
				{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease"},
				{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease", name: "agent-1"},
				{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease", name: "agent-1"},
				// Preemption and drains evict (the chart's rule since the preemption commit).
				{verb: "create", resource: "pods", subresource: "eviction", namespace: "team-a", name: "web-0"},
				// The executors' client certificates: CSRs of the kubelet client signer, approved after
				// a SubjectAccessReview of the requester.
				{verb: "list", group: "certificates.k8s.io", resource: "certificatesigningrequests"},
				{verb: "watch", group: "certificates.k8s.io", resource: "certificatesigningrequests"},
				{verb: "get", group: "certificates.k8s.io", resource: "certificatesigningrequests", name: "csr-1"},
				{verb: "update", group: "certificates.k8s.io", resource: "certificatesigningrequests", subresource: "approval", name: "csr-1"},
				{verb: "approve", group: "certificates.k8s.io", resource: "signers", name: "kubernetes.io/kube-apiserver-client-kubelet"},
				{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"},
			},
			denied: []access{
				{verb: "approve", group: "certificates.k8s.io", resource: "signers", name: "kubernetes.io/kube-apiserver-client"},
				{verb: "update", group: "certificates.k8s.io", resource: "certificatesigningrequests", subresource: "status", name: "csr-1"},
				{verb: "create", group: "certificates.k8s.io", resource: "certificatesigningrequests"},
				{verb: "create", resource: "pods", namespace: "team-a"},
				{verb: "get", resource: "secrets", namespace: ns, name: "anything"},
				{verb: "list", resource: "secrets"},
				{verb: "get", resource: "configmaps", namespace: ns, name: "other"},
				{verb: "delete", resource: "configmaps", namespace: ns, name: state},
				{verb: "get", resource: "configmaps", namespace: "kube-system", name: state},
				{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: "other"},
				{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: state},
				{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system", name: "kube-controller-manager"},
				{verb: "delete", resource: "events", namespace: "team-a", name: "e"},
				{verb: "create", resource: "pods", subresource: "exec", namespace: "team-a", name: "web-0"},
				{verb: "update", resource: "namespaces", name: "team-a"},
				{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
				{verb: "create", group: "apps", resource: "deployments", namespace: "team-a"},
			},
		},
		{
			serviceAccount: testFullname + "-executor",
			// Only a kubelet's TLS bootstrap: the executor does the rest as its Node, which the Node
			// authorizer and NodeRestriction confine (e2e/kubemesos TestExecutorIdentityLikeAKubelets).
			allowed: []access{
				{verb: "create", group: "certificates.k8s.io", resource: "certificatesigningrequests"},
				{verb: "get", group: "certificates.k8s.io", resource: "certificatesigningrequests", name: "csr-1"},
				{verb: "list", group: "certificates.k8s.io", resource: "certificatesigningrequests"},
				{verb: "watch", group: "certificates.k8s.io", resource: "certificatesigningrequests"},
				{verb: "create", group: "certificates.k8s.io", resource: "certificatesigningrequests", subresource: "kubemesos-executor"},
			},
			denied: []access{
				// kube-controller-manager would approve its CSRs for any Node with these.
				{verb: "create", group: "certificates.k8s.io", resource: "certificatesigningrequests", subresource: "nodeclient"},
				{verb: "create", group: "certificates.k8s.io", resource: "certificatesigningrequests", subresource: "selfnodeclient"},
				{verb: "update", group: "certificates.k8s.io", resource: "certificatesigningrequests", subresource: "approval", name: "csr-1"},
				{verb: "approve", group: "certificates.k8s.io", resource: "signers", name: "kubernetes.io/kube-apiserver-client-kubelet"},
				{verb: "get", resource: "pods", namespace: "team-a", name: "web-0"},
				{verb: "patch", resource: "pods", subresource: "status", namespace: "team-a", name: "web-0"},
				{verb: "get", resource: "configmaps", namespace: "team-a", name: "web-config"},
				{verb: "get", resource: "secrets", namespace: "team-a", name: "web-tls"},
				{verb: "create", resource: "events", namespace: "team-a"},
				{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "team-a", name: "default"},
				{verb: "patch", resource: "nodes", subresource: "status", name: "agent-1"},
				{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
				{verb: "get", resource: "configmaps", namespace: "kube-system", name: "extension-apiserver-authentication"},
			},
		},
	} {
		t.Run(tc.serviceAccount, func(t *testing.T) {
			asSA := clientFor(t, ctx, cp, ns, tc.serviceAccount)
			for _, want := range []bool{true, false} {
				calls := tc.allowed
				if !want {
					calls = tc.denied
				}
				for _, a := range calls {
					review, err := asSA.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
						Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
							Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace, Name: a.name,
						}},
					}, metav1.CreateOptions{})
					if err != nil {
						t.Fatalf("access review: %v", err)
					}
					if review.Status.Allowed != want {
						t.Errorf("%s: allowed=%v, want %v (%s)", a, review.Status.Allowed, want, review.Status.Reason)
					}
				}
			}
		})
	}
}

// mintToken returns a short-lived token for a ServiceAccount.
func mintToken(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, ns, sa string) string {
	t.Helper()
	tok, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](900)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tok.Status.Token
}

// clientFor is a clientset authenticated as a ServiceAccount.
func clientFor(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, ns, sa string) kubernetes.Interface {
	t.Helper()
	cfg := rest.AnonymousClientConfig(cp.Config)
	cfg.BearerToken = mintToken(t, ctx, cp, ns, sa)
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// applyRBAC creates the chart's ServiceAccount, (Cluster)Roles and bindings, and deletes the
// cluster-scoped ones when the test ends (the namespace takes the rest with it).
func applyRBAC(t *testing.T, ctx context.Context, c kubernetes.Interface, r *rendered) {
	t.Helper()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("creating %s: %v", what, err)
		}
	}
	cleanup := func(f func(context.Context) error) {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := f(ctx); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	for _, o := range each[*corev1.ServiceAccount](r) {
		_, err := c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		must("ServiceAccount "+o.Name, err)
	}
	for _, o := range each[*rbacv1.ClusterRole](r) {
		_, err := c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		must("ClusterRole "+o.Name, err)
		cleanup(func(ctx context.Context) error {
			return c.RbacV1().ClusterRoles().Delete(ctx, o.Name, metav1.DeleteOptions{})
		})
	}
	for _, o := range each[*rbacv1.ClusterRoleBinding](r) {
		_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		must("ClusterRoleBinding "+o.Name, err)
		cleanup(func(ctx context.Context) error {
			return c.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
		})
	}
	for _, o := range each[*rbacv1.Role](r) {
		_, err := c.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		must("Role "+o.Namespace+"/"+o.Name, err)
		cleanup(func(ctx context.Context) error {
			return c.RbacV1().Roles(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
		})
	}
	for _, o := range each[*rbacv1.RoleBinding](r) {
		_, err := c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		must("RoleBinding "+o.Namespace+"/"+o.Name, err)
		cleanup(func(ctx context.Context) error {
			return c.RbacV1().RoleBindings(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
		})
	}
}

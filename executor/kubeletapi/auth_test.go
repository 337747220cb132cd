package kubeletapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
)

func TestRequestAttributes(t *testing.T) {
	tests := []struct {
		method, path string
		wantVerb     string
		wantSubs     []string
	}{
		{"GET", "/containerLogs/default/web/main", "get", []string{"proxy"}},
		{"POST", "/exec/default/web/main", "create", []string{"proxy"}},
		{"GET", "/exec/default/web/main", "get", []string{"proxy"}},
		{"GET", "/stats/summary", "get", []string{"stats"}},
		{"GET", "/metrics", "get", []string{"metrics"}},
		{"GET", "/metrics/cadvisor", "get", []string{"metrics"}},
		{"GET", "/logs/syslog", "get", []string{"log"}},
		{"GET", "/pods", "get", []string{"pods", "proxy"}},
		{"GET", "/healthz", "get", []string{"healthz", "proxy"}},
		{"GET", "/configz", "get", []string{"configz", "proxy"}},
		{"GET", "/statsfoo", "get", []string{"proxy"}},
		{"DELETE", "/checkpoint/x", "delete", []string{"checkpoint"}},
	}
	u := &user.DefaultInfo{Name: "alice"}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			attrs := RequestAttributes(u, r, "agent0")
			var subs []string
			for _, a := range attrs {
				subs = append(subs, a.GetSubresource())
				want := authorizer.AttributesRecord{User: u, Verb: tt.wantVerb, APIVersion: "v1", Resource: "nodes",
					Subresource: a.GetSubresource(), Name: "agent0", ResourceRequest: true, Path: tt.path}
				if diff := cmp.Diff(want, a); diff != "" {
					t.Errorf("attributes (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.wantSubs, subs); diff != "" {
				t.Errorf("subresources (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAuthFilter(t *testing.T) {
	reg := NewRegistry(t.TempDir())
	authn := authenticator.RequestFunc(func(r *http.Request) (*authenticator.Response, bool, error) {
		switch r.Header.Get("Authorization") {
		case "Bearer admin", "Bearer viewer", "Bearer broken-authz":
			return &authenticator.Response{User: &user.DefaultInfo{Name: r.Header.Get("Authorization")[7:]}}, true, nil
		case "Bearer error":
			return nil, false, errors.New("token review failed")
		}
		return nil, false, nil
	})
	authz := authorizer.AuthorizerFunc(func(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		switch a.GetUser().GetName() {
		case "admin":
			if a.GetResource() == "nodes" && a.GetSubresource() == "proxy" && a.GetName() == "agent0" {
				return authorizer.DecisionAllow, "", nil
			}
		case "broken-authz":
			return authorizer.DecisionNoOpinion, "", errors.New("webhook down")
		}
		return authorizer.DecisionNoOpinion, "", nil
	})
	base := startServer(t, Config{Pods: reg, Authenticator: authn, Authorizer: authz})
	tests := []struct {
		name     string
		path     string
		token    string
		wantCode int
		wantBody string
	}{
		{"no credentials", "/containerLogs/default/web/main", "", 401, "Unauthorized\n"},
		{"authenticator error", "/containerLogs/default/web/main", "error", 401, "Unauthorized\n"},
		{"forbidden", "/containerLogs/default/web/main", "viewer", 403,
			"Forbidden (user=viewer, verb=get, resource=nodes, subresource(s)=[proxy])\n"},
		{"authorizer error", "/containerLogs/default/web/main", "broken-authz", 500,
			"Authorization error (user=broken-authz, verb=get, resource=nodes, subresource=proxy)\n"},
		{"allowed reaches the handler", "/containerLogs/default/web/main", "admin", 404, "pod default/web: pod not found on this node\n"},
		{"allowed, unknown path", "/spec", "admin", 404, "404 page not found\n"},
		{"healthz needs no credentials", "/healthz", "", 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := insecureClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := readAll(t, resp)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status %d, want %d (%q)", resp.StatusCode, tt.wantCode, body)
			}
			if diff := cmp.Diff(tt.wantBody, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// testCA is a certificate authority that issues client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// clientCert issues a client certificate for user cn in groups.
func (ca *testCA) clientCert(t *testing.T, cn string, groups ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestDelegatingAuth runs the real delegating authenticator and authorizer against a fake API server: the
// client CA comes from the extension-apiserver-authentication ConfigMap, bearer tokens go to
// TokenReview, and every decision is a SubjectAccessReview for the node.
func TestDelegatingAuth(t *testing.T) {
	apiCA, otherCA := newTestCA(t, "client-ca"), newTestCA(t, "other-ca")
	caConfigMap := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: AuthenticationConfigMapNamespace, Name: AuthenticationConfigMapName, ResourceVersion: "1"},
		Data:       map[string]string{"client-ca-file": string(apiCA.pem)},
	}
	var mu sync.Mutex
	var reviews []authorizationv1.SubjectAccessReviewSpec
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/namespaces/kube-system/configmaps" && r.URL.Query().Get("watch") == "true":
			// The informer's watch-list: the ConfigMap, the end-of-initial-events bookmark, then no changes.
			w.WriteHeader(http.StatusOK)
			if r.URL.Query().Get("sendInitialEvents") == "true" {
				writeJSON(t, w, map[string]any{"type": "ADDED", "object": caConfigMap})
				writeJSON(t, w, map[string]any{"type": "BOOKMARK", "object": map[string]any{"kind": "ConfigMap", "apiVersion": "v1",
					"metadata": map[string]any{"resourceVersion": "1", "annotations": map[string]string{"k8s.io/initial-events-end": "true"}}}})
			}
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case r.URL.Path == "/api/v1/namespaces/kube-system/configmaps":
			writeJSON(t, w, &corev1.ConfigMapList{
				TypeMeta: metav1.TypeMeta{Kind: "ConfigMapList", APIVersion: "v1"},
				ListMeta: metav1.ListMeta{ResourceVersion: "1"},
				Items:    []corev1.ConfigMap{*caConfigMap},
			})
		case r.URL.Path == "/apis/authentication.k8s.io/v1/tokenreviews":
			var tr authenticationv1.TokenReview
			readJSON(t, r, &tr)
			if tr.Spec.Token == "good-token" {
				tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "token-user"}}
			}
			writeJSON(t, w, &tr)
		case r.URL.Path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
			var sar authorizationv1.SubjectAccessReview
			readJSON(t, r, &sar)
			mu.Lock()
			reviews = append(reviews, sar.Spec)
			mu.Unlock()
			ra := sar.Spec.ResourceAttributes
			sar.Status.Allowed = sar.Spec.User == "kube-apiserver-kubelet-client" && ra != nil &&
				ra.Resource == "nodes" && ra.Subresource == "proxy" && ra.Name == "agent0"
			writeJSON(t, w, &sar)
		default:
			http.Error(w, "not served by the fake API server: "+r.URL.String(), http.StatusNotFound)
		}
	}))
	t.Cleanup(api.Close)
	client, err := kubernetes.NewForConfig(&restclient.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := Delegating(client, DelegatingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var caRunning sync.WaitGroup
	caRunning.Add(1)
	go func() { defer caRunning.Done(); auth.Run(ctx) }()
	t.Cleanup(func() { cancel(); caRunning.Wait() })
	waitFor(t, "the client CA from the ConfigMap", auth.ClientCAKnown)

	sandbox := t.TempDir()
	reg := NewRegistry(sandbox)
	reg.Update(testPod("web"), corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "c1")}})
	writeLogs(t, sandbox, "c1", "hello\n", "")
	base := startServer(t, Config{Pods: reg, Authenticator: auth.Authenticator, Authorizer: auth.Authorizer})

	tests := []struct {
		name     string
		cert     *tls.Certificate
		token    string
		wantCode int
	}{
		{"API server's client certificate", ptr(apiCA.clientCert(t, "kube-apiserver-kubelet-client", "system:masters")), "", 200},
		{"certificate of another CA", ptr(otherCA.clientCert(t, "kube-apiserver-kubelet-client")), "", 401},
		{"certificate of a user without nodes/proxy", ptr(apiCA.clientCert(t, "someone")), "", 403},
		{"valid token, not authorized", nil, "good-token", 403},
		{"invalid token", nil, "bad-token", 401},
		{"nothing", nil, "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *http.Client
			if tt.cert != nil {
				c = insecureClient(*tt.cert)
			} else {
				c = insecureClient()
			}
			req, _ := http.NewRequest("GET", base+"/containerLogs/default/web/main", nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := readAll(t, resp)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status %d, want %d (%q)", resp.StatusCode, tt.wantCode, body)
			}
			if tt.wantCode == 200 && body != "hello\n" {
				t.Errorf("body %q, want the container's log", body)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reviews) == 0 {
		t.Fatal("no SubjectAccessReview was made")
	}
	want := authorizationv1.SubjectAccessReviewSpec{
		User: "kube-apiserver-kubelet-client", Groups: []string{"system:masters", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Version: "v1", Resource: "nodes", Subresource: "proxy", Name: "agent0"},
	}
	got := reviews[0]
	got.Extra = nil // the certificate's fingerprint (credential-id)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("first SubjectAccessReview (-want +got):\n%s", diff)
	}
}

func ptr[T any](v T) *T { return &v }

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	return string(b)
}

func writeJSON(t *testing.T, w http.ResponseWriter, v any) {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		t.Errorf("fake API server: %v", err)
	}
}

func readJSON(t *testing.T, r *http.Request, v any) {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Errorf("fake API server: %v", err)
	}
}

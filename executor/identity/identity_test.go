package identity

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
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// fakeAPI is just enough of an API server for the TLS bootstrap: CSRs (create, list, watch) signed at
// once by its CA unless deny, and GET of a Pod answering who the client certificate says the caller is.
type fakeAPI struct {
	t      testing.TB
	srv    *httptest.Server
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	caPEM  []byte
	life   time.Duration

	mu   sync.Mutex
	csrs []*certificatesv1.CertificateSigningRequest
	// requesters are the credentials each CSR came with (the Authorization header or the client
	// certificate's CN).
	requesters []string
}

func newFakeAPI(t testing.TB, life time.Duration) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, life: life}
	var err error
	if f.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &f.caKey.PublicKey, f.caKey)
	if err != nil {
		t.Fatal(err)
	}
	f.caCert, _ = x509.ParseCertificate(der)
	f.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	pool := x509.NewCertPool()
	pool.AddCert(f.caCert)
	f.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, ClientCAs: pool} // verified by who
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) who(r *http.Request) string {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		if _, err := c.Verify(x509.VerifyOptions{Roots: f.srv.TLS.ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			return c.Subject.CommonName + "/" + strings.Join(c.Subject.Organization, ",")
		}
	}
	if a := r.Header.Get("Authorization"); a != "" {
		return a
	}
	return "anonymous"
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	const csrPath = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	switch {
	case r.Method == http.MethodPost && r.URL.Path == csrPath:
		body, _ := io.ReadAll(r.Body)
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil) // JSON or protobuf
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		csr := *obj.(*certificatesv1.CertificateSigningRequest)
		f.mu.Lock()
		csr.Name = "csr-" + string(rune('a'+len(f.csrs)))
		csr.UID = types.UID(csr.Name)
		csr.APIVersion, csr.Kind = "certificates.k8s.io/v1", "CertificateSigningRequest"
		csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
		csr.Status.Certificate = f.sign(csr.Spec.Request)
		f.csrs = append(f.csrs, &csr)
		f.requesters = append(f.requesters, f.who(r))
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(&csr)
	case r.Method == http.MethodGet && r.URL.Path == csrPath && r.URL.Query().Get("watch") == "true":
		w.WriteHeader(200)
		if r.URL.Query().Get("sendInitialEvents") == "true" { // client-go's watch-list: items, then a bookmark
			enc := json.NewEncoder(w)
			for _, c := range f.matching(r) {
				_ = enc.Encode(map[string]any{"type": "ADDED", "object": c})
			}
			_ = enc.Encode(map[string]any{"type": "BOOKMARK", "object": &certificatesv1.CertificateSigningRequest{
				TypeMeta:   metav1.TypeMeta{APIVersion: "certificates.k8s.io/v1", Kind: "CertificateSigningRequest"},
				ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1", Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}},
			}})
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case r.Method == http.MethodGet && r.URL.Path == csrPath:
		list := certificatesv1.CertificateSigningRequestList{TypeMeta: metav1.TypeMeta{APIVersion: "certificates.k8s.io/v1", Kind: "CertificateSigningRequestList"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"}}
		for _, c := range f.matching(r) {
			list.Items = append(list.Items, *c)
		}
		_ = json.NewEncoder(w).Encode(&list)
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/ns/pods/p":
		_ = json.NewEncoder(w).Encode(&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: map[string]string{"caller": f.who(r)}}})
	default:
		http.Error(w, "not here", 404)
	}
}

// matching are the CSRs a list or watch selects by name.
func (f *fakeAPI) matching(r *http.Request) []*certificatesv1.CertificateSigningRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := strings.TrimPrefix(r.URL.Query().Get("fieldSelector"), "metadata.name=")
	var out []*certificatesv1.CertificateSigningRequest
	for _, c := range f.csrs {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// sign issues the certificate of a CSR as the controller-manager's signer would (subject of the request).
func (f *fakeAPI) sign(request []byte) []byte {
	block, _ := pem.Decode(request)
	cr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		f.t.Errorf("CSR: %v", err)
		return nil
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: cr.Subject, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(f.life),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.caCert, cr.PublicKey, f.caKey)
	if err != nil {
		f.t.Errorf("signing: %v", err)
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// bootstrapKubeconfig writes a kubeconfig with a bearer token, the bootstrap credential.
func (f *fakeAPI) bootstrapKubeconfig(t testing.TB) string {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: f.srv.URL, CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "bootstrap-token"}
	cfg.Contexts["x"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "x"
	path := filepath.Join(t.TempDir(), "bootstrap.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *fakeAPI) requests() ([]*certificatesv1.CertificateSigningRequest, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.csrs), slices.Clone(f.requesters)
}

func caller(t *testing.T, cs kubernetes.Interface, timeout time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p, err := cs.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return p.Annotations["caller"], nil
}

// The executor's API calls wait for its Node's certificate, which it requests with the bootstrap
// credential once it knows the Node's name, exactly as the kubelet's (signer, subject, usages), and
// then authenticate with it, not with the bootstrap credential.
func TestBootstrapRequestsTheNodesCertificateAndUsesIt(t *testing.T) {
	api := newFakeAPI(t, time.Hour)
	dir := t.TempDir()
	id, err := New(Config{BootstrapKubeconfig: api.bootstrapKubeconfig(t), CertDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id.Start(ctx)
	cs, err := kubernetes.NewForConfig(id.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// Before the Node is named: no CSR, and calls wait rather than go out anonymously.
	if who, err := caller(t, cs, 1500*time.Millisecond); err == nil {
		t.Fatalf("a call went out before the certificate, as %q", who)
	}
	if csrs, _ := api.requests(); len(csrs) != 0 {
		t.Fatalf("%d CSRs before the Node was named", len(csrs))
	}

	id.SetNodeName("agent-1.example")
	who, err := caller(t, cs, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if who != "system:node:agent-1.example/system:nodes" {
		t.Errorf("API calls authenticated as %q, want the Node's certificate", who)
	}
	csrs, requesters := api.requests()
	if len(csrs) != 1 {
		t.Fatalf("%d CSRs, want 1", len(csrs))
	}
	csr := csrs[0]
	if requesters[0] != "Bearer bootstrap-token" {
		t.Errorf("CSR requested as %q, want the bootstrap credential", requesters[0])
	}
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
		t.Errorf("signer %q", csr.Spec.SignerName)
	}
	usages := slices.Clone(csr.Spec.Usages)
	slices.Sort(usages)
	if want := []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth, certificatesv1.UsageDigitalSignature}; !slices.Equal(usages, want) {
		t.Errorf("usages %v, want %v", usages, want)
	}
	block, _ := pem.Decode(csr.Spec.Request)
	cr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Subject.CommonName != "system:node:agent-1.example" || !slices.Equal(cr.Subject.Organization, []string{"system:nodes"}) ||
		len(cr.DNSNames)+len(cr.IPAddresses)+len(cr.EmailAddresses)+len(cr.URIs) != 0 {
		t.Errorf("request subject %v with SANs %v %v %v %v: want the kubelet's", cr.Subject, cr.DNSNames, cr.IPAddresses, cr.EmailAddresses, cr.URIs)
	}
	// The pair is kept in the cert dir, as the kubelet's kubelet-client-current.pem.
	if _, err := os.Stat(filepath.Join(dir, PairName+"-current.pem")); err != nil {
		t.Errorf("certificate not stored: %v", err)
	}
}

// A certificate close to its end is renewed with a new CSR, requested with the Node's own certificate
// (as the kubelet renews), and new connections use the new one.
func TestCertificateRenewedWithTheNodesOwnCredential(t *testing.T) {
	api := newFakeAPI(t, 3*time.Second) // renewed at 70-90% of its life
	id, err := New(Config{BootstrapKubeconfig: api.bootstrapKubeconfig(t), CertDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id.Start(ctx)
	id.SetNodeName("n1")
	deadline := time.Now().Add(30 * time.Second)
	for {
		csrs, requesters := api.requests()
		if len(csrs) >= 2 {
			if requesters[0] != "Bearer bootstrap-token" || requesters[1] != "system:node:n1/system:nodes" {
				t.Errorf("requesters %v: want the bootstrap credential, then the Node's certificate", requesters)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal: %d CSRs", len(csrs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Another Node name (the agent came back under another hostname) gets a certificate for that Node.
func TestNewNodeNameNewCertificate(t *testing.T) {
	api := newFakeAPI(t, time.Hour)
	id, err := New(Config{BootstrapKubeconfig: api.bootstrapKubeconfig(t), CertDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id.Start(ctx)
	id.SetNodeName("a")
	deadline := time.Now().Add(30 * time.Second)
	wait := func(cn string) {
		for c := id.Current(); c == nil || c.Leaf.Subject.CommonName != cn; c = id.Current() {
			if time.Now().After(deadline) {
				t.Fatalf("no certificate for %s", cn)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("system:node:a")
	id.SetNodeName("b")
	wait("system:node:b")
}

// BenchmarkBootstrap: from SetNodeName to the first API call made with the Node's certificate
// (key generation, CSR, signing, the first TLS handshake with it) against the fake API server. The
// certificate manager looks for a template once a second (client-go's loop), which bounds it.
func BenchmarkBootstrap(b *testing.B) {
	api := newFakeAPI(b, time.Hour)
	kubeconfig := api.bootstrapKubeconfig(b)
	for i := 0; i < b.N; i++ {
		id, err := New(Config{BootstrapKubeconfig: kubeconfig, CertDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		id.Start(ctx)
		cs, err := kubernetes.NewForConfig(id.RESTConfig())
		if err != nil {
			b.Fatal(err)
		}
		id.SetNodeName("bench")
		if _, err := cs.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{}); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}

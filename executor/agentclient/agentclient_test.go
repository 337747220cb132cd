package agentclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// keyPair writes a self-signed certificate and its key; it returns their paths.
func keyPair(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "executor"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// agentServer answers GET_HEALTH and records the Authorization header it saw.
func agentServer(t *testing.T, tls bool) (*httptest.Server, *string) {
	var auth string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := (&agent.Response{Type: agent.Response_GET_HEALTH, GetHealth: &agent.Response_GetHealth{Healthy: true}}).Marshal()
		_, _ = w.Write(b)
	})
	var s *httptest.Server
	if tls {
		s = httptest.NewTLSServer(h)
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s, &auth
}

func getHealth(o Options, endpoint string) error {
	sender := httpagent.NewSender(o.Client(o.URL(endpoint, "/api/v1")).Send)
	resp, err := sender.Send(context.Background(), agentcalls.NonStreaming(agentcalls.GetHealth()))
	if resp != nil {
		resp.Close()
	}
	return err
}

// The token is sent as a Bearer token; without SSL in the environment the agent is reached over http.
func TestTokenOverHTTP(t *testing.T) {
	s, auth := agentServer(t, false)
	o, err := FromEnv(envOf(map[string]string{TokenEnv: "tok.en.sig"}))
	if err != nil {
		t.Fatal(err)
	}
	endpoint := strings.TrimPrefix(s.URL, "http://")
	if got := o.URL(endpoint, "/api/v1/executor"); got != "http://"+endpoint+"/api/v1/executor" {
		t.Errorf("URL %s", got)
	}
	if err := getHealth(o, endpoint); err != nil {
		t.Fatal(err)
	}
	if *auth != "Bearer tok.en.sig" {
		t.Errorf("Authorization %q", *auth)
	}
	if err := getHealth(Options{}, endpoint); err != nil || *auth != "" {
		t.Errorf("without a token: %v, Authorization %q", err, *auth)
	}
}

// Read from the process' own environment, the token is erased from it, as Mesos' executor library does.
func TestTokenErasedFromTheEnvironment(t *testing.T) {
	t.Setenv(TokenEnv, "secret")
	o, err := FromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Token != "secret" {
		t.Errorf("token %q", o.Token)
	}
	if _, set := os.LookupEnv(TokenEnv); set {
		t.Errorf("%s still in the environment", TokenEnv)
	}
}

// libprocess' SSL variables: https when enabled, the server verified only when asked, against the CA
// file; LIBPROCESS_SSL_* over the deprecated SSL_*; its start-up errors.
func TestSSL(t *testing.T) {
	s, auth := agentServer(t, true)
	endpoint := strings.TrimPrefix(s.URL, "https://")
	cert, key := keyPair(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	otherCA, _ := keyPair(t)
	base := map[string]string{TokenEnv: "t", "LIBPROCESS_SSL_CERT_FILE": cert, "LIBPROCESS_SSL_KEY_FILE": key}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		scheme  string
		wantErr string // of FromEnv, or of the call when prefixed "call: "
	}{
		{"not enabled", with(), "http", "call: "},
		{"enabled, not verified (libprocess' default)", with("LIBPROCESS_SSL_ENABLED", "true"), "https", ""},
		{"deprecated SSL_ENABLED", with("SSL_ENABLED", "1"), "https", ""},
		{"LIBPROCESS_SSL_ over SSL_", with("SSL_ENABLED", "true", "LIBPROCESS_SSL_ENABLED", "false"), "http", "call: "},
		{"verified against the CA file", with("LIBPROCESS_SSL_ENABLED", "true", "LIBPROCESS_SSL_VERIFY_SERVER_CERT", "true", "LIBPROCESS_SSL_CA_FILE", ca), "https", ""},
		{"verified against another CA", with("LIBPROCESS_SSL_ENABLED", "true", "LIBPROCESS_SSL_VERIFY_CERT", "true", "LIBPROCESS_SSL_CA_FILE", otherCA), "https", "call: certificate signed by unknown authority"},
		{"REQUIRE_CLIENT_CERT implies verification", with("LIBPROCESS_SSL_ENABLED", "true", "LIBPROCESS_SSL_REQUIRE_CLIENT_CERT", "true", "LIBPROCESS_SSL_CA_DIR", filepath.Dir(otherCA)), "https", "call: certificate signed by unknown authority"},
		{"no key", map[string]string{"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": cert}, "", "SSL requires key! NOTE: Set path with LIBPROCESS_SSL_KEY_FILE"},
		{"no certificate", map[string]string{"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_KEY_FILE": key}, "", "SSL requires certificate! NOTE: Set path with LIBPROCESS_SSL_CERT_FILE"},
		{"not a boolean", with("LIBPROCESS_SSL_ENABLED", "yes"), "", "Failed to load flags from environment variables prefixed by LIBPROCESS_SSL_ or SSL_ (deprecated): Failed to load flag 'enabled': Failed to load value 'yes': Expecting a boolean (e.g., true or false)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			*auth = ""
			o, err := FromEnv(envOf(tc.env))
			if tc.scheme == "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("FromEnv error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Scheme() != tc.scheme {
				t.Errorf("scheme %s, want %s", o.Scheme(), tc.scheme)
			}
			err = getHealth(o, endpoint)
			want, ok := strings.CutPrefix(tc.wantErr, "call: ")
			switch {
			case !ok && err != nil:
				t.Fatalf("GET_HEALTH over %s: %v", o.Scheme(), err)
			case !ok && *auth != "Bearer t":
				t.Errorf("Authorization %q over TLS", *auth)
			case ok && (err == nil || !strings.Contains(err.Error(), want)):
				t.Errorf("GET_HEALTH error %v, want containing %q", err, want)
			}
		})
	}
}

// The client presents LIBPROCESS_SSL_CERT_FILE to an agent that asks for a client certificate.
func TestClientCertificate(t *testing.T) {
	var peer string
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			peer = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := (&agent.Response{Type: agent.Response_GET_HEALTH, GetHealth: &agent.Response_GetHealth{Healthy: true}}).Marshal()
		_, _ = w.Write(b)
	}))
	s.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	s.StartTLS()
	defer s.Close()
	cert, key := keyPair(t)
	o, err := FromEnv(envOf(map[string]string{"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": cert, "LIBPROCESS_SSL_KEY_FILE": key}))
	if err != nil {
		t.Fatal(err)
	}
	if err := getHealth(o, strings.TrimPrefix(s.URL, "https://")); err != nil || peer != "executor" {
		t.Errorf("GET_HEALTH: %v, client certificate %q", err, peer)
	}
}

// With Dial, the client reaches the agent through it (an in-process executor's in-memory
// connection), whatever the endpoint resolves to.
func TestDialReplacesTCP(t *testing.T) {
	s, _ := agentServer(t, false)
	var dialed []string
	o := Options{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		var d net.Dialer
		return d.DialContext(ctx, network, strings.TrimPrefix(s.URL, "http://"))
	}}
	if err := getHealth(o, "agent.invalid:5051"); err != nil {
		t.Fatal(err)
	}
	if len(dialed) != 1 || dialed[0] != "agent.invalid:5051" {
		t.Errorf("dialed %v, want the agent's endpoint once", dialed)
	}
	if err := getHealth(Options{}, "agent.invalid:5051"); err == nil {
		t.Error("without Dial, the unresolvable endpoint answered")
	}
}

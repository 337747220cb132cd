package agent

import (
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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// testCA signs certificates for 127.0.0.1 (server) and clients; files are written in dir.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// issue writes a certificate for name (and 127.0.0.1) and its key; it returns their paths.
func (ca *testCA) issue(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func (ca *testCA) client(t *testing.T, clientCert bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	tc := &tls.Config{RootCAs: pool}
	if clientCert {
		c, k := ca.issue(t, "executor")
		pair, err := tls.LoadX509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
}

func health(c *http.Client, url string) error {
	resp, err := c.Get(url + "/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// An agent with libprocess SSL enabled serves https (and, with downgrades, http on the same port),
// requires a client certificate from its CA when told to, and refuses to start without its key or
// certificate, with libprocess' messages.
func TestSSL(t *testing.T) {
	ca := newTestCA(t)
	cert, key := ca.issue(t, "agent")
	for _, tc := range []struct {
		name                     string
		ssl                      SSLConfig
		https, http, httpsNoCert bool // which clients get through
	}{
		{"enabled", SSLConfig{Enabled: true, CertFile: cert, KeyFile: key}, true, false, true},
		{"downgrade", SSLConfig{Enabled: true, CertFile: cert, KeyFile: key, SupportDowngrade: true}, true, true, true},
		{"client certificates", SSLConfig{Enabled: true, CertFile: cert, KeyFile: key, RequireClientCert: true, CAFile: ca.file}, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAgent(t, &fakeMaster{}, func(c *Config) { c.SSL = tc.ssl })
			if a.Scheme() != "https" {
				t.Errorf("scheme %s", a.Scheme())
			}
			for _, c := range []struct {
				what   string
				client *http.Client
				url    string
				want   bool
			}{
				{"https with a client certificate", ca.client(t, true), "https://" + a.Endpoint(), tc.https},
				{"https without one", ca.client(t, false), "https://" + a.Endpoint(), tc.httpsNoCert},
				{"http", &http.Client{Timeout: 5 * time.Second}, "http://" + a.Endpoint(), tc.http},
			} {
				if err := health(c.client, c.url); (err == nil) != c.want {
					t.Errorf("%s: %v, want success %v", c.what, err, c.want)
				}
			}
		})
	}
	for _, tc := range []struct {
		ssl  SSLConfig
		want string
	}{
		{SSLConfig{Enabled: true, CertFile: cert}, "SSL requires key! NOTE: Set path with LIBPROCESS_SSL_KEY_FILE"},
		{SSLConfig{Enabled: true, KeyFile: key}, "SSL requires certificate! NOTE: Set path with LIBPROCESS_SSL_CERT_FILE"},
	} {
		_, err := New(Config{ID: mustID("S0"), WorkDir: t.TempDir(), Master: &fakeMaster{}, Log: quietLog(), SSL: tc.ssl})
		if err == nil || err.Error() != "agent S0: "+tc.want {
			t.Errorf("New: %v, want %q", err, tc.want)
		}
	}
}

// --executor_environment_variables start every executor's environment; the agent's MESOS_* and
// LIBPROCESS_PORT are set over them, LIBPROCESS_IP is theirs.
func TestExecutorEnvironmentVariables(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) {
		c.ExecutorHook = hookExecutor
		c.ExecutorEnvironmentVariables = map[string]string{"LIBPROCESS_SSL_ENABLED": "true", "MESOS_AGENT_ENDPOINT": "elsewhere:1",
			"LIBPROCESS_PORT": "5051", "LIBPROCESS_IP": "10.1.2.3"}
	})
	a.Launch(testFramework(false), hookExecutorInfo("e1"), []mesos.TaskInfo{dataTask("t1", "env")}, false)
	waitFor(t, "the task finished", func() bool { return len(m.states("t1")) == 2 })
	data := string(m.updates("t1")[1].Data)
	for _, want := range []string{`"LIBPROCESS_SSL_ENABLED":"true"`, `"MESOS_AGENT_ENDPOINT":"` + a.Endpoint() + `"`, `"LIBPROCESS_PORT":"0"`, `"LIBPROCESS_IP":"10.1.2.3"`} {
		if !strings.Contains(data, want) {
			t.Errorf("environment %s lacks %s", data, want)
		}
	}
	if got := flagMap(a.flags())["executor_environment_variables"]; got != `{"LIBPROCESS_IP":"10.1.2.3","LIBPROCESS_PORT":"5051","LIBPROCESS_SSL_ENABLED":"true","MESOS_AGENT_ENDPOINT":"elsewhere:1"}` {
		t.Errorf("GET_FLAGS executor_environment_variables = %s", got)
	}
}

// libprocess' SSL variables: LIBPROCESS_SSL_* over SSL_*, the legacy REQUIRE_CERT, stout's booleans.
func TestSSLFromEnv(t *testing.T) {
	env := map[string]string{"SSL_ENABLED": "true", "LIBPROCESS_SSL_SUPPORT_DOWNGRADE": "1", "SSL_SUPPORT_DOWNGRADE": "false",
		"LIBPROCESS_SSL_CERT_FILE": "/c.pem", "SSL_KEY_FILE": "/k.pem", "LIBPROCESS_SSL_REQUIRE_CERT": "true", "LIBPROCESS_SSL_CA_FILE": "/ca.pem"}
	got, err := SSLFromEnv(func(k string) string { return env[k] })
	want := SSLConfig{Enabled: true, SupportDowngrade: true, CertFile: "/c.pem", KeyFile: "/k.pem", RequireClientCert: true, CAFile: "/ca.pem"}
	if err != nil || got != want {
		t.Errorf("SSLFromEnv = %+v, %v; want %+v", got, err, want)
	}
	if got, err := SSLFromEnv(func(k string) string { return map[string]string{"SSL_CERT_FILE": "/etc/ssl/certs/ca.crt"}[k] }); err != nil || got != (SSLConfig{}) {
		t.Errorf("SSL not enabled (OpenSSL's SSL_CERT_FILE set): %+v, %v", got, err)
	}
	_, err = SSLFromEnv(func(k string) string { return map[string]string{"LIBPROCESS_SSL_ENABLED": "yes"}[k] })
	if want := "Failed to load flags from environment variables prefixed by LIBPROCESS_SSL_ or SSL_ (deprecated): Failed to load flag 'enabled': Failed to load value 'yes': Expecting a boolean (e.g., true or false)"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

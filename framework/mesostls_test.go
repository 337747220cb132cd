package framework

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
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/master"
	"k8s.io/client-go/util/cert"
)

// An https master: the framework verifies it with --mesos-ca-file and presents --mesos-cert-file to
// one that requires a client certificate; without them the handshake fails.
func TestMesosTLS(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvCert, srvKey, err := cert.GenerateSelfSignedCertKey("127.0.0.1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey := clientCert(t, "kubemesos")
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AppendCertsFromPEM(cliCert)
	var seen string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			seen = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		b, _ := (&master.Response{Type: master.Response_GET_AGENTS, GetAgents: &master.Response_GetAgents{}}).Marshal()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	cfg := DefaultConfig()
	cfg.Master = srv.URL
	_, op, err := mesosClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := op.ListAgents(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without --mesos-ca-file: %v, want a certificate error", err)
	}
	cfg.MesosCAFile = write("ca.pem", srvCert)
	cfg.MesosCertFile, cfg.MesosKeyFile = write("client.pem", cliCert), write("client-key.pem", cliKey)
	if _, op, err = mesosClients(cfg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := op.ListAgents(context.Background()); err != nil {
		t.Errorf("with the CA and a client certificate: %v", err)
	}
	if seen != "kubemesos" {
		t.Errorf("client certificate seen by the master: %q, want kubemesos", seen)
	}

	cfg.MesosKeyFile = ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--mesos-cert-file and --mesos-key-file go together") {
		t.Errorf("Validate with a certificate and no key = %v", err)
	}
}

// clientCert is a self-signed client certificate and its key, PEM-encoded.
func clientCert(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

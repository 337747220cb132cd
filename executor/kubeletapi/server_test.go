package kubeletapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	certutil "k8s.io/client-go/util/cert"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no authenticator", Config{Authorizer: allowAll, Pods: NewRegistry("")}},
		{"no authorizer", Config{Authenticator: anyUser, Pods: NewRegistry("")}},
		{"no pods", Config{Authenticator: anyUser, Authorizer: allowAll}},
		{"cert without key", Config{Authenticator: anyUser, Authorizer: allowAll, Pods: NewRegistry(""), CertFile: "x.crt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

// TestServingCertificateFiles: a configured certificate is served (a client trusting it verifies the
// connection), instead of a generated one.
func TestServingCertificateFiles(t *testing.T) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("agent0", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := startServer(t, Config{Pods: NewRegistry(dir), CertFile: certFile, KeyFile: keyFile})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	// The generated bundle is a CA and a leaf it signed: trusting the bundle verifies the leaf.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, body := get(t, c, base+"/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("healthz over a verified connection: %d %q", code, body)
	}
}

// TestStopEndsFollowers: cancelling Start's context ends streaming requests, and Wait returns.
func TestStopEndsFollowers(t *testing.T) {
	sandbox := t.TempDir()
	reg := NewRegistry(sandbox)
	reg.Update(testPod("web"), corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "c1")}})
	writeLogs(t, sandbox, "c1", "line\n", "")
	s, err := New(Config{NodeName: "agent0", Pods: reg, Authenticator: anyUser, Authorizer: allowAll, Log: quietLog(), Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := s.Start(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	resp, err := insecureClient().Get("https://" + addr + "/containerLogs/default/web/main?follow=true")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	s.Wait() // would hang (test timeout) if the follower outlived the server
}

package cluster

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCertificatesChainToTheirCA(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	servingCA, err := newCA("serving", now)
	if err != nil {
		t.Fatal(err)
	}
	clientCA, err := newCA("client", now)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := servingCA.issue(pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]string{"kubernetes.default.svc"}, []net.IP{net.ParseIP("127.0.0.1")}, now)
	if err != nil {
		t.Fatal(err)
	}
	client, err := clientCA.clientCert("alice", []string{"developers", "ops"}, now)
	if err != nil {
		t.Fatal(err)
	}
	pool := func(ca keyPair) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(ca.cert)
		return p
	}

	tests := []struct {
		name    string
		cert    keyPair
		opts    x509.VerifyOptions
		wantErr bool
	}{
		{name: "serving cert for 127.0.0.1", cert: serving, opts: x509.VerifyOptions{Roots: pool(servingCA), DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{name: "serving cert for the in-cluster name", cert: serving, opts: x509.VerifyOptions{Roots: pool(servingCA), DNSName: "kubernetes.default.svc", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{name: "serving cert for another host", cert: serving, opts: x509.VerifyOptions{Roots: pool(servingCA), DNSName: "example.com", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, wantErr: true},
		{name: "serving cert is no client cert", cert: serving, opts: x509.VerifyOptions{Roots: pool(servingCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, wantErr: true},
		{name: "client cert by the client CA", cert: client, opts: x509.VerifyOptions{Roots: pool(clientCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
		{name: "client cert not by the serving CA", cert: client, opts: x509.VerifyOptions{Roots: pool(servingCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.CurrentTime = now
			_, err := tt.cert.cert.Verify(tt.opts)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("Verify: err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}

	// The API server takes the user from CN and the groups from O (in no particular order).
	got := []string{client.cert.Subject.CommonName}
	got = append(got, slices.Sorted(slices.Values(client.cert.Subject.Organization))...)
	if diff := cmp.Diff([]string{"alice", "developers", "ops"}, got); diff != "" {
		t.Errorf("client subject (-want +got):\n%s", diff)
	}
}

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int64
		wantErr bool
	}{
		{name: "kernel format", status: "Name:\tkube-apiserver\nVmPeak:\t 2000 kB\nVmRSS:\t  281600 kB\nRssAnon:\t 1 kB\n", want: 281600 * 1024},
		{name: "no VmRSS (kernel thread)", status: "Name:\tkthreadd\nState:\tS\n", wantErr: true},
		{name: "unexpected unit", status: "VmRSS:\t 12 MB\n", wantErr: true},
		{name: "not a number", status: "VmRSS:\t lots kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmRSS([]byte(tt.status))
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	if _, err := parseVmRSS(nil); !errors.Is(err, errNoVmRSS) {
		t.Errorf("empty status: err = %v, want errNoVmRSS", err)
	}
}

func TestNamespacePrefix(t *testing.T) {
	tests := []struct {
		testName, want string
	}{
		{testName: "TestControllersCreatePendingPods", want: "testcontrollerscreatependingpods-"},
		{testName: "TestIdentities/serviceaccount_token", want: "testidentities-serviceaccount-token-"},
		{testName: "Test__Odd//Name__", want: "test-odd-name-"},
		{testName: "TestAVeryLongNameThatGoesOnAndOnBeyondTheLimitOfADNSLabel/sub_test", want: "testaverylongnamethatgoesonandonbeyondthelimitofad-"},
		{testName: "///", want: "test-"},
	}
	for _, tt := range tests {
		t.Run(tt.testName, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, namespacePrefix(tt.testName)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestAPIServerReachesExecutorKubelets: the API server proxies kubectl logs/exec to a Node's
// InternalIP first (simulated agents' hostnames do not resolve), presents the kubelet client
// certificate, and does not verify the executors' self-signed serving certificates.
func TestAPIServerReachesExecutorKubelets(t *testing.T) {
	cp := &ControlPlane{Dir: "/cp", Files: PKIFiles{KubeletClientCert: "/cp/pki/kubelet-client.crt", KubeletClientKey: "/cp/pki/kubelet-client.key"}}
	flags := map[string]string{}
	for _, a := range cp.apiServerArgs(6443) {
		name, value, _ := strings.Cut(a, "=")
		flags[name] = value
	}
	tests := []struct {
		flag    string
		want    string
		present bool
	}{
		{flag: "--kubelet-client-certificate", want: "/cp/pki/kubelet-client.crt", present: true},
		{flag: "--kubelet-client-key", want: "/cp/pki/kubelet-client.key", present: true},
		{flag: "--kubelet-preferred-address-types", want: "InternalIP,Hostname,ExternalIP", present: true},
		{flag: "--kubelet-certificate-authority", present: false},
	}
	for _, tt := range tests {
		got, ok := flags[tt.flag]
		if ok != tt.present || got != tt.want {
			t.Errorf("%s = %q (set: %v), want %q (set: %v)", tt.flag, got, ok, tt.want, tt.present)
		}
	}
}

package framework

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func csrPEM(t *testing.T, subject pkix.Name, ips ...net.IP) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject, IPAddresses: ips}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

var kubeletUsages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}

// kubeletCSR is what an executor's bootstrap requests for node (executor/identity).
func kubeletCSR(t *testing.T, name, node string, created time.Time) *certificatesv1.CertificateSigningRequest {
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    csrPEM(t, pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages:     kubeletUsages,
			Username:   "kubemesos-executor-bootstrap",
			Groups:     []string{ExecutorBootstrapGroup, "system:authenticated"},
		},
	}
}

func TestCSRDecisions(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	agents := map[string]string{"agent-1": "S1"}
	a := newCSRApprover(nil, func(n string) string { return agents[n] }, clk, logrus.New())
	a.bootstrapper = func(_ context.Context, c *certificatesv1.CertificateSigningRequest) (bool, error) {
		return slices.Contains(c.Spec.Groups, ExecutorBootstrapGroup), nil
	}
	fresh, old := now.Add(-time.Second), now.Add(-time.Minute)

	cases := []struct {
		name   string
		mutate func(*certificatesv1.CertificateSigningRequest)
		want   csrVerdict
		reason string
	}{
		{"bootstrap for an agent's Node", nil, csrApprove, CSRReasonApproved},
		{"RSA usages", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Usages = append(c.Spec.Usages, certificatesv1.UsageKeyEncipherment)
		}, csrApprove, CSRReasonApproved},
		{"renewal by the Node itself", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Username, c.Spec.Groups = "system:node:agent-1", []string{"system:nodes", "system:authenticated"}
		}, csrApprove, CSRReasonApproved},
		{"another Node renewing for agent-1", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Username, c.Spec.Groups = "system:node:agent-2", []string{"system:nodes", "system:authenticated"}
		}, csrDeny, CSRReasonNotRequester},
		{"someone else", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Username, c.Spec.Groups = "mallory", []string{"system:authenticated"}
		}, csrDeny, CSRReasonNotRequester},
		{"a Node no agent stands for, fresh", func(c *certificatesv1.CertificateSigningRequest) {
			*c = *kubeletCSR(t, c.Name, "nowhere", fresh)
		}, csrWait, ""},
		{"a Node no agent stands for, after the grace", func(c *certificatesv1.CertificateSigningRequest) {
			*c = *kubeletCSR(t, c.Name, "nowhere", old)
		}, csrDeny, CSRReasonUnknownNode},
		{"server auth usage", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Usages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth, certificatesv1.UsageServerAuth}
		}, csrDeny, CSRReasonNotKubelet},
		{"only client auth", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Usages = []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth}
		}, csrDeny, CSRReasonNotKubelet},
		{"extra organization", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Request = csrPEM(t, pkix.Name{CommonName: "system:node:agent-1", Organization: []string{"system:nodes", "system:masters"}})
		}, csrDeny, CSRReasonNotKubelet},
		{"an IP SAN", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Request = csrPEM(t, pkix.Name{CommonName: "system:node:agent-1", Organization: []string{"system:nodes"}}, net.ParseIP("10.0.0.1"))
		}, csrDeny, CSRReasonNotKubelet},
		{"not a node's CN", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Request = csrPEM(t, pkix.Name{CommonName: "admin", Organization: []string{"system:nodes"}})
		}, csrDeny, CSRReasonNotKubelet},
		{"garbage", func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Request = []byte("x") }, csrDeny, CSRReasonInvalidRequest},
		{"another signer", func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.SignerName = certificatesv1.KubeAPIServerClientSignerName
		}, csrIgnore, ""},
		{"already denied", func(c *certificatesv1.CertificateSigningRequest) {
			c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue}}
		}, csrIgnore, ""},
		{"already approved", func(c *certificatesv1.CertificateSigningRequest) {
			c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
		}, csrIgnore, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			csr := kubeletCSR(t, "c", "agent-1", fresh)
			if tc.mutate != nil {
				tc.mutate(csr)
			}
			v, reason, msg, err := a.decide(context.Background(), csr)
			if err != nil {
				t.Fatal(err)
			}
			if v != tc.want || reason != tc.reason {
				t.Errorf("got %v %q (%s), want %v %q", v, reason, msg, tc.want, tc.reason)
			}
			if v == csrDeny && msg == "" {
				t.Error("a denial without a message")
			}
		})
	}
}

// The running approver writes its decisions as conditions (Approved / Denied with reason and
// message) through the approval subresource.
func TestCSRApproverWritesConditions(t *testing.T) {
	client := fake.NewClientset()
	// The API server's RBAC: the bootstrap group has ExecutorBootstrapPermission.
	var reviews atomic.Int32
	client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		sar := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		reviews.Add(1)
		sar.Status.Allowed = *sar.Spec.ResourceAttributes == ExecutorBootstrapPermission && slices.Contains(sar.Spec.Groups, ExecutorBootstrapGroup)
		return true, sar, nil
	})
	agents := map[string]string{"agent-1": "S1"}
	agentOf := func(n string) string { return agents[n] }
	a := newCSRApprover(client, agentOf, clocktesting.NewFakeClock(time.Now()), logrus.New())
	a.grace = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	create := func(c *certificatesv1.CertificateSigningRequest) {
		t.Helper()
		if _, err := client.CertificatesV1().CertificateSigningRequests().Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	good := kubeletCSR(t, "good", "agent-1", time.Now())
	bad := kubeletCSR(t, "bad", "agent-1", time.Now())
	bad.Spec.Username, bad.Spec.Groups = "mallory", []string{"system:authenticated"}
	create(good)
	create(bad)

	condition := func(name string) *certificatesv1.CertificateSigningRequestCondition {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			c, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
			if err == nil && len(c.Status.Conditions) > 0 {
				return &c.Status.Conditions[0]
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	if c := condition("good"); c == nil || c.Type != certificatesv1.CertificateApproved || c.Status != corev1.ConditionTrue || c.Reason != CSRReasonApproved {
		t.Errorf("good: %+v", c)
	}
	if c := condition("bad"); c == nil || c.Type != certificatesv1.CertificateDenied || c.Reason != CSRReasonNotRequester || c.Message == "" {
		t.Errorf("bad: %+v", c)
	}
	if reviews.Load() != 2 {
		t.Errorf("%d SubjectAccessReviews, want one per CSR", reviews.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

package kubemesos

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/executor/identity"
	"github.com/kubemesos/kubemesos/framework"
)

// TestExecutorIdentityLikeAKubelets (issue 14, must-show 3): each executor bootstraps the client
// certificate of its agent's Node (system:node:<hostname>, group system:nodes) through the
// CertificateSigningRequest API, approved by the framework and signed by the controller-manager, and
// the API server's Node authorizer and NodeRestriction admission confine it as a kubelet: with the
// certificate from its sandbox, the executor of agent 0 reads the Secret of its own pod but not the one
// used only by a pod on agent 1 (403), patches its own Node's status but not agent 1's (403); its pod
// gets its Secret and ConfigMap volumes and a projected ServiceAccount token, and kubectl logs and exec
// reach it. A CSR for a Node no agent stands for is Denied.
func TestExecutorIdentityLikeAKubelets(t *testing.T) {
	if cluster.ExecutorBootstrapGroup != framework.ExecutorBootstrapGroup {
		t.Fatalf("the control plane binds %q, the framework approves %q", cluster.ExecutorBootstrapGroup, framework.ExecutorBootstrapGroup)
	}
	e := newEnv(t, envOptions{Agents: 2})
	ctx := context.Background()
	node0, node1 := e.agentHostname(0), e.agentHostname(1)

	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, StringData: map[string]string{"password": "s3cret-0"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "theirs"}, StringData: map[string]string{"password": "s3cret-1"}},
	} {
		if _, err := e.kube.CoreV1().Secrets(e.ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"color": "blue"}}
	if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pod "mine" on agent 0: a Secret volume, a ConfigMap volume, a projected token of audience vault.
	spec := podSpec("cat /etc/secret/password; echo; cat /etc/settings/color; echo; " +
		"cut -d. -f1 /var/run/tokens/vault | wc -c; " + sleeper)
	spec.Volumes = []corev1.Volume{
		{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "mine"}}},
		{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
		{Name: "tokens", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
			ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", ExpirationSeconds: ptr.To[int64](3600), Path: "vault"},
		}}}}},
	}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
		{Name: "secret", MountPath: "/etc/secret"}, {Name: "settings", MountPath: "/etc/settings"}, {Name: "tokens", MountPath: "/var/run/tokens"},
	}
	e.createPod("mine", onNode(spec, node0))
	// Pod "theirs" on agent 1 is the only user of Secret theirs.
	other := podSpec(sleeper)
	other.Volumes = []corev1.Volume{{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "theirs"}}}}
	other.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "secret", MountPath: "/etc/secret"}}
	e.createPod("theirs", onNode(other, node1))
	mine := e.runningPod("mine")
	theirs := e.runningPod("theirs")
	if mine.Spec.NodeName != node0 || theirs.Spec.NodeName != node1 {
		t.Fatalf("pods on %s and %s, want %s and %s", mine.Spec.NodeName, theirs.Spec.NodeName, node0, node1)
	}

	// The executor's own credentials: the certificate in its sandbox's cert dir.
	certFile := executorCertFile(t, filepath.Join(e.dir, "mesos"), node0)
	cfg := &rest.Config{Host: e.cp.URL, TLSClientConfig: rest.TLSClientConfig{CAFile: e.cp.Files.ServingCA, CertFile: certFile, KeyFile: certFile}}
	as, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	who, err := as.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := who.Status.UserInfo; u.Username != "system:node:"+node0 || !slices.Contains(u.Groups, "system:nodes") {
		t.Fatalf("the executor's certificate authenticates %s %v, want system:node:%s in system:nodes", u.Username, u.Groups, node0)
	}

	// Secrets: its own pod's, yes; one used only by a pod on another agent, 403.
	if _, err := as.CoreV1().Secrets(e.ns).Get(ctx, "mine", metav1.GetOptions{}); err != nil {
		t.Errorf("the executor reading its own pod's Secret: %v", err)
	}
	if _, err := as.CoreV1().Secrets(e.ns).Get(ctx, "theirs", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the executor of %s reading the Secret of a pod on %s: %v, want 403 Forbidden", node0, node1, err)
	}
	if _, err := as.CoreV1().Secrets(e.ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the executor listing Secrets: %v, want 403 Forbidden", err)
	}
	// Node status: its own, yes; another Node's, 403 (NodeRestriction).
	noop := []byte(`{"status":{}}`)
	if _, err := as.CoreV1().Nodes().Patch(ctx, node0, types.MergePatchType, noop, metav1.PatchOptions{}, "status"); err != nil {
		t.Errorf("the executor patching its own Node's status: %v", err)
	}
	if _, err := as.CoreV1().Nodes().Patch(ctx, node1, types.MergePatchType, noop, metav1.PatchOptions{}, "status"); !apierrors.IsForbidden(err) {
		t.Errorf("the executor of %s patching Node %s's status: %v, want 403 Forbidden", node0, node1, err)
	}
	// Tokens: only for its own pods' service accounts, bound to those pods.
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: theirs.Name, UID: theirs.UID}}}
	if _, err := as.CoreV1().ServiceAccounts(e.ns).CreateToken(ctx, "default", tr, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the executor of %s requesting a token bound to a pod on %s: %v, want 403 Forbidden", node0, node1, err)
	}

	// Its pod works end to end: volumes and token in the container, logs and exec through its kubelet API.
	e.eventually("the pod's Secret, ConfigMap and token in kubectl logs", time.Minute, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "logs", "mine")
		if err != nil || code != 0 {
			return false, fmt.Errorf("kubectl logs: exit %d, %v: %s", code, err, stderr)
		}
		// A JWT header {"alg":"RS256",...} base64url-encoded: dozens of characters.
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != 3 || lines[0] != "s3cret-0" || lines[1] != "blue" || len(strings.TrimSpace(lines[2])) < 2 {
			return false, fmt.Errorf("kubectl logs = %q, want the Secret, the ConfigMap and a token header's length", stdout)
		}
		return true, nil
	})
	stdout, stderr, code, err := e.kubectl(ctx, "exec", "mine", "--", "sh", "-c", "cat /etc/secret/password; echo; tr -cd . < /var/run/tokens/vault | wc -c")
	if f := strings.Fields(stdout); err != nil || code != 0 || len(f) != 2 || f[0] != "s3cret-0" || f[1] != "2" {
		t.Errorf("kubectl exec: %q (exit %d, %v, %s), want the Secret and a JWT's two dots", stdout, code, err, stderr)
	}

	// A CSR for a Node no agent stands for, with the bootstrap credential, is Denied by the framework.
	boot, err := clientcmd.BuildConfigFromFlags("", e.cp.ExecutorBootstrapKubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	boot.Host = e.cp.URL
	bootClient, err := kubernetes.NewForConfig(boot)
	if err != nil {
		t.Fatal(err)
	}
	// The bootstrap credential itself only requests certificates.
	if _, err := bootClient.CoreV1().Secrets(e.ns).Get(ctx, "mine", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the bootstrap credential reading a Secret: %v, want 403 Forbidden", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, identity.Template(e.prefix+"-nowhere"), key)
	if err != nil {
		t.Fatal(err)
	}
	name, _, err := csr.RequestCertificateWithContext(ctx, bootClient, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), "",
		certificatesv1.KubeAPIServerClientKubeletSignerName, nil, []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.kube.CertificatesV1().CertificateSigningRequests().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	e.eventually("the CSR for a Node without agent to be Denied", 2*time.Minute, func(ctx context.Context) (bool, error) {
		c, err := e.kube.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range c.Status.Conditions {
			switch {
			case cond.Type == certificatesv1.CertificateApproved:
				return false, fatalf("CSR for a Node without agent approved: %+v", cond)
			case cond.Type == certificatesv1.CertificateDenied && cond.Reason == framework.CSRReasonUnknownNode:
				return true, nil
			}
		}
		return false, nil
	})
}

// executorCertFile finds the current client certificate of the executor of node in the agents'
// sandboxes (its --cert-dir, $MESOS_SANDBOX/pki).
func executorCertFile(t *testing.T, workDir, node string) string {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(workDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != identity.PairName+"-current.pem" || !strings.Contains(path, "/executors/kubemesos-executor/runs/") {
			return nil
		}
		pair, err := tls.LoadX509KeyPair(path, path)
		if err != nil {
			t.Logf("%s: %v", path, err)
			return nil
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err == nil && leaf.Subject.CommonName == "system:node:"+node {
			found = append(found, path)
		}
		return nil
	})
	if len(found) == 0 {
		t.Fatalf("no client certificate of system:node:%s in %s", node, workDir)
	}
	return found[0]
}

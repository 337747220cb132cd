package cluster

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// credentials are what a kubeconfig user entry carries: a client certificate or a bearer token.
type credentials struct {
	certPEM, keyPEM []byte
	token           string
}

// kubeconfig builds a one-context kubeconfig for server, trusting caPEM.
func kubeconfig(server string, caPEM []byte, user string, creds credentials) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubemesos"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: creds.certPEM,
		ClientKeyData:         creds.keyPEM,
		Token:                 creds.token,
	}
	cfg.Contexts["kubemesos"] = &clientcmdapi.Context{Cluster: "kubemesos", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "kubemesos"
	return cfg
}

// writeKubeconfig writes cfg to path (mode 0600: it holds credentials) and returns its rest.Config.
func writeKubeconfig(path string, cfg *clientcmdapi.Config) (*rest.Config, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating kubeconfig dir: %w", err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return nil, fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("chmod kubeconfig %s: %w", path, err)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("rest config from %s: %w", path, err)
	}
	rc.QPS, rc.Burst = 100, 200 // tests create many objects quickly
	return rc, nil
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// UserKubeconfig issues a client certificate for user (member of groups) from the cluster's client
// CA, writes a kubeconfig for it and returns its path and rest.Config. It is how tests act as other
// identities than the admin (system:masters); the user is authorized by RBAC only.
func (cp *ControlPlane) UserKubeconfig(user string, groups ...string) (*rest.Config, string, error) {
	kp, err := cp.clientCA.clientCert(user, groups, time.Now())
	if err != nil {
		return nil, "", fmt.Errorf("client certificate for %s: %w", user, err)
	}
	path := filepath.Join(cp.Dir, "kubeconfigs", "user-"+unsafeFileChars.ReplaceAllString(user, "_")+".kubeconfig")
	rc, err := writeKubeconfig(path, kubeconfig(cp.URL, cp.servingCA.certPEM, user, credentials{certPEM: kp.certPEM, keyPEM: kp.keyPEM}))
	if err != nil {
		return nil, "", err
	}
	return rc, path, nil
}

// ServiceAccountKubeconfig mints a bound token for the ServiceAccount namespace/name through the
// TokenRequest API (the way a pod's projected token is issued), valid for ttl (the API server's
// minimum is 10 minutes; 0 means one hour), writes a kubeconfig that uses it and returns its path
// and rest.Config. The ServiceAccount must exist.
func (cp *ControlPlane) ServiceAccountKubeconfig(ctx context.Context, namespace, name string, ttl time.Duration) (*rest.Config, string, error) {
	if ttl == 0 {
		ttl = time.Hour
	}
	secs := int64(ttl / time.Second)
	tr, err := cp.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}},
		metav1.CreateOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("token for serviceaccount %s/%s: %w", namespace, name, err)
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	path := filepath.Join(cp.Dir, "kubeconfigs", "sa-"+namespace+"-"+name+".kubeconfig")
	cfg := kubeconfig(cp.URL, cp.servingCA.certPEM, user, credentials{token: tr.Status.Token})
	cfg.Contexts["kubemesos"].Namespace = namespace
	rc, err := writeKubeconfig(path, cfg)
	if err != nil {
		return nil, "", err
	}
	return rc, path, nil
}

// writeExecutorBootstrapKubeconfig writes ExecutorBootstrapKubeconfigPath for the API server at cp.URL
// (at the advertised address with a pod network).
func (cp *ControlPlane) writeExecutorBootstrapKubeconfig(now time.Time) error {
	kp, err := cp.clientCA.clientCert(ExecutorBootstrapUser, []string{ExecutorBootstrapGroup}, now)
	if err != nil {
		return err
	}
	server := cp.URL
	if cp.AdvertiseIP != nil {
		u, err := url.Parse(cp.URL)
		if err != nil {
			return err
		}
		server = "https://" + net.JoinHostPort(cp.AdvertiseIP.String(), u.Port())
	}
	cp.ExecutorBootstrapKubeconfigPath = filepath.Join(cp.Dir, "kubeconfigs", "executor-bootstrap.kubeconfig")
	_, err = writeKubeconfig(cp.ExecutorBootstrapKubeconfigPath, kubeconfig(server, cp.servingCA.certPEM, ExecutorBootstrapUser, credentials{certPEM: kp.certPEM, keyPEM: kp.keyPEM}))
	return err
}

// ExecutorBootstrapRole is the ClusterRole of the executors' bootstrap identity: a kubelet
// bootstrapper's (system:node-bootstrapper: CSR create, get, list, watch) plus create on
// certificatesigningrequests/kubemesos-executor, which the framework checks before it approves
// (framework.ExecutorBootstrapPermission).
const ExecutorBootstrapRole = "kubemesos:executor-bootstrapper"

// bindExecutorBootstrap creates ExecutorBootstrapRole and binds it to ExecutorBootstrapGroup, as
// kubeadm binds its bootstrap tokens' group to system:node-bootstrapper.
func (cp *ControlPlane) bindExecutorBootstrap(ctx context.Context) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ExecutorBootstrapRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get", "list", "watch"}},
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests/kubemesos-executor"}, Verbs: []string{"create"}},
		},
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ExecutorBootstrapRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ExecutorBootstrapRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: ExecutorBootstrapGroup}},
	}
	if _, err := cp.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("the executors' bootstrap role: %w", err)
	}
	if _, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding the executors' bootstrap group: %w", err)
	}
	return nil
}

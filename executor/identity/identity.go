// Package identity gives the executor a kubelet's identity: the client certificate of user
// system:node:<its Node's name> in group system:nodes, obtained the way the kubelet's TLS bootstrap
// obtains it. The executor starts with a bootstrap credential that may only create and read
// CertificateSigningRequests, generates a key, asks for a certificate of signer
// kubernetes.io/kube-apiserver-client-kubelet (the framework approves it for agents it has, the
// controller-manager signs it), stores it in its cert dir and uses it for every other API call, so
// that the API server's Node authorizer and NodeRestriction admission confine it to its own Node and
// its own pods' Secrets, ConfigMaps and tokens. The certificate is renewed before it expires by
// client-go's certificate manager, the one the kubelet uses.
package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	certificatesv1 "k8s.io/api/certificates/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/certificate"
	"k8s.io/client-go/util/connrotation"
)

// The certificate's subject, as the kubelet's (pkg/kubelet/certificate/kubelet.go,
// NewKubeletClientCertificateManager): CN system:node:<node name>, O system:nodes.
const (
	NodeUserPrefix = "system:node:"
	NodesGroup     = "system:nodes"
)

// PairName prefixes the files in the cert dir: <PairName>-current.pem is the current certificate and
// key (the kubelet's kubelet-client-current.pem).
const PairName = "kubemesos-executor-client"

// rotationCheck is how often the transport looks for a renewed certificate to close the connections
// made with the old one (the kubelet's UpdateTransport checks as often).
const rotationCheck = 10 * time.Second

// Config configures New.
type Config struct {
	// BootstrapKubeconfig has the API server and the bootstrap credential (the kubelet's
	// --bootstrap-kubeconfig).
	BootstrapKubeconfig string
	// CertDir keeps the key and certificate (the kubelet's --cert-dir).
	CertDir string
	// Log is the logger; logrus' standard logger when nil.
	Log logrus.FieldLogger
}

// Identity is the executor's node identity. Clients of RESTConfig wait for its certificate, which
// Start requests once SetNodeName has named the Node.
type Identity struct {
	bootstrap *rest.Config // the bootstrap credential: CSRs only
	base      *rest.Config // the API server and its CA, without credentials
	manager   certificate.Manager
	store     certificate.FileStore
	log       logrus.FieldLogger
	node      atomic.Pointer[string]
	conns     *connrotation.Dialer

	transportOnce sync.Once
	transport     http.RoundTripper
}

// New reads the bootstrap kubeconfig and prepares the certificate manager; nothing is requested
// before Start.
func New(cfg Config) (*Identity, error) {
	if cfg.CertDir == "" {
		return nil, errors.New("identity: no cert dir")
	}
	bootstrap, err := clientcmd.BuildConfigFromFlags("", cfg.BootstrapKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading bootstrap kubeconfig %q: %w", cfg.BootstrapKubeconfig, err)
	}
	store, err := certificate.NewFileStore(PairName, cfg.CertDir, cfg.CertDir, "", "")
	if err != nil {
		return nil, fmt.Errorf("client certificate store in %s: %w", cfg.CertDir, err)
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	id := &Identity{
		bootstrap: bootstrap,
		base:      rest.AnonymousClientConfig(bootstrap),
		store:     store,
		log:       log.WithField("component", "identity"),
		conns:     connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext),
	}
	id.manager, err = certificate.NewManager(&certificate.Config{
		ClientsetFn: id.clientset,
		GetTemplate: id.template,
		SignerName:  certificatesv1.KubeAPIServerClientKubeletSignerName,
		// Digital signature and client auth for the ECDSA key it generates (+ key encipherment for
		// RSA): the usages pkg/apis/certificates.ValidateKubeletClientCSR requires.
		GetUsages:        certificate.DefaultKubeletClientGetUsages,
		CertificateStore: store,
		Name:             "kubemesos executor client",
	})
	if err != nil {
		return nil, fmt.Errorf("client certificate manager: %w", err)
	}
	return id, nil
}

// Template is the certificate request of Node node: the kubelet's.
func Template(node string) *x509.CertificateRequest {
	return &x509.CertificateRequest{Subject: pkix.Name{CommonName: NodeUserPrefix + node, Organization: []string{NodesGroup}}}
}

// template is nil (nothing to request yet) until the Node is named.
func (id *Identity) template() *x509.CertificateRequest {
	node := id.NodeName()
	if node == "" {
		return nil
	}
	return Template(node)
}

// clientset is the client CSRs go through: the node's own certificate while it is valid (a node may
// renew its own, as the kubelet does), else the bootstrap credential.
func (id *Identity) clientset(current *tls.Certificate) (kubernetes.Interface, error) {
	if current != nil && current.Leaf != nil && time.Now().Before(current.Leaf.NotAfter) &&
		current.Leaf.Subject.CommonName == NodeUserPrefix+id.NodeName() {
		return kubernetes.NewForConfig(id.RESTConfig())
	}
	return kubernetes.NewForConfig(id.bootstrap)
}

// SetNodeName names the Node whose certificate is requested (the agent's hostname, from SUBSCRIBED);
// another name later makes the manager request a certificate for it.
func (id *Identity) SetNodeName(node string) {
	if prev := id.node.Swap(&node); prev == nil || *prev != node {
		id.log.WithField("node", node).Info("requesting a client certificate for " + NodeUserPrefix + node)
	}
}

// NodeName is the name given to SetNodeName, "" before.
func (id *Identity) NodeName() string {
	if p := id.node.Load(); p != nil {
		return *p
	}
	return ""
}

// CurrentPath is the file of the current certificate and key.
func (id *Identity) CurrentPath() string { return id.store.CurrentPath() }

// Current is the certificate in use, nil before there is one.
func (id *Identity) Current() *tls.Certificate { return id.manager.Current() }

// Start runs the certificate manager until ctx ends and closes the API connections whenever the
// certificate changes, so the API server authenticates them with the new one.
func (id *Identity) Start(ctx context.Context) {
	id.manager.Start()
	go func() {
		defer id.manager.Stop()
		var last *tls.Certificate
		t := time.NewTicker(200 * time.Millisecond) // quick until the first certificate
		defer t.Stop()
		for {
			if cur := id.manager.Current(); cur != last {
				if cur != nil && cur.Leaf != nil {
					id.log.WithFields(logrus.Fields{"user": cur.Leaf.Subject.CommonName, "expires": cur.Leaf.NotAfter, "file": id.CurrentPath()}).Info("client certificate in use")
				}
				if last != nil {
					id.conns.CloseAll()
				} else {
					t.Reset(rotationCheck)
				}
				last = cur
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// RESTConfig is the configuration of every other API client of the executor: the bootstrap
// kubeconfig's server and CA with the node's client certificate. Requests wait (within their context)
// until the certificate is there, as the kubelet does not call the API before its bootstrap is done.
func (id *Identity) RESTConfig() *rest.Config {
	id.transportOnce.Do(func() {
		tlsCfg, err := rest.TLSConfigFor(id.base)
		if err != nil || tlsCfg == nil {
			// A plain-http server or an unreadable CA: requests fail with the reason.
			id.transport = failing{fmt.Errorf("TLS configuration of %s: %v", id.base.Host, err)}
			return
		}
		tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := id.manager.Current(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		}
		id.transport = waitForCert{id: id, next: utilnet.SetTransportDefaults(&http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 25,
			DialContext:         id.conns.DialContext,
		})}
	})
	c := rest.CopyConfig(id.base)
	c.TLSClientConfig = rest.TLSClientConfig{} // the transport has them
	c.Transport = id.transport
	return c
}

// waitForCert holds requests until there is a certificate: without one they would reach the API
// server as system:anonymous.
type waitForCert struct {
	id   *Identity
	next http.RoundTripper
}

func (w waitForCert) RoundTrip(req *http.Request) (*http.Response, error) {
	if w.id.manager.Current() == nil {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for w.id.manager.Current() == nil {
			select {
			case <-req.Context().Done():
				return nil, fmt.Errorf("waiting for the client certificate of %s%s: %w", NodeUserPrefix, w.id.NodeName(), req.Context().Err())
			case <-t.C:
			}
		}
	}
	return w.next.RoundTrip(req)
}

type failing struct{ err error }

func (f failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// Package cluster starts and stops a real Kubernetes control plane on loopback: etcd embedded in
// this process, kube-apiserver and kube-controller-manager as subprocesses built by kubebins, fresh
// certificates, RBAC authorization and an admin kubeconfig.
//
// It exists because fake clientsets cannot show that kubectl workloads run: the e2e tests, the
// benchmarks and `make local-up` all need the real API machinery (admission, RBAC, the
// Deployment/ReplicaSet/Job/GC/node-lifecycle controllers) behind them.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubemesos/kubemesos/e2e/kubebins"
	"github.com/kubemesos/kubemesos/e2e/podnet"
)

// Fixed cluster parameters.
const (
	// ServiceClusterIPRange is the Service CIDR; its first address is the kubernetes Service's.
	ServiceClusterIPRange = "10.0.0.0/24"
	kubernetesServiceIP   = "10.0.0.1"
	// ServiceAccountIssuer is the iss claim of service-account tokens.
	ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// AdminUser is the admin kubeconfig's user, in group system:masters.
	AdminUser = "kubemesos-admin"
	// ExecutorBootstrapUser and ExecutorBootstrapGroup are the executors' bootstrap identity; the
	// group is the one the framework approves executor certificates for (framework.ExecutorBootstrapGroup).
	ExecutorBootstrapUser  = "kubemesos-executor-bootstrap"
	ExecutorBootstrapGroup = "system:bootstrappers:kubemesos"
	// frontProxyClientName is the CN of the API server's proxy client certificate.
	frontProxyClientName = "front-proxy-client"
)

// Options tune Start. The zero value gives a fresh control plane in a temporary directory.
type Options struct {
	// Dir holds certificates, kubeconfigs, logs and etcd's data. Empty means a new temporary
	// directory that Stop removes; a given Dir is kept (local-up shows its logs).
	Dir string
	// Binaries are the control-plane executables; nil means kubebins.Ensure(Build).
	Binaries *kubebins.Binaries
	// Build is used when Binaries is nil.
	Build kubebins.Options
	// ExtraAPIServerArgs are appended to kube-apiserver's flags ("--flag=value"; a repeated flag
	// overrides the default, as the last occurrence wins in pflag).
	ExtraAPIServerArgs []string
	// ExtraControllerManagerArgs are appended to kube-controller-manager's flags.
	ExtraControllerManagerArgs []string
	// PodNetwork makes the control plane serve a pod network (e2e/podnet; needs root): the API
	// server gets an address of its own on the host (AdvertiseIP), listens on every address,
	// advertises that one (the kubernetes Service's endpoint, which pods reach through 10.0.0.1) and
	// has it in its serving certificate; kube-proxy runs as a host process in nftables mode (one per
	// host at a time: see podnet.LockKubeProxy).
	PodNetwork bool
	// LazyKubeProxy, with PodNetwork, leaves starting kube-proxy to StartKubeProxy: tests sharing one
	// control plane hold the host's kube-proxy lock only while one of them needs Services.
	LazyKubeProxy bool
	// NetDir is podnet.Options.Dir (empty: podnet.DefaultDir).
	NetDir string
	// ReadyTimeout bounds the wait for every component to be ready; 0 means 2 minutes.
	ReadyTimeout time.Duration
	// Log receives progress; nil means logrus' standard logger.
	Log logrus.FieldLogger
}

// ControlPlane is a running control plane. Its fields are read-only.
type ControlPlane struct {
	// Dir is the working directory (see Options.Dir).
	Dir string
	// Binaries are the executables in use, including kubectl and kube-scheduler for tests.
	Binaries kubebins.Binaries
	// URL is the API server's https URL on 127.0.0.1.
	URL string
	// EtcdURL is the embedded etcd's client URL.
	EtcdURL string
	// KubeconfigPath is the admin kubeconfig (user AdminUser, group system:masters).
	KubeconfigPath string
	// SchedulerKubeconfigPath is a kubeconfig for system:kube-scheduler, for tests that run
	// kube-scheduler next to kubemesos.
	SchedulerKubeconfigPath string
	// Config is the admin rest.Config; Client a clientset built from it.
	Config *rest.Config
	Client kubernetes.Interface
	// Files are the PKI files, for components that need to trust the cluster or be trusted by it.
	Files PKIFiles
	// AdvertiseIP is the API server's address for pods (Options.PodNetwork), nil without.
	AdvertiseIP net.IP
	// AdvertisedKubeconfigPath is the admin kubeconfig with the advertised address as its server
	// (Options.PodNetwork; "" without): for executors, which point their pods' KUBERNETES_SERVICE_HOST
	// at the API server of their own kubeconfig, and 127.0.0.1 is the pod's own loopback.
	AdvertisedKubeconfigPath string
	// KubeProxyLivez is kube-proxy's /livez URL (Options.PodNetwork), "" without.
	KubeProxyLivez string
	// ExecutorBootstrapKubeconfigPath is the executors' bootstrap credential (their
	// --bootstrap-kubeconfig): user ExecutorBootstrapUser in ExecutorBootstrapGroup, allowed only to
	// request certificates (ExecutorBootstrapRole). Its server is the advertised
	// address with Options.PodNetwork (executors give it to their pods), else URL.
	ExecutorBootstrapKubeconfigPath string

	servingCA, clientCA keyPair
	frontProxyCA        keyPair
	etcd                *embed.Etcd
	apiserver, kcm      *process
	removeDir           bool
	netOpts             podnet.Options
	hostIP              *podnet.HostIP
	kubeProxy           *process
	unlockKubeProxy     func()

	mu        sync.Mutex
	scheduler *process // started on demand by StartScheduler
	stopped   bool
	log       logrus.FieldLogger
	stopOnce  sync.Once
}

// PKIFiles are the paths of the generated certificates and keys.
type PKIFiles struct {
	// ServingCA signed the API server's serving certificate (what clients trust).
	ServingCA string
	// ClientCA and ClientCAKey sign client certificates the API server accepts (--client-ca-file).
	// The controller-manager's CSR signer uses them too.
	ClientCA, ClientCAKey string
	// KubeletClientCert/Key are what the API server presents when it calls a node's "kubelet"
	// (the kubemesos executor): user kube-apiserver-kubelet-client, signed by ClientCA.
	KubeletClientCert, KubeletClientKey string
	// ServiceAccountKey signs service-account tokens; ServiceAccountPub verifies them.
	ServiceAccountKey, ServiceAccountPub string
	// FrontProxyCA is the request-header CA (--requestheader-client-ca-file): the API server's
	// proxy client certificate (FrontProxyClientCert/Key, CN front-proxy-client) is signed by it,
	// and delegating servers (the controller-manager, aggregated API servers) trust it.
	FrontProxyCA, FrontProxyClientCert, FrontProxyClientKey string
}

// Start brings up etcd, kube-apiserver and kube-controller-manager and returns once all are ready.
// On error, everything started so far is stopped. Call Stop when done.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	log := opts.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	readyTimeout := opts.ReadyTimeout
	if readyTimeout == 0 {
		readyTimeout = 2 * time.Minute
	}
	cp := &ControlPlane{Dir: opts.Dir, log: log}
	if cp.Dir == "" {
		if cp.Dir, err = os.MkdirTemp("", "kubemesos-cluster-"); err != nil {
			return nil, fmt.Errorf("creating control plane dir: %w", err)
		}
		cp.removeDir = true
	} else if cp.Dir, err = filepath.Abs(cp.Dir); err != nil {
		return nil, fmt.Errorf("control plane dir: %w", err)
	}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	for _, sub := range []string{"pki", "kubeconfigs", "logs", "etcd", "kcm-certs", "scheduler-certs"} {
		if err := os.MkdirAll(filepath.Join(cp.Dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", sub, err)
		}
	}

	if opts.Binaries != nil {
		cp.Binaries = *opts.Binaries
	} else {
		build := opts.Build
		if build.Log == nil {
			w := log.WithField("component", "kubebins").WriterLevel(logrus.InfoLevel)
			defer w.Close()
			build.Log = w
		}
		if cp.Binaries, err = kubebins.Ensure(ctx, build); err != nil {
			return nil, fmt.Errorf("control plane binaries: %w", err)
		}
	}

	started := time.Now()
	kubeProxy := opts.PodNetwork && !opts.LazyKubeProxy
	if opts.PodNetwork {
		cp.netOpts = podnet.Options{Dir: opts.NetDir}
		// First, and not within ReadyTimeout: another control plane's kube-proxy may hold it long.
		if kubeProxy {
			if err := cp.lockKubeProxy(ctx); err != nil {
				return nil, err
			}
		}
		if cp.hostIP, err = podnet.AcquireControlPlaneIP(cp.netOpts); err != nil {
			return nil, fmt.Errorf("the API server's address: %w", err)
		}
		cp.AdvertiseIP = cp.hostIP.IP
	}
	if err := cp.writePKI(time.Now()); err != nil {
		return nil, err
	}

	cp.etcd, cp.EtcdURL, err = startEtcd(ctx, filepath.Join(cp.Dir, "etcd"), cp.logPath("etcd"))
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"url": cp.EtcdURL, "elapsed": time.Since(started).Round(time.Millisecond)}).Info("etcd ready")

	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := cp.startAPIServer(readyCtx, opts.ExtraAPIServerArgs); err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"url": cp.URL, "pid": cp.apiserver.pid(), "elapsed": time.Since(started).Round(time.Millisecond)}).Info("kube-apiserver ready")

	if err := cp.bindExecutorBootstrap(readyCtx); err != nil {
		return nil, err
	}
	if kubeProxy {
		if err := cp.startKubeProxy(readyCtx, KubeProxyNodeName); err != nil {
			return nil, err
		}
	}
	if err := cp.startControllerManager(readyCtx, opts.ExtraControllerManagerArgs); err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"pid": cp.kcm.pid(), "elapsed": time.Since(started).Round(time.Millisecond)}).Info("kube-controller-manager ready")
	if kubeProxy {
		if err := cp.waitKubeProxy(readyCtx); err != nil {
			return nil, err
		}
		log.WithFields(logrus.Fields{"pid": cp.kubeProxy.pid(), "advertise": cp.AdvertiseIP.String(), "elapsed": time.Since(started).Round(time.Millisecond)}).Info("kube-proxy ready")
	}
	return cp, nil
}

func (cp *ControlPlane) logPath(component string) string {
	return filepath.Join(cp.Dir, "logs", component+".log")
}

// LogPath is the log file of a component: "etcd", "kube-apiserver", "kube-controller-manager",
// "kube-scheduler" or "kube-proxy".
func (cp *ControlPlane) LogPath(component string) string { return cp.logPath(component) }

// LogTail returns the last lines of a component's log (see LogPath).
func (cp *ControlPlane) LogTail(component string, lines int) string {
	return fileTail(cp.logPath(component), lines)
}

// writePKI generates every certificate and key, writes them, and writes the admin, controller-manager
// and scheduler kubeconfigs. The API server's URL is not known yet, so kubeconfigs are written after
// its port is chosen (see writeKubeconfigs).
func (cp *ControlPlane) writePKI(now time.Time) error {
	var err error
	if cp.servingCA, err = newCA("kubemesos-serving-ca", now); err != nil {
		return err
	}
	if cp.clientCA, err = newCA("kubemesos-client-ca", now); err != nil {
		return err
	}
	serving, err := cp.servingCA.issue(pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		cp.servingIPs(), now)
	if err != nil {
		return err
	}
	kubeletClient, err := cp.clientCA.clientCert("kube-apiserver-kubelet-client", []string{"system:masters"}, now)
	if err != nil {
		return err
	}
	if cp.frontProxyCA, err = newCA("kubemesos-front-proxy-ca", now); err != nil {
		return err
	}
	frontProxyClient, err := cp.frontProxyCA.clientCert(frontProxyClientName, nil, now)
	if err != nil {
		return err
	}
	saKey, saKeyPEM, err := newKey()
	if err != nil {
		return err
	}
	saPub, err := publicKeyPEM(saKey)
	if err != nil {
		return err
	}
	pki := func(name string) string { return filepath.Join(cp.Dir, "pki", name) }
	cp.Files = PKIFiles{
		ServingCA:            pki("serving-ca.crt"),
		ClientCA:             pki("client-ca.crt"),
		ClientCAKey:          pki("client-ca.key"),
		KubeletClientCert:    pki("kubelet-client.crt"),
		KubeletClientKey:     pki("kubelet-client.key"),
		ServiceAccountKey:    pki("sa.key"),
		ServiceAccountPub:    pki("sa.pub"),
		FrontProxyCA:         pki("front-proxy-ca.crt"),
		FrontProxyClientCert: pki("front-proxy-client.crt"),
		FrontProxyClientKey:  pki("front-proxy-client.key"),
	}
	files := map[string][]byte{
		cp.Files.ServingCA:            cp.servingCA.certPEM,
		cp.Files.ClientCA:             cp.clientCA.certPEM,
		cp.Files.ClientCAKey:          cp.clientCA.keyPEM,
		cp.Files.KubeletClientCert:    kubeletClient.certPEM,
		cp.Files.KubeletClientKey:     kubeletClient.keyPEM,
		cp.Files.ServiceAccountKey:    saKeyPEM,
		cp.Files.ServiceAccountPub:    saPub,
		cp.Files.FrontProxyCA:         cp.frontProxyCA.certPEM,
		cp.Files.FrontProxyClientCert: frontProxyClient.certPEM,
		cp.Files.FrontProxyClientKey:  frontProxyClient.keyPEM,
		pki("apiserver.crt"):          serving.certPEM,
		pki("apiserver.key"):          serving.keyPEM,
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// writeKubeconfigs writes the kubeconfigs of the admin, the controller-manager and the scheduler
// for the API server at cp.URL.
func (cp *ControlPlane) writeKubeconfigs(now time.Time) error {
	for _, id := range []struct {
		user, group string
		path        *string
		admin       bool
	}{
		{user: AdminUser, group: "system:masters", path: &cp.KubeconfigPath, admin: true},
		{user: "system:kube-controller-manager", path: new(string)},
		{user: "system:kube-scheduler", path: &cp.SchedulerKubeconfigPath},
	} {
		var groups []string
		if id.group != "" {
			groups = []string{id.group}
		}
		kp, err := cp.clientCA.clientCert(id.user, groups, now)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(id.user, "system:kube-")
		if id.admin {
			name = "admin"
		}
		*id.path = filepath.Join(cp.Dir, "kubeconfigs", name+".kubeconfig")
		rc, err := writeKubeconfig(*id.path, kubeconfig(cp.URL, cp.servingCA.certPEM, id.user, credentials{certPEM: kp.certPEM, keyPEM: kp.keyPEM}))
		if err != nil {
			return err
		}
		if id.admin && cp.AdvertiseIP != nil {
			u, err := url.Parse(cp.URL)
			if err != nil {
				return err
			}
			cp.AdvertisedKubeconfigPath = filepath.Join(cp.Dir, "kubeconfigs", "admin-advertised.kubeconfig")
			server := "https://" + net.JoinHostPort(cp.AdvertiseIP.String(), u.Port())
			if _, err := writeKubeconfig(cp.AdvertisedKubeconfigPath, kubeconfig(server, cp.servingCA.certPEM, id.user, credentials{certPEM: kp.certPEM, keyPEM: kp.keyPEM})); err != nil {
				return err
			}
		}
		if id.admin {
			if err := cp.writeExecutorBootstrapKubeconfig(now); err != nil {
				return err
			}
			cp.Config = rc
			if cp.Client, err = kubernetes.NewForConfig(rc); err != nil {
				return fmt.Errorf("admin clientset: %w", err)
			}
		}
	}
	return nil
}

func (cp *ControlPlane) controllerManagerKubeconfig() string {
	return filepath.Join(cp.Dir, "kubeconfigs", "controller-manager.kubeconfig")
}

// portAttempts is how often a component is restarted on a new port when another process took the
// free port between our probe and its bind.
const portAttempts = 3

// apiServerArgs are kube-apiserver's flags for a secure port (before the caller's extra ones).
func (cp *ControlPlane) apiServerArgs(port int) []string {
	pki := func(name string) string { return filepath.Join(cp.Dir, "pki", name) }
	listen := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", // it refuses a loopback advertise address otherwise
	}
	if cp.AdvertiseIP != nil {
		// Pods reach it through the kubernetes Service, whose endpoint the (default, lease) endpoint
		// reconciler keeps at the advertised address; clients on the host keep using 127.0.0.1.
		listen = []string{"--bind-address=0.0.0.0", "--advertise-address=" + cp.AdvertiseIP.String()}
	}
	return append(listen,
		"--etcd-servers="+cp.EtcdURL,
		"--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+pki("apiserver.crt"),
		"--tls-private-key-file="+pki("apiserver.key"),
		"--client-ca-file="+cp.Files.ClientCA,
		"--kubelet-client-certificate="+cp.Files.KubeletClientCert,
		"--kubelet-client-key="+cp.Files.KubeletClientKey,
		// Nodes of simulated agents have unresolvable hostnames: the API server reaches their
		// "kubelet" (the executor's kubelet API, kubectl logs/exec) at the InternalIP. No
		// --kubelet-certificate-authority: executors serve self-signed certificates.
		"--kubelet-preferred-address-types=InternalIP,Hostname,ExternalIP",
		"--service-account-issuer="+ServiceAccountIssuer,
		"--service-account-key-file="+cp.Files.ServiceAccountPub,
		"--service-account-signing-key-file="+cp.Files.ServiceAccountKey,
		"--service-cluster-ip-range="+ServiceClusterIPRange,
		// Request-header authentication, as kubeadm sets it up: delegating servers (the
		// controller-manager's own endpoints, aggregated API servers) need this CA.
		"--requestheader-client-ca-file="+cp.Files.FrontProxyCA,
		"--requestheader-allowed-names="+frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+cp.Files.FrontProxyClientCert,
		"--proxy-client-key-file="+cp.Files.FrontProxyClientKey,
		// Aggregated API servers (metrics-server) are reached at their endpoints' pod IPs, not their
		// Service's ClusterIP: this host process has no kube-proxy unless a test or local-up starts
		// one (one per host at a time).
		"--enable-aggregator-routing=true",
		// A kubelet's confinement for the executors' Node identities (system:node:<name>, group
		// system:nodes): the Node authorizer limits their reads to their own pods' Secrets,
		// ConfigMaps and tokens, NodeRestriction their writes to their own Node and pods.
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false",
	)
}

// servingIPs are the IP SANs of the API server's certificate: loopback, the kubernetes Service's
// ClusterIP and, with a pod network, the advertised address.
func (cp *ControlPlane) servingIPs() []net.IP {
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(kubernetesServiceIP)}
	if cp.AdvertiseIP != nil {
		ips = append(ips, cp.AdvertiseIP)
	}
	return ips
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, extra []string) error {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		cp.URL = "https://127.0.0.1:" + strconv.Itoa(port)
		if err := cp.writeKubeconfigs(time.Now()); err != nil {
			return err
		}
		args := append(cp.apiServerArgs(port), extra...)
		os.Remove(cp.logPath("kube-apiserver"))
		cp.apiserver, err = startProcess("kube-apiserver", cp.Binaries.KubeAPIServer, args, cp.logPath("kube-apiserver"))
		if err != nil {
			return err
		}
		err = waitReady(ctx, cp.apiserver, func(ctx context.Context) error {
			body, err := cp.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err != nil {
				return err
			}
			if string(body) != "ok" {
				return fmt.Errorf("/readyz: %q", body)
			}
			return nil
		})
		if err == nil {
			return nil
		}
		cp.apiserver.stop(5 * time.Second)
		if line := findLine(cp.apiserver.logTail(50), "address already in use"); attempt < portAttempts && line != "" {
			cp.log.WithFields(logrus.Fields{"port": port, "log": line}).Warn("kube-apiserver could not bind; retrying on another port")
			continue
		}
		return fmt.Errorf("kube-apiserver: %w\n--- last lines of %s:\n%s", err, cp.apiserver.logPath, cp.apiserver.logTail(30))
	}
}

func (cp *ControlPlane) startControllerManager(ctx context.Context, extra []string) error {
	kubeconfig := cp.controllerManagerKubeconfig()
	p, err := cp.startHealthzComponent(ctx, "kube-controller-manager", cp.Binaries.KubeControllerManager, func(port int) []string {
		args := append(cp.componentArgs(kubeconfig, port, "kcm-certs"),
			"--controllers=*",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file="+cp.Files.ServiceAccountKey,
			"--root-ca-file="+cp.Files.ServingCA,
			"--cluster-signing-cert-file="+cp.Files.ClientCA,
			"--cluster-signing-key-file="+cp.Files.ClientCAKey,
		)
		return append(args, extra...)
	})
	cp.kcm = p
	return err
}

// componentArgs are the flags kube-controller-manager and kube-scheduler share: one kubeconfig for the
// API, authentication and authorization, the client CA, a loopback HTTPS port with its own cert dir, no
// leader election, no profiling.
func (cp *ControlPlane) componentArgs(kubeconfig string, port int, certDir string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--client-ca-file=" + cp.Files.ClientCA,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(cp.Dir, certDir),
		"--leader-elect=false",
		"--profiling=false",
	}
}

// StartScheduler runs the real kube-scheduler (identity system:kube-scheduler, no leader election)
// against this control plane and returns once it is healthy; Stop ends it. It is for tests and
// benchmarks that compare kubemesos with the default scheduler; extra flags are appended.
func (cp *ControlPlane) StartScheduler(ctx context.Context, extra ...string) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return errors.New("control plane stopped")
	}
	if cp.scheduler != nil {
		return errors.New("kube-scheduler already started")
	}
	kubeconfig := cp.SchedulerKubeconfigPath
	p, err := cp.startHealthzComponent(ctx, "kube-scheduler", cp.Binaries.KubeScheduler, func(port int) []string {
		return append(cp.componentArgs(kubeconfig, port, "scheduler-certs"), extra...)
	})
	if err != nil {
		return err
	}
	cp.scheduler = p
	return nil
}

// StopScheduler ends the kube-scheduler StartScheduler started (if any), so that another can start
// with other flags (the scheduling benchmark runs it with two client limits).
func (cp *ControlPlane) StopScheduler() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.scheduler != nil {
		cp.scheduler.stop(10 * time.Second)
		cp.scheduler = nil
	}
}

// startHealthzComponent starts a component that serves /healthz over https on --secure-port
// (controller-manager, scheduler) on a free port, and waits until it answers 200. It retries on
// another port if the chosen one was taken meanwhile. On error the process is stopped.
func (cp *ControlPlane) startHealthzComponent(ctx context.Context, name, binary string, args func(port int) []string) (*process, error) {
	// Its endpoint serves a self-signed certificate; we only ask it whether it is healthy.
	insecure := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer insecure.CloseIdleConnections()
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		os.Remove(cp.logPath(name))
		p, err := startProcess(name, binary, args(port), cp.logPath(name))
		if err != nil {
			return nil, err
		}
		healthz := "https://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
		err = waitReady(ctx, p, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthz, nil)
			if err != nil {
				return err
			}
			resp, err := insecure.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", healthz, resp.Status)
			}
			return nil
		})
		if err == nil {
			return p, nil
		}
		p.stop(5 * time.Second)
		if line := findLine(p.logTail(50), "address already in use"); attempt < portAttempts && line != "" {
			cp.log.WithFields(logrus.Fields{"port": port, "log": line}).Warnf("%s could not bind; retrying on another port", name)
			continue
		}
		return nil, fmt.Errorf("%s: %w\n--- last lines of %s:\n%s", name, err, p.logPath, p.logTail(30))
	}
}

// findLine returns the first line of text that contains substr, or "".
func findLine(text, substr string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

// errExited means a component ended while we waited for it to become ready.
var errExited = errors.New("exited before it was ready")

// waitReady polls probe until it succeeds, the process exits, or ctx ends.
func waitReady(ctx context.Context, p *process, probe func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if done, waitErr := p.exited(); done {
			return false, fmt.Errorf("%w (%v)", errExited, waitErr)
		}
		probeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		last = probe(probeCtx)
		return last == nil, nil
	})
	if err != nil && last != nil && !errors.Is(err, errExited) {
		return fmt.Errorf("%w (last probe: %v)", err, last)
	}
	return err
}

// freePort asks the kernel for a free loopback TCP port. Another process can take it before the
// component binds it; the start functions retry in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop ends the scheduler (if started), the controller-manager, the API server and etcd (in that
// order), waits for them, and removes the working directory if Start created it. It is safe to call
// more than once.
func (cp *ControlPlane) Stop() {
	cp.stopOnce.Do(func() {
		cp.mu.Lock()
		cp.stopped = true
		if cp.scheduler != nil {
			cp.scheduler.stop(10 * time.Second)
		}
		cp.mu.Unlock()
		cp.StopKubeProxy()
		if cp.kcm != nil {
			cp.kcm.stop(10 * time.Second)
		}
		if cp.apiserver != nil {
			cp.apiserver.stop(10 * time.Second)
		}
		if cp.etcd != nil {
			cp.etcd.Close()
		}
		if err := cp.hostIP.Release(); err != nil {
			cp.log.WithError(err).Warn("removing the API server's address")
		}
		if cp.removeDir {
			if err := os.RemoveAll(cp.Dir); err != nil {
				cp.log.WithError(err).WithField("dir", cp.Dir).Warn("removing control plane dir")
			}
		}
	})
}

// PIDs are the process IDs of the subprocesses, by component name.
func (cp *ControlPlane) PIDs() map[string]int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	pids := map[string]int{}
	for _, p := range []*process{cp.apiserver, cp.kcm, cp.scheduler, cp.kubeProxy} {
		if p != nil {
			pids[p.name] = p.pid()
		}
	}
	return pids
}

// Memory is the resident memory of the control plane's processes.
type Memory struct {
	APIServer, ControllerManager int64
	// ThisProcess is the RSS of the calling process, which hosts the embedded etcd (and, in a
	// test, the test itself).
	ThisProcess int64
}

// Total is the sum of the parts.
func (m Memory) Total() int64 { return m.APIServer + m.ControllerManager + m.ThisProcess }

// RSS reads the resident set sizes from /proc.
func (cp *ControlPlane) RSS() (Memory, error) {
	var m Memory
	var err error
	if m.APIServer, err = rssBytes(cp.apiserver.pid()); err != nil {
		return m, err
	}
	if m.ControllerManager, err = rssBytes(cp.kcm.pid()); err != nil {
		return m, err
	}
	if m.ThisProcess, err = rssBytes(os.Getpid()); err != nil {
		return m, err
	}
	return m, nil
}

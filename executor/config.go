package executor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	mesostime "github.com/mesos/mesos-go/api/v1/lib/time"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/executor/hollow"
	"github.com/kubemesos/kubemesos/executor/identity"
	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/executor/podworker"
)

// Config configures the executor. The flag fields are bound by BindFlags (viper maps them to
// KUBEMESOS_<FLAG> in cmd/kubemesos); the rest is for embedding and tests. Everything about Mesos comes
// from the MESOS_* environment the agent sets.
type Config struct {
	// Kubeconfig is the kubeconfig file used to write pod statuses (--kubeconfig); empty means the
	// in-cluster configuration.
	Kubeconfig string
	// BootstrapKubeconfig, when set, replaces Kubeconfig with a kubelet's TLS bootstrap
	// (--bootstrap-kubeconfig, package executor/identity): its credential only requests the client
	// certificate of system:node:<the agent's Node>, which every other call uses.
	BootstrapKubeconfig string
	// CertDir keeps that certificate and its key (--cert-dir); empty means $MESOS_SANDBOX/pki.
	CertDir string
	// ClientCAFile verifies the client certificates of kubelet API callers (--client-ca-file, the
	// kubelet's); empty means the API server's extension-apiserver-authentication ConfigMap, which a
	// Node's identity may not read.
	ClientCAFile string
	// LogLevel is the logrus level (--log-level) applied to the standard logger when Log is nil.
	LogLevel string
	// HostIP is written as the pods' hostIP and podIP (--host-ip); empty means LIBPROCESS_IP, else
	// the host of MESOS_AGENT_ENDPOINT.
	HostIP string
	// ShutdownMargin is kept free of the agent's executor shutdown grace period when the executor
	// terminates pods on SHUTDOWN, to report their end before the agent kills it (--shutdown-margin).
	ShutdownMargin time.Duration
	// StatusFlushTimeout bounds how long the executor, once its pods are over, keeps retrying their
	// unwritten statuses before it exits (--status-flush-timeout).
	StatusFlushTimeout time.Duration
	// CallTimeout bounds the wait for the agent's response to an UPDATE or MESSAGE; 0 means
	// agentclient.DefaultCallTimeout. SUBSCRIBE waits for its response without a bound (newSenders).
	CallTimeout time.Duration
	// Random draws the SUBSCRIBE back-off, a fraction in [0, 1) of MESOS_SUBSCRIPTION_BACKOFF_MAX
	// (math/rand/v2's by default; tests fix it).
	Random func() float64
	// KubeletAddress is where the kubelet API for `kubectl logs` and `exec` listens
	// (--kubelet-address); its port is published in the Node's status. Without a host (the default
	// ":0") it listens on the agent's IP, the Node's InternalIP, not on every interface. Empty
	// disables it.
	KubeletAddress string
	// KubeletCertFile and KubeletKeyFile are its serving certificate (--kubelet-tls-cert-file,
	// --kubelet-tls-private-key-file); a self-signed one is generated when empty.
	KubeletCertFile, KubeletKeyFile string
	// DockerRegistry is where the executor reads container images' configs (--docker-registry): a
	// directory of image archives or a registry URL, as the agent's --docker_registry. Empty means the
	// agent's own flag (agent operator API GET_FLAGS).
	DockerRegistry string
	// ClusterDNS (comma-separated IPs), ClusterDomain and ResolvConf are the kubelet's --cluster-dns,
	// --cluster-domain and --resolv-conf: what the pods' resolv.conf files are made of.
	ClusterDNS    string
	ClusterDomain string
	ResolvConf    string
	// RuntimeName picks the container runtime (--runtime): "mesos" (Mesos nested containers) or
	// "hollow" (package executor/hollow: containers that only report running, for the scheduling
	// benchmark's hollow executors). Runtime, when set, overrides it.
	RuntimeName string

	// CFSQuotaSettle is how long the terminal update of a pod one of whose containers had a CPU limit
	// waits after the pod's end, so that Mesos' shrink of the executor's container does not meet the
	// kernel still counting the removed containers' CFS quotas (quotasettle.go; --cfs-quota-settle).
	CFSQuotaSettle time.Duration
	// SandboxTimeout bounds the wait for a pod's sandbox executor (design P) before the pod fails
	// with FailedCreatePodSandBox; default nested.SandboxTimeout.
	SandboxTimeout time.Duration
	// Getenv reads the Mesos environment; os.Getenv when nil (in-process executors pass their own).
	Getenv func(string) string
	// AgentDial, when set, opens the connections to the agent instead of TCP; only in-process
	// executors have one (a simulator host's in-memory connections).
	AgentDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// KubeClient, when set, is used instead of building one from Kubeconfig.
	KubeClient kubernetes.Interface
	// Runtime, when set, runs containers instead of Mesos nested containers. If it has a method
	// SetParent(mesos.ContainerID) it receives the executor's container ID from SUBSCRIBED.
	Runtime podworker.Runtime
	// OnPodStatus, when set, sees every pod status the executor computes (done: the pod's last one),
	// from the executor's main loop; it must not block. The kubelet API (package kubeletapi) feeds its
	// pod registry from it.
	OnPodStatus func(pod *corev1.Pod, status corev1.PodStatus, done bool)
	// OnSubscribed, when set, sees every SUBSCRIBED event (agent info, the executor's container ID),
	// from the executor's main loop; it must not block.
	OnSubscribed func(*mesosexec.Event_Subscribed)
	// Clock drives back-offs and grace periods; clock.RealClock{} when nil.
	Clock clock.WithTicker
	// Log is the logger; logrus.StandardLogger() when nil.
	Log logrus.FieldLogger
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{
		LogLevel:           "info",
		ShutdownMargin:     time.Second,
		StatusFlushTimeout: 10 * time.Second,
		KubeletAddress:     ":0",
		ClusterDomain:      "cluster.local",
		ResolvConf:         "/etc/resolv.conf",
		SandboxTimeout:     nested.SandboxTimeout,
		CFSQuotaSettle:     DefaultCFSQuotaSettle,
		RuntimeName:        RuntimeMesos,
	}
}

// The values of --runtime.
const (
	RuntimeMesos  = "mesos"
	RuntimeHollow = hollow.Name
)

// BindFlags registers the executor's flags on fs with DefaultConfig's values, writing into c.
func (c *Config) BindFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Kubeconfig, "kubeconfig", d.Kubeconfig, "kubeconfig used to write pod statuses (empty: in-cluster)")
	fs.StringVar(&c.BootstrapKubeconfig, "bootstrap-kubeconfig", d.BootstrapKubeconfig, "kubeconfig whose credential requests the executor's client certificate (system:node:<agent hostname>, as the kubelet's TLS bootstrap); excludes --kubeconfig")
	fs.StringVar(&c.CertDir, "cert-dir", d.CertDir, "directory of the client certificate obtained with --bootstrap-kubeconfig (empty: $MESOS_SANDBOX/pki)")
	fs.StringVar(&c.ClientCAFile, "client-ca-file", d.ClientCAFile, "CA of the kubelet API's client certificates (empty: the API server's extension-apiserver-authentication ConfigMap)")
	fs.StringVar(&c.LogLevel, "log-level", d.LogLevel, "logrus level")
	fs.StringVar(&c.HostIP, "host-ip", d.HostIP, "IP written as the pods' hostIP and podIP (default: LIBPROCESS_IP, else the host of MESOS_AGENT_ENDPOINT)")
	fs.DurationVar(&c.ShutdownMargin, "shutdown-margin", d.ShutdownMargin, "part of MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD kept to report pods' ends on SHUTDOWN")
	fs.DurationVar(&c.StatusFlushTimeout, "status-flush-timeout", d.StatusFlushTimeout, "how long unwritten pod statuses are retried before the executor exits")
	fs.DurationVar(&c.SandboxTimeout, "sandbox-timeout", d.SandboxTimeout, "how long a pod on a CNI pod network waits for its sandbox executor's container before it fails with FailedCreatePodSandBox")
	fs.DurationVar(&c.CFSQuotaSettle, "cfs-quota-settle", d.CFSQuotaSettle, "how long a pod's terminal update waits after its end when one of its containers had a CPU limit (the kernel releases a removed container's CFS quota in tens of ms; Mesos' shrink of the executor's container before that fails and destroys it)")
	fs.StringVar(&c.KubeletAddress, "kubelet-address", d.KubeletAddress, "listen address of the kubelet API for kubectl logs/exec (no host: the agent's IP; port 0: any free port, published in the Node's status; empty: disabled)")
	fs.StringVar(&c.KubeletCertFile, "kubelet-tls-cert-file", d.KubeletCertFile, "serving certificate of the kubelet API (empty: self-signed)")
	fs.StringVar(&c.KubeletKeyFile, "kubelet-tls-private-key-file", d.KubeletKeyFile, "key of --kubelet-tls-cert-file")
	fs.StringVar(&c.ClusterDNS, "cluster-dns", d.ClusterDNS, "comma-separated IPs of the cluster DNS servers written to pods' resolv.conf (the kubelet's --cluster-dns; empty: ClusterFirst pods fall back to Default)")
	fs.StringVar(&c.ClusterDomain, "cluster-domain", d.ClusterDomain, "the cluster's DNS domain, searched by pods (the kubelet's --cluster-domain)")
	fs.StringVar(&c.ResolvConf, "resolv-conf", d.ResolvConf, "resolver configuration the pods' resolv.conf is based on (the kubelet's --resolv-conf; empty: none)")
	fs.StringVar(&c.RuntimeName, "runtime", d.RuntimeName, "container runtime: mesos (Mesos nested containers) or hollow (containers only report running, as kubemark's hollow kubelet; for benchmarks)")
	fs.StringVar(&c.DockerRegistry, "docker-registry", d.DockerRegistry, "where container image configs are read: a directory of image archives or a registry URL, like the agent's --docker_registry (empty: the agent's own flag)")
}

// Validate reports every invalid option at once.
func (c *Config) Validate() error {
	var errs []error
	if c.LogLevel != "" {
		if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
			errs = append(errs, fmt.Errorf("--log-level: %w", err))
		}
	}
	if c.Kubeconfig != "" && c.BootstrapKubeconfig != "" {
		errs = append(errs, errors.New("--kubeconfig and --bootstrap-kubeconfig exclude each other"))
	}
	if c.HostIP != "" && net.ParseIP(c.HostIP) == nil {
		errs = append(errs, fmt.Errorf("--host-ip %q: not an IP address", c.HostIP))
	}
	if r := c.DockerRegistry; r != "" && !strings.HasPrefix(r, "/") {
		if u, err := url.Parse(r); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("--docker-registry %q: neither an absolute directory nor a URL", r))
		}
	}
	if c.KubeletAddress != "" {
		if _, port, err := net.SplitHostPort(c.KubeletAddress); err != nil {
			errs = append(errs, fmt.Errorf("--kubelet-address %q: %w", c.KubeletAddress, err))
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			errs = append(errs, fmt.Errorf("--kubelet-address %q: invalid port", c.KubeletAddress))
		}
	}
	if c.RuntimeName != "" && c.RuntimeName != RuntimeMesos && c.RuntimeName != RuntimeHollow {
		errs = append(errs, fmt.Errorf("--runtime %q: want %s or %s", c.RuntimeName, RuntimeMesos, RuntimeHollow))
	}
	if _, err := c.clusterDNS(); err != nil {
		errs = append(errs, err)
	}
	if c.ShutdownMargin < 0 || c.StatusFlushTimeout < 0 || c.SandboxTimeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	return errors.Join(errs...)
}

// clusterDNS parses --cluster-dns.
func (c *Config) clusterDNS() ([]string, error) {
	var ips []string
	for _, s := range strings.Split(c.ClusterDNS, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if net.ParseIP(s) == nil {
			return nil, fmt.Errorf("--cluster-dns %q: %q is not an IP address", c.ClusterDNS, s)
		}
		ips = append(ips, s)
	}
	return ips, nil
}

// mesosConfig reads the MESOS_* environment like mesos-go's config.FromEnv, from getenv.
func mesosConfig(getenv func(string) string) (config.Config, error) {
	if getenv == nil {
		c, err := config.FromEnv()
		if err != nil {
			return c, fmt.Errorf("reading the Mesos executor environment: %w", err)
		}
		return c, nil
	}
	var errs []error
	req := func(name string) string {
		v := getenv(name)
		if v == "" {
			errs = append(errs, fmt.Errorf("missing environment variable %s", name))
		}
		return v
	}
	dur := func(name string) time.Duration {
		v := req(name)
		if v == "" {
			return 0
		}
		d, err := mesostime.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return d
	}
	c := config.Config{
		FrameworkID:                 req("MESOS_FRAMEWORK_ID"),
		ExecutorID:                  req("MESOS_EXECUTOR_ID"),
		Directory:                   req("MESOS_DIRECTORY"),
		Sandbox:                     req("MESOS_SANDBOX"),
		AgentEndpoint:               req("MESOS_AGENT_ENDPOINT"),
		ExecutorShutdownGracePeriod: dur("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"),
	}
	if v := getenv("MESOS_CHECKPOINT"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("MESOS_CHECKPOINT: %w", err))
		}
		c.Checkpoint = b
	}
	if c.Checkpoint {
		c.RecoveryTimeout = dur("MESOS_RECOVERY_TIMEOUT")
		c.SubscriptionBackoffMax = dur("MESOS_SUBSCRIPTION_BACKOFF_MAX")
	}
	if err := errors.Join(errs...); err != nil {
		return config.Config{}, fmt.Errorf("reading the Mesos executor environment: %w", err)
	}
	return c, nil
}

// hostIP picks the IP written into pod statuses.
func hostIP(flag string, getenv func(string) string, agentEndpoint string) string {
	if flag != "" {
		return flag
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if ip := getenv("LIBPROCESS_IP"); ip != "" && ip != "0.0.0.0" {
		return ip
	}
	host, _, err := net.SplitHostPort(agentEndpoint)
	if err != nil {
		return agentEndpoint
	}
	return host
}

// kubeClient builds the clientset from a kubeconfig path (empty: in-cluster) and returns the
// KUBERNETES_SERVICE_HOST/PORT variables that point containers at the same API server.
func kubeClient(kubeconfig string) (kubernetes.Interface, map[string]string, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("loading kubeconfig %q: %w", kubeconfig, err)
	}
	rc.UserAgent = "kubemesos-executor"
	// The kubelet's defaults (--kube-api-qps 50, --kube-api-burst 100): client-go's 5/10 throttled the
	// status writes of a 10-pod roll-out to seconds.
	rc.QPS, rc.Burst = kubeletAPIQPS, kubeletAPIBurst
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	return cs, serviceEnv(rc.Host), nil
}

// nodeClient is kubeClient for --bootstrap-kubeconfig: the client authenticates with the Node's
// certificate, which id requests once it is given the Node's name (until then requests wait).
func nodeClient(ctx context.Context, cfg Config, sandbox string, log logrus.FieldLogger) (kubernetes.Interface, map[string]string, *identity.Identity, error) {
	dir := cfg.CertDir
	if dir == "" {
		dir = filepath.Join(sandbox, "pki")
	}
	id, err := identity.New(identity.Config{BootstrapKubeconfig: cfg.BootstrapKubeconfig, CertDir: dir, Log: log})
	if err != nil {
		return nil, nil, nil, err
	}
	rc := id.RESTConfig()
	rc.UserAgent = "kubemesos-executor"
	rc.QPS, rc.Burst = kubeletAPIQPS, kubeletAPIBurst
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	id.Start(ctx)
	return cs, serviceEnv(rc.Host), id, nil
}

const (
	kubeletAPIQPS   = 50
	kubeletAPIBurst = 100
)

// serviceEnv derives KUBERNETES_SERVICE_HOST/PORT from the API server URL (nil if it has no host).
func serviceEnv(apiServer string) map[string]string {
	u, err := url.Parse(apiServer)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return map[string]string{"KUBERNETES_SERVICE_HOST": u.Hostname(), "KUBERNETES_SERVICE_PORT": port}
}

// kubeLookup reads ConfigMaps and Secrets for container environments.
type kubeLookup struct{ client kubernetes.Interface }

var (
	_ nested.Lookup      = kubeLookup{}
	_ nested.TokenSource = kubeLookup{}
)

// Token requests a service account token bound to the pod (TokenRequest API), as the kubelet does
// for projected serviceAccountToken volumes.
func (l kubeLookup) Token(ctx context.Context, pod *corev1.Pod, audience string, expirationSeconds int64) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &expirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	tr, err := l.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token of service account %s/%s: %w", pod.Namespace, sa, err)
	}
	return tr.Status.Token, nil
}

func (l kubeLookup) ConfigMap(ctx context.Context, ns, name string) (map[string]string, error) {
	cm, err := l.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, nested.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading configmap %s/%s: %w", ns, name, err)
	}
	out := make(map[string]string, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.BinaryData {
		out[k] = string(v)
	}
	for k, v := range cm.Data {
		out[k] = v
	}
	return out, nil
}

func (l kubeLookup) Secret(ctx context.Context, ns, name string) (map[string][]byte, error) {
	s, err := l.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, nested.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading secret %s/%s: %w", ns, name, err)
	}
	return s.Data, nil
}

package executor

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/executor/agentclient"
	"github.com/kubemesos/kubemesos/executor/containerlogs"
	"github.com/kubemesos/kubemesos/executor/kubeletapi"
)

// kubeletAPI is the executor's kubelet API (kubectl logs and exec), fed through Config's hooks.
type kubeletAPI struct {
	server   *kubeletapi.Server
	registry *kubeletapi.Registry
	logs     *containerlogs.Manager
	execer   *kubeletapi.MesosExecer
	client   kubernetes.Interface
	clock    clock.PassiveClock
	addr     string
	log      logrus.FieldLogger
	// nodeName is the Node's name once SUBSCRIBED told it.
	nodeName atomic.Pointer[string]

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// startKubeletAPI serves the kubelet API on cfg.KubeletAddress (without a host: on the agent's IP)
// with delegated authentication and authorization against the API server behind client.
func startKubeletAPI(ctx context.Context, cfg Config, mcfg config.Config, agent agentclient.Options, loc podLocator, client kubernetes.Interface, podIP string, fwd kubeletapi.PortForwarder, log logrus.FieldLogger) (*kubeletAPI, error) {
	var opts kubeletapi.DelegatingOptions
	if cfg.ClientCAFile != "" {
		// The kubelet's --client-ca-file: a Node's identity may not read the ConfigMap.
		ca, err := dynamiccertificates.NewDynamicCAContentFromFile("client-ca-bundle", cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("kubelet API: --client-ca-file: %w", err)
		}
		opts.ClientCA = ca
	}
	auth, err := kubeletapi.Delegating(client, opts)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: %w", err)
	}
	log = log.WithField("component", "kubelet-api")
	agentURL := agent.URL(mcfg.AgentEndpoint, "/api/v1")
	if loc == nil {
		loc = noPods{}
	}
	k := &kubeletAPI{
		registry: kubeletapi.NewRegistry(mcfg.Sandbox),
		logs:     containerlogs.New(containerlogs.Config{Sandbox: mcfg.Sandbox, OutputDir: loc.ContainerDir, Clock: cfg.Clock, Log: log}),
		execer:   kubeletapi.NewMesosExecer(kubeletapi.MesosExecerConfig{AgentURL: agentURL, Agent: agent, Log: log, PodParent: loc.PodParent, ExecIn: loc.ExecIn}),
		client:   client,
		clock:    cfg.Clock,
		log:      log,
	}
	agentIP := hostIP("", cfg.Getenv, mcfg.AgentEndpoint)
	var ips []net.IP
	for _, s := range []string{podIP, agentIP} {
		if ip := net.ParseIP(s); ip != nil && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	k.server, err = kubeletapi.New(kubeletapi.Config{
		Address: kubeletListenAddress(cfg.KubeletAddress, agentIP), CertFile: cfg.KubeletCertFile, KeyFile: cfg.KubeletKeyFile, IPs: ips,
		Authenticator: auth.Authenticator, Authorizer: auth.Authorizer,
		Pods: k.registry, Execer: k.execer, Attacher: k.execer, PortForwarder: fwd, Clock: cfg.Clock, Log: log,
		// /stats/summary and /metrics/resource: the pods' usage from the agent's GET_CONTAINERS.
		Stats: &kubeletapi.Stats{Pods: k.registry, Usage: kubeletapi.NewMesosUsage(agentURL, 0, agent), Clock: cfg.Clock},
	})
	if err != nil {
		k.logs.Close()
		return nil, fmt.Errorf("kubelet API: %w", err)
	}
	k.ctx, k.stop = context.WithCancel(ctx)
	if k.addr, err = k.server.Start(k.ctx); err != nil {
		k.stop()
		k.logs.Close()
		return nil, fmt.Errorf("kubelet API: %w", err)
	}
	k.wg.Add(2)
	go func() {
		defer k.wg.Done()
		auth.Run(k.ctx)
	}()
	go func() {
		defer k.wg.Done()
		k.forgetDeleted()
	}()
	return k, nil
}

// chainHooks makes cfg's OnSubscribed and OnPodStatus feed the kubelet API first, then call what was
// configured before.
func (k *kubeletAPI) chainHooks(cfg *Config) {
	prevSubscribed, prevStatus := cfg.OnSubscribed, cfg.OnPodStatus
	cfg.OnSubscribed = func(s *mesosexec.Event_Subscribed) {
		k.subscribed(s)
		if prevSubscribed != nil {
			prevSubscribed(s)
		}
	}
	cfg.OnPodStatus = func(pod *corev1.Pod, status corev1.PodStatus, done bool) {
		k.podStatus(pod, status, done)
		if prevStatus != nil {
			prevStatus(pod, status, done)
		}
	}
}

// subscribed takes the Node's name from SUBSCRIBED and publishes the port on the Node, retrying
// until it is written.
func (k *kubeletAPI) subscribed(s *mesosexec.Event_Subscribed) {
	node := s.AgentInfo.GetHostname()
	k.server.SetNodeName(node)
	k.nodeName.Store(&node)
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: time.Minute}
		_ = wait.ExponentialBackoffWithContext(k.ctx, backoff, func(ctx context.Context) (bool, error) {
			if err := kubeletapi.PublishEndpoint(ctx, k.client, node, k.addr); err != nil {
				k.log.WithError(err).Info("publishing the kubelet API port on the Node (retrying)")
				return false, nil
			}
			k.log.WithFields(logrus.Fields{"node": node, "address": k.addr}).Info("kubelet API port published on the Node")
			return true, nil
		})
	}()
}

// podStatus records a pod's latest status (its containers' IDs) for logs and exec. After its last
// status (its task is over) the pod's logs are still served, as a kubelet serves a terminated pod's,
// until the pod is deleted (forgetDeleted). The logs are updated first: an attempt's log is complete
// before the registry tells log followers that it ended.
func (k *kubeletAPI) podStatus(pod *corev1.Pod, status corev1.PodStatus, done bool) {
	k.logs.Update(pod, status, done)
	k.registry.Update(pod, status)
	if done {
		k.registry.Ended(pod.Namespace, pod.Name, pod.UID)
	}
}

// deletedPodsInterval is how often the executor asks the API server whether ended pods are deleted
// (each one less often as it stays: kubeletapi.Registry.ForgetDeleted).
const deletedPodsInterval = 10 * time.Second

// forgetDeleted removes the logs of ended pods once they are deleted, until the server stops.
func (k *kubeletAPI) forgetDeleted() {
	get := nodePodGetter(k.client, func() string {
		if n := k.nodeName.Load(); n != nil {
			return *n
		}
		return ""
	})
	k.registry.RunForgetDeleted(k.ctx, deletedPodsInterval, k.clock, get, func(uid types.UID) {
		k.logs.Forget(uid)
		k.log.WithField("podUID", uid).Info("pod deleted: its containers' logs are removed")
	})
}

// shutdown stops the server and waits for everything it started.
func (k *kubeletAPI) shutdown() {
	k.stop()
	k.server.Wait()
	k.wg.Wait()
	k.logs.Close()
}

// nodePodGetter reads a pod as the kubelet may under the Node authorizer: a deleted pod is no longer
// related to the Node, so its GET is forbidden rather than not found, while a list selected by
// spec.nodeName (the kubelet's pod watch) is allowed and tells. Before the Node is known (node() ""),
// a plain GET.
func nodePodGetter(client kubernetes.Interface, node func() string) kubeletapi.PodGetter {
	return func(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
		n := node()
		if n == "" {
			return client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		}
		sel := fields.AndSelectors(fields.OneTermEqualSelector("spec.nodeName", n), fields.OneTermEqualSelector("metadata.name", name))
		list, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
		if err != nil {
			return nil, err
		}
		if len(list.Items) == 0 {
			return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
		}
		return &list.Items[0], nil
	}
}

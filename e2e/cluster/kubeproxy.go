package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kubemesos/kubemesos/e2e/podnet"
)

// kube-proxy's ports, on the control plane's own address (so concurrent control planes never
// collide on them): its defaults.
const (
	kubeProxyHealthzPort = 10256
	kubeProxyMetricsPort = 10249
)

// KubeProxyNodeName is kube-proxy's --hostname-override when it starts with the control plane: no
// Node has that name (it runs once per control plane, not per agent), which costs kube-proxy's 30 s
// wait for the Node (pkg/proxy/node.go) and a warning. StartKubeProxy names an existing Node instead.
const KubeProxyNodeName = "kubemesos-control-plane"

// kubeProxyArgs are the flags of kube-proxy for this control plane's pod network.
func (cp *ControlPlane) kubeProxyArgs(kubeconfig, nodeName string) []string {
	ip := cp.AdvertiseIP.String()
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--proxy-mode=nftables",
		"--cluster-cidr=" + podnet.ClusterCIDR,
		// NodePorts answer on the agents' addresses (and this one), not on every host address.
		"--nodeport-addresses=" + podnet.HostCIDR,
		"--hostname-override=" + nodeName,
		// Its node IP when the Node does not exist.
		"--bind-address=" + ip,
		"--healthz-bind-address=" + net.JoinHostPort(ip, strconv.Itoa(kubeProxyHealthzPort)),
		"--metrics-bind-address=" + net.JoinHostPort(ip, strconv.Itoa(kubeProxyMetricsPort)),
		// The host's conntrack table is not ours to resize.
		"--conntrack-max-per-core=0",
		"--v=2",
	}
}

// lockKubeProxy waits until this control plane may run the host's kube-proxy.
func (cp *ControlPlane) lockKubeProxy(ctx context.Context) error {
	unlock, err := podnet.LockKubeProxy(ctx, cp.netOpts, func(holder string) {
		cp.log.WithField("holder", holder).Warn("another control plane's kube-proxy runs on this host (kube-proxy's nftables table is host-wide): waiting for it to stop")
	})
	if err != nil {
		return err
	}
	cp.unlockKubeProxy = unlock
	return nil
}

// StartKubeProxy runs kube-proxy on demand (Options.LazyKubeProxy) as if on the Node nodeName, which
// should exist (kube-proxy waits 30 s for it otherwise, and exits when it is deleted), and returns
// once it has programmed its rules; it first waits for the host's kube-proxy lock. StopKubeProxy (or
// Stop) ends it.
func (cp *ControlPlane) StartKubeProxy(ctx context.Context, nodeName string) error {
	if cp.AdvertiseIP == nil {
		return errors.New("kube-proxy: the control plane has no pod network (Options.PodNetwork)")
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return errors.New("control plane stopped")
	}
	if cp.kubeProxy != nil {
		return errors.New("kube-proxy already runs")
	}
	if err := cp.lockKubeProxy(ctx); err != nil {
		return err
	}
	if err := cp.startKubeProxy(ctx, nodeName); err != nil {
		cp.stopKubeProxyLocked()
		return err
	}
	if err := cp.waitKubeProxy(ctx); err != nil {
		cp.stopKubeProxyLocked()
		return err
	}
	return nil
}

// startKubeProxy starts kube-proxy with its own client certificate (system:kube-proxy, which the
// bootstrap ClusterRoleBinding system:node-proxier authorizes), once it holds the host's kube-proxy
// lock; waitKubeProxy waits for it.
func (cp *ControlPlane) startKubeProxy(ctx context.Context, nodeName string) error {
	if cp.Binaries.KubeProxy == "" {
		return fmt.Errorf("kube-proxy: not among the binaries of %s", cp.Binaries.Dir)
	}
	kp, err := cp.clientCA.clientCert("system:kube-proxy", nil, time.Now())
	if err != nil {
		return err
	}
	kubeconfigPath := filepath.Join(cp.Dir, "kubeconfigs", "kube-proxy.kubeconfig")
	if _, err := writeKubeconfig(kubeconfigPath, kubeconfig(cp.URL, cp.servingCA.certPEM, "system:kube-proxy", credentials{certPEM: kp.certPEM, keyPEM: kp.keyPEM})); err != nil {
		return err
	}
	// A table left by a kube-proxy that was killed would hold its Services until ours rewrote it.
	if err := podnet.DeleteKubeProxyTable(); err != nil {
		return err
	}
	os.Remove(cp.logPath("kube-proxy"))
	// kube-proxy runs nft; root's sbin may be missing from a test's PATH.
	cp.kubeProxy, err = startProcessEnv("kube-proxy", cp.Binaries.KubeProxy, cp.kubeProxyArgs(kubeconfigPath, nodeName), cp.logPath("kube-proxy"),
		[]string{"PATH=" + os.Getenv("PATH") + ":/usr/sbin:/sbin"})
	if err != nil {
		return err
	}
	cp.KubeProxyLivez = "http://" + net.JoinHostPort(cp.AdvertiseIP.String(), strconv.Itoa(kubeProxyHealthzPort)) + "/livez"
	return nil
}

// waitKubeProxy waits until kube-proxy has programmed its rules (/livez 200; /healthz also wants its
// Node, which does not exist). kube-proxy first waits 30 s for that Node (pkg/proxy/node.go), so
// Start runs it beside the controller-manager's start.
func (cp *ControlPlane) waitKubeProxy(ctx context.Context) error {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	err := waitReady(ctx, cp.kubeProxy, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cp.KubeProxyLivez, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", cp.KubeProxyLivez, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kube-proxy: %w\n--- last lines of %s:\n%s", err, cp.kubeProxy.logPath, cp.kubeProxy.logTail(30))
	}
	return nil
}

// StopKubeProxy ends kube-proxy, removes its tables (its rules would otherwise keep answering for
// this control plane's Services) and lets another control plane run one. It does nothing if
// kube-proxy does not run.
func (cp *ControlPlane) StopKubeProxy() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.stopKubeProxyLocked()
}

func (cp *ControlPlane) stopKubeProxyLocked() {
	if cp.kubeProxy != nil {
		cp.kubeProxy.stop(10 * time.Second)
		cp.kubeProxy = nil
	}
	if cp.unlockKubeProxy != nil {
		if err := podnet.DeleteKubeProxyTable(); err != nil {
			cp.log.WithError(err).Warn("removing kube-proxy's nftables tables")
		}
		cp.unlockKubeProxy()
		cp.unlockKubeProxy = nil
	}
}

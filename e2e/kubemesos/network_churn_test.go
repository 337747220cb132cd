package kubemesos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/podnet"
)

// checkpointedNetworkInfo reads args["org.apache.mesos"]["network_info"] from a network.conf the
// network/cni isolator checkpointed (a single plugin's configuration, or each plugin of a list).
func checkpointedNetworkInfo(path string) (mesos.NetworkInfo, string, error) {
	var ni mesos.NetworkInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return ni, "", fmt.Errorf("the sandbox's checkpointed CNI configuration: %w", err)
	}
	type withArgs struct {
		Args map[string]map[string]json.RawMessage `json:"args"`
	}
	var conf struct {
		withArgs
		Plugins []withArgs `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		return ni, "", fmt.Errorf("%s: %w", path, err)
	}
	args := conf.Args
	if len(conf.Plugins) > 0 {
		args = conf.Plugins[0].Args
	}
	raw, ok := args["org.apache.mesos"]["network_info"]
	if !ok {
		return ni, "", fmt.Errorf("%s has no args[\"org.apache.mesos\"][\"network_info\"]: %s", path, b)
	}
	if err := jsonpb.UnmarshalString(string(raw), &ni); err != nil {
		return ni, "", fmt.Errorf("network_info %s: %w", raw, err)
	}
	return ni, string(raw), nil
}

// netResidue counts the pod network's objects on the host for this env's agents (podnet.Count:
// network namespace handles, veths on their bridges, host-local addresses, portmap and masquerade
// rules naming their subnets or addresses). kube-proxy's rules depend on the Services, not on pods:
// they are left out.
func (e *env) netResidue() podnet.Objects {
	e.t.Helper()
	if e.network == nil {
		e.t.Fatal("the env has no pod network")
	}
	o := e.network.Count()
	o.KubeProxyRules = 0
	return o
}

// Must show 6: 200 pods on the pod network, in batches of 50 on 3 agents (3 of each batch with a
// hostPort, so portmap rules come and go too), leave no network namespace handle, veth, IPAM address
// or nftables rule behind.
func TestPodNetworkChurnLeavesNothing(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{})
	ctx := context.Background()
	before := e.netResidue()
	t.Logf("before: %+v", before)
	const total, batch, withHostPort = 200, 50, 3
	spec := podSpec(sleeper)
	spec.Containers[0].Resources = resources("20m", "32Mi")
	spec.TerminationGracePeriodSeconds = ptr.To[int64](2)
	var peak podnet.Objects
	for b := 0; b < total/batch; b++ {
		label := map[string]string{"churn": strconv.Itoa(b)}
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for i := 0; i < batch; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				s := *spec.DeepCopy()
				if i < withHostPort { // the same hostPort: one per agent
					s.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: int32(31900 + b), Protocol: corev1.ProtocolTCP}}
				}
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("churn-%d-%d", b, i), Labels: label}, Spec: s}
				if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		pods := e.readyPods(selector(label), batch, 4*time.Minute)
		ips := map[string]bool{}
		for _, p := range pods {
			ips[p.Status.PodIP] = true
		}
		if len(ips) != batch {
			t.Errorf("batch %d: %d distinct pod IPs for %d pods", b, len(ips), batch)
		}
		if r := e.netResidue(); r.Veths > peak.Veths {
			peak = r
		}
		if err := e.kube.CoreV1().Pods(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector(label)}); err != nil {
			t.Fatal(err)
		}
		e.eventually("batch deleted", 2*time.Minute, func(ctx context.Context) (bool, error) {
			pods, err := e.pods(ctx, selector(label))
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return err == nil && len(pods) == 0, err
		})
	}
	t.Logf("with a batch of %d running: %+v", batch, peak)
	// The counts must see the pods: a veth, an address and a handle each, rules for the hostPorts.
	if peak.Veths < batch || peak.IPAMAddresses < batch || peak.NetnsHandles < batch || peak.PortmapRules < withHostPort || peak.MasqueradeRules < batch {
		t.Errorf("counted %+v with %d pods running: the count does not see them", peak, batch)
	}
	var after podnet.Objects
	defer func() {
		if t.Failed() {
			e.logNetnsResidue()
		}
	}()
	e.eventually("nothing left of the pods' networks", time.Minute, func(context.Context) (bool, error) {
		after = e.netResidue()
		return after == before, fmt.Errorf("after: %+v", after)
	})
	t.Logf("after %d pods: %+v", total, after)
}

// limitIPAM narrows the agent's pod network to the addresses first..last of its subnet (host-local's
// rangeStart and rangeEnd in its conflist, which network/cni reads at every launch).
func limitIPAM(t *testing.T, a *podnet.Agent, first, last int) (string, string) {
	t.Helper()
	path := filepath.Join(a.ConfigDir, podnet.NetworkName+".conflist")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	_ = json.Unmarshal(b, &all)
	at := func(i int) string {
		ip := slices.Clone(a.Subnet.IP.To4())
		ip[3] += byte(i)
		return ip.String()
	}
	for _, p := range conf.Plugins {
		if ipam, ok := p["ipam"].(map[string]any); ok {
			ipam["ranges"] = [][]map[string]string{{{"subnet": a.Subnet.String(), "gateway": a.Gateway.String(), "rangeStart": at(first), "rangeEnd": at(last)}}}
		}
	}
	all["plugins"] = conf.Plugins
	out, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return at(first), at(last)
}

// Bad input: an exhausted IPAM pool (a CNI plugin that fails). With 2 addresses left on the agent, 2
// pods run and the third fails with the plugin's words (through Mesos' text) in a
// FailedCreatePodSandBox Warning and its status; the failed attach leaves nothing behind, and the 2
// addresses come back when the pods go.
func TestPodNetworkIPAMExhausted(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	before := e.netResidue()
	first, last := limitIPAM(t, e.network.Agent(0), 10, 11)
	t.Logf("the agent's pool: %s-%s", first, last)
	for _, name := range []string{"ip-1", "ip-2"} {
		e.createPod(name, podSpec(sleeper))
		e.runningPod(name)
	}
	e.createPod("ip-3", podSpec(sleeper))
	// Mesos' text for a plugin that failed, with host-local's words.
	p := e.waitSandboxFailure("ip-3", "no IP addresses available in range set")
	if !strings.Contains(p.Status.Message+fmt.Sprint(p.Status.Conditions), "failed to attach") {
		t.Errorf("ip-3's status does not carry Mesos' text for a failed attach: %q", p.Status.Message)
	}
	t.Logf("ip-3: %s", p.Status.Message)
	running := e.netResidue()
	if running.Veths != 2 || running.IPAMAddresses != 2 || running.NetnsHandles != 2 {
		t.Errorf("with 2 pods running and one failed: %+v; want the 2 pods' objects only", running)
	}
	if err := e.kube.CoreV1().Pods(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	var after podnet.Objects
	e.eventually("nothing left of the pods' networks", 2*time.Minute, func(context.Context) (bool, error) {
		after = e.netResidue()
		return after == before, fmt.Errorf("after: %+v", after)
	})
	t.Logf("after: %+v", after)
}

// logNetnsResidue logs the network namespace handles left on the agents, the simulator's log lines
// naming their containers or the pods nested in them, and the tail of each container's executor's
// own log (its sandbox's stderr): what a left-over sandbox network went through.
func (e *env) logNetnsResidue() {
	handles := podnet.NetnsHandles(e.network.Agents()...)
	log, _ := os.ReadFile(e.simLog)
	logLines := strings.Split(string(log), "\n")
	for _, h := range handles {
		id := filepath.Base(filepath.Dir(h))
		// The pod's UID: its nested containers are <uid>-<container>-<n> under the executor's container.
		names := []string{id}
		for _, l := range logLines {
			if _, rest, ok := strings.Cut(l, "containers/"+id+"/containers/"); ok && len(rest) >= 36 && !slices.Contains(names, rest[:36]) {
				names = append(names, rest[:36])
			}
		}
		var lines []string
		for _, l := range logLines {
			if slices.ContainsFunc(names, func(n string) bool { return strings.Contains(l, n) }) {
				lines = append(lines, l)
			}
		}
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		e.t.Logf("left over: %s; the simulator's log on %v:\n%s", h, names, strings.Join(lines, "\n"))
		_ = filepath.WalkDir(e.dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() || d.Name() != id || filepath.Base(filepath.Dir(path)) != "runs" {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(path, "stderr"))
			tail := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(tail) > 20 {
				tail = tail[len(tail)-20:]
			}
			e.t.Logf("its executor's stderr (%s):\n%s", path, strings.Join(tail, "\n"))
			return filepath.SkipDir
		})
	}
}

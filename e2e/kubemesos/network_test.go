package kubemesos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/podnet"
)

// Issue 10's must-shows: pods get their own IP on the pod network (the agents' network/cni isolator,
// a sandbox nested container per pod), Services route to them through kube-proxy, cluster DNS names
// them, ports no longer collide, and kubectl port-forward reaches into the pod's network namespace.

const (
	// podNetworkName is the CNI network the e2e agents have (issue 10, point 7).
	podNetworkName = podnet.NetworkName
	// clusterPodCIDR holds every agent's pod subnet.
	clusterPodCIDR = podnet.ClusterCIDR
	// webPort is agnhost netexec's HTTP port in these tests.
	webPort = 8080
)

// newPodNetworkEnv is newEnv on the pod network: isolating agents only (network/cni is a Linux
// isolator), whose framework runs with --pod-network kubemesos (the harness' default there).
func newPodNetworkEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	opts.PodNetwork = true
	e := newIsolatingEnv(t, opts)
	if e.network == nil {
		t.Fatal("isolating agents without a pod network")
	}
	return e
}

// netexec is agnhost's HTTP server on webPort (/hostname answers the pod's hostname), Ready once it
// answers.
func netexec(name string) corev1.Container {
	return corev1.Container{
		Name:      name,
		Image:     "agnhost",
		Args:      []string{"netexec", "--http-port=" + strconv.Itoa(webPort)},
		Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: webPort, Protocol: corev1.ProtocolTCP}},
		Resources: resources("50m", "64Mi"),
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/hostname", Port: intstr.FromInt32(webPort)}},
			PeriodSeconds: 1,
		},
	}
}

func netexecSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{netexec("web")}, TerminationGracePeriodSeconds: ptr.To[int64](2)}
}

// onNode pins a pod spec to a Node through the scheduler (nodeSelector on the hostname label).
func onNode(spec corev1.PodSpec, node string) corev1.PodSpec {
	spec.NodeSelector = map[string]string{corev1.LabelHostname: node}
	return spec
}

func (e *env) createPod(name string, spec corev1.PodSpec) {
	e.t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pod": name}}, Spec: spec}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating pod %s: %v", name, err)
	}
}

// runningPod waits for the pod to be Running and Ready and returns it.
func (e *env) runningPod(name string) corev1.Pod {
	e.t.Helper()
	return e.readyPods(selector(map[string]string{"pod": name}), 1, 3*time.Minute)[0]
}

// readyPods waits until exactly n pods match sel, all Running and Ready and none being deleted (other
// pods of the namespace may run: waitRunningPods checks every Mesos task against its pods).
func (e *env) readyPods(sel string, n int, timeout time.Duration) []corev1.Pod {
	e.t.Helper()
	var got []corev1.Pod
	e.eventually(fmt.Sprintf("exactly %d pods %q Running and Ready", n, sel), timeout, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, sel)
		if err != nil {
			return false, err
		}
		for _, p := range pods {
			if p.Status.Phase == corev1.PodFailed {
				return false, fatalf("pod %s failed: %s", p.Name, e.podStory(ctx, &p))
			}
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podReady(&p) {
				return false, fmt.Errorf("pod %s: phase %s ready %v deleting %v", p.Name, p.Status.Phase, podReady(&p), p.DeletionTimestamp != nil)
			}
		}
		got = pods
		return len(pods) == n, fmt.Errorf("%d pods", len(pods))
	})
	return got
}

// nodeInternalIP is the Node's InternalIP (its agent's IP).
func (e *env) nodeInternalIP(ctx context.Context, node string) string {
	e.t.Helper()
	n, err := e.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("Node %s: %v", node, err)
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	e.t.Fatalf("Node %s has no InternalIP: %v", node, n.Status.Addresses)
	return ""
}

// sh runs a shell script in a pod's container through kubectl exec.
func (e *env) sh(ctx context.Context, pod, container, script string) (stdout, stderr string, code int, err error) {
	return e.kubectl(ctx, "exec", pod, "-c", container, "--", "sh", "-c", script)
}

// fetchLines is a script that GETs url n times with busybox's wget (each bounded by timeout; wget's
// own -T crashes this busybox) and prints one line per request: the body, or FAIL.
func fetchLines(url string, n int) string {
	return fmt.Sprintf(`for i in $(seq %d); do if b=$(timeout 5 wget -q -O - %s 2>&1); then echo "$b"; else echo "FAIL $b"; fi; done`, n, url)
}

// httpGetHost GETs a URL from the host (the test process) with a short timeout.
func httpGetHost(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, code, err := httpGet(ctx, url)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %d: %s", url, code, body)
	}
	return body, nil
}

func mustParseCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// Must show 1: 3 replicas get 3 distinct pod IPs of the pod network (each in its Node's podCIDR),
// status.podIPs is set; a hostNetwork pod's IP is its Node's InternalIP.
func TestPodNetworkPodIPs(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{})
	ctx := context.Background()
	e.createDeployment(deployment("web", 3, netexecSpec()))
	e.waitDeploymentReady("web", 3, 3*time.Minute)
	pods := e.readyPods(selector(map[string]string{"app": "web"}), 3, time.Minute)
	cluster := mustParseCIDR(clusterPodCIDR)
	seen := map[string]string{}
	for _, p := range pods {
		ip := net.ParseIP(p.Status.PodIP)
		t.Logf("pod %s on %s: podIP %s podIPs %v hostIP %s", p.Name, p.Spec.NodeName, p.Status.PodIP, p.Status.PodIPs, p.Status.HostIP)
		switch {
		case ip == nil:
			t.Errorf("pod %s: podIP %q is not an IP", p.Name, p.Status.PodIP)
			continue
		case ip.IsLoopback():
			t.Errorf("pod %s: podIP %s is loopback", p.Name, ip)
		case !cluster.Contains(ip):
			t.Errorf("pod %s: podIP %s is not in the pod network %s", p.Name, ip, clusterPodCIDR)
		}
		if other, dup := seen[p.Status.PodIP]; dup {
			t.Errorf("pods %s and %s share podIP %s", other, p.Name, p.Status.PodIP)
		}
		seen[p.Status.PodIP] = p.Name
		if len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != p.Status.PodIP {
			t.Errorf("pod %s: podIPs %v, want [%s]", p.Name, p.Status.PodIPs, p.Status.PodIP)
		}
		nodeIP := e.nodeInternalIP(ctx, p.Spec.NodeName)
		if p.Status.HostIP != nodeIP || p.Status.PodIP == nodeIP {
			t.Errorf("pod %s: hostIP %s podIP %s, want hostIP = the Node's InternalIP %s and a podIP of its own", p.Name, p.Status.HostIP, p.Status.PodIP, nodeIP)
		}
		node, err := e.kube.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Spec.PodCIDR == "" || !mustParseCIDR(node.Spec.PodCIDR).Contains(ip) || !slices.Contains(node.Spec.PodCIDRs, node.Spec.PodCIDR) {
			t.Errorf("pod %s: podIP %s not in its Node %s's podCIDR %q (podCIDRs %v)", p.Name, ip, node.Name, node.Spec.PodCIDR, node.Spec.PodCIDRs)
		}
	}

	spec := podSpec(sleeper)
	spec.HostNetwork = true
	e.createPod("hostnet", spec)
	p := e.runningPod("hostnet")
	nodeIP := e.nodeInternalIP(ctx, p.Spec.NodeName)
	if p.Status.PodIP != nodeIP || len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != nodeIP {
		t.Errorf("hostNetwork pod: podIP %s podIPs %v, want its Node's InternalIP %s", p.Status.PodIP, p.Status.PodIPs, nodeIP)
	}
}

// endpointIPs are the ready addresses of the Service's EndpointSlices.
func (e *env) endpointIPs(ctx context.Context, service string) ([]string, error) {
	list, err := e.kube.DiscoveryV1().EndpointSlices(e.ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			ips = append(ips, ep.Addresses...)
		}
	}
	sort.Strings(ips)
	return ips, nil
}

// waitEndpointsOfPods waits until the Service's ready endpoints are exactly the IPs of n Running and
// Ready pods matching sel.
func (e *env) waitEndpointsOfPods(service, sel string, n int) []corev1.Pod {
	e.t.Helper()
	pods := e.readyPods(sel, n, 3*time.Minute)
	var want []string
	for _, p := range pods {
		want = append(want, p.Status.PodIP)
	}
	sort.Strings(want)
	e.eventually(fmt.Sprintf("Service %s's EndpointSlices to hold the %d pod IPs", service, n), time.Minute, func(ctx context.Context) (bool, error) {
		got, err := e.endpointIPs(ctx, service)
		if err != nil {
			return false, err
		}
		return slices.Equal(got, want), fmt.Errorf("endpoints %v, want %v", got, want)
	})
	return pods
}

// Must show 2: kubectl expose → EndpointSlices with the pod IPs; the Service by short name, FQDN and
// ClusterIP answers from a client pod (kube-proxy, CoreDNS, the pod's resolv.conf) and reaches every
// replica; a NodePort answers on an agent's IP; scaling updates the endpoints.
func TestPodNetworkService(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{ClusterDNS: true})
	ctx := context.Background()
	e.createDeployment(deployment("web", 3, netexecSpec()))
	e.createPod("client", podSpec(sleeper))
	e.waitDeploymentReady("web", 3, 3*time.Minute)
	e.runningPod("client")

	if out, stderr, code, err := e.kubectl(ctx, "expose", "deployment", "web", "--port", "80", "--target-port", strconv.Itoa(webPort)); err != nil || code != 0 {
		t.Fatalf("kubectl expose: exit %d, %v: %s%s", code, err, out, stderr)
	}
	sel := selector(map[string]string{"app": "web"})
	pods := e.waitEndpointsOfPods("web", sel, 3)
	names := map[string]bool{}
	for _, p := range pods {
		names[p.Name] = true
	}
	svc, err := e.kube.CoreV1().Services(e.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clusterIP := svc.Spec.ClusterIP
	if ip := net.ParseIP(clusterIP); ip == nil || !mustParseCIDR(cluster.ServiceClusterIPRange).Contains(ip) {
		t.Fatalf("Service web's ClusterIP %q is not in the Service CIDR", clusterIP)
	}
	urls := []string{
		"http://" + clusterIP + "/hostname",
		"http://web." + e.ns + ".svc.cluster.local/hostname",
		"http://web/hostname",
	}
	if out, _, _, err := e.sh(ctx, "client", "main", "cat /etc/resolv.conf"); err == nil {
		t.Logf("the client's /etc/resolv.conf:\n%s", out)
	}
	// kube-proxy and CoreDNS follow the new Service within seconds: wait for a first answer to each
	// form, then every request must succeed.
	for _, u := range urls {
		e.eventually("a first answer from "+u, time.Minute, func(ctx context.Context) (bool, error) {
			out, stderr, code, err := e.sh(ctx, "client", "main", fetchLines(u, 1))
			if err != nil || code != 0 {
				return false, fmt.Errorf("exit %d, %v: %s", code, err, stderr)
			}
			return names[strings.TrimSpace(out)], fmt.Errorf("answer %q", out)
		})
	}
	reached := map[string]int{}
	for _, u := range urls {
		out, stderr, code, err := e.sh(ctx, "client", "main", fetchLines(u, 30))
		if err != nil || code != 0 {
			t.Fatalf("requests to %s: exit %d, %v: %s", u, code, err, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		perURL := map[string]int{}
		for _, l := range lines {
			if !names[l] {
				t.Errorf("a request to %s answered %q, want one of the replicas %v", u, l, names)
				continue
			}
			perURL[l]++
			reached[l]++
		}
		if len(lines) != 30 {
			t.Errorf("%d answers from %s, want 30", len(lines), u)
		}
		t.Logf("30 requests to %s reached %v", u, perURL)
	}
	if len(reached) != 3 {
		t.Errorf("the 90 requests reached %v, want all 3 replicas", reached)
	}

	// NodePort, from the host, on an agent's IP.
	if out, stderr, code, err := e.kubectl(ctx, "expose", "deployment", "web", "--name", "web-np", "--type", "NodePort", "--port", "80", "--target-port", strconv.Itoa(webPort)); err != nil || code != 0 {
		t.Fatalf("kubectl expose --type NodePort: exit %d, %v: %s%s", code, err, out, stderr)
	}
	np, err := e.kube.CoreV1().Services(e.ns).Get(ctx, "web-np", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodePort := np.Spec.Ports[0].NodePort
	agentIP := e.nodeInternalIP(ctx, e.agentHostname(0))
	npURL := fmt.Sprintf("http://%s/hostname", net.JoinHostPort(agentIP, strconv.Itoa(int(nodePort))))
	e.eventually("the NodePort to answer on "+npURL, time.Minute, func(ctx context.Context) (bool, error) {
		body, err := httpGetHost(ctx, npURL)
		if err != nil {
			return false, err
		}
		return names[body], fmt.Errorf("answer %q", body)
	})
	for i := 0; i < 10; i++ {
		if body, err := httpGetHost(ctx, npURL); err != nil || !names[body] {
			t.Errorf("NodePort request %d to %s: %q, %v", i, npURL, body, err)
		}
	}

	// kubectl scale: the endpoints follow.
	for _, n := range []int{5, 3} {
		if out, stderr, code, err := e.kubectl(ctx, "scale", "deployment", "web", "--replicas", strconv.Itoa(n)); err != nil || code != 0 {
			t.Fatalf("kubectl scale --replicas %d: exit %d, %v: %s%s", n, code, err, out, stderr)
		}
		e.waitDeploymentReady("web", int32(n), 3*time.Minute)
		e.waitEndpointsOfPods("web", sel, n)
	}
}

// Must show 3: two pods with the same containerPort on one agent both serve on their own IPs; a
// hostPort answers on the agent's IP; a second pod asking that hostPort of that agent is
// unschedulable for want of the port, and one free to go elsewhere runs on another agent.
func TestPodNetworkPorts(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{})
	ctx := context.Background()
	node := e.agentHostname(0)
	e.createPod("same-a", onNode(netexecSpec(), node))
	e.createPod("same-b", onNode(netexecSpec(), node))
	for _, name := range []string{"same-a", "same-b"} {
		p := e.runningPod(name)
		if p.Spec.NodeName != node {
			t.Fatalf("pod %s on %s, want %s", name, p.Spec.NodeName, node)
		}
		url := fmt.Sprintf("http://%s/hostname", net.JoinHostPort(p.Status.PodIP, strconv.Itoa(webPort)))
		if body, err := httpGetHost(ctx, url); err != nil || body != name {
			t.Errorf("GET %s = %q, %v; want %q", url, body, err, name)
		}
	}

	const hostPort = 31080
	withHostPort := func(spec corev1.PodSpec) corev1.PodSpec {
		spec.Containers[0].Ports[0].HostPort = hostPort
		return spec
	}
	e.createPod("hp", onNode(withHostPort(netexecSpec()), node))
	e.runningPod("hp")
	agentIP := e.nodeInternalIP(ctx, node)
	hpURL := fmt.Sprintf("http://%s/hostname", net.JoinHostPort(agentIP, strconv.Itoa(hostPort)))
	e.eventually("the hostPort to answer on "+hpURL, 30*time.Second, func(ctx context.Context) (bool, error) {
		body, err := httpGetHost(ctx, hpURL)
		if err != nil {
			return false, err
		}
		return body == "hp", fmt.Errorf("answer %q", body)
	})

	e.createPod("hp-pinned", onNode(withHostPort(netexecSpec()), node))
	e.createPod("hp-free", withHostPort(netexecSpec()))
	e.eventually("a FailedScheduling event for hp-pinned naming the ports", time.Minute, func(ctx context.Context) (bool, error) {
		msgs, err := e.schedulingEvents(ctx, "hp-pinned")
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			if strings.Contains(m, "free ports") && strings.Contains(m, strconv.Itoa(hostPort)) {
				t.Logf("FailedScheduling of hp-pinned: %q", m)
				return true, nil
			}
		}
		return false, fmt.Errorf("FailedScheduling messages %q", msgs)
	})
	free := e.runningPod("hp-free")
	if free.Spec.NodeName == node {
		t.Errorf("hp-free runs on %s, whose hostPort %d hp holds", node, hostPort)
	}
	freeURL := fmt.Sprintf("http://%s/hostname", net.JoinHostPort(e.nodeInternalIP(ctx, free.Spec.NodeName), strconv.Itoa(hostPort)))
	e.eventually("hp-free's hostPort to answer on "+freeURL, 30*time.Second, func(ctx context.Context) (bool, error) {
		body, err := httpGetHost(ctx, freeURL)
		if err != nil {
			return false, err
		}
		return body == "hp-free", fmt.Errorf("answer %q", body)
	})
	pinned, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "hp-pinned", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pinned.Spec.NodeName != "" || pinned.Status.Phase != corev1.PodPending {
		t.Errorf("hp-pinned: node %q phase %s, want Pending and unbound", pinned.Spec.NodeName, pinned.Status.Phase)
	}
}

// Must show 4: the containers of one pod reach each other on localhost (one network namespace), and
// a pod on another agent reaches the pod by its IP.
func TestPodNetworkLocalhostAndCrossAgent(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{Agents: 2})
	ctx := context.Background()
	duo := netexecSpec()
	duo.Containers = append(duo.Containers, container(sleeper))
	e.createPod("duo", onNode(duo, e.agentHostname(0)))
	e.createPod("far", onNode(podSpec(sleeper), e.agentHostname(1)))
	p := e.runningPod("duo")
	far := e.runningPod("far")
	if p.Spec.NodeName == far.Spec.NodeName {
		t.Fatalf("duo and far both on %s", p.Spec.NodeName)
	}
	for _, u := range []string{"http://localhost:8080/hostname", "http://127.0.0.1:8080/hostname"} {
		out, stderr, code, err := e.sh(ctx, "duo", "main", fetchLines(u, 1))
		if err != nil || code != 0 || strings.TrimSpace(out) != "duo" {
			t.Errorf("from duo's second container, %s: %q (exit %d, %v: %s), want duo", u, out, code, err, stderr)
		}
	}
	u := fmt.Sprintf("http://%s/hostname", net.JoinHostPort(p.Status.PodIP, strconv.Itoa(webPort)))
	out, stderr, code, err := e.sh(ctx, "far", "main", fetchLines(u, 3))
	if err != nil || code != 0 || out != "duo\nduo\nduo\n" {
		t.Errorf("from far on %s, %s: %q (exit %d, %v: %s), want duo 3 times", far.Spec.NodeName, u, out, code, err, stderr)
	}
}

// portForward runs `kubectl port-forward target local:remote` until the test ends and waits for it to
// listen.
func (e *env) portForward(target string, local, remote int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, e.cp.Binaries.Kubectl, "--kubeconfig="+e.cp.KubeconfigPath, "--namespace="+e.ns,
		"port-forward", target, fmt.Sprintf("%d:%d", local, remote), "--address=127.0.0.1")
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("kubectl port-forward: %v", err)
	}
	e.t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Forwarding from") {
				select {
				case listening <- sc.Text():
				default:
				}
			}
		}
	}()
	select {
	case l := <-listening:
		e.t.Logf("kubectl port-forward %s: %s", target, l)
	case <-time.After(30 * time.Second):
		cancel()
		_ = cmd.Wait()
		e.t.Fatalf("kubectl port-forward %s %d:%d did not listen: %s", target, local, remote, stderr.String())
	}
}

// kubeletCall calls an executor's kubelet API directly as cfg's identity (client certificate or
// token), without verifying its self-signed serving certificate, as logsexec_test's kubeletGet does.
func kubeletCall(ctx context.Context, method, url string, cfg *rest.Config) (int, string, error) {
	tr, err := rest.TransportFor(insecureKubelet(cfg))
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), nil
}

func insecureKubelet(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.TLSClientConfig.Insecure = true
	c.TLSClientConfig.CAData, c.TLSClientConfig.CAFile = nil, ""
	return c
}

// kubeletForward opens a port-forward to remotePort through an executor's /portForward URL over
// SPDY (client-go's portforward, what kubectl runs against the API server) and GETs path through it.
func kubeletForward(ctx context.Context, cfg *rest.Config, url string, remotePort int, path string) (string, error) {
	tr, upgrader, err := spdy.RoundTripperFor(insecureKubelet(cfg))
	if err != nil {
		return "", err
	}
	u, err := neturl.Parse(url)
	if err != nil {
		return "", err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", remotePort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	defer func() {
		close(stop)
		<-done
	}()
	select {
	case <-ready:
	case err := <-done:
		done <- err // for the deferred wait
		return "", fmt.Errorf("port-forward: %v", err)
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("port-forward not ready after 30s")
	}
	ports, err := pf.GetPorts()
	if err != nil {
		return "", err
	}
	return httpGetHost(ctx, fmt.Sprintf("http://127.0.0.1:%d%s", ports[0].Local, path))
}

// freePorts finds n distinct free loopback ports.
func freePorts(t testing.TB, n int) []int {
	var out []int
	for len(out) < n {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Must show 5: kubectl port-forward to a pod and to a Service carries HTTP into the pod's network
// namespace (the pod listens on its own IP, not the agent's); the executor's /portForward refuses
// callers without nodes/proxy with 403, as /exec does.
func TestPodNetworkPortForward(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{Agents: 2})
	ctx := context.Background()
	e.createDeployment(deployment("web", 2, netexecSpec()))
	e.waitDeploymentReady("web", 2, 3*time.Minute)
	if out, stderr, code, err := e.kubectl(ctx, "expose", "deployment", "web", "--port", "80", "--target-port", strconv.Itoa(webPort)); err != nil || code != 0 {
		t.Fatalf("kubectl expose: exit %d, %v: %s%s", code, err, out, stderr)
	}
	pods := e.waitEndpointsOfPods("web", selector(map[string]string{"app": "web"}), 2)
	names := map[string]bool{pods[0].Name: true, pods[1].Name: true}
	ports := freePorts(t, 2)

	e.portForward("pod/"+pods[0].Name, ports[0], webPort)
	for i := 0; i < 5; i++ { // each request is a new stream through the forward
		body, err := httpGetHost(ctx, fmt.Sprintf("http://127.0.0.1:%d/hostname", ports[0]))
		if err != nil || body != pods[0].Name {
			t.Errorf("through port-forward pod/%s, request %d: %q, %v", pods[0].Name, i, body, err)
		}
	}
	e.portForward("svc/web", ports[1], 80)
	body, err := httpGetHost(ctx, fmt.Sprintf("http://127.0.0.1:%d/hostname", ports[1]))
	if err != nil || !names[body] {
		t.Errorf("through port-forward svc/web: %q, %v; want one of %v", body, err, names)
	}

	// Through the API server, a user without RBAC is refused.
	_, nobodyPath, err := e.cp.UserKubeconfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, e.cp.Binaries.Kubectl, "--kubeconfig="+nobodyPath, "--namespace="+e.ns,
		"port-forward", "pod/"+pods[0].Name, fmt.Sprintf("%d:%d", freePorts(t, 1)[0], webPort))
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "forbidden") {
		t.Errorf("kubectl port-forward as nobody: %v: %s; want forbidden", err, out)
	}

	// The executor's kubelet API itself: nodes/proxy is what it asks the API server for.
	node, err := e.kube.CoreV1().Nodes().Get(ctx, pods[0].Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://%s/portForward/%s/%s", net.JoinHostPort(e.nodeInternalIP(ctx, node.Name),
		strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))), e.ns, pods[0].Name)
	nobody, _, err := e.cp.UserKubeconfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "no-rights"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa, _, err := e.cp.ServiceAccountKubeconfig(ctx, e.ns, "no-rights", 0)
	if err != nil {
		t.Fatal(err)
	}
	for who, cfg := range map[string]*rest.Config{"user nobody": nobody, "ServiceAccount without RBAC": sa} {
		code, body, err := kubeletCall(ctx, http.MethodPost, url, cfg)
		if err != nil || code != http.StatusForbidden {
			t.Errorf("POST %s as %s: HTTP %d %q, %v; want 403", url, who, code, body, err)
		}
	}
	// The admin (system:masters) forwards directly through the executor, over SPDY as kubectl does.
	got, err := kubeletForward(ctx, e.cp.Config, url, webPort, "/hostname")
	if err != nil || got != pods[0].Name {
		t.Errorf("direct port-forward to the executor as admin: %q, %v; want %q", got, err, pods[0].Name)
	}
}

// Must show 7: the pod's sandbox is what Mesos documents for a container on a CNI network: a MESOS
// ContainerInfo whose network_infos[0] names the pod network and carries the hostPorts as
// port_mappings {host_port, container_port, protocol}, with the pod's hostname; its IP in
// GET_CONTAINERS' container_status.network_infos is the podIP, and the pod's containers, nested under
// it, report the same network. The sandbox is found by its IP wherever it sits in the agent's
// container tree (a container nested under the kubemesos executor, or an executor's container of its
// own). Its NetworkInfo is read as the agent's network/cni isolator received it from the launch
// (args["org.apache.mesos"]["network_info"] of <runtime_dir>/isolators/network/cni/<id>/<network>/
// network.conf, as Mesos' cni.cpp writes it) and, for an executor's container, as the framework sent
// it (GET_STATE's executor_info.container).
func TestPodNetworkSandboxContainer(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	spec := netexecSpec()
	spec.Containers[0].Ports = []corev1.ContainerPort{
		{Name: "http", ContainerPort: webPort, HostPort: 31081, Protocol: corev1.ProtocolTCP},
		{Name: "udp", ContainerPort: 8081, HostPort: 31082, Protocol: corev1.ProtocolUDP},
	}
	spec.Hostname = "shaped"
	spec.Containers = append(spec.Containers, container(sleeper))
	e.createPod("shape", spec)
	pod := e.runningPod("shape")

	a := e.sim.Agents()[0]
	containers, err := agentContainers(ctx, a.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	// GET_CONTAINERS names each container by its own value, as Mesos' Http::__containers does; the
	// chain of parents is in its container_status.
	fullID := func(c agentapi.Response_GetContainers_Container) mesos.ContainerID {
		if id := c.GetContainerStatus().GetContainerID(); id != nil {
			return *id
		}
		return c.ContainerID
	}
	depth := func(id mesos.ContainerID) int {
		n := 0
		for p := id.Parent; p != nil; p = p.Parent {
			n++
		}
		return n
	}
	// The sandbox is the outermost container reporting the podIP (its children report it too).
	var sandbox *agentapi.Response_GetContainers_Container
	for i, c := range containers {
		if statusIP(c.ContainerStatus) == pod.Status.PodIP && (sandbox == nil || depth(fullID(c)) < depth(fullID(*sandbox))) {
			sandbox = &containers[i]
		}
	}
	if sandbox == nil {
		t.Fatalf("no container reports the podIP %s in GET_CONTAINERS: %v", pod.Status.PodIP, containers)
	}
	sandboxID := fullID(*sandbox)
	var chain []string
	for id := &sandboxID; id != nil; id = id.Parent {
		chain = append([]string{id.Value}, chain...)
	}
	var children []string
	for _, c := range containers {
		if id := fullID(c); id.Parent != nil && id.Parent.Value == sandboxID.Value {
			children = append(children, id.Value)
			if got := statusIP(c.ContainerStatus); got != pod.Status.PodIP {
				t.Errorf("container %s under the sandbox reports IP %q, want the sandbox's %s", id.Value, got, pod.Status.PodIP)
			}
		}
	}
	t.Logf("sandbox container %s (executor %q), containers under it: %v", strings.Join(chain, "."), sandbox.GetExecutorID().GetValue(), children)
	if !regexp.MustCompile(`^[A-Za-z0-9_.-]+$`).MatchString(sandboxID.Value) {
		t.Errorf("sandbox ContainerID %q has characters Mesos refuses", sandboxID.Value)
	}
	if len(children) != 2 {
		t.Errorf("%d containers under the sandbox, want the pod's 2", len(children))
	}
	if ni := sandbox.ContainerStatus.GetNetworkInfos(); len(ni) != 1 || ni[0].GetName() != podNetworkName {
		t.Errorf("the sandbox's container_status.network_infos %v, want one of network %q", ni, podNetworkName)
	}

	type mapping struct {
		Host, Container uint32
		Protocol        string
	}
	want := []mapping{{31081, webPort, "tcp"}, {31082, 8081, "udp"}}
	checkNetworkInfo := func(what string, ni mesos.NetworkInfo) {
		t.Helper()
		var got []mapping
		for _, m := range ni.PortMappings {
			got = append(got, mapping{m.HostPort, m.ContainerPort, m.GetProtocol()})
		}
		sort.Slice(got, func(i, j int) bool { return got[i].Host < got[j].Host })
		if ni.GetName() != podNetworkName || !slices.Equal(got, want) {
			t.Errorf("%s: name %q port_mappings %+v; want name %q port_mappings %+v", what, ni.GetName(), got, podNetworkName, want)
		}
	}
	flags, err := agentFlags(ctx, a.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if flags["runtime_dir"] == "" {
		t.Fatalf("GET_FLAGS has no runtime_dir: %v", flags)
	}
	confPath := fmt.Sprintf("%s/isolators/network/cni/%s/%s/network.conf", flags["runtime_dir"], strings.Join(chain, "."), podNetworkName)
	ni, raw, err := checkpointedNetworkInfo(confPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the sandbox's NetworkInfo as launched: %s", raw)
	checkNetworkInfo("the NetworkInfo the agent's network/cni got", ni)
	// The wire names are Mesos' (network_info is the launch's NetworkInfo as JSON).
	for _, field := range []string{`"name":"kubemesos"`, `"port_mappings":`, `"host_port":31081`, `"container_port":8080`, `"protocol":"tcp"`, `"protocol":"udp"`} {
		if !strings.Contains(strings.ReplaceAll(raw, " ", ""), field) {
			t.Errorf("the checkpointed network_info %s lacks %s", raw, field)
		}
	}
	if eid := sandbox.GetExecutorID().GetValue(); eid != "" && sandboxID.Parent == nil {
		// An executor's container: its ContainerInfo is the framework's ExecutorInfo.container.
		st, err := e.mesosState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, ex := range st.GetExecutors.Executors {
			if ex.ExecutorInfo.ExecutorID.Value != eid {
				continue
			}
			found = true
			ci := ex.ExecutorInfo.Container
			if ci == nil || ci.GetType() != mesos.ContainerInfo_MESOS || len(ci.NetworkInfos) != 1 || ci.GetHostname() != "shaped" {
				t.Errorf("executor %s's ContainerInfo %v: want type MESOS, one NetworkInfo, hostname shaped", eid, ci)
				continue
			}
			checkNetworkInfo("executor "+eid+"'s ContainerInfo.network_infos[0]", ci.NetworkInfos[0])
		}
		if !found {
			t.Errorf("GET_STATE has no executor %s", eid)
		}
	}
	// ContainerInfo.hostname: the pod's hostname, which every container of the pod shares.
	if out, _, code, err := e.sh(ctx, "shape", "main", "hostname"); err != nil || code != 0 || strings.TrimSpace(out) != "shaped" {
		t.Errorf("hostname in the pod: %q (exit %d, %v), want shaped", out, code, err)
	}
	// The pod's containers are in the sandbox's network: the sleeper reaches netexec on localhost.
	if out, _, code, err := e.sh(ctx, "shape", "main", fetchLines("http://127.0.0.1:8080/hostname", 1)); err != nil || code != 0 || strings.TrimSpace(out) != "shaped" {
		t.Errorf("netexec from the pod's other container: %q (exit %d, %v), want shaped", out, code, err)
	}
}

// Bad input: a pod network the agents do not have. The launch fails with Mesos' own words, which the
// pod shows in a FailedCreatePodSandBox Warning and its status (message or a condition); the task
// ends and nothing of the sandbox is left on the agent.
func TestPodNetworkUnknownNetwork(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{Agents: 1, FrameworkArgs: []string{"--pod-network=nosuch"}})
	before := e.netResidue()
	e.createPod("lost", podSpec(sleeper))
	const mesosText = "Unknown CNI network 'nosuch'"
	p := e.waitSandboxFailure("lost", mesosText)
	t.Logf("pod lost: %s %s: %s", p.Status.Phase, p.Status.Reason, p.Status.Message)
	e.eventually("the pod's task to end", time.Minute, func(ctx context.Context) (bool, error) {
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		ts := tasksOf(st, frameworkName)
		for _, task := range ts.Active {
			if taskPodUID(task) == string(p.UID) {
				return false, fmt.Errorf("task %s is %v", task.TaskID.Value, task.GetState())
			}
		}
		for _, task := range ts.Completed {
			if taskPodUID(task) == string(p.UID) {
				t.Logf("task %s ended %v", task.TaskID.Value, task.GetState())
				return true, nil
			}
		}
		return false, fmt.Errorf("no task of the pod seen")
	})
	e.eventually("nothing of the sandbox left on the agent", time.Minute, func(ctx context.Context) (bool, error) {
		cs, err := agentContainers(ctx, e.sim.Agents()[0].Endpoint())
		if err != nil {
			return false, err
		}
		// Only the kubemesos executor's own container may remain (GET_CONTAINERS names containers by
		// their own value; the parents are in container_status).
		for _, c := range cs {
			if id := c.GetContainerStatus().GetContainerID(); (id != nil && id.Parent != nil) || c.GetExecutorID().GetValue() != executorID {
				return false, fmt.Errorf("container %s (executor %q) left", c.ContainerID.Value, c.GetExecutorID().GetValue())
			}
		}
		after := e.netResidue()
		return after == before, fmt.Errorf("network objects before %+v, now %+v", before, after)
	})
}

// waitSandboxFailure waits for a pod that failed for want of a sandbox: a FailedCreatePodSandBox
// Warning with text, and the pod Failed with reason FailedCreatePodSandBox and text in its message or
// in a condition's.
func (e *env) waitSandboxFailure(name, text string) *corev1.Pod {
	e.t.Helper()
	var p *corev1.Pod
	var seen string // what the pod said last, should the client's rate limiter end the wait
	defer func() {
		if e.t.Failed() {
			e.t.Logf("pod %s last seen: %s", name, seen)
		}
	}()
	e.eventually(fmt.Sprintf("pod %s Failed for want of a sandbox, saying %q", name, text), 2*time.Minute, func(ctx context.Context) (bool, error) {
		var err error
		if p, err = e.kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return false, err
		}
		seen = fmt.Sprintf("phase %s reason %q message %q conditions %+v", p.Status.Phase, p.Status.Reason, p.Status.Message, p.Status.Conditions)
		if p.Status.Phase == corev1.PodRunning {
			return false, fatalf("pod %s runs (podIP %s)", name, p.Status.PodIP)
		}
		said := strings.Contains(p.Status.Message, text)
		for _, c := range p.Status.Conditions {
			said = said || strings.Contains(c.Message, text)
		}
		if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "FailedCreatePodSandBox" || !said {
			return false, fmt.Errorf("phase %s reason %q message %q conditions %+v", p.Status.Phase, p.Status.Reason, p.Status.Message, p.Status.Conditions)
		}
		evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=FailedCreatePodSandBox"})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, text) {
				e.t.Logf("event: %s %s: %s", ev.Type, ev.Reason, ev.Message)
				return true, nil
			}
		}
		return false, fmt.Errorf("no FailedCreatePodSandBox Warning with the text among %d", len(evs.Items))
	})
	return p
}

// agentCall sends a call to an agent's operator API (protobuf).
func agentCall(ctx context.Context, endpoint string, call agentapi.Call) (*agentapi.Response, error) {
	body, err := call.Marshal()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+endpoint+"/api/v1", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Accept", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent API %v: %w", call.Type, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent API %v: HTTP %d: %s", call.Type, resp.StatusCode, b)
	}
	var out agentapi.Response
	if err := out.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("decoding %v response: %w", call.Type, err)
	}
	return &out, nil
}

// agentContainers is GET_CONTAINERS with show_nested.
func agentContainers(ctx context.Context, endpoint string) ([]agentapi.Response_GetContainers_Container, error) {
	resp, err := agentCall(ctx, endpoint, agentapi.Call{Type: agentapi.Call_GET_CONTAINERS,
		GetContainers: &agentapi.Call_GetContainers{ShowNested: ptr.To(true)}})
	if err != nil {
		return nil, err
	}
	return resp.GetGetContainers().GetContainers(), nil
}

// agentFlags is GET_FLAGS as a map.
func agentFlags(ctx context.Context, endpoint string) (map[string]string, error) {
	resp, err := agentCall(ctx, endpoint, agentapi.Call{Type: agentapi.Call_GET_FLAGS})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range resp.GetGetFlags().GetFlags() {
		out[f.Name] = f.GetValue()
	}
	return out, nil
}

// statusIP is container_status.network_infos[0].ip_addresses[0].ip_address.
func statusIP(s *mesos.ContainerStatus) string {
	for _, ni := range s.GetNetworkInfos() {
		for _, a := range ni.IPAddresses {
			return a.GetIPAddress()
		}
	}
	return ""
}

package simhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubemesos/kubemesos/e2e/imagestore"
	"github.com/kubemesos/kubemesos/e2e/podnet"
	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

func TestMain(m *testing.M) {
	// Isolating agents re-execute the test binary as Mesos' launch helper.
	containerizer.MaybeRunHelper()
	os.Exit(m.Run())
}

// Isolating agents configured by Configure are on the pod network: each listens on its own address
// with its pod subnet as attribute pod_cidr and GET_FLAGS showing network/cni's flags; containers
// naming network kubemesos get addresses of their agent's subnet, two of them serve one port on one
// agent, the host reaches them by IP and through a port mapping on the agent's address, a container on
// another agent reaches them by IP; after the cluster and Network closed, nothing is left.
func TestAgentsOnThePodNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs isolated containers")
	}
	mode := Resolve(Isolating)
	if !mode.Isolating {
		t.Skip("needs isolating mode: " + mode.Why)
	}
	lockCNITests(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	store, err := imagestore.Ensure(ctx, imagestore.Options{Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	// A pod_cidr of the caller's is replaced by the agent's real subnet.
	cfg := mesossim.ClusterConfig{Master: mesossim.Config{Log: log}, Agents: 2, WorkDir: t.TempDir(), AgentAttributes: "pod_cidr:10.244.%d.0/24;rack:r%d"}
	network, err := Configure(&cfg, mode, store.Dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cfg.Isolation, ",network/cni") {
		t.Errorf("isolation %q lacks network/cni", cfg.Isolation)
	}
	c, err := mesossim.StartCluster(cfg)
	if err != nil {
		network.Close()
		t.Fatal(err)
	}
	closed := false
	closeAll := func() {
		if !closed {
			closed = true
			c.Close()
			if err := network.Close(); err != nil {
				t.Errorf("Network.Close: %v", err)
			}
		}
	}
	defer closeAll()
	if err := network.Err(); err != nil {
		t.Fatal(err)
	}
	nets := network.Agents()
	if len(nets) != 2 {
		t.Fatalf("%d agents on the network, want 2", len(nets))
	}
	agents := c.Agents()
	for i, a := range agents {
		host, _, _ := net.SplitHostPort(a.Endpoint())
		if host != nets[i].IP.String() {
			t.Errorf("agent %d listens on %s, want its address %s", i, a.Endpoint(), nets[i].IP)
		}
		var attrs []string
		for _, at := range a.Info().Attributes {
			if at.Name == podnet.PodCIDRAttribute {
				attrs = append(attrs, at.GetText().GetValue())
			}
		}
		if len(attrs) != 1 || attrs[0] != nets[i].Subnet.String() {
			t.Errorf("agent %d attributes pod_cidr %q, want only %s", i, attrs, nets[i].Subnet)
		}
		flags := string(post(t, a.Endpoint(), agentcalls.GetFlags(), http.StatusOK))
		for _, want := range []string{`"network_cni_config_dir","value":"` + nets[i].ConfigDir, `"network_cni_plugins_dir","value":"` + network.PluginsDir, `"runtime_dir","value":"` + nets[i].RuntimeDir} {
			if !strings.Contains(strings.ReplaceAll(flags, `", "value": "`, `","value":"`), want) {
				t.Errorf("agent %d GET_FLAGS lacks %s: %s", i, want, flags)
			}
		}
	}
	before := network.Count()

	serve := func(a int, id string, hostPort uint32) string {
		t.Helper()
		info := netInfo(hostPort)
		no := false
		cmd := &mesos.CommandInfo{Shell: &no, Value: ptr("/agnhost"), Arguments: []string{"/agnhost", "netexec", "--http-port=8080"}}
		post(t, agents[a].Endpoint(), agentcalls.LaunchContainer(mesos.ContainerID{Value: id}, cmd, image("agnhost", info), resources()), http.StatusOK)
		ip := containerIP(t, agents[a].Endpoint(), id)
		if !nets[a].Subnet.Contains(net.ParseIP(ip)) {
			t.Fatalf("%s has %s, not in agent %d's %s", id, ip, a, nets[a].Subnet)
		}
		return ip
	}
	ip1 := serve(0, "web-1", 31080)
	ip2 := serve(0, "web-2", 0)
	if ip1 == ip2 {
		t.Fatalf("two containers with %s", ip1)
	}
	for _, u := range []string{"http://" + ip1 + ":8080/hostname", "http://" + ip2 + ":8080/hostname", "http://" + nets[0].IP.String() + ":31080/hostname"} {
		httpEventually(t, ctx, u)
	}
	if got := network.Count(); got.Veths != before.Veths+2 || got.IPAMAddresses != before.IPAMAddresses+2 || got.NetnsHandles != before.NetnsHandles+2 || got.PortmapRules <= before.PortmapRules {
		t.Errorf("objects with two containers %+v, before %+v", got, before)
	}

	// From agent 1's subnet to agent 0's: by pod IP.
	no := false
	// (Debian busybox 1.35's wget segfaults with -T.)
	wget := &mesos.CommandInfo{Shell: &no, Value: ptr("/bin/wget"), Arguments: []string{"wget", "-qO-", "http://" + ip1 + ":8080/hostname"}}
	post(t, agents[1].Endpoint(), agentcalls.LaunchContainer(mesos.ContainerID{Value: "client"}, wget, image("busybox", netInfo(0)), resources()), http.StatusOK)
	post(t, agents[1].Endpoint(), agentcalls.WaitContainer(mesos.ContainerID{Value: "client"}), http.StatusOK)
	out, _ := os.ReadFile(filepath.Join(cfg.WorkDir, "containers", "client", "stdout"))
	stderr, _ := os.ReadFile(filepath.Join(cfg.WorkDir, "containers", "client", "stderr"))
	if string(out) != "web-1" {
		t.Errorf("agent 1's container fetched %q from %s (stderr %s), want web-1 (its hostname)", out, ip1, stderr)
	}

	closeAll()
	for i, n := range nets {
		if got := podnet.Count(n); got.NetnsHandles+got.Veths+got.IPAMAddresses+got.PortmapRules+got.MasqueradeRules != 0 {
			t.Errorf("agent %d left %+v", i, got)
		}
		lo, _ := net.InterfaceByName(podnet.Link)
		addrs, _ := lo.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(n.IP) {
				t.Errorf("agent %d's address %s still on %s", i, n.IP, podnet.Link)
			}
		}
	}
}

func resources() []mesos.Resource {
	r, err := mesossim.ParseResources("cpus:0.1;mem:64")
	if err != nil {
		panic(err)
	}
	return r
}

func netInfo(hostPort uint32) mesos.NetworkInfo {
	ni := mesos.NetworkInfo{Name: ptr(podnet.NetworkName)}
	if hostPort != 0 {
		ni.PortMappings = []mesos.NetworkInfo_PortMapping{{HostPort: hostPort, ContainerPort: 8080, Protocol: ptr("tcp")}}
	}
	return ni
}

func image(name string, ni mesos.NetworkInfo) *mesos.ContainerInfo {
	return &mesos.ContainerInfo{
		Type:         mesos.ContainerInfo_MESOS.Enum(),
		Mesos:        &mesos.ContainerInfo_MesosInfo{Image: &mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: name}}},
		NetworkInfos: []mesos.NetworkInfo{ni},
	}
}

// containerIP reads a container's address from GET_CONTAINERS, as the executor does.
func containerIP(t *testing.T, endpoint, id string) string {
	t.Helper()
	var resp agentapi.Response
	if err := jsonpb.Unmarshal(bytes.NewReader(post(t, endpoint, &agentapi.Call{Type: agentapi.Call_GET_CONTAINERS,
		GetContainers: &agentapi.Call_GetContainers{ShowNested: ptr(true), ShowStandalone: ptr(true)}}, http.StatusOK)), &resp); err != nil {
		t.Fatal(err)
	}
	for _, c := range resp.GetGetContainers().GetContainers() {
		if c.ContainerID.Value != id {
			continue
		}
		for _, ni := range c.GetContainerStatus().GetNetworkInfos() {
			for _, ip := range ni.IPAddresses {
				return ip.GetIPAddress()
			}
		}
		t.Fatalf("%s: no address in %+v", id, c.GetContainerStatus())
	}
	t.Fatalf("%s not in GET_CONTAINERS", id)
	return ""
}

func post(t *testing.T, endpoint string, call *agentapi.Call, want int) []byte {
	t.Helper()
	b, _ := json.Marshal(call)
	req, _ := http.NewRequest(http.MethodPost, "http://"+endpoint+"/api/v1", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s: %d %s", call.Type, resp.StatusCode, body)
	}
	return body
}

func httpEventually(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		return resp.StatusCode == 200, nil
	})
	if err != nil {
		t.Fatalf("GET %s: %v (last: %s)", url, err, last)
	}
}

// lockCNITests takes the host-wide lock of the containerizer's and agent's CNI tests, which count
// veths and nftables rules host-wide.
func lockCNITests(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kubemesos-cni-tests.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

func ptr[T any](v T) *T { return &v }

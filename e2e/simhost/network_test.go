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
	"strings"
	"testing"
	"time"

	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/sirupsen/logrus"

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
// with its pod subnet as attribute pod_cidr (replacing the caller's) and GET_FLAGS showing network/cni's
// flags; after the cluster and Network closed, their addresses are gone.
func TestAgentsOnThePodNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs isolated containers")
	}
	mode := Resolve(Isolating)
	if !mode.Isolating {
		t.Skip("needs isolating mode: " + mode.Why)
	}
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
	// Containers on the network are the e2e suite's (a pod's sandbox is nested under its executor:
	// Mesos' network/cni skips standalone containers); the conflist with the real plugins is podnet's.
	if got := network.Count(); got.NetnsHandles+got.Veths+got.IPAMAddresses+got.PortmapRules+got.MasqueradeRules != 0 {
		t.Errorf("objects before any container: %+v", got)
	}

	closeAll()
	for i, n := range nets {
		var left []string
		if got := podnet.Count(n); got.NetnsHandles+got.Veths+got.IPAMAddresses+got.PortmapRules+got.MasqueradeRules != 0 {
			left = append(left, fmt.Sprintf("agent %d left %+v", i, got))
		}
		lo, _ := net.InterfaceByName(podnet.Link)
		addrs, _ := lo.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(n.IP) {
				left = append(left, fmt.Sprintf("agent %d's address %s still on %s", i, n.IP, podnet.Link))
			}
		}
		if len(left) > 0 && n.TakenAgain() {
			// The e2e shards run beside this package and take free slots: what is there is theirs.
			t.Logf("agent %d's slot %d was taken again after its release: %v are the new holder's", i, n.Slot, left)
			continue
		}
		for _, l := range left {
			t.Error(l)
		}
	}
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

package podnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kubemesos/kubemesos/internal/cniplugins"
)

func TestConfList(t *testing.T) {
	a := newAgent(Options{Dir: "/run/x", PluginsDir: "/plugins"}, 7)
	b, err := a.ConfList()
	if err != nil {
		t.Fatal(err)
	}
	var got any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kubemesos",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "km7", "isGateway": true, "ipMasq": true, "ipMasqBackend": "nftables", "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  []any{[]any{map[string]any{"subnet": "10.244.7.0/24", "gateway": "10.244.7.1"}}},
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
					"dataDir": "/run/x/agent-7/ipam",
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "backend": "nftables"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conflist (-want +got):\n%s", diff)
	}
	for name, got := range map[string]string{
		"IP": a.IP.String(), "Subnet": a.Subnet.String(), "Gateway": a.Gateway.String(), "Attribute": a.Attribute(),
		"ConfigDir": a.ConfigDir, "RuntimeDir": a.RuntimeDir, "PluginsDir": a.PluginsDir,
	} {
		want := map[string]string{
			"IP": "10.250.0.7", "Subnet": "10.244.7.0/24", "Gateway": "10.244.7.1", "Attribute": "pod_cidr:10.244.7.0/24",
			"ConfigDir": "/run/x/agent-7/cni-conf", "RuntimeDir": "/run/x/agent-7/runtime", "PluginsDir": "/plugins",
		}[name]
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestParseRules(t *testing.T) {
	listing := `table ip cni_hostport { # handle 12
	comment "CNI portmap plugin"
	map hostip_hostports { # handle 3
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.250.0.9 . tcp . 8080 : jump x }
	}
	chain hostports { # handle 1
		ip daddr 10.250.0.7 tcp dport 8080 dnat ip to 10.244.7.2:80 comment "c1" # handle 7
	}
	chain masquerading { # handle 5
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.244.7.2 ip daddr 10.244.7.2 tcp dport 80 masquerade comment "c1" # handle 9
		ip saddr 10.244.17.2 masquerade # handle 10
	}
}
`
	got := parseRules(listing)
	want := []nftRule{
		{chain: "hostports", text: `ip daddr 10.250.0.7 tcp dport 8080 dnat ip to 10.244.7.2:80 comment "c1"`, handle: "7"},
		{chain: "masquerading", text: `ip saddr 10.244.7.2 ip daddr 10.244.7.2 tcp dport 80 masquerade comment "c1"`, handle: "9"},
		{chain: "masquerading", text: `ip saddr 10.244.17.2 masquerade`, handle: "10"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(nftRule{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Slot 7's rules, not slot 17's nor those of 10.250.0.70.
	re := newAgent(Options{}, 7).ruleMatcher()
	for text, want := range map[string]bool{
		got[0].text: true, got[1].text: true, got[2].text: false,
		"ip daddr 10.250.0.70 tcp dport 1 dnat ip to 10.244.70.2:80": false,
		"ip daddr 10.250.0.7 tcp dport 1 dnat ip to 10.244.70.2:80":  true,
	} {
		if re.MatchString(text) != want {
			t.Errorf("slot 7 matches %q: %v, want %v", text, !want, want)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: addresses, bridges, namespaces, nftables")
	}
}

func TestSlotsAreExclusiveAndReleased(t *testing.T) {
	requireRoot(t)
	opts := Options{Dir: t.TempDir(), First: 231, Last: 232}
	a, err := Acquire(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := Acquire(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if a.Slot == b.Slot || a.IP.Equal(b.IP) || a.Bridge == b.Bridge {
		t.Fatalf("two holders of one slot: %+v, %+v", a, b)
	}
	if _, err := Acquire(opts); err == nil || !strings.Contains(err.Error(), "no free pod network slot") {
		t.Fatalf("third Acquire of two slots: %v", err)
	}
	for _, x := range []*Agent{a, b} {
		if !hasAddress(x.IP) {
			t.Errorf("%s is not on %s", x.IP, Link)
		}
		if _, err := os.Stat(filepath.Join(x.ConfigDir, "kubemesos.conflist")); err != nil {
			t.Error(err)
		}
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if hasAddress(a.IP) {
		t.Errorf("%s still on %s after Release", a.IP, Link)
	}
	if a.TakenAgain() {
		t.Error("a released slot nobody took reports itself taken again")
	}
	c, err := Acquire(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if c.Slot != a.Slot {
		t.Errorf("after Release got slot %d, want the freed %d", c.Slot, a.Slot)
	}
	if !a.TakenAgain() {
		t.Error("a released slot another holder took reports itself free")
	}

	cp, err := AcquireControlPlaneIP(Options{Dir: opts.Dir, First: 250, Last: 250})
	if err != nil {
		t.Fatal(err)
	}
	if cp.IP.String() != "10.250.255.250" || !hasAddress(cp.IP) {
		t.Errorf("control plane IP %s (on %s: %v)", cp.IP, Link, hasAddress(cp.IP))
	}
	if _, err := AcquireControlPlaneIP(Options{Dir: opts.Dir, First: 250, Last: 250}); err == nil {
		t.Error("a second holder of control plane slot 250")
	}
	if err := cp.Release(); err != nil || hasAddress(cp.IP) {
		t.Errorf("Release: %v, still on %s: %v", err, Link, hasAddress(cp.IP))
	}
}

// A slot whose subnet another interface routes (a containerizer test's bridge, say) is skipped.
func TestSlotSkipsSubnetsInUse(t *testing.T) {
	requireRoot(t)
	if err := ipCmd("addr", "add", "10.244.233.9/32", "dev", Link); err != nil {
		t.Fatal(err)
	}
	defer ipCmd("addr", "del", "10.244.233.9/32", "dev", Link)
	a, err := Acquire(Options{Dir: t.TempDir(), First: 233, Last: 234})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	if a.Slot != 234 {
		t.Errorf("got slot %d, want 234 (10.244.233.0/24 is in use)", a.Slot)
	}
}

// The slot of a process that was killed while its containers were attached (real plugins: a veth on
// the bridge, an IPAM address, portmap and masquerade rules, a namespace handle under the runtime
// dir) is counted by Count, and emptied when the slot is taken again.
func TestKilledHoldersLeftoversAreCleaned(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat(nftPath()); err != nil {
		t.Skip("no nft: `make deps` installs Debian's nftables")
	}
	plugins := cniPlugins(t)
	dir := t.TempDir()
	const slot = 236
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldSlot$")
	cmd.Env = append(os.Environ(), "PODNET_HELPER_DIR="+dir, fmt.Sprintf("PODNET_HELPER_SLOT=%d", slot), "PODNET_HELPER_PLUGINS="+plugins)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if ip, ok := strings.CutPrefix(sc.Text(), "ATTACHED "); ok {
				ready <- ip
			}
		}
		close(ready)
	}()
	var podIP string
	select {
	case podIP = <-ready:
	case <-time.After(2 * time.Minute):
	}
	if podIP == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper did not attach a container:\n%s", stderr.String())
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	left := newAgent(Options{Dir: dir}, slot)
	got := Count(left)
	got.KubeProxyRules = 0
	if got.NetnsHandles != 1 || got.Veths != 1 || got.IPAMAddresses != 1 || got.PortmapRules == 0 || got.MasqueradeRules == 0 {
		t.Fatalf("left by the killed holder: %+v, want 1 handle, 1 veth, 1 address, portmap and masquerade rules", got)
	}
	if !left.Subnet.Contains(net.ParseIP(podIP)) {
		t.Errorf("container address %s not in %s", podIP, left.Subnet)
	}

	// Taking another slot sweeps the dead holder's.
	other, err := Acquire(Options{Dir: dir, First: slot + 1, Last: slot + 1, PluginsDir: plugins})
	if err != nil {
		t.Fatal(err)
	}
	if got := Count(left); got.NetnsHandles+got.Veths+got.IPAMAddresses+got.PortmapRules+got.MasqueradeRules != 0 || hasAddress(left.IP) || linkExists(left.Bridge) {
		t.Errorf("slot %d after another slot was taken: %+v, address on %s: %v, bridge: %v", slot, got, Link, hasAddress(left.IP), linkExists(left.Bridge))
	}
	if err := other.Release(); err != nil {
		t.Fatal(err)
	}
	a, err := Acquire(Options{Dir: dir, First: slot, Last: slot, PluginsDir: plugins})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	after := Count(a)
	after.KubeProxyRules = 0
	if after != (Objects{}) {
		t.Errorf("after taking the slot again: %+v, want nothing", after)
	}
	if linkExists(a.Bridge) {
		t.Errorf("bridge %s survived", a.Bridge)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if hasAddress(a.IP) {
		t.Errorf("%s on %s after Release", a.IP, Link)
	}
}

// TestHelperHoldSlot is the killed holder of TestKilledHoldersLeftoversAreCleaned: it takes the slot,
// attaches a network namespace (held by a bind mount under the runtime dir, as network/cni does) with
// the slot's conflist and a port mapping, says so and waits to be killed.
func TestHelperHoldSlot(t *testing.T) {
	dir := os.Getenv("PODNET_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process of TestKilledHoldersLeftoversAreCleaned")
	}
	var slot int
	fmt.Sscan(os.Getenv("PODNET_HELPER_SLOT"), &slot)
	a, err := Acquire(Options{Dir: dir, First: slot, Last: slot, PluginsDir: os.Getenv("PODNET_HELPER_PLUGINS")})
	if err != nil {
		t.Fatal(err)
	}
	handle := filepath.Join(a.RuntimeDir, "isolators/network/cni/c1/ns")
	ip, err := attach(a, handle, "c1", 30080)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ATTACHED %s\n", ip)
	time.Sleep(10 * time.Minute)
}

// attach makes a network namespace held at handle and runs the conflist's ADD on it, as libcni runs a
// list: each plugin with the previous result, portmap with its runtimeConfig. It returns the address.
func attach(a *Agent, handle, id string, hostPort int) (string, error) {
	ns := "kmpodnet" + id
	if err := ipCmd("netns", "add", ns); err != nil {
		return "", err
	}
	defer ipCmd("netns", "del", ns)
	if err := os.MkdirAll(filepath.Dir(handle), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(handle, nil, 0o644); err != nil {
		return "", err
	}
	if err := unix.Mount("/run/netns/"+ns, handle, "", unix.MS_BIND, ""); err != nil {
		return "", err
	}
	b, err := a.ConfList()
	if err != nil {
		return "", err
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return "", err
	}
	var prev json.RawMessage
	for _, p := range list.Plugins {
		p["cniVersion"], p["name"] = list.CNIVersion, list.Name
		if prev != nil {
			p["prevResult"] = prev
		}
		if p["type"] == "portmap" {
			p["runtimeConfig"] = map[string]any{"portMappings": []map[string]any{
				{"hostPort": hostPort, "containerPort": 80, "protocol": "tcp", "hostIP": a.IP.String()}}}
		}
		conf, _ := json.Marshal(p)
		cmd := exec.Command(filepath.Join(a.PluginsDir, p["type"].(string)))
		cmd.Stdin = bytes.NewReader(conf)
		cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID="+id, "CNI_NETNS="+handle, "CNI_IFNAME=eth0", "CNI_PATH="+a.PluginsDir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("%s ADD: %w: %s %s", p["type"], err, out, stderr.String())
		}
		prev = out
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(prev, &res); err != nil || len(res.IPs) == 0 {
		return "", fmt.Errorf("result %s: %v", prev, err)
	}
	ip, _, err := net.ParseCIDR(res.IPs[0].Address)
	return ip.String(), err
}

var plugins struct {
	once sync.Once
	dir  string
	err  error
}

func cniPlugins(t *testing.T) string {
	t.Helper()
	plugins.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		plugins.dir, plugins.err = cniplugins.EnsureWith(ctx, cniplugins.Options{Log: io.Discard})
	})
	if plugins.err != nil {
		t.Fatalf("building the CNI plugins: %v", plugins.err)
	}
	return plugins.dir
}

// One kube-proxy runner per host: a second waits (told who holds it) until the first lets go.
func TestLockKubeProxyIsExclusive(t *testing.T) {
	opts := Options{Dir: t.TempDir()}
	unlock, err := LockKubeProxy(context.Background(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	var told string
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := LockKubeProxy(ctx, opts, func(holder string) { told = holder }); err == nil {
		t.Fatal("a second holder of the kube-proxy lock")
	}
	if want := fmt.Sprintf("pid %d (", os.Getpid()); !strings.HasPrefix(told, want) {
		t.Errorf("waiting was told %q, want it to start with %q", told, want)
	}
	done := make(chan error, 1)
	go func() {
		u, err := LockKubeProxy(context.Background(), opts, nil)
		if err == nil {
			u()
		}
		done <- err
	}()
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the lock after it was released")
	}
}

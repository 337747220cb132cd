//go:build linux

package containerizer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/internal/cniplugins"
)

var (
	pluginsOnce sync.Once
	pluginsDir  string
	pluginsErr  error
)

// cniPlugins builds (or finds cached) the reference CNI plugins once per test binary.
func cniPlugins(t testing.TB) string {
	t.Helper()
	pluginsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		pluginsDir, pluginsErr = cniplugins.EnsureWith(ctx, cniplugins.Options{Log: io.Discard})
	})
	if pluginsErr != nil {
		t.Fatalf("building the CNI plugins: %v", pluginsErr)
	}
	return pluginsDir
}

// cniNet is a test network: a bridge with host-local addresses in 10.244.<n>.0/<bits> (addresses only
// inside the network namespaces the tests create), optionally chained with portmap.
type cniNet struct {
	name, bridge, subnet, gateway, confDir string
}

const cniIsolation = "filesystem/linux,namespaces/pid,network/cni"

// newCNINet writes the network's configuration into a new --network_cni_config_dir: a CNI list with
// portmap (nftables), or Mesos' single-plugin format when list is false. extra plugins are appended
// to the list.
func newCNINet(t testing.TB, n, bits int, list bool, extra ...map[string]any) *cniNet {
	t.Helper()
	requireRoot(t)
	lockCNITests(t)
	c := &cniNet{
		name:    fmt.Sprintf("kmtest-%d", n),
		bridge:  fmt.Sprintf("kmcni%d", n),
		subnet:  fmt.Sprintf("10.244.%d.0/%d", n, bits),
		gateway: fmt.Sprintf("10.244.%d.1", n),
		confDir: t.TempDir(),
	}
	bridge := map[string]any{
		"type": "bridge", "bridge": c.bridge, "isGateway": true,
		"ipam": map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": c.subnet}}}},
	}
	var conf map[string]any
	file := c.name + ".conf"
	if list {
		plugins := []map[string]any{bridge, {"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "backend": "nftables"}}
		plugins = append(plugins, extra...)
		conf = map[string]any{"cniVersion": "1.0.0", "name": c.name, "plugins": plugins}
		file = c.name + ".conflist"
	} else {
		conf = bridge
		conf["cniVersion"], conf["name"] = "1.0.0", c.name
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	if err := os.WriteFile(filepath.Join(c.confDir, file), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", c.bridge).Run()
		_ = os.RemoveAll(filepath.Join("/var/lib/cni/networks", c.name))
	})
	return c
}

// lockCNITests serializes the CNI tests of every test process on the host until the test ends: they
// share networks, the CNI root directory and portmap's table, and count what is left on the host.
func lockCNITests(t testing.TB) {
	t.Helper()
	if cniLockHeld.Load() {
		return
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kubemesos-cni-tests.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	cniLockHeld.Store(true)
	t.Cleanup(func() {
		cniLockHeld.Store(false)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

var cniLockHeld atomic.Bool

func newCNIContainerizer(t testing.TB, c *cniNet, plugins string) *Containerizer {
	t.Helper()
	if plugins == "" {
		plugins = cniPlugins(t)
	}
	return newTestContainerizer(t, cniIsolation, func(f *Flags) {
		f.NetworkCNIConfigDir, f.NetworkCNIPluginsDir = c.confDir, plugins
	})
}

var cniSeq atomic.Int64

// cniID is a container ID unique on this host (the CNI root directory and IPAM are host-wide).
func cniID(prefix string) mesos.ContainerID {
	return mesos.ContainerID{Value: fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), cniSeq.Add(1))}
}

func withNetworks(names ...string) *mesos.ContainerInfo {
	info := mesosInfo()
	for _, n := range names {
		info.NetworkInfos = append(info.NetworkInfos, mesos.NetworkInfo{Name: proto(n)})
	}
	return info
}

// containerIP is the IPv4 address Status reports for the container on the network.
func containerIP(t testing.TB, z *Containerizer, key, network string) string {
	t.Helper()
	cs, err := z.Status(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, ni := range cs.NetworkInfos {
		if ni.GetName() == network && len(ni.IPAddresses) > 0 {
			if ni.IPAddresses[0].GetProtocol() != mesos.IPv4 {
				t.Errorf("protocol %v, want IPv4", ni.IPAddresses[0].GetProtocol())
			}
			return ni.IPAddresses[0].GetIPAddress()
		}
	}
	t.Fatalf("status of %s has no address on %s: %+v", key, network, cs.NetworkInfos)
	return ""
}

// httpGet fetches url, retrying while the server comes up.
func httpGet(t testing.TB, url string) string {
	t.Helper()
	client := http.Client{Timeout: 2 * time.Second}
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(url)
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

// busybox 1.35's wget -T crashes on a refused connection: the tests use plain wget.

// webServer is a container command serving $MESOS_SANDBOX/www on port 8080 after recording its
// hostname and network files.
func webServer(body string) mesos.CommandInfo {
	return shell(`mkdir -p $MESOS_SANDBOX/www && echo ` + body + ` > $MESOS_SANDBOX/www/index.html
hostname > $MESOS_SANDBOX/hostname; cat /etc/hosts > $MESOS_SANDBOX/hosts; cat /etc/hostname > $MESOS_SANDBOX/etc-hostname
echo "$LIBPROCESS_IP" > $MESOS_SANDBOX/libprocess-ip
exec busybox httpd -f -p 8080 -h $MESOS_SANDBOX/www`)
}

func readSandbox(t testing.TB, l *launched, name string) string {
	t.Helper()
	waitForFile(t, filepath.Join(l.sandbox, name))
	var b []byte
	for i := 0; i < 100; i++ { // written by a shell: wait until it is not empty
		b, _ = os.ReadFile(filepath.Join(l.sandbox, name))
		if len(b) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return strings.TrimSpace(string(b))
}

// Two containers on a CNI network get distinct addresses from its range and reach each other; each
// has its hostname (ContainerInfo.hostname, else its ID), /etc/hosts and /etc/hostname naming it, and a
// loopback that is up. A nested container without network_infos shares its parent's network namespace
// and address; one with network_infos gets its own. Status reports the addresses, keeping the
// NetworkInfo's labels.
func TestCNIContainersGetAddressesAndReachEachOther(t *testing.T) {
	nw := newCNINet(t, 71, 24, true)
	z := newCNIContainerizer(t, nw, "")
	_, subnet, _ := net.ParseCIDR(nw.subnet)

	infoA := withNetworks(nw.name)
	infoA.Hostname = proto("pod-a")
	infoA.NetworkInfos[0].Labels = &mesos.Labels{Labels: []mesos.Label{{Key: "k", Value: proto("v")}}}
	a := &Container{ID: cniID("a"), Info: infoA, Command: webServer("hello-from-a")}
	la, err := launch(t, z, a)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), a.Key) }()
	b := &Container{ID: cniID("b"), Info: withNetworks(nw.name), Command: webServer("hello-from-b")}
	lb, err := launch(t, z, b)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), b.Key) }()

	ipA, ipB := containerIP(t, z, a.Key, nw.name), containerIP(t, z, b.Key, nw.name)
	if ipA == ipB || !subnet.Contains(net.ParseIP(ipA)) || !subnet.Contains(net.ParseIP(ipB)) {
		t.Fatalf("addresses %s and %s: want two distinct ones in %s", ipA, ipB, nw.subnet)
	}
	cs, _ := z.Status(context.Background(), a.Key)
	if ls := cs.NetworkInfos[0].GetLabels().GetLabels(); len(ls) != 1 || ls[0].Key != "k" {
		t.Errorf("status lost the NetworkInfo's labels: %+v", cs.NetworkInfos[0])
	}

	// The host reaches both through the bridge.
	if got := httpGet(t, "http://"+ipA+":8080/"); got != "hello-from-a\n" {
		t.Errorf("GET a: %q", got)
	}
	if got := readSandbox(t, la, "hostname"); got != "pod-a" {
		t.Errorf("hostname of a = %q, want pod-a", got)
	}
	if got := readSandbox(t, lb, "hostname"); got != b.ID.Value {
		t.Errorf("hostname of b = %q, want its container ID %s", got, b.ID.Value)
	}
	if got, want := readSandbox(t, la, "hosts"), "127.0.0.1 localhost\n"+ipA+" pod-a"; got != want {
		t.Errorf("/etc/hosts of a = %q, want %q", got, want)
	}
	if got := readSandbox(t, la, "etc-hostname"); got != "pod-a" {
		t.Errorf("/etc/hostname of a = %q", got)
	}
	if got := readSandbox(t, la, "libprocess-ip"); got != "0.0.0.0" {
		t.Errorf("LIBPROCESS_IP = %q, want 0.0.0.0", got)
	}

	// Usage counts the traffic of a's eth0 (--network_cni_metrics).
	st, err := z.Usage(context.Background(), a.Key)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNetRxPackets() == 0 || st.GetNetTxBytes() == 0 {
		t.Errorf("usage of a after serving a request: rx %d packets, tx %d bytes", st.GetNetRxPackets(), st.GetNetTxBytes())
	}

	// b reaches a at its address.
	ping := &Container{ID: cniID("b-client"), Info: withNetworks(nw.name),
		Command: shell("busybox wget -q -O - http://" + ipA + ":8080/")}
	if out := mustRun(t, z, ping); out != "hello-from-a\n" {
		t.Errorf("a container on the network read %q from a", out)
	}

	// A nested container without network_infos is in a's network namespace: a's server is on its
	// loopback (which is up), and it has a's address and files.
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	parentNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", a.Pid))
	if parentNS == hostNS {
		t.Fatalf("a is in the host's network namespace %s", hostNS)
	}
	nested := &Container{ID: mesos.ContainerID{Value: "shares", Parent: &a.ID}, Parent: a,
		Command: shell(`readlink /proc/self/ns/net; hostname; cat /etc/hosts; busybox wget -q -O - http://127.0.0.1:8080/`)}
	ln, err := launch(t, z, nested)
	if err != nil {
		t.Fatal(err)
	}
	// Status while it runs: the parent's network (Mesos' status(parent)).
	if ip := containerIP(t, z, nested.Key, nw.name); ip != ipA {
		t.Errorf("status of the nested container reports %s, want its parent's %s", ip, ipA)
	}
	term, out := wait(t, z, ln)
	if term.Status != 0 {
		t.Fatalf("nested: status %d, %s %s", term.Status, out, stderrOf(ln))
	}
	if want := parentNS + "\npod-a\n127.0.0.1 localhost\n" + ipA + " pod-a\nhello-from-a\n"; out != want {
		t.Errorf("nested container printed %q, want %q", out, want)
	}

	// A nested container with network_infos has its own namespace and address.
	own := &Container{ID: mesos.ContainerID{Value: "own", Parent: &a.ID}, Parent: a, Info: withNetworks(nw.name),
		Command: shell(`readlink /proc/self/ns/net; sleep 1000`)}
	lo, err := launch(t, z, own)
	if err != nil {
		t.Fatal(err)
	}
	ipOwn := containerIP(t, z, own.Key, nw.name)
	if ipOwn == ipA || ipOwn == ipB || !subnet.Contains(net.ParseIP(ipOwn)) {
		t.Errorf("nested container with its own network got %s (a %s, b %s)", ipOwn, ipA, ipB)
	}
	waitForFile(t, lo.stdout)
	if ns := readSandbox(t, lo, "stdout"); ns == parentNS || ns == hostNS {
		t.Errorf("nested container with network_infos is in namespace %s (parent %s, host %s)", ns, parentNS, hostNS)
	}
	if err := z.Destroy(context.Background(), own.Key); err != nil {
		t.Fatal(err)
	}
	if got := httpGet(t, "http://"+ipB+":8080/"); got != "hello-from-b\n" {
		t.Errorf("GET b: %q", got)
	}
}

// A container with a root filesystem on a CNI network sees its network files inside its rootfs; one
// on the host network (no network_infos) sees the host's files, read-only.
func TestCNIRootfsNetworkFiles(t *testing.T) {
	nw := newCNINet(t, 72, 24, false)
	z := newCNIContainerizer(t, nw, "")
	rootfs := busyboxRootfs(t)
	info := withNetworks(nw.name)
	info.Hostname = proto("in-rootfs")
	c := &Container{ID: cniID("rootfs"), Rootfs: rootfs, Info: info,
		Command: shell("hostname; cat /etc/hosts /etc/hostname; echo; test -e /etc/resolv.conf && echo resolv")}
	l, err := launch(t, z, c)
	if err != nil {
		t.Fatal(err)
	}
	ip := containerIP(t, z, c.Key, nw.name)
	term, out := wait(t, z, l)
	if term.Status != 0 {
		t.Fatalf("status %d: %s", term.Status, stderrOf(l))
	}
	if want := "in-rootfs\n127.0.0.1 localhost\n" + ip + " in-rootfs\nin-rootfs\nresolv\n"; out != want {
		t.Errorf("container printed %q, want %q", out, want)
	}

	host := &Container{ID: cniID("hostnet"), Rootfs: rootfs,
		Command: shell("cat /etc/hosts; echo x >> /etc/hosts 2>/dev/null && echo writable || echo read-only")}
	hostHosts, _ := os.ReadFile("/etc/hosts")
	if out := mustRun(t, z, host); out != string(hostHosts)+"read-only\n" {
		t.Errorf("host-network container printed %q, want the host's /etc/hosts, read-only", out)
	}
}

// NetworkInfo.port_mappings forward the host's port to the container (CNI portmap, nftables), and the
// rules go with the container.
func TestCNIPortMapping(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft on this host: `make deps` installs Debian's nftables for portmap's nftables backend")
	}
	nw := newCNINet(t, 73, 24, true)
	z := newCNIContainerizer(t, nw, "")
	rulesBefore := portmapRules(t, nw)
	info := withNetworks(nw.name)
	hostPort := uint32(30000 + os.Getpid()%20000)
	info.NetworkInfos[0].PortMappings = []mesos.NetworkInfo_PortMapping{{HostPort: hostPort, ContainerPort: 8080, Protocol: proto("TCP")}}
	c := &Container{ID: cniID("ports"), Info: info, Command: webServer("mapped")}
	if _, err := launch(t, z, c); err != nil {
		t.Fatal(err)
	}
	if n := portmapRules(t, nw); n <= rulesBefore {
		t.Errorf("%d portmap rules with the container, %d before", n, rulesBefore)
	}
	// Any local address of the host: the bridge's.
	if got := httpGet(t, fmt.Sprintf("http://%s:%d/", nw.gateway, hostPort)); got != "mapped\n" {
		t.Errorf("GET through the host port: %q", got)
	}
	cs, _ := z.Status(context.Background(), c.Key)
	if pm := cs.NetworkInfos[0].PortMappings; len(pm) != 1 || pm[0].HostPort != hostPort || pm[0].ContainerPort != 8080 {
		t.Errorf("status port mappings %+v", pm)
	}
	if err := z.Destroy(context.Background(), c.Key); err != nil {
		t.Fatal(err)
	}
	if n := portmapRules(t, nw); n != rulesBefore {
		t.Errorf("%d portmap rules after the container, %d before", n, rulesBefore)
	}
}

// portmapRules counts the rules of portmap's nftables table (cni_hostport) for nw's containers.
func portmapRules(t testing.TB, nw *cniNet) int {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		return 0
	}
	out, err := exec.Command("nft", "-a", "list", "table", "ip", "cni_hostport").CombinedOutput()
	if err != nil {
		return 0 // no table yet
	}
	// The rules that lead to this network's containers (their DNAT names the container's address).
	prefix := nw.subnet[:strings.LastIndex(nw.subnet, ".")+1] // "10.244.<n>."
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "# handle") && strings.Contains(line, prefix) {
			n++
		}
	}
	return n
}

// nsHandles lists the network namespace handles mounted in pid's mount namespace.
func nsHandles(t testing.TB, pid int) string {
	t.Helper()
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); strings.Contains(line, " - nsfs ") && len(f) > 4 {
			out = append(out, f[4])
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// hostNetState is what containers on a network could leak on the host.
type hostNetState struct {
	nsMounts, veths, ipam, rules, cniDirs int
}

func snapshotHostNet(t testing.TB, nw *cniNet) hostNetState {
	t.Helper()
	// Only this process's containers and this network's objects: other packages' tests run beside
	// this one (go test runs packages in parallel) and create their own on the same host.
	mine := fmt.Sprintf("-%d-", os.Getpid())
	var s hostNetState
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, " - nsfs ") && strings.Contains(line, "/mesos/"+cniDir+"/") && strings.Contains(line, mine) {
			s.nsMounts++
		}
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		master, _ := os.Readlink(filepath.Join("/sys/class/net", i.Name, "master"))
		if strings.HasPrefix(i.Name, "veth") && filepath.Base(master) == nw.bridge {
			s.veths++
		}
	}
	entries, _ := os.ReadDir(filepath.Join("/var/lib/cni/networks", nw.name))
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			s.ipam++
		}
	}
	s.rules = portmapRules(t, nw)
	dirs, _ := os.ReadDir(filepath.Join(DefaultRuntimeDir, cniDir))
	for _, d := range dirs {
		if strings.Contains(d.Name(), mine) {
			s.cniDirs++
		}
	}
	return s
}

// 200 containers with a port mapping, launched and destroyed (or ended) one after the other, leave no
// namespace handle, veth, IPAM address, portmap rule or directory behind.
func TestCNIChurnLeavesNothing(t *testing.T) {
	nw := newCNINet(t, 74, 24, true)
	z := newCNIContainerizer(t, nw, "")
	// A long-lived container's mount namespace sees exactly the host's namespace handles, whether
	// mounted before it started, after, or unmounted since: the root dir's shared mount propagates
	// mounts and unmounts into it, so it keeps no other container's network namespace alive.
	early := &Container{ID: cniID("early"), Info: withNetworks(nw.name), Command: shell("sleep 1000")}
	if _, err := launch(t, z, early); err != nil {
		t.Fatal(err)
	}
	keeper := &Container{ID: cniID("keeper"), Info: withNetworks(nw.name), Command: shell("sleep 1000")}
	if _, err := launch(t, z, keeper); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), keeper.Key) }()
	if err := z.Destroy(context.Background(), early.Key); err != nil {
		t.Fatal(err)
	}
	before := snapshotHostNet(t, nw)
	mountsBefore := countMounts(t)
	for i := 0; i < 200; i++ {
		info := withNetworks(nw.name)
		info.NetworkInfos[0].PortMappings = []mesos.NetworkInfo_PortMapping{{HostPort: uint32(31000 + i), ContainerPort: 80}}
		c := &Container{ID: cniID("churn"), Info: info, Command: shell("sleep 1000")}
		l, err := launch(t, z, c)
		if err != nil {
			t.Fatalf("launch %d: %v", i, err)
		}
		if i%2 == 0 {
			if err := z.Destroy(context.Background(), c.Key); err != nil {
				t.Fatal(err)
			}
		} else {
			_ = z.Signal(c.Key, 9)
			wait(t, z, l)
		}
	}
	if after := snapshotHostNet(t, nw); after != before {
		t.Errorf("host network state before %+v, after 200 containers %+v", before, after)
	}
	if n := countMounts(t); n != mountsBefore {
		t.Errorf("%d mounts before, %d after", mountsBefore, n)
	}
	if in, host := nsHandles(t, keeper.Pid), nsHandles(t, os.Getpid()); in != host {
		t.Errorf("the long-lived container's mount namespace holds the namespace handles %s, the host %s", in, host)
	}
}

// Refused and failed launches carry Mesos' texts and leave nothing behind: an unknown network, a
// network joined twice, a network of a non-MESOS container, an exhausted address pool, a plugin that
// fails after the bridge attached the container (DEL undoes the half-done ADD).
func TestCNIBadInput(t *testing.T) {
	nw := newCNINet(t, 75, 30, false) // a /30: one address besides the gateway
	failing := t.TempDir()
	script := "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{\"code\":100,\"msg\":\"no luck\"}'; echo oops >&2; exit 1; fi\nexit 0\n"
	if err := os.WriteFile(filepath.Join(failing, "failing"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	half := newCNINet(t, 76, 24, true, map[string]any{"type": "failing"})
	if err := os.Rename(filepath.Join(half.confDir, half.name+".conflist"), filepath.Join(nw.confDir, half.name+".conflist")); err != nil {
		t.Fatal(err)
	}
	plugins := cniPlugins(t) + ":" + failing
	z := newCNIContainerizer(t, nw, plugins)

	first := &Container{ID: cniID("first"), Info: withNetworks(nw.name), Command: shell("sleep 1000")}
	if _, err := launch(t, z, first); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), first.Key) }()
	before, halfBefore := snapshotHostNet(t, nw), snapshotHostNet(t, half)
	mountsBefore := countMounts(t)

	docker := withNetworks(nw.name)
	docker.Type = mesos.ContainerInfo_DOCKER.Enum()
	exhausted := cniID("exhausted")
	halfID := cniID("half")
	for _, tc := range []struct {
		name string
		c    *Container
		want string
	}{
		{"unknown network", &Container{ID: cniID("unknown"), Info: withNetworks("no-such-net")}, "Unknown CNI network 'no-such-net'"},
		{"joined twice", &Container{ID: cniID("twice"), Info: withNetworks(nw.name, nw.name)}, "Attempted to join CNI network '" + nw.name + "' multiple times"},
		{"not MESOS", &Container{ID: cniID("docker"), Info: docker}, "Can only prepare CNI networks for a MESOS container"},
		{"exhausted pool", &Container{ID: exhausted, Info: withNetworks(nw.name)},
			"The CNI plugin '" + filepath.Join(cniPlugins(t), "bridge") + "' failed to attach container " + exhausted.Value +
				" to CNI network '" + nw.name + "': stdout='{\n    \"code\": 999,\n    \"msg\": \"failed to allocate for range 0: no IP addresses available in range set: 10.244.75.1-10.244.75.2\"\n}', stderr=''"},
		{"failing plugin", &Container{ID: halfID, Info: withNetworks(half.name)},
			"The CNI plugin '" + filepath.Join(failing, "failing") + "' failed to attach container " + halfID.Value +
				" to CNI network '" + half.name + "': stdout='{\"code\":100,\"msg\":\"no luck\"}', stderr='oops'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Command = shell("sleep 1000")
			_, err := launch(t, z, tc.c)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("launch error:\n%v\nwant:\n%s", err, tc.want)
			}
			if _, err := z.Wait(tc.c.Key); err == nil {
				t.Errorf("a refused container is still known")
			}
			if _, err := os.Stat(filepath.Join(DefaultRuntimeDir, cniDir, tc.c.ID.Value)); err == nil {
				t.Errorf("the container's CNI directory is left")
			}
		})
	}
	if after := snapshotHostNet(t, nw); after != before {
		t.Errorf("host network state before %+v, after the failed launches %+v", before, after)
	}
	if after := snapshotHostNet(t, half); after != halfBefore {
		t.Errorf("the half-attached network's state before %+v, after %+v", halfBefore, after)
	}
	if n := countMounts(t); n != mountsBefore {
		t.Errorf("%d mounts before, %d after", mountsBefore, n)
	}
}

// A network whose configuration is added after the agent started is found (Mesos reloads the
// directory on a cache miss).
func TestCNINetworkAddedLater(t *testing.T) {
	nw := newCNINet(t, 77, 24, false)
	later := newCNINet(t, 78, 24, false)
	z := newCNIContainerizer(t, nw, "")
	c := &Container{ID: cniID("later"), Info: withNetworks(later.name), Command: shell("true")}
	if _, err := launch(t, z, c); err == nil || err.Error() != "Unknown CNI network '"+later.name+"'" {
		t.Fatalf("launch before the network exists: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(later.confDir, later.name+".conf"))
	if err := os.WriteFile(filepath.Join(nw.confDir, later.name+".conf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	c.ID = cniID("later")
	mustRun(t, z, c)
}

// The isolator's creation refuses what Mesos' create refuses, with its texts, and loading skips (and
// logs) what loadNetworkConfigs skips.
func TestCNICreate(t *testing.T) {
	requireRoot(t)
	log := logrus.New()
	var buf bytes.Buffer
	log.SetOutput(&buf)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		flags Flags
		want  string
	}{
		{Flags{NetworkCNIConfigDir: dir}, "Missing required '--network_cni_plugins_dir' flag"},
		{Flags{NetworkCNIPluginsDir: dir}, "Missing required '--network_cni_config_dir' flag"},
		{Flags{NetworkCNIPluginsDir: dir, NetworkCNIConfigDir: missing}, "The CNI network configuration directory '" + missing + "' does not exist"},
	} {
		if _, err := newNetworkCNI(tc.flags, log); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %q", tc.flags, err, tc.want)
		}
	}
	geteuidCNI = func() int { return 1000 }
	_, err := newNetworkCNI(Flags{NetworkCNIPluginsDir: dir, NetworkCNIConfigDir: dir}, log)
	geteuidCNI = os.Geteuid
	if err == nil || err.Error() != "The 'network/cni' isolator requires root permissions" {
		t.Errorf("without root: %v", err)
	}
	// Without either flag the isolator exists, for the host network only.
	n, err := newNetworkCNI(Flags{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Prepare(context.Background(), &Container{ID: cniID("x"), Info: withNetworks("any")}, &LaunchInfo{}); err == nil ||
		err.Error() != "Unknown CNI network 'any'" {
		t.Errorf("a network without CNI flags: %v", err)
	}

	plugins := cniPlugins(t)
	conf := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(conf, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("10-good.conf", `{"cniVersion":"1.0.0","name":"good","type":"bridge","ipam":{"type":"host-local"}}`)
	dup := write("20-dup.conf", `{"cniVersion":"1.0.0","name":"good","type":"bridge"}`)
	bad := write("30-bad.conf", `{"name":`)
	noType := write("40-notype.conf", `{"name":"x"}`)
	noPlugin := write("50-noplugin.conf", `{"name":"np","type":"no-such-plugin"}`)
	noIPAM := write("60-noipam.conf", `{"name":"ni","type":"bridge","ipam":{"type":"no-such-ipam"}}`)
	list := write("70-list.conflist", `{"cniVersion":"1.0.0","name":"list","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}`)
	if err := os.Mkdir(filepath.Join(conf, "a-directory"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err = newNetworkCNI(Flags{NetworkCNIPluginsDir: plugins, NetworkCNIConfigDir: conf}, log)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(n.NetworkNames(), ","); got != "good,list" {
		t.Errorf("networks %s, want good,list", got)
	}
	if n.configs["good"] != good || n.configs["list"] != list {
		t.Errorf("configs %v", n.configs)
	}
	for _, want := range []string{
		"Multiple network configuration for a CNI network is not allowed. Skipping configuration file '" + dup + " since network good already exists",
		"Failed to parse CNI network configuration file '" + bad + "': JSON parse failed: ",
		"Failed to parse CNI network configuration file '" + noType + "': Protobuf parse failed: Missing required fields: type",
		"Skipping network 'np' , from configuration file '" + noPlugin + "', since we failed to find CNI plugin 'no-such-plugin' used by this network.",
		"Skipping network 'ni' , from configuration file '" + noIPAM + "', since we failed to find IPAM plugin 'no-such-ipam' used by this network.",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
	// The root directory is a shared mount in its own peer group.
	root, _ := filepath.EvalSymlinks(filepath.Join(DefaultRuntimeDir, cniDir))
	table, _ := readMountInfo()
	found := false
	for _, e := range table {
		if e.target == root {
			found = e.shared != ""
		}
	}
	if !found {
		t.Errorf("%s is not a shared mount", root)
	}
}

// BenchmarkLaunchCNI measures a container running `true` to its cleaned-up end without a network, on a
// bridge + host-local network (Mesos' single-plugin format), and on bridge + host-local + portmap with
// one port mapping.
func BenchmarkLaunchCNI(b *testing.B) {
	list := newCNINet(b, 79, 24, true)
	single := newCNINet(b, 81, 24, false)
	std := logrus.StandardLogger() // the isolator's
	out := std.Out
	std.SetOutput(io.Discard)
	defer std.SetOutput(out)
	for _, bc := range []struct {
		name    string
		network bool
		nw      *cniNet
	}{{"no-network", false, single}, {"bridge", true, single}, {"bridge-portmap", true, list}} {
		b.Run(bc.name, func(b *testing.B) {
			nw := bc.nw
			z := newCNIContainerizer(b, nw, "")
			sandbox := b.TempDir()
			value := "/bin/true"
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := &Container{ID: cniID("bench"), Sandbox: sandbox, Command: mesos.CommandInfo{Value: &value, Shell: new(bool)}}
				if bc.network {
					c.Info = withNetworks(nw.name)
					c.Info.NetworkInfos[0].PortMappings = []mesos.NetworkInfo_PortMapping{{HostPort: uint32(32000 + i%1000), ContainerPort: 80}}
				}
				l, err := launch(b, z, c)
				if err != nil {
					b.Fatal(err)
				}
				if term, _ := wait(b, z, l); term.Status != 0 {
					b.Fatalf("status %d: %s", term.Status, stderrOf(l))
				}
			}
		})
	}
}

// Mesos' rule for a nested container that joins its parent's network: it takes the ROOT container's
// networks. Under a host-network executor, a container nested in a sandbox that has a network of its
// own is in the host's network and UTS namespaces (cni.cpp prepare: infos[rootContainerId]), while its
// status reports the sandbox's network (status(parent)).
func TestCNINestedContainerTakesTheRootsNetwork(t *testing.T) {
	nw := newCNINet(t, 80, 24, true)
	z := newCNIContainerizer(t, nw, "")
	executor := &Container{ID: cniID("executor"), Command: shell("sleep 1000")}
	if _, err := launch(t, z, executor); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), executor.Key) }()
	if cs, _ := z.Status(context.Background(), executor.Key); len(cs.NetworkInfos) != 0 {
		t.Errorf("the host-network executor reports networks %+v", cs.NetworkInfos)
	}
	info := withNetworks(nw.name)
	info.Hostname = proto("web-0")
	sandbox := &Container{ID: mesos.ContainerID{Value: "sandbox", Parent: &executor.ID}, Parent: executor, Info: info,
		Command: shell("sleep 1000")}
	if _, err := launch(t, z, sandbox); err != nil {
		t.Fatal(err)
	}
	ip := containerIP(t, z, sandbox.Key, nw.name)
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	hostUTS, _ := os.Readlink("/proc/self/ns/uts")
	hostname, _ := os.Hostname()
	sandboxNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", sandbox.Pid))
	if sandboxNS == hostNS {
		t.Fatalf("the sandbox is in the host's network namespace")
	}
	pod := &Container{ID: mesos.ContainerID{Value: "app", Parent: &sandbox.ID}, Parent: sandbox,
		Command: shell("readlink /proc/self/ns/net /proc/self/ns/uts; hostname; sleep 1000")}
	l, err := launch(t, z, pod)
	if err != nil {
		t.Fatal(err)
	}
	if got := containerIP(t, z, pod.Key, nw.name); got != ip {
		t.Errorf("the pod container's status reports %s, want the sandbox's %s (Mesos' status(parent))", got, ip)
	}
	waitForFile(t, l.stdout)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(l.stdout); strings.Count(string(b), "\n") >= 3 {
			break
		}
	}
	if out, _ := os.ReadFile(l.stdout); string(out) != hostNS+"\n"+hostUTS+"\n"+hostname+"\n" {
		t.Errorf("the pod container printed %q, want the host's namespaces %s %s and hostname %s", out, hostNS, hostUTS, hostname)
	}
	if _, err := os.Stat(filepath.Join(DefaultRuntimeDir, cniDir, mesosContainerID(sandbox.ID), "ns")); err != nil {
		t.Errorf("the sandbox's namespace handle is not at Mesos' path (<parent>.<child>): %v", err)
	}

	// Cleanup is idempotent: a second one after the container ended does nothing and succeeds.
	if err := z.Destroy(context.Background(), pod.Key); err != nil {
		t.Fatal(err)
	}
	if err := z.Destroy(context.Background(), sandbox.Key); err != nil {
		t.Fatal(err)
	}
	for _, iso := range z.Isolators() {
		if iso.Name() == "network/cni" {
			if err := iso.Cleanup(context.Background(), sandbox); err != nil {
				t.Errorf("second cleanup: %v", err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(DefaultRuntimeDir, cniDir, mesosContainerID(sandbox.ID))); err == nil {
		t.Errorf("the sandbox's CNI directory is left")
	}
}

// Mesos mounts a container's network files from network/cni's isolate(), before the launch helper
// applies the volumes of ContainerLaunchInfo.mounts: a volume at /etc/resolv.conf or /etc/hosts wins
// over the network's files, with a root filesystem or on the host's.
func TestCNIVolumesMountedOverNetworkFiles(t *testing.T) {
	nw := newCNINet(t, 83, 24, false)
	z := newCNIContainerizer(t, nw, "")
	dir := t.TempDir()
	resolv, hosts := filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hosts")
	if err := os.WriteFile(resolv, []byte("nameserver 10.0.0.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hosts, []byte("10.244.73.99 from-volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := busyboxRootfs(t)
	for _, tc := range []struct{ name, rootfs string }{{"rootfs", rootfs}, {"host-filesystem", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			info := withNetworks(nw.name)
			info.Hostname = proto("vol")
			info.Volumes = []mesos.Volume{hostPathVolume(resolv, "/etc/resolv.conf", mesos.RO), hostPathVolume(hosts, "/etc/hosts", mesos.RO)}
			c := &Container{ID: cniID("vol"), Rootfs: tc.rootfs, Info: info, Command: shell("cat /etc/resolv.conf /etc/hosts /etc/hostname")}
			if out := mustRun(t, z, c); out != "nameserver 10.0.0.10\n10.244.73.99 from-volume\nvol" {
				t.Errorf("container printed %q: want the volumes' resolv.conf and hosts, and the network's hostname", out)
			}
		})
	}
}

// A standalone container (LAUNCH_CONTAINER without parent) and the containers nested in it are not
// network/cni's: Mesos' isolator does not support standalone containers, so their network_infos are
// ignored and they are on the host's network, with no CNI attachment made. The other isolators
// (filesystem/linux, namespaces/pid) still apply.
func TestCNIStandaloneContainersAreOnTheHostNetwork(t *testing.T) {
	nw := newCNINet(t, 84, 24, true)
	z := newCNIContainerizer(t, nw, "")
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	hostPID, _ := os.Readlink("/proc/self/ns/pid")
	before := snapshotHostNet(t, nw)
	sa := &Container{ID: cniID("kubemesos-pod"), Standalone: true, Info: withNetworks(nw.name),
		Command: shell("readlink /proc/self/ns/net /proc/self/ns/pid; sleep 1000")}
	ls, err := launch(t, z, sa)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), sa.Key) }()
	child := &Container{ID: mesos.ContainerID{Value: "app", Parent: &sa.ID}, Parent: sa,
		Command: shell("readlink /proc/self/ns/net; sleep 1000")}
	lc, err := launch(t, z, child)
	if err != nil {
		t.Fatal(err)
	}
	if !child.Standalone {
		t.Errorf("a container nested in a standalone one is not marked standalone")
	}
	for _, c := range []*Container{sa, child} {
		if cs, err := z.Status(context.Background(), c.Key); err != nil || len(cs.NetworkInfos) != 0 {
			t.Errorf("status of %s: %+v, %v: want no network", c.Key, cs.NetworkInfos, err)
		}
	}
	saOut := waitLines(t, ls.stdout, 2)
	if fields := strings.Fields(saOut); len(fields) != 2 || fields[0] != hostNS || fields[1] == hostPID {
		t.Errorf("the standalone container printed %q: want the host's network namespace %s and a pid namespace of its own", saOut, hostNS)
	}
	if out := waitLines(t, lc.stdout, 1); out != hostNS+"\n" {
		t.Errorf("its nested container printed %q, want the host's network namespace %s", out, hostNS)
	}
	if during := snapshotHostNet(t, nw); during != before {
		t.Errorf("network objects with a standalone container naming the network %+v, before %+v", during, before)
	}
}

// waitLines waits until the file has n lines and returns them.
func waitLines(t testing.TB, path string, n int) string {
	t.Helper()
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ = os.ReadFile(path); strings.Count(string(b), "\n") >= n {
			break
		}
	}
	return string(b)
}

// When the root container has a network (an executor whose ContainerInfo names one, as Mesos' default
// executor runs a task group), every container nested under it without network_infos, at any depth,
// enters its parent's network and UTS namespaces: the root's.
func TestCNINestedContainersJoinANetworkedRoot(t *testing.T) {
	nw := newCNINet(t, 85, 24, true)
	z := newCNIContainerizer(t, nw, "")
	info := withNetworks(nw.name)
	info.Hostname = proto("pod-0")
	root := &Container{ID: cniID("root"), Info: info, Command: shell("sleep 1000")}
	if _, err := launch(t, z, root); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), root.Key) }()
	rootNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", root.Pid))
	mid := &Container{ID: mesos.ContainerID{Value: "mid", Parent: &root.ID}, Parent: root, Command: shell("sleep 1000")}
	if _, err := launch(t, z, mid); err != nil {
		t.Fatal(err)
	}
	leaf := &Container{ID: mesos.ContainerID{Value: "leaf", Parent: &mid.ID}, Parent: mid,
		Command: shell("readlink /proc/self/ns/net; hostname")}
	if out := mustRun(t, z, leaf); out != rootNS+"\npod-0\n" {
		t.Errorf("the container nested twice printed %q, want the root's namespace %s and hostname pod-0", out, rootNS)
	}
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b\134c\011`); got != "/a b\\c\t" {
		t.Errorf("= %q", got)
	}
}

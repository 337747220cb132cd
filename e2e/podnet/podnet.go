// Package podnet gives the simulated Mesos agents of local-up and of the e2e tests the host side of
// the pod network (issue 10): per agent an IP of its own on the host's loopback (the Node's
// InternalIP; several simulated agents share this host's network namespace), a pod subnet, a CNI
// configuration list named NetworkName (bridge km<slot> with the gateway and masquerading, host-local
// IPAM, portmap) in its own --network_cni_config_dir, and its own --runtime_dir. The control plane gets
// an address of its own the same way (ControlPlaneIP), so that pods reach the API server.
//
// Slots are allocated host-wide with flock on files under Options.Dir, so concurrent test processes
// and local-up never share an address, subnet or bridge; the kernel drops a dead process' locks, and
// whatever such a process left in its slot (bridge, veths, namespace handles, IPAM files, nftables
// rules, the address) is removed when the slot is taken again.
package podnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The pod network's fixed names and ranges (docs/design.md, issue 10).
const (
	// NetworkName is the CNI network's name: the framework's --pod-network and NetworkInfo.name.
	NetworkName = "kubemesos"
	// ClusterCIDR holds every agent's pod subnet (10.244.<slot>.0/24); kube-proxy's --cluster-cidr.
	ClusterCIDR = "10.244.0.0/16"
	// HostCIDR holds the agents' and control planes' addresses; kube-proxy's --nodeport-addresses.
	HostCIDR = "10.250.0.0/16"
	// PodCIDRAttribute is the agent attribute carrying its pod subnet (the framework's
	// --pod-cidr-attribute default), which becomes the Node's spec.podCIDR.
	PodCIDRAttribute = "pod_cidr"
	// DefaultDir is where slots are locked and their state kept: under /run, which a reboot clears
	// together with the addresses and bridges it describes.
	DefaultDir = "/run/kubemesos/netslots"
	// Link is where the addresses are added: this kernel has no dummy link type.
	Link = "lo"
)

// Slot ranges: agent slot n has 10.250.0.n and 10.244.n.0/24; control plane slot n has 10.250.255.n.
const (
	firstAgentSlot, lastAgentSlot = 1, 254
	firstCPSlot, lastCPSlot       = 1, 254
)

// Options tune Acquire and AcquireControlPlaneIP; the zero value works (as root).
type Options struct {
	// Dir holds the lock files and the slots' state; empty means DefaultDir.
	Dir string
	// PluginsDir is the --network_cni_plugins_dir (internal/cniplugins.Ensure) the agent is given.
	PluginsDir string
	// First and Last bound the slots tried (0: the whole range); tests pin a slot this way.
	First, Last int
}

func (o Options) dir() string {
	if o.Dir == "" {
		return DefaultDir
	}
	return o.Dir
}

// Agent is one simulated agent's share of the pod network. Its fields are read-only.
type Agent struct {
	// Slot is the host-wide slot number.
	Slot int
	// IP is the agent's own address (on Link): its ListenAddress, the Node's InternalIP and the host IP
	// of its port mappings.
	IP net.IP
	// Subnet is the agent's pod subnet; Gateway its first address, the bridge's.
	Subnet  *net.IPNet
	Gateway net.IP
	// Bridge is the Linux bridge the bridge plugin creates (km<slot>).
	Bridge string
	// ConfigDir, PluginsDir and RuntimeDir are the agent's --network_cni_config_dir,
	// --network_cni_plugins_dir and --runtime_dir; IPAMDir is host-local's dataDir.
	ConfigDir, PluginsDir, RuntimeDir, IPAMDir string

	dir  string // the slot's state directory
	lock *os.File
}

// Attribute is the agent attribute naming its pod subnet, in Mesos' syntax.
func (a *Agent) Attribute() string { return PodCIDRAttribute + ":" + a.Subnet.String() }

// HostIP is an address of the control plane's own on Link.
type HostIP struct {
	Slot int
	IP   net.IP
	lock *os.File
}

// Acquire takes the lowest free agent slot, cleans what an earlier holder left in it, adds the
// agent's address to Link and writes its CNI configuration. Release gives it back.
func Acquire(opts Options) (*Agent, error) {
	sweep(opts)
	first, last := bounds(opts, firstAgentSlot, lastAgentSlot)
	for n := first; n <= last; n++ {
		lock, ok, err := tryLock(opts.dir(), "agent", n)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		a := newAgent(opts, n)
		a.lock = lock
		if user := subnetUser(a.Subnet, a.Bridge); user != "" {
			// Someone else (e.g. a containerizer test's network) routes this subnet: not ours to clean.
			unlock(lock)
			continue
		}
		if err := a.clean(); err != nil {
			unlock(lock)
			return nil, fmt.Errorf("cleaning pod network slot %d: %w", n, err)
		}
		if err := a.setUp(); err != nil {
			_ = a.clean()
			unlock(lock)
			return nil, fmt.Errorf("pod network slot %d: %w", n, err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("no free pod network slot in %d..%d under %s", first, last, opts.dir())
}

// sweep cleans the slots (of the whole range) that a dead holder left state in, whichever slot the
// caller gets: a killed process' addresses and bridges must not wait for its slot to be taken again.
func sweep(opts Options) {
	dirs, _ := filepath.Glob(filepath.Join(opts.dir(), "agent-*"))
	for _, d := range dirs {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "agent-"))
		if err != nil || n < firstAgentSlot || n > lastAgentSlot {
			continue // a lock file, or not ours
		}
		lock, ok, err := tryLock(opts.dir(), "agent", n)
		if err != nil || !ok {
			continue // held: alive
		}
		_ = newAgent(opts, n).clean()
		unlock(lock)
	}
}

func newAgent(opts Options, n int) *Agent {
	dir := filepath.Join(opts.dir(), "agent-"+strconv.Itoa(n))
	return &Agent{
		Slot:       n,
		IP:         net.IPv4(10, 250, 0, byte(n)).To4(),
		Subnet:     &net.IPNet{IP: net.IPv4(10, 244, byte(n), 0).To4(), Mask: net.CIDRMask(24, 32)},
		Gateway:    net.IPv4(10, 244, byte(n), 1).To4(),
		Bridge:     "km" + strconv.Itoa(n),
		ConfigDir:  filepath.Join(dir, "cni-conf"),
		PluginsDir: opts.PluginsDir,
		RuntimeDir: filepath.Join(dir, "runtime"),
		IPAMDir:    filepath.Join(dir, "ipam"),
		dir:        dir,
	}
}

func bounds(opts Options, first, last int) (int, int) {
	if opts.First != 0 {
		first = max(first, opts.First)
	}
	if opts.Last != 0 {
		last = min(last, opts.Last)
	}
	return first, last
}

func (a *Agent) setUp() error {
	for _, d := range []string{a.ConfigDir, a.RuntimeDir, a.IPAMDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	conf, err := a.ConfList()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(a.ConfigDir, NetworkName+".conflist"), conf, 0o644); err != nil {
		return err
	}
	return addAddress(a.IP)
}

// ConfList is the agent's CNI configuration list: bridge (gateway, masquerading through nftables,
// hairpin so that a pod reaches itself through a Service) with host-local addresses from its subnet and
// a default route, then portmap (nftables) for NetworkInfo.port_mappings. Mesos' network/cni brings
// the loopback up itself, so no loopback plugin.
func (a *Agent) ConfList() ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       NetworkName,
		"plugins": []map[string]any{
			{
				"type":          "bridge",
				"bridge":        a.Bridge,
				"isGateway":     true,
				"ipMasq":        true,
				"ipMasqBackend": "nftables",
				"hairpinMode":   true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": a.Subnet.String(), "gateway": a.Gateway.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": a.IPAMDir,
				},
			},
			{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
				"backend":      "nftables",
			},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// Release removes everything of the slot (containers' leftovers included) and unlocks it. It is safe
// to call more than once.
func (a *Agent) Release() error {
	if a == nil || a.lock == nil {
		return nil
	}
	err := a.clean()
	unlock(a.lock)
	a.lock = nil
	return err
}

// TakenAgain reports whether, after Release, another holder (a concurrent test process) has taken the
// slot: its address and objects are then that holder's, not left over.
func (a *Agent) TakenAgain() bool {
	lock, ok, err := tryLock(filepath.Dir(a.dir), "agent", a.Slot)
	if err != nil {
		return false
	}
	if ok {
		unlock(lock)
	}
	return !ok
}

// clean removes what the slot's holder (maybe a killed process) left: namespace handles and other
// mounts under its directory, the bridge and the veths on it, nftables rules naming its addresses,
// its address on Link, and its directory (CNI config, runtime dir, IPAM files).
func (a *Agent) clean() error {
	var errs []error
	errs = append(errs, unmountUnder(a.dir))
	for _, v := range bridgePorts(a.Bridge) {
		errs = append(errs, ipQuiet("link", "del", v))
	}
	if linkExists(a.Bridge) {
		errs = append(errs, ipQuiet("link", "del", a.Bridge))
	}
	errs = append(errs, deleteRules(a.ruleMatcher()))
	errs = append(errs, delAddress(a.IP))
	if err := os.RemoveAll(a.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ruleMatcher matches nftables rule texts that name the slot's pod subnet or its address.
func (a *Agent) ruleMatcher() *regexp.Regexp {
	return regexp.MustCompile(`(^|[^0-9.])(` + regexp.QuoteMeta(fmt.Sprintf("10.244.%d.", a.Slot)) + `|` +
		regexp.QuoteMeta(a.IP.String()) + `([^0-9]|$))`)
}

// AcquireControlPlaneIP takes a control-plane address 10.250.255.<slot> and adds it to Link;
// Release removes it.
func AcquireControlPlaneIP(opts Options) (*HostIP, error) {
	first, last := bounds(opts, firstCPSlot, lastCPSlot)
	for n := first; n <= last; n++ {
		lock, ok, err := tryLock(opts.dir(), "controlplane", n)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		h := &HostIP{Slot: n, IP: net.IPv4(10, 250, 255, byte(n)).To4(), lock: lock}
		_ = delAddress(h.IP)
		if err := addAddress(h.IP); err != nil {
			unlock(lock)
			return nil, err
		}
		return h, nil
	}
	return nil, fmt.Errorf("no free control-plane address slot in %d..%d under %s", first, last, opts.dir())
}

// Release removes the address and unlocks the slot; safe to call more than once.
func (h *HostIP) Release() error {
	if h == nil || h.lock == nil {
		return nil
	}
	err := delAddress(h.IP)
	unlock(h.lock)
	h.lock = nil
	return err
}

// tryLock takes <dir>/<kind>-<n>.lock without waiting. flock belongs to the open file: a second
// open in this process conflicts like another process', and the kernel drops it when we die.
func tryLock(dir, kind string, n int) (*os.File, bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.lock", kind, n))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("locking %s: %w", path, err)
	}
	// Who holds it, for people looking at the directory.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, true, nil
}

func unlock(f *os.File) {
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	f.Close()
}

// subnetUser names the interface other than bridge that has an address in subnet, if any.
func subnetUser(subnet *net.IPNet, bridge string) string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, i := range ifs {
		if i.Name == bridge {
			continue
		}
		addrs, _ := i.Addrs()
		for _, addr := range addrs {
			if ipn, ok := addr.(*net.IPNet); ok && subnet.Contains(ipn.IP) {
				return i.Name
			}
		}
	}
	return ""
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// bridgePorts are the interfaces enslaved to bridge (the host ends of the containers' veths).
func bridgePorts(bridge string) []string {
	entries, err := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func addAddress(ip net.IP) error {
	return ipCmd("addr", "replace", ip.String()+"/32", "dev", Link)
}

func delAddress(ip net.IP) error {
	if !hasAddress(ip) {
		return nil
	}
	return ipCmd("addr", "del", ip.String()+"/32", "dev", Link)
}

func hasAddress(ip net.IP) bool {
	i, err := net.InterfaceByName(Link)
	if err != nil {
		return false
	}
	addrs, _ := i.Addrs()
	for _, addr := range addrs {
		if ipn, ok := addr.(*net.IPNet); ok && ipn.IP.Equal(ip) {
			return true
		}
	}
	return false
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipQuiet is ipCmd for objects that may vanish meanwhile (a veth whose namespace just died).
func ipQuiet(args ...string) error {
	if err := ipCmd(args...); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		return err
	}
	return nil
}

// unmountUnder detaches every mount at or below dir, deepest first: network namespace handles of
// network/cni and its shared root mount.
func unmountUnder(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil // no directory: nothing mounted there
	}
	var targets []string
	for _, m := range mountPoints() {
		if m == real || strings.HasPrefix(m, real+"/") {
			targets = append(targets, m)
		}
	}
	sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
	var errs []error
	for _, t := range targets {
		if err := unix.Unmount(t, unix.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// mountPoints are the mount points of this process' mount namespace (a target may repeat when
// mounts are stacked).
func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out
}

// nsfsMounts are the mount points of network namespace handles (nsfs) in this mount namespace.
func nsfsMounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.Contains(line, " - nsfs ") {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func parseIP(s string) net.IP { return net.ParseIP(s) }

// LockKubeProxy waits until this process is the host's only kube-proxy runner, and returns the
// function that ends that. kube-proxy's nftables tables have fixed names (ip/ip6 kube-proxy) and each
// kube-proxy rewrites and prunes them as its own, so two control planes' kube-proxies on one host
// would undo each other's Services. waiting is called once if another process holds the lock.
func LockKubeProxy(ctx context.Context, opts Options, waiting func(holder string)) (func(), error) {
	if err := os.MkdirAll(opts.dir(), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", opts.dir(), err)
	}
	path := filepath.Join(opts.dir(), "kube-proxy-0.lock")
	told := false
	for {
		lock, ok, err := tryLock(opts.dir(), "kube-proxy", 0)
		if err != nil {
			return nil, err
		}
		if ok {
			return func() { unlock(lock) }, nil
		}
		if !told && waiting != nil {
			holder, _ := os.ReadFile(filepath.Join(opts.dir(), "kube-proxy-0.lock"))
			waiting("pid " + strings.TrimSpace(string(holder)) + " (" + path + ")")
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the host's kube-proxy lock: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

//go:build linux

package containerizer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/gogo/protobuf/jsonpb"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kubemesos/kubemesos/mesossim/internal/mesosjson"
)

func init() {
	Register("network/cni", func(f Flags) (Isolator, error) { return newNetworkCNI(f, logrus.StandardLogger()) })
}

// DefaultRuntimeDir is Mesos' --runtime_dir for an agent run as root.
const DefaultRuntimeDir = "/var/run/mesos"

// cniDir is paths::CNI_DIR under --runtime_dir.
const cniDir = "isolators/network/cni"

// networkCNI is Mesos' network/cni (isolators/network/cni/cni.cpp): a container whose ContainerInfo
// names CNI networks in network_infos gets its own network, UTS and mount namespaces; once its helper
// exists the isolator holds the network namespace with a bind mount at
// <runtime_dir>/isolators/network/cni/<containerID>/ns, runs each network's plugins with ADD (eth0,
// eth1, ... in network_infos order) and checkpoints their config and result, writes the container's
// hosts, hostname and resolv.conf, which the helper bind-mounts over /etc (and into its rootfs), and
// sets the hostname (ContainerInfo.hostname, else the container ID) with the loopback up. A nested
// container without network_infos takes the ROOT container's networks: when the root has some, it
// enters its parent's network and UTS namespaces and gets the root's files; when the root is on the
// host network it stays in the host's namespaces, even if its parent has a network of its own (its
// status still reports the parent's, as Mesos' status(parent) does). Cleanup runs DEL with the
// checkpointed config, unmounts the handle and removes the directory. As in Mesos (the isolator does
// not override Isolator::supportsStandalone), it does not apply to standalone containers or the
// containers nested in them: their network_infos are ignored and they are on the host network.
//
// Beyond Mesos, which runs one plugin per network and ships its own port-mapper plugin, a network
// may be a CNI configuration list (.conflist with "plugins", run through libcni): NetworkInfo's
// port_mappings reach plugins that declare the "portMappings" capability (CNI's portmap) as
// runtimeConfig, besides args["org.apache.mesos"]["network_info"] as Mesos passes them.
type networkCNI struct {
	Base
	flags   Flags
	log     logrus.FieldLogger
	rootDir string // "" when neither --network_cni_* flag is set: host network only
	paths   []string

	mu      sync.Mutex
	configs map[string]string // network name -> configuration file
	infos   map[string]*cniInfo
}

// cniInfo is Mesos' NetworkCniIsolatorProcess::Info.
type cniInfo struct {
	networks     []*cniNetwork // in network_infos order
	rootfs       string
	hostname     string
	joinsParents bool
}

// cniNetwork is Mesos' ContainerNetwork.
type cniNetwork struct {
	name   string
	ifName string
	info   mesos.NetworkInfo
	result *current.Result // nil until ADD succeeded
}

// geteuidCNI is a variable for the test of the refusal without root.
var geteuidCNI = os.Geteuid

func newNetworkCNI(f Flags, log logrus.FieldLogger) (*networkCNI, error) {
	n := &networkCNI{flags: f, log: log, configs: map[string]string{}, infos: map[string]*cniInfo{}}
	if f.NetworkCNIPluginsDir == "" && f.NetworkCNIConfigDir == "" {
		// Containers join the host network; one naming a network is refused (no configs).
		return n, nil
	}
	if geteuidCNI() != 0 {
		return nil, errors.New("The 'network/cni' isolator requires root permissions")
	}
	if f.NetworkCNIPluginsDir == "" {
		return nil, errors.New("Missing required '--network_cni_plugins_dir' flag")
	}
	if f.NetworkCNIConfigDir == "" {
		return nil, errors.New("Missing required '--network_cni_config_dir' flag")
	}
	if !pathExists(f.NetworkCNIConfigDir) {
		return nil, fmt.Errorf("The CNI network configuration directory '%s' does not exist", f.NetworkCNIConfigDir)
	}
	n.paths = filepath.SplitList(f.NetworkCNIPluginsDir)
	configs, err := n.loadNetworkConfigs()
	if err != nil {
		return nil, errors.New("Unable to load CNI config: " + err.Error())
	}
	n.configs = configs
	runtimeDir := f.RuntimeDir
	if runtimeDir == "" {
		runtimeDir = DefaultRuntimeDir
	}
	root := filepath.Join(runtimeDir, cniDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("Failed to create CNI network information root directory at '%s': %s", root, errText(err))
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("Failed to determine canonical path of CNI network information root directory '%s': %s", root, errText(err))
	}
	if err := n.makeSharedMount(real); err != nil {
		return nil, err
	}
	n.rootDir = real
	return n, nil
}

func (*networkCNI) Name() string { return "network/cni" }

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	id     int
	root   string // the root of the mount's source within its file system
	target string
	shared string // the peer group of "shared:N", "" if not shared
}

// MountPoint is one mount of the agent's mount namespace: where it is and the root of its source.
type MountPoint struct{ Root, Target string }

// MountPoints lists the agent's mounts in mount order (/proc/self/mountinfo).
func MountPoints() ([]MountPoint, error) {
	table, err := readMountInfo()
	if err != nil {
		return nil, err
	}
	out := make([]MountPoint, len(table))
	for i, e := range table {
		out[i] = MountPoint{Root: e.root, Target: e.target}
	}
	return out, nil
}

func readMountInfo() ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []mountEntry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		id, _ := strconv.Atoi(f[0])
		e := mountEntry{id: id, root: unescapeMount(f[3]), target: unescapeMount(f[4])}
		for _, opt := range f[6:] {
			if opt == "-" {
				break
			}
			if v, ok := strings.CutPrefix(opt, "shared:"); ok {
				e.shared = v
			}
		}
		out = append(out, e)
	}
	return out, nil
}

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

// makeSharedMount makes the root directory a shared mount in its own peer group, as Mesos' create
// does: the namespace handles bind-mounted under it then propagate into (and their unmounts out of)
// the mount namespaces of containers, whose helpers make their copies slaves, so that no container's
// copy keeps another container's network namespace alive after cleanup.
func (n *networkCNI) makeSharedMount(root string) error {
	table, err := readMountInfo()
	if err != nil {
		return errors.New("Failed to get mount table: " + errText(err))
	}
	var rootMount *mountEntry
	for i := len(table) - 1; i >= 0; i-- {
		if strings.HasPrefix(root, table[i].target) {
			rootMount = &table[i]
			break
		}
	}
	if rootMount == nil {
		return errors.New("Cannot find the mount containing CNI network information root directory")
	}
	needed := rootMount.shared == ""
	if !needed {
		for _, e := range table {
			if e.id != rootMount.id && !strings.HasPrefix(e.target, root) && e.shared == rootMount.shared &&
				strings.HasPrefix(root, e.target) {
				needed = true
				break
			}
		}
	}
	if !needed {
		return nil
	}
	if rootMount.target != root {
		n.log.Infof("Bind mounting '%s' and making it a shared mount", root)
		if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("Failed to bind mount '%s' and make it a shared mount: %s", root, errText(err))
		}
		if err := makeShared(root); err != nil {
			return fmt.Errorf("Failed to bind mount '%s' and make it a shared mount: %s", root, errText(err))
		}
		return nil
	}
	n.log.Infof("Making '%s' a shared mount", root)
	if err := makeShared(root); err != nil {
		return fmt.Errorf("Failed to make '%s' a shared mount: %s", root, errText(err))
	}
	return nil
}

func makeShared(p string) error {
	if err := unix.Mount("", p, "", unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	return unix.Mount("", p, "", unix.MS_SHARED, "")
}

// cniConfig is a parsed network configuration: one plugin (Mesos' format) or a CNI list.
type cniConfig struct {
	name string
	list *libcni.NetworkConfigList
	raw  map[string]any
}

// parseNetworkConfig is spec::parseNetworkConfig (JSON, then the required fields of
// cni::spec::NetworkConfig: name, type, ipam.type) for a single plugin, and libcni's parser for a
// list ("plugins").
func parseNetworkConfig(b []byte) (*cniConfig, error) {
	v, err := mesosjson.Parse(b)
	if err != nil {
		return nil, errors.New("JSON parse failed: " + err.Error())
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("JSON parse failed: Expecting a JSON object")
	}
	if _, isList := obj["plugins"]; isList {
		list, err := libcni.NetworkConfFromBytes(b)
		if err != nil {
			return nil, errors.New("CNI configuration list parse failed: " + err.Error())
		}
		return &cniConfig{name: list.Name, list: list, raw: obj}, nil
	}
	var missing []string
	for _, field := range []string{"name", "type"} {
		if _, ok := obj[field].(string); !ok {
			missing = append(missing, field)
		}
	}
	if ipam, ok := obj["ipam"].(map[string]any); ok {
		if _, ok := ipam["type"].(string); !ok {
			missing = append(missing, "ipam.type")
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("Protobuf parse failed: Missing required fields: " + strings.Join(missing, ", "))
	}
	conf, err := libcni.NetworkPluginConfFromBytes(b)
	if err != nil {
		return nil, errors.New("Protobuf parse failed: " + err.Error())
	}
	list, err := libcni.ConfListFromConf(conf)
	if err != nil {
		return nil, errors.New("Protobuf parse failed: " + err.Error())
	}
	return &cniConfig{name: obj["name"].(string), list: list, raw: obj}, nil
}

// pluginTypes are the plugins a configuration runs and the IPAM plugins they use.
func (c *cniConfig) pluginTypes() (plugins, ipams []string) {
	for _, p := range c.list.Plugins {
		plugins = append(plugins, p.Network.Type)
		if p.Network.IPAM.Type != "" {
			ipams = append(ipams, p.Network.IPAM.Type)
		}
	}
	return plugins, ipams
}

// loadNetworkConfigs is NetworkCniIsolatorProcess::loadNetworkConfigs: a file that cannot be read or
// parsed, a second configuration of a network, and one whose plugin is not in
// --network_cni_plugins_dir are logged and skipped. Files are read in name order (Mesos lists the
// directory in readdir order).
func (n *networkCNI) loadNetworkConfigs() (map[string]string, error) {
	dir := n.flags.NetworkCNIConfigDir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("Unable to list the CNI network configuration directory '%s': %s", dir, errText(err))
	}
	configs := map[string]string{}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			n.log.Errorf("Failed to read CNI network configuration file '%s': %s", p, errText(err))
			continue
		}
		conf, err := parseNetworkConfig(b)
		if err != nil {
			n.log.Errorf("Failed to parse CNI network configuration file '%s': %v", p, err)
			continue
		}
		if _, dup := configs[conf.name]; dup {
			n.log.Errorf("Multiple network configuration for a CNI network is not allowed. Skipping configuration file '%s since network %s already exists", p, conf.name)
			continue
		}
		plugins, ipams := conf.pluginTypes()
		skip := false
		for _, t := range plugins {
			if n.which(t) == "" {
				n.log.Errorf("Skipping network '%s' , from configuration file '%s', since we failed to find CNI plugin '%s' used by this network.", conf.name, p, t)
				skip = true
				break
			}
		}
		for _, t := range ipams {
			if !skip && n.which(t) == "" {
				n.log.Errorf("Skipping network '%s' , from configuration file '%s', since we failed to find IPAM plugin '%s' used by this network.", conf.name, p, t)
				skip = true
			}
		}
		if !skip {
			configs[conf.name] = p
		}
	}
	return configs, nil
}

// which is os::which(name, --network_cni_plugins_dir).
func (n *networkCNI) which(name string) string {
	for _, d := range n.paths {
		p := filepath.Join(d, name)
		if isExecutable(p) {
			return p
		}
	}
	return ""
}

// readNetworkConfig is getNetworkConfigJSON(network, path).
func readNetworkConfig(network, path string) (*cniConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("Failed to read CNI network configuration file: '%s': %s", path, errText(err))
	}
	conf, err := parseNetworkConfig(b)
	if err != nil {
		return nil, fmt.Errorf("Failed to parse CNI network configuration file: '%s': %v", path, err)
	}
	if network != conf.name {
		return nil, fmt.Errorf("The current CNI configuration network('%s') does not match the network name: '%s'", conf.name, network)
	}
	return conf, nil
}

// networkConfig is getNetworkConfigJSON(network): the cached file, else the directory loaded again
// (a network added after the agent started is found).
func (n *networkCNI) networkConfig(network string) (*cniConfig, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.configs[network]; ok {
		conf, err := readNetworkConfig(network, p)
		if err == nil {
			return conf, p, nil
		}
		n.log.Warnf("Removing the network '%s' from cache due to failure to validate the configuration: %v", network, err)
		delete(n.configs, network)
	}
	if n.rootDir != "" {
		configs, err := n.loadNetworkConfigs()
		if err != nil {
			return nil, "", fmt.Errorf("Encountered error while loading CNI config during a cache-miss for CNI network '%s': %v", network, err)
		}
		n.configs = configs
		if p, ok := configs[network]; ok {
			conf, err := readNetworkConfig(network, p)
			return conf, p, err
		}
	}
	return nil, "", fmt.Errorf("Unknown CNI network '%s'", network)
}

// mesosContainerID is stringify(ContainerID): the chain of values joined by ".".
func mesosContainerID(id mesos.ContainerID) string {
	if id.Parent != nil {
		return mesosContainerID(*id.Parent) + "." + id.Value
	}
	return id.Value
}

// namespacesOwner is the pid of a process in p's network and UTS namespaces: p's own when it cloned
// them, else that of the ancestor whose namespaces it entered. (A helper that entered namespaces did
// so on one thread and forked the command from it: /proc/<its pid>/ns/net is not the entered one.)
func (n *networkCNI) namespacesOwner(p *Container) int {
	for p.Parent != nil {
		if info := n.info(mesosContainerID(p.ID)); info != nil && len(info.networks) > 0 && !info.joinsParents {
			break
		}
		p = p.Parent
	}
	return p.Pid
}

// SupportsStandalone is false: Mesos' NetworkCniIsolatorProcess keeps Isolator's default.
func (n *networkCNI) SupportsStandalone() bool { return false }

func rootContainer(c *Container) *Container {
	for c.Parent != nil {
		c = c.Parent
	}
	return c
}

func (n *networkCNI) containerDir(id string) string { return filepath.Join(n.rootDir, id) }

func (n *networkCNI) info(id string) *cniInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.infos[id]
}

// networkFiles are the files Mesos' network-cni-setup bind-mounts, in its order.
var networkFiles = []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}

func (n *networkCNI) Prepare(_ context.Context, c *Container, li *LaunchInfo) error {
	id := mesosContainerID(c.ID)
	n.mu.Lock()
	_, prepared := n.infos[id]
	n.mu.Unlock()
	if prepared {
		return errors.New("Container has already been prepared")
	}
	nested := c.Parent != nil
	joinsParents := c.Debug || c.Info == nil || len(c.Info.NetworkInfos) == 0
	var networks []*cniNetwork
	hostname := ""
	if nested && joinsParents {
		if root := n.info(mesosContainerID(rootContainer(c).ID)); root != nil {
			networks = root.networks
		}
	} else if c.Info != nil {
		if c.Info.GetType() != mesos.ContainerInfo_MESOS {
			return errors.New("Can only prepare CNI networks for a MESOS container")
		}
		hostname = c.Info.GetHostname()
		seen := map[string]bool{}
		for _, ni := range c.Info.NetworkInfos {
			if ni.Name == nil {
				continue
			}
			name := ni.GetName()
			if _, _, err := n.networkConfig(name); err != nil {
				return err
			}
			if seen[name] {
				return fmt.Errorf("Attempted to join CNI network '%s' multiple times", name)
			}
			seen[name] = true
			networks = append(networks, &cniNetwork{name: name, ifName: "eth" + strconv.Itoa(len(networks)), info: ni})
		}
	}

	if len(networks) == 0 {
		// The host network: a container with its own root filesystem gets the host's network files
		// read-only.
		if c.Rootfs != "" {
			n.mu.Lock()
			n.infos[id] = &cniInfo{rootfs: c.Rootfs, joinsParents: joinsParents}
			n.mu.Unlock()
			const ro = unix.MS_BIND | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_NOSUID | unix.MS_RDONLY
			for _, f := range networkFiles {
				if f == "/etc/resolv.conf" || pathExists(f) {
					li.IsolateMounts = append(li.IsolateMounts, n.rootfsMount(c.Rootfs, f, f, ro)...)
				}
			}
		}
		return nil
	}

	if !c.Debug {
		n.mu.Lock()
		n.infos[id] = &cniInfo{networks: networks, rootfs: c.Rootfs, hostname: hostname, joinsParents: joinsParents}
		n.mu.Unlock()
	}
	// MESOS-3553: the container binds to the address its network gave it.
	li.Environment = map[string]string{"LIBPROCESS_IP": "0.0.0.0"}
	if nested && joinsParents {
		// The root container has networks: the launcher enters the parent's network and UTS
		// namespaces (ns::clone(parentPid, ...)).
		if pid := n.namespacesOwner(c.Parent); pid > 0 {
			li.EnterNamespaces = map[string]int{NamespaceNet: pid, NamespaceUTS: pid}
		}
	}
	if c.Debug {
		return nil // no mount namespace of its own: it enters its parent's
	}
	files := n.containerDir(id)
	if nested && joinsParents {
		// The root container's network files in a mount namespace of its own.
		files = n.containerDir(mesosContainerID(rootContainer(c).ID))
		li.CloneNamespaces = append(li.CloneNamespaces, NamespaceMount)
	} else {
		li.CloneNamespaces = append(li.CloneNamespaces, NamespaceMount, NamespaceNet, NamespaceUTS)
		if hostname == "" {
			hostname = c.ID.Value
		}
		li.Hostname = hostname
	}
	const flags = unix.MS_BIND | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_NOSUID
	for _, f := range networkFiles {
		src := filepath.Join(files, filepath.Base(f))
		// No process in the container's network namespace may see the host's files.
		li.IsolateMounts = append(li.IsolateMounts, Mount{Source: src, Target: f, Flags: flags})
		li.IsolateMounts = append(li.IsolateMounts, n.rootfsMount(c.Rootfs, src, f, flags)...)
	}
	return nil
}

// rootfsMount bind-mounts src at file inside the rootfs, if any. Mesos replaces a symbolic link there
// by a file first (it would resolve against the host's root while the helper mounts).
func (n *networkCNI) rootfsMount(rootfs, src, file string, flags uintptr) []Mount {
	if rootfs == "" {
		return nil
	}
	target := filepath.Join(rootfs, file)
	if st, err := os.Lstat(target); err == nil && st.Mode()&os.ModeSymlink != 0 {
		_ = os.Remove(target)
	}
	return []Mount{{Source: src, Target: target, Flags: flags}}
}

func (n *networkCNI) Isolate(ctx context.Context, c *Container) error {
	id := mesosContainerID(c.ID)
	info := n.info(id)
	if info == nil || len(info.networks) == 0 || (c.Parent != nil && info.joinsParents) {
		return nil // the launch info's mounts are the whole setup
	}
	dir := n.containerDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("Failed to create the container directory at '%s': %s", dir, errText(err))
	}
	source := fmt.Sprintf("/proc/%d/ns/net", c.Pid)
	target := filepath.Join(dir, "ns")
	if f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
		return errors.New("Failed to create the bind mount point: " + errText(err))
	} else {
		f.Close()
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("Failed to mount the network namespace handle from '%s' to '%s': %s", source, target, errText(err))
	}
	n.log.Infof("Bind mounted '%s' to '%s' for container %s", source, target, id)

	var messages []string
	for _, nw := range info.networks {
		if err := n.attach(ctx, id, nw, target); err != nil {
			messages = append(messages, err.Error())
		}
	}
	if len(messages) > 0 {
		return errors.New(strings.Join(messages, "\n"))
	}
	return n.writeNetworkFiles(id, c, info)
}

// attach is NetworkCniIsolatorProcess::attach and _attach.
func (n *networkCNI) attach(ctx context.Context, id string, nw *cniNetwork, netns string) error {
	conf, path, err := n.networkConfig(nw.name)
	if err != nil {
		return fmt.Errorf("Could not get valid CNI configuration for network '%s': %v", nw.name, err)
	}
	ifDir := filepath.Join(n.containerDir(id), nw.name, nw.ifName)
	if err := os.MkdirAll(ifDir, 0o755); err != nil {
		return fmt.Errorf("Failed to create interface directory for the interface '%s' of the network '%s': %s", nw.ifName, nw.name, errText(err))
	}
	raw, err := injectMesosArgs(conf, path, nw.info)
	if err != nil {
		return err
	}
	plugins, _ := conf.pluginTypes()
	for _, t := range plugins {
		if n.which(t) == "" {
			return fmt.Errorf("Unable to find the plugin %s required to attach %s to network '%s'", t, id, nw.name)
		}
	}
	// The configuration as run is checkpointed; DEL uses it.
	confPath := filepath.Join(n.containerDir(id), nw.name, "network.conf")
	if err := os.WriteFile(confPath, raw, 0o644); err != nil {
		return fmt.Errorf("Failed to checkpoint the CNI network configuration '%s': %s", raw, errText(err))
	}
	list, err := parseNetworkConfig(raw)
	if err != nil {
		return fmt.Errorf("Failed to parse CNI network configuration file: '%s': %v", confPath, err)
	}
	n.log.Infof("Invoking CNI plugin '%s' to attach container %s to network '%s'", n.which(plugins[0]), id, nw.name)
	cni := libcni.NewCNIConfigWithCacheDir(n.paths, ifDir, &pluginExec{})
	res, err := cni.AddNetworkList(ctx, list.list, n.runtimeConf(id, nw, netns, ifDir))
	if err != nil {
		return pluginFailure(err, "attach", id, "to", nw.name, n.which(plugins[0]))
	}
	result, err := current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("Failed to parse the output of the CNI plugin '%s': %v", n.which(plugins[len(plugins)-1]), err)
	}
	out, _ := json.Marshal(result)
	for _, ip := range result.IPs {
		family := "IPv4"
		if ip.Address.IP.To4() == nil {
			family = "IPv6"
		}
		n.log.Infof("Got assigned %s address '%s' from CNI network '%s' for container %s", family, ip.Address.String(), nw.name, id)
	}
	if err := os.WriteFile(filepath.Join(ifDir, "network.info"), out, 0o644); err != nil {
		return fmt.Errorf("Failed to checkpoint the output of CNI plugin '%s': %s", out, errText(err))
	}
	n.mu.Lock()
	nw.result = result
	n.mu.Unlock()
	return nil
}

// injectMesosArgs adds args["org.apache.mesos"]["network_info"] (the NetworkInfo as JSON) to the
// configuration, of every plugin of a list, refusing a configuration that sets it.
func injectMesosArgs(conf *cniConfig, path string, ni mesos.NetworkInfo) ([]byte, error) {
	m := jsonpb.Marshaler{OrigName: true}
	s, err := m.MarshalToString(&ni)
	if err != nil {
		return nil, err
	}
	var niJSON any
	_ = json.Unmarshal([]byte(s), &niJSON)
	inject := func(obj map[string]any) error {
		args := map[string]any{}
		if a, ok := obj["args"]; ok {
			am, ok := a.(map[string]any)
			if !ok {
				return fmt.Errorf("Invalid 'args' found in CNI network configuration file '%s': Found JSON value of wrong type", path)
			}
			args = am
		}
		if _, ok := args["org.apache.mesos"]; ok {
			return errors.New("'org.apache.mesos' in 'args' should not be set in CNI network configuration file. It is reserved by Mesos")
		}
		args["org.apache.mesos"] = map[string]any{"network_info": niJSON}
		obj["args"] = args
		return nil
	}
	if plugins, ok := conf.raw["plugins"].([]any); ok {
		for _, p := range plugins {
			if obj, ok := p.(map[string]any); ok {
				if err := inject(obj); err != nil {
					return nil, err
				}
			}
		}
	} else if err := inject(conf.raw); err != nil {
		return nil, err
	}
	return json.Marshal(conf.raw)
}

// portMapping is CNI's portMappings capability entry.
type portMapping struct {
	HostPort      uint32 `json:"hostPort"`
	ContainerPort uint32 `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

func (n *networkCNI) runtimeConf(id string, nw *cniNetwork, netns, cacheDir string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: nw.ifName, CacheDir: cacheDir}
	if len(nw.info.PortMappings) > 0 {
		var maps []portMapping
		for _, pm := range nw.info.PortMappings {
			proto := strings.ToLower(pm.GetProtocol())
			if proto == "" {
				proto = "tcp"
			}
			maps = append(maps, portMapping{HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: proto,
				HostIP: n.flags.PortMappingHostIP})
		}
		rt.CapabilityArgs = map[string]any{"portMappings": maps}
	}
	return rt
}

// pluginError is a plugin that exited non-zero, with what it printed.
type pluginError struct {
	plugin         string
	stdout, stderr []byte
}

func (e *pluginError) Error() string {
	return fmt.Sprintf("plugin '%s' failed: stdout='%s', stderr='%s'", e.plugin, e.stdout, e.stderr)
}

// pluginFailure is Mesos' text for a failed ADD or DEL ("The CNI plugin '<path>' failed to attach
// container <id> to CNI network '<name>': stdout='...', stderr='...'"), naming the plugin of the list
// that failed.
func pluginFailure(err error, verb, id, prep, network, first string) error {
	var pe *pluginError
	if errors.As(err, &pe) {
		return fmt.Errorf("The CNI plugin '%s' failed to %s container %s %s CNI network '%s': stdout='%s', stderr='%s'",
			pe.plugin, verb, id, prep, network, pe.stdout, pe.stderr)
	}
	return fmt.Errorf("Failed to execute the CNI plugin '%s': %v", first, err)
}

// pluginExec runs plugins as Mesos does: only the CNI_* variables and PATH in their environment (PATH
// lets them find nft or iptables), the configuration on stdin, and stdout/stderr kept for the error.
type pluginExec struct{}

func (*pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	env := []string{"PATH=" + HostDefaultPath}
	if p, ok := os.LookupEnv("PATH"); ok {
		env[0] = "PATH=" + p
	}
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CNI_") {
			env = append(env, kv)
		}
	}
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("Failed to execute the CNI plugin '%s': %v", pluginPath, err)
		}
		return nil, &pluginError{plugin: pluginPath, stdout: bytes.TrimSpace(stdout.Bytes()), stderr: bytes.TrimSpace(stderr.Bytes())}
	}
	return stdout.Bytes(), nil
}

func (*pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	for _, d := range paths {
		p := filepath.Join(d, plugin)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("failed to find plugin %q in path %s", plugin, paths)
}

func (*pluginExec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}

// writeNetworkFiles is _isolate's hosts, hostname and resolv.conf and the setup helper's loopback.
func (n *networkCNI) writeNetworkFiles(id string, c *Container, info *cniInfo) error {
	hostname := info.hostname
	if hostname == "" {
		hostname = c.ID.Value
	}
	dir := n.containerDir(id)
	hostnamePath := filepath.Join(dir, "hostname")
	if err := os.WriteFile(hostnamePath, []byte(hostname), 0o644); err != nil {
		return fmt.Errorf("Failed to write the hostname to '%s': %s", hostnamePath, errText(err))
	}
	hosts := "127.0.0.1 localhost\n"
	for _, nw := range info.networks {
		if ip := firstIP(nw.result, true); ip != "" {
			hosts += ip + " " + hostname + "\n"
			break
		}
	}
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte(hosts), 0o644); err != nil {
		return fmt.Errorf("Failed to write the 'hosts' file at '%s': %s", hostsPath, errText(err))
	}
	var dns cnitypes.DNS
	for _, nw := range info.networks {
		if nw.result != nil && len(nw.result.DNS.Nameservers) > 0 {
			d := nw.result.DNS
			dns.Nameservers = append(dns.Nameservers, d.Nameservers...)
			dns.Search = append(dns.Search, d.Search...)
			dns.Options = append(dns.Options, d.Options...)
			if d.Domain != "" {
				dns.Domain = d.Domain
			}
		}
	}
	resolvPath := filepath.Join(dir, "resolv.conf")
	if len(dns.Nameservers) == 0 {
		if !pathExists("/etc/resolv.conf") {
			return errors.New("Cannot find host's /etc/resolv.conf")
		}
		n.log.Infof("Unable to find DNS nameservers for container %s, using host '/etc/resolv.conf'", id)
		// The helper's bind mount resolves the link: the container sees the host's file itself.
		if err := os.Symlink("/etc/resolv.conf", resolvPath); err != nil {
			return fmt.Errorf("Failed to write 'resolv.conf' file at '%s': %s", resolvPath, errText(err))
		}
	} else if err := os.WriteFile(resolvPath, []byte(formatResolverConfig(dns)), 0o644); err != nil {
		return fmt.Errorf("Failed to write 'resolv.conf' file at '%s': %s", resolvPath, errText(err))
	}
	if err := loopbackUp(c.Pid); err != nil {
		return fmt.Errorf("Failed to setup hostname and network files: Failed to bring up the loopback interface in the new network namespace of pid %d: %v", c.Pid, err)
	}
	return nil
}

// formatResolverConfig is spec::formatResolverConfig.
func formatResolverConfig(dns cnitypes.DNS) string {
	var b strings.Builder
	if dns.Domain != "" {
		fmt.Fprintf(&b, "domain %s\n", dns.Domain)
	}
	if len(dns.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Search, " "))
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.Options, " "))
	}
	for _, ns := range dns.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	return b.String()
}

// firstIP is the result's first IPv4 (or IPv6) address, without its prefix length.
func firstIP(r *current.Result, v4 bool) string {
	if r == nil {
		return ""
	}
	for _, ip := range r.IPs {
		if (ip.Address.IP.To4() != nil) == v4 {
			return ip.Address.IP.String()
		}
	}
	return ""
}

// loopbackUp sets lo up in the network namespace of pid (Mesos runs `ip link set dev lo up` there),
// from a locked thread that joins the namespace and returns to its own afterwards. Returning matters:
// a goroutine that exits locked ends its thread, except on the main thread, which Go keeps (wedged), so
// the process' main thread would stay in the container's namespace and keep it alive after the
// container is gone. Only a thread that could not return is thrown away.
func loopbackUp(pid int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() {
			if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			} // else: stays locked, so the thread ends with this goroutine
		}()
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			errc <- err
			return
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			errc <- err
			return
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		errc <- unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	}()
	return <-errc
}

func (n *networkCNI) Status(ctx context.Context, c *Container, cs *mesos.ContainerStatus) error {
	info := n.info(mesosContainerID(c.ID))
	if info == nil || (c.Parent != nil && info.joinsParents) {
		if c.Parent != nil {
			return n.Status(ctx, c.Parent, cs)
		}
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nw := range info.networks {
		if nw.result == nil {
			continue
		}
		ni := nw.info
		ni.IPAddresses = nil
		if ip := firstIP(nw.result, true); ip != "" {
			ni.IPAddresses = append(ni.IPAddresses, mesos.NetworkInfo_IPAddress{Protocol: mesos.IPv4.Enum(), IPAddress: &ip})
		}
		for _, ip := range nw.result.IPs {
			if ip.Address.IP.To4() == nil {
				// Mesos reports the IPv6 address with its prefix length (its TODO).
				s := ip.Address.String()
				ni.IPAddresses = append(ni.IPAddresses, mesos.NetworkInfo_IPAddress{Protocol: mesos.IPv6.Enum(), IPAddress: &s})
				break
			}
		}
		cs.NetworkInfos = append(cs.NetworkInfos, ni)
	}
	return nil
}

// Usage is _usage (--network_cni_metrics, on by default): the counters of the container's own
// interfaces, from /proc/<pid>/net/dev (its network namespace).
func (n *networkCNI) Usage(_ context.Context, c *Container, st *mesos.ResourceStatistics) error {
	info := n.info(mesosContainerID(c.ID))
	if info == nil || len(info.networks) == 0 || (c.Parent != nil && info.joinsParents) || c.Pid <= 0 {
		return nil
	}
	ifNames := map[string]bool{}
	for _, nw := range info.networks {
		ifNames[nw.ifName] = true
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", c.Pid))
	if err != nil {
		return nil // the container is gone
	}
	defer f.Close()
	var rxB, rxP, rxE, rxD, txB, txP, txE, txD uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || !ifNames[strings.TrimSpace(name)] {
			continue
		}
		v := strings.Fields(rest)
		if len(v) < 12 {
			continue
		}
		num := func(i int) uint64 { x, _ := strconv.ParseUint(v[i], 10, 64); return x }
		rxB, rxP, rxE, rxD = rxB+num(0), rxP+num(1), rxE+num(2), rxD+num(3)
		txB, txP, txE, txD = txB+num(8), txP+num(9), txE+num(10), txD+num(11)
	}
	st.NetRxBytes, st.NetRxPackets, st.NetRxErrors, st.NetRxDropped = &rxB, &rxP, &rxE, &rxD
	st.NetTxBytes, st.NetTxPackets, st.NetTxErrors, st.NetTxDropped = &txB, &txP, &txE, &txD
	return nil
}

// isNetNSHandle tells a bind-mounted namespace handle from the empty mount point: its device is
// nsfs', that of /proc/self/ns/net.
func isNetNSHandle(p string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat(p, &a); err != nil {
		return false, fmt.Errorf("Failed to get the device number of '%s': %s", p, errText(err))
	}
	if err := unix.Stat("/proc/self/ns/net", &b); err != nil {
		return false, fmt.Errorf("Failed to get the device number of '/proc/self/ns/net': %s", errText(err))
	}
	return a.Dev == b.Dev, nil
}

func (n *networkCNI) Cleanup(ctx context.Context, c *Container) error {
	id := mesosContainerID(c.ID)
	info := n.info(id)
	if info == nil {
		return nil
	}
	if (c.Parent != nil && info.joinsParents) || len(info.networks) == 0 {
		n.mu.Lock()
		delete(n.infos, id)
		n.mu.Unlock()
		return nil
	}
	var messages []string
	for _, nw := range info.networks {
		if err := n.detach(ctx, id, nw); err != nil {
			messages = append(messages, err.Error())
		}
	}
	if len(messages) > 0 {
		return errors.New(strings.Join(messages, "\n"))
	}
	dir := n.containerDir(id)
	target := filepath.Join(dir, "ns")
	if pathExists(target) {
		handle, err := isNetNSHandle(target)
		if err != nil {
			return err
		}
		if handle {
			if err := unix.Unmount(target, 0); err != nil {
				return fmt.Errorf("Failed to unmount the network namespace handle '%s': %s", target, errText(err))
			}
			n.log.Infof("Unmounted the network namespace handle '%s' for container %s", target, id)
		}
	}
	if pathExists(dir) {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("Failed to remove the container directory '%s': %s", dir, errText(err))
		}
		n.log.Infof("Removed the container directory '%s'", dir)
	}
	n.mu.Lock()
	delete(n.infos, id)
	n.mu.Unlock()
	return nil
}

// detach is NetworkCniIsolatorProcess::detach and _detach: DEL with the checkpointed configuration
// (none: ADD never ran), CNI_NETNS only while the handle is mounted.
func (n *networkCNI) detach(ctx context.Context, id string, nw *cniNetwork) error {
	confPath := filepath.Join(n.containerDir(id), nw.name, "network.conf")
	if !pathExists(confPath) {
		n.log.Warnf("Skip detach since network config file for container %s and network name '%s' does not exist", id, nw.name)
		return nil
	}
	netns := filepath.Join(n.containerDir(id), "ns")
	handle, err := isNetNSHandle(netns)
	if err != nil {
		return err
	}
	if !handle {
		netns = ""
	}
	conf, err := readNetworkConfig(nw.name, confPath)
	if err != nil {
		return fmt.Errorf("Failed to parse CNI network configuration file: '%s': %v", confPath, err)
	}
	plugins, _ := conf.pluginTypes()
	for _, t := range plugins {
		if n.which(t) == "" {
			return fmt.Errorf("Unable to find the plugin %s required to detach %s to network '%s'", t, id, nw.name)
		}
	}
	n.log.Infof("Invoking CNI plugin '%s' to detach container %s from network '%s'", n.which(plugins[0]), id, nw.name)
	ifDir := filepath.Join(n.containerDir(id), nw.name, nw.ifName)
	cni := libcni.NewCNIConfigWithCacheDir(n.paths, ifDir, &pluginExec{})
	if err := cni.DelNetworkList(ctx, conf.list, n.runtimeConf(id, nw, netns, ifDir)); err != nil {
		return pluginFailure(err, "detach", id, "from", nw.name, n.which(plugins[0]))
	}
	if err := os.RemoveAll(ifDir); err != nil {
		return fmt.Errorf("Failed to remove interface directory '%s': %s", ifDir, errText(err))
	}
	return nil
}

// NetworkNames lists the networks the isolator can attach containers to (tests, GET_FLAGS-like
// introspection), sorted.
func (n *networkCNI) NetworkNames() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.configs))
	for name := range n.configs {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

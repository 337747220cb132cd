package containerizer

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Flags are the agent flags the containerizer and its isolators read (Mesos' slave::Flags).
type Flags struct {
	// Isolation is --isolation, comma separated.
	Isolation string
	// ImageProviders is --image_providers.
	ImageProviders string
	// WorkDir is the agent's --work_dir; the containerizer keeps per-container devices under
	// <WorkDir>/containers-runtime (Mesos' --runtime_dir).
	WorkDir string
	// SandboxDirectory is --sandbox_directory, where a container with its own root filesystem sees its
	// sandbox (default /mnt/mesos/sandbox).
	SandboxDirectory string
	// CgroupsHierarchy and CgroupsRoot are --cgroups_hierarchy (default /sys/fs/cgroup) and
	// --cgroups_root (default mesos).
	CgroupsHierarchy string
	CgroupsRoot      string
	// CgroupsEnableCFS and CgroupsLimitSwap are --cgroups_enable_cfs and --cgroups_limit_swap
	// (cgroups/cpu, cgroups/mem).
	CgroupsEnableCFS bool
	CgroupsLimitSwap bool
	// EffectiveCapabilities and BoundingCapabilities are --effective_capabilities and
	// --bounding_capabilities (nil: not set), Mesos' CapabilityInfo names such as "NET_ADMIN".
	EffectiveCapabilities []string
	BoundingCapabilities  []string
	// DisallowSharingAgentPidNamespace is --disallow_sharing_agent_pid_namespace.
	DisallowSharingAgentPidNamespace bool
	// NetworkCNIConfigDir, NetworkCNIPluginsDir and RuntimeDir are --network_cni_config_dir,
	// --network_cni_plugins_dir and --runtime_dir (network/cni; RuntimeDir "" is /var/run/mesos).
	NetworkCNIConfigDir, NetworkCNIPluginsDir, RuntimeDir string
	// PortMappingHostIP is not a Mesos flag: simulated agents share the host's network namespace, so
	// each binds its containers' port_mappings to its own IP (portmap's portMappings[].hostIP); ""
	// maps them on every address, as Mesos does.
	PortMappingHostIP string
}

// Defaults of Mesos' agent flags.
const (
	DefaultSandboxDirectory = "/mnt/mesos/sandbox"
	DefaultCgroupsHierarchy = "/sys/fs/cgroup"
	DefaultCgroupsRoot      = "mesos"
)

func (f *Flags) setDefaults() {
	if f.SandboxDirectory == "" {
		f.SandboxDirectory = DefaultSandboxDirectory
	}
	if f.CgroupsHierarchy == "" {
		f.CgroupsHierarchy = DefaultCgroupsHierarchy
	}
	if f.CgroupsRoot == "" {
		f.CgroupsRoot = DefaultCgroupsRoot
	}
}

// Factory creates an isolator from the agent's flags (Mesos' isolator creators).
type Factory func(Flags) (Isolator, error)

var (
	factoriesMu sync.Mutex
	factories   = map[string]Factory{}
)

// Register makes an isolator available under its --isolation name. Isolator files call it from init.
func Register(name string, f Factory) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	factories[name] = f
}

// passive are Mesos isolators the simulated agent accepts in --isolation without anything to do in
// isolating mode: posix/* account with ps-like sampling in Mesos, environment_secret resolves secrets the
// simulator does not have, network/ports only checks ports.
var passive = map[string]bool{
	"posix/cpu": true, "posix/mem": true, "posix/disk": true, "disk/du": true, "filesystem/posix": true,
	"environment_secret": true, "network/ports": true, "volume/image": true,
}

// Isolations is the --isolation list as MesosContainerizer::create completes it: filesystem/linux brings
// volume/host_path and volume/sandbox_path (Mesos' backwards compatibility). Order is the flag's.
func Isolations(isolation string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, n := range strings.FieldsFunc(isolation, func(r rune) bool { return r == ',' }) {
		add(strings.TrimSpace(n))
		if n == "filesystem/linux" {
			add("volume/host_path")
			add("volume/sandbox_path")
		}
	}
	return out
}

// NeedsIsolation reports whether --isolation names an isolator that runs containers through the launch
// helper (anything beyond the isolators that are passive here). Such isolators need root.
func NeedsIsolation(isolation string) bool {
	for _, n := range Isolations(isolation) {
		if !passive[n] {
			return true
		}
	}
	return false
}

// CreateIsolators creates the isolators named by flags.Isolation, failing as Mesos does for a name it
// does not know ("Unknown or unsupported isolator 'x'") or an isolator that cannot be created.
func CreateIsolators(flags Flags) ([]Isolator, error) {
	flags.setDefaults()
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	// Every name is known before any isolator is created (filesystem/linux's mounts the work_dir).
	for _, name := range Isolations(flags.Isolation) {
		if _, ok := factories[name]; !ok && !passive[name] {
			return nil, fmt.Errorf("Unknown or unsupported isolator '%s'", name)
		}
	}
	var out []Isolator
	for _, name := range Isolations(flags.Isolation) {
		if passive[name] {
			continue
		}
		iso, err := factories[name](flags)
		if err != nil {
			closeIsolators(out)
			return nil, fmt.Errorf("Failed to create isolator '%s': %w", name, err)
		}
		out = append(out, iso)
	}
	return out, nil
}

// RegisteredIsolators lists the registered names, sorted (for messages and tests).
func RegisteredIsolators() []string {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// closeIsolators releases what isolators hold beyond their containers (io.Closer ones: filesystem/
// linux's shared work_dir), the first error returned.
func closeIsolators(isos []Isolator) error {
	var first error
	for _, iso := range isos {
		if c, ok := iso.(io.Closer); ok {
			if err := c.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Package simhost configures the simulated Mesos agents that local-up and the e2e tests run as the
// container hosts issue 11 asks for: Mesos' Linux isolators (own mount and pid namespaces, the image's
// root filesystem from the real image store, volumes at their container paths, cgroups cpu and memory
// limits), as a mesos-agent with the Mesos containerizer would run pods. Process mode (containers as
// host processes) stays available with --isolation=posix/cpu,posix/mem, and is what an agent falls back
// to without root.
//
// In isolating mode the agents also get the pod network (issue 10, e2e/podnet): Mesos' network/cni
// isolator, each agent with its own address (ListenAddress and the Node's InternalIP), pod subnet
// (attribute pod_cidr), CNI configuration named podnet.NetworkName, --runtime_dir and the CNI plugins;
// the framework then runs with --pod-network kubemesos (Network.FrameworkArgs). Process mode has no pod
// network (--pod-network host).
//
// A binary hosting such agents must call containerizer.MaybeRunHelper first thing in main or TestMain:
// the agents re-execute it as `mesos-containerizer launch`.
package simhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// Isolating is the agents' --isolation in isolating mode: what a Mesos agent running Kubernetes pods
// needs (images, volumes, hostPath volumes, pid namespaces, cpu and memory limits, capabilities).
const Isolating = "filesystem/linux,docker/runtime,namespaces/pid,cgroups/cpu,cgroups/mem,volume/sandbox_path,volume/host_path,linux/capabilities"

// Process is the --isolation that selects process mode (Mesos' default isolation).
const Process = "posix/cpu,posix/mem"

// imageIsolation is what the docker image provider needs in --isolation (Mesos refuses images without
// it); in process mode the agents record it and run containers as host processes.
const imageIsolation = "filesystem/linux,docker/runtime"

// Mode is how the agents run containers.
type Mode struct {
	// Isolation is the requested --isolation.
	Isolation string
	// Isolating is true when the agents isolate (Linux isolators named, root, the helper hosted).
	Isolating bool
	// Why says why the agents run process mode (empty when isolating).
	Why string
}

// Resolve decides the mode for an --isolation value on this machine.
func Resolve(isolation string) Mode {
	m := Mode{Isolation: isolation}
	switch {
	case !containerizer.NeedsIsolation(isolation):
		m.Why = "process mode requested (--isolation=" + isolation + ")"
	case os.Geteuid() != 0:
		m.Why = "not running as root: isolators need root (namespaces, mounts, cgroups)"
	case !containerizer.HelperHosted():
		m.Why = "this binary does not host the launch helper (containerizer.MaybeRunHelper)"
	default:
		m.Isolating = true
	}
	return m
}

// ExecutorRegistrationTimeout is the agents' --executor_registration_timeout.
const ExecutorRegistrationTimeout = 5 * time.Minute

// Configure sets cfg's agents up for mode with registry (a directory of image archives) as their
// --docker_registry: every agent its own --docker_store_dir under cfg.WorkDir, --cgroups_enable_cfs for
// cpu limits, ExecutorRegistrationTimeout, busybox for the --image-command fallback; in process mode
// the image isolators are only recorded. In isolating mode every agent also gets the pod network (see
// Network), whose slots the caller releases with Network.Close after closing the cluster; in process
// mode the Network is nil (its methods work on nil). It logs which mode runs and, in process mode,
// why. cfg.WorkDir must be set.
func Configure(cfg *mesossim.ClusterConfig, mode Mode, registry string, log logrus.FieldLogger) (*Network, error) {
	cfg.ImageProviders = "docker"
	cfg.DockerRegistry = registry
	tweak := cfg.AgentTweak
	workDir := cfg.WorkDir
	var network *Network
	if mode.Isolating {
		cfg.Isolation = mode.Isolation
		var err error
		if network, err = newNetwork(log); err != nil {
			return nil, err
		}
		cfg.Isolation += ",network/cni"
		if log != nil {
			log.WithField("isolation", mode.Isolation).Info("the simulated agents isolate containers (isolating mode: namespaces, image rootfs, cgroups)")
		}
	} else {
		cfg.Isolation = imageIsolation
		if log != nil {
			log.WithField("isolation", mode.Isolation).Warn("the simulated agents run containers as host processes (process mode): " + mode.Why)
		}
	}
	cfg.AgentTweak = func(i int, c *agent.Config) {
		c.ProcessMode = !mode.Isolating
		if mode.Isolating && len(cfg.ImageCommands) > 0 {
			// The --image-command stand-in for an image not in the store runs in busybox's rootfs.
			c.ImageCommandImage = "busybox"
		}
		c.CgroupsEnableCFS = true
		// Mesos' 1 minute counts the executor's container launch too (image, CNI attach), and the
		// pods' sandboxes start by the dozen on a host that may be busy; operators whose executors run
		// in image containers raise it likewise, and the kubelet gives a sandbox 4 minutes
		// (RunPodSandbox: twice --runtime-request-timeout).
		c.ExecutorRegistrationTimeout = ExecutorRegistrationTimeout
		c.DockerStoreDir = filepath.Join(workDir, "store", "agent-"+strconv.Itoa(i))
		network.configure(i, c)
		if tweak != nil {
			tweak(i, c)
		}
	}
	return network, nil
}

// String is a one-line description of the mode for usage texts.
func (m Mode) String() string {
	if m.Isolating {
		return "isolating (" + m.Isolation + ")"
	}
	return fmt.Sprintf("process mode (%s)", m.Why)
}

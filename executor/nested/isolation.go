package nested

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubemesos/kubemesos/executor/podworker"
)

// What a pod's container asks the agent to isolate, field by field as Mesos 1.12 applies them
// (src/slave/http.cpp _launchContainer, containerizer.cpp launch, cgroups/{cpu,mem} subsystems,
// linux/capabilities, launch.cpp):
//
// Resources. Every container gets its own cgroups (LinuxInfo.share_cgroups false: with the default,
// true, a nested container joins its parent's cgroups and its resources are ignored), nested under
// its parent's (with a sandbox executor: its container, sized by the framework with the pod's
// resources), as the kubelet nests a container's cgroup in its pod's. With its own cgroups Mesos
// needs cpus and mem in the resources (the subsystems fail
// with "No cpus resource given" / "No memory resource given"), so a container that requests neither
// still sends both: cpus 0.001 (cpu.shares = max(1024 × cpus, 2) = 2, the kubelet's shares for no
// request) and mem 32 (the soft limit is max(mem, 32 MB) either way). A limit Kubernetes does not set
// is unbounded: Mesos' "infinity" (without it Mesos caps memory at the request, and cpu at it with
// --cgroups_enable_cfs). mem is in MB, rounded up: Mesos truncates it to whole MB, and a hard limit
// below 32 MB is raised to 32 MB by Mesos.
//
// User. CommandInfo.user is a NAME, resolved by Mesos' launcher in the agent host's user database
// (getpwnam) before it enters the container's rootfs, and honoured only with --switch_user (the
// default); the container gets that user's primary group and its groups (getgrouplist). runAsUser
// is sent as the name of the agent host's user with that uid. Without runAsUser nothing is sent and
// the container runs as its parent, the executor (Mesos' rule). runAsGroup, supplementalGroups and
// fsGroup have no Mesos field: they are accepted when the groups Mesos gives agree with them and
// refused otherwise (CreateContainerConfigError); volumes are not chowned to fsGroup.
//
// Capabilities. The bounding set is the container runtime's (containerd's default list, + add, −
// drop, "ALL"; every capability for privileged). The effective set is the same for a container
// running as uid 0 and empty otherwise: Mesos grants effective capabilities to every set including
// the ambient one, so a non-root user would keep them across exec, while the runtime sets no ambient
// capabilities and the kernel drops a non-root process's on exec. The agent refuses capabilities
// outside its --bounding_capabilities; the launch then fails with Mesos' text. privileged is every
// capability and no seccomp filter, not the host's devices nor a writable /sys (Mesos has no field
// for them).

// HostUsers looks users up in the agent host's user database, as Mesos' launcher does.
type HostUsers interface {
	// LookupUID returns the user with uid; an error wrapping user.UnknownUserIdError when there is none.
	LookupUID(uid int64) (*HostUser, error)
	// Current is the user the executor runs as, and so, by Mesos' rule, its nested containers that
	// name no user.
	Current() (*HostUser, error)
}

// HostUser is a user of the agent host with the groups Mesos' launcher gives its processes.
type HostUser struct {
	Name   string
	UID    int64
	GID    int64   // primary group
	Groups []int64 // every group the process gets (getgrouplist)
}

// OSUsers is the executor host's user database (os/user).
type OSUsers struct{}

// LookupUID implements HostUsers.
func (OSUsers) LookupUID(uid int64) (*HostUser, error) {
	u, err := user.LookupId(strconv.FormatInt(uid, 10))
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseInt(u.Gid, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of user %s: %w", u.Username, err)
	}
	h := &HostUser{Name: u.Username, UID: uid, GID: gid}
	for _, s := range ids {
		if g, err := strconv.ParseInt(s, 10, 64); err == nil {
			h.Groups = append(h.Groups, g)
		}
	}
	return h, nil
}

// Current implements HostUsers from the process's own credentials (what the agent gave it).
func (OSUsers) Current() (*HostUser, error) {
	h := &HostUser{UID: int64(os.Geteuid()), GID: int64(os.Getegid())}
	if u, err := user.Current(); err == nil {
		h.Name = u.Username
	}
	groups, err := os.Getgroups()
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		h.Groups = append(h.Groups, int64(g))
	}
	return h, nil
}

// Resource names and values as Mesos spells them.
const (
	mesosCPUs = "cpus"
	mesosMem  = "mem"
	// minCPUs gives Mesos' minimum cpu.shares (2), the kubelet's for a container without request.
	minCPUs = 0.001
	// minMemMB is Mesos' MIN_MEMORY, the smallest soft limit it sets.
	minMemMB = 32
)

// Resources is a container's LAUNCH_CONTAINER resources (requests) and limits: cpus and mem, a
// missing request defaulted to the limit as Kubernetes defaults it, else to the minimum; a missing
// limit is infinite.
func Resources(c *corev1.Container) ([]mesos.Resource, map[string]mesos.Value_Scalar) {
	req := func(name corev1.ResourceName) (resource.Quantity, bool) {
		if q, ok := c.Resources.Requests[name]; ok && !q.IsZero() {
			return q, true
		}
		if q, ok := c.Resources.Limits[name]; ok && !q.IsZero() {
			return q, true
		}
		return resource.Quantity{}, false
	}
	lim := func(name corev1.ResourceName) (resource.Quantity, bool) {
		q, ok := c.Resources.Limits[name]
		return q, ok && !q.IsZero()
	}
	cpus := func(q resource.Quantity) float64 { return float64(q.MilliValue()) / 1000 }
	mb := func(q resource.Quantity) float64 { return math.Ceil(float64(q.Value()) / (1 << 20)) }

	cpuReq, memReq := float64(minCPUs), float64(minMemMB)
	if q, ok := req(corev1.ResourceCPU); ok {
		cpuReq = cpus(q)
	}
	if q, ok := req(corev1.ResourceMemory); ok {
		memReq = mb(q)
	}
	limits := map[string]mesos.Value_Scalar{mesosCPUs: {Value: math.Inf(1)}, mesosMem: {Value: math.Inf(1)}}
	if q, ok := lim(corev1.ResourceCPU); ok {
		limits[mesosCPUs] = mesos.Value_Scalar{Value: cpus(q)}
	}
	if q, ok := lim(corev1.ResourceMemory); ok {
		limits[mesosMem] = mesos.Value_Scalar{Value: mb(q)}
	}
	scalar := func(name string, v float64) mesos.Resource {
		return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
	}
	return []mesos.Resource{scalar(mesosCPUs, cpuReq), scalar(mesosMem, memReq)}, limits
}

// securityContext merges the pod's and the container's settings (the container's win).
type securityContext struct {
	runAsUser, runAsGroup *int64
	supplementalGroups    []int64
	fsGroup               *int64
}

func mergedSecurityContext(pod *corev1.Pod, c *corev1.Container) securityContext {
	var s securityContext
	if p := pod.Spec.SecurityContext; p != nil {
		s.runAsUser, s.runAsGroup, s.supplementalGroups, s.fsGroup = p.RunAsUser, p.RunAsGroup, p.SupplementalGroups, p.FSGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			s.runAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			s.runAsGroup = sc.RunAsGroup
		}
	}
	return s
}

// RunAs resolves who the container runs as: the agent host's user with the runAsUser uid (its name
// is CommandInfo.user), else the executor's user (name ""). Groups Mesos cannot give are
// CreateContainerConfigErrors.
func RunAs(pod *corev1.Pod, c *corev1.Container, users HostUsers) (name string, uid int64, err error) {
	sc := mergedSecurityContext(pod, c)
	configErr := func(format string, args ...any) error {
		return &podworker.CreateError{Reason: podworker.ReasonCreateContainerConfigError, Message: fmt.Sprintf(format, args...)}
	}
	var u *HostUser
	if sc.runAsUser != nil {
		u, err = users.LookupUID(*sc.runAsUser)
		var unknown user.UnknownUserIdError
		switch {
		case errors.As(err, &unknown):
			return "", 0, configErr("runAsUser %d of container %s: the agent host has no user with uid %d; Mesos runs a container as a user NAME of the agent host (CommandInfo.user), so the host needs a user with that uid", *sc.runAsUser, c.Name, *sc.runAsUser)
		case err != nil:
			return "", 0, configErr("runAsUser %d of container %s: looking up the agent host's user: %v", *sc.runAsUser, c.Name, err)
		}
		name = u.Name
	} else if u, err = users.Current(); err != nil {
		return "", 0, configErr("container %s: the executor's user: %v", c.Name, err)
	}
	who := fmt.Sprintf("user %q (uid %d) of the agent host", u.Name, u.UID)
	if u.Name == "" {
		who = fmt.Sprintf("the executor's user (uid %d)", u.UID)
	}
	if sc.runAsGroup != nil && *sc.runAsGroup != u.GID {
		return "", 0, configErr("runAsGroup %d of container %s cannot be applied: Mesos runs the container with the primary group of %s, gid %d, and has no field for a group", *sc.runAsGroup, c.Name, who, u.GID)
	}
	has := func(g int64) bool { return g == u.GID || slices.Contains(u.Groups, g) }
	for _, g := range sc.supplementalGroups {
		if !has(g) {
			return "", 0, configErr("supplementalGroups of pod %s: group %d cannot be added to container %s: Mesos gives it the groups of %s, %v, and has no field for more", pod.Name, g, c.Name, who, groupList(u))
		}
	}
	if sc.fsGroup != nil && !has(*sc.fsGroup) {
		return "", 0, configErr("fsGroup %d of pod %s cannot be added to container %s: Mesos gives it the groups of %s, %v, and has no field for more", *sc.fsGroup, pod.Name, c.Name, who, groupList(u))
	}
	return name, u.UID, nil
}

func groupList(u *HostUser) []int64 {
	out := []int64{u.GID}
	for _, g := range u.Groups {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// DefaultCapabilities is the container runtime's default capability set (containerd's and
// CRI-O's), the set a Kubernetes container starts from.
var DefaultCapabilities = []mesos.CapabilityInfo_Capability{
	mesos.CapabilityInfo_CHOWN, mesos.CapabilityInfo_DAC_OVERRIDE, mesos.CapabilityInfo_FSETID,
	mesos.CapabilityInfo_FOWNER, mesos.CapabilityInfo_MKNOD, mesos.CapabilityInfo_NET_RAW,
	mesos.CapabilityInfo_SETGID, mesos.CapabilityInfo_SETUID, mesos.CapabilityInfo_SETFCAP,
	mesos.CapabilityInfo_SETPCAP, mesos.CapabilityInfo_NET_BIND_SERVICE, mesos.CapabilityInfo_SYS_CHROOT,
	mesos.CapabilityInfo_KILL, mesos.CapabilityInfo_AUDIT_WRITE,
}

// allCapabilities is "ALL": every capability of Mesos' CapabilityInfo enum as the pinned mesos-go
// knows it (CHOWN … AUDIT_READ).
func allCapabilities() []mesos.CapabilityInfo_Capability {
	var out []mesos.CapabilityInfo_Capability
	for v := range mesos.CapabilityInfo_Capability_name {
		if v >= int32(mesos.CapabilityInfo_CHOWN) {
			out = append(out, mesos.CapabilityInfo_Capability(v))
		}
	}
	return out
}

// PrivilegedCapabilities is a privileged container's capability set given the bounding set bnd of the
// executor's process (bit n: the kernel's capability n): the capabilities of Mesos' enum that bnd
// holds, as containerd gives a privileged container the capabilities its own process has
// (oci.WithAllCurrentCapabilities) rather than every one the kernel knows. Asking for all of the enum
// fails on a host whose bounding set lacks one (the launch helper's capset: "Failed to set process
// capabilities: operation not permitted"); the executor runs on the agent host, below the agent, so
// what it holds the agent's launch helper holds too. An agent whose --bounding_capabilities is
// narrower still refuses the container with linux/capabilities' "Bounding capabilities '…', but only
// '…' are allowed" (launchRefused), as Mesos does; capabilities newer than the pinned enum (PERFMON,
// BPF, CHECKPOINT_RESTORE) have no name to ask for.
func PrivilegedCapabilities(bnd uint64) []mesos.CapabilityInfo_Capability {
	var out []mesos.CapabilityInfo_Capability
	for _, cp := range allCapabilities() {
		// CapabilityInfo numbers a capability as 1000 + the kernel's number.
		if n := int32(cp) - int32(mesos.CapabilityInfo_CHOWN); n < 64 && bnd&(1<<uint(n)) != 0 {
			out = append(out, cp)
		}
	}
	return sortedCaps(out)
}

// ownBoundingSet is the executor process's bounding capability set, CapBnd of /proc/self/status.
var ownBoundingSet = sync.OnceValues(func() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	return parseCapBnd(b)
})

// parseCapBnd reads the CapBnd line of a /proc/<pid>/status (hexadecimal, as the kernel prints it).
func parseCapBnd(status []byte) (uint64, error) {
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("CapBnd %q: %w", strings.TrimSpace(v), err)
			}
			return n, nil
		}
	}
	return 0, errors.New("no CapBnd line in /proc/self/status")
}

func capability(name string) (mesos.CapabilityInfo_Capability, bool) {
	v, ok := mesos.CapabilityInfo_Capability_value[strings.TrimPrefix(strings.ToUpper(name), "CAP_")]
	return mesos.CapabilityInfo_Capability(v), ok && v >= int32(mesos.CapabilityInfo_CHOWN)
}

// CapabilitySet computes a container's capabilities as containerd's CRI plugin does (WithCapabilities:
// add "ALL" → every one, drop "ALL" → none, then the named adds, then the named drops; privileged →
// the capabilities of the executor's own bounding set, see PrivilegedCapabilities), in Mesos' enum
// order. An unknown name is a CreateContainerConfigError.
func CapabilitySet(c *corev1.Container) ([]mesos.CapabilityInfo_Capability, error) {
	sc := c.SecurityContext
	if sc != nil && sc.Privileged != nil && *sc.Privileged {
		bnd, err := ownBoundingSet()
		if err != nil {
			return nil, &podworker.CreateError{Reason: podworker.ReasonCreateContainerError, Message: fmt.Sprintf(
				"container %s is privileged: reading the executor's bounding capability set: %v", c.Name, err)}
		}
		return PrivilegedCapabilities(bnd), nil
	}
	set := map[mesos.CapabilityInfo_Capability]bool{}
	for _, cp := range DefaultCapabilities {
		set[cp] = true
	}
	if sc == nil || sc.Capabilities == nil {
		return sortedCaps(keys(set)), nil
	}
	add, drop := sc.Capabilities.Add, sc.Capabilities.Drop
	isAll := func(n corev1.Capability) bool { return strings.EqualFold(string(n), "ALL") }
	if slices.ContainsFunc(add, isAll) {
		for _, cp := range allCapabilities() {
			set[cp] = true
		}
	}
	if slices.ContainsFunc(drop, isAll) {
		clear(set)
	}
	for i, list := range [][]corev1.Capability{add, drop} {
		for _, n := range list {
			if isAll(n) {
				continue
			}
			cp, ok := capability(string(n))
			if !ok {
				return nil, &podworker.CreateError{Reason: podworker.ReasonCreateContainerConfigError, Message: fmt.Sprintf(
					"container %s: unknown capability %q (Mesos' CapabilityInfo names, with or without CAP_)", c.Name, n)}
			}
			set[cp] = i == 0
		}
	}
	return sortedCaps(keys(set)), nil
}

func keys(set map[mesos.CapabilityInfo_Capability]bool) []mesos.CapabilityInfo_Capability {
	var out []mesos.CapabilityInfo_Capability
	for cp, in := range set {
		if in {
			out = append(out, cp)
		}
	}
	return out
}

func sortedCaps(s []mesos.CapabilityInfo_Capability) []mesos.CapabilityInfo_Capability {
	slices.Sort(s)
	return s
}

// LinuxInfo is the container's LinuxInfo: its own cgroups, its capabilities (effective only for
// uid 0, see above), and for privileged no seccomp filter (the runtime's "unconfined"; an agent
// without linux/seccomp ignores it).
func LinuxInfo(c *corev1.Container, uid int64) (*mesos.LinuxInfo, error) {
	caps, err := CapabilitySet(c)
	if err != nil {
		return nil, err
	}
	no := false
	li := &mesos.LinuxInfo{
		ShareCgroups:          &no,
		BoundingCapabilities:  &mesos.CapabilityInfo{Capabilities: caps},
		EffectiveCapabilities: &mesos.CapabilityInfo{},
	}
	if uid == 0 {
		li.EffectiveCapabilities.Capabilities = slices.Clone(caps)
	}
	if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
		yes := true
		li.Seccomp = &mesos.SeccompInfo{Unconfined: &yes}
	}
	return li, nil
}

// launchRefused turns the agent's refusal of a LAUNCH_CONTAINER (400, its launch failure as the body:
// http.cpp repairs every failed launch into BadRequest, such as linux/capabilities' "Bounding
// capabilities '…', but only '…' are allowed" or the launcher's unknown user) into the kubelet's
// CreateContainerError with Mesos' text; nil for other errors.
func launchRefused(err error) *podworker.CreateError {
	var apiErr *apierrors.Error
	if !errors.As(err, &apiErr) || !apierrors.CodeMalformedRequest.Matches(apiErr) {
		return nil
	}
	body := strings.TrimSpace(strings.TrimPrefix(apiErr.Error(), apierrors.MsgMalformed+": "))
	return &podworker.CreateError{Reason: podworker.ReasonCreateContainerError, Message: "the Mesos agent refused the container: " + body}
}

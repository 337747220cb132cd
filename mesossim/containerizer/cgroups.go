package containerizer

// What cgroups/cpu and cgroups/mem share: Mesos' CgroupsIsolatorProcess (one cgroup per container in
// every hierarchy an isolator uses, nested containers in their parent's cgroup unless their
// LinuxInfo.share_cgroups is false) and the parts of src/linux/cgroups.cpp it needs (hierarchy checks,
// destroy with EBUSY retries). Only cgroup v1 is supported; the agent must run as root.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CgroupsFlags are the agent flags of Mesos' cgroups isolator.
type CgroupsFlags struct {
	Hierarchy string // --cgroups_hierarchy
	Root      string // --cgroups_root
	EnableCFS bool   // --cgroups_enable_cfs
	LimitSwap bool   // --cgroups_limit_swap
	// CPUEnablePidsAndTidsCount is --cgroups_cpu_enable_pids_and_tids_count.
	CPUEnablePidsAndTidsCount bool
	// RevocableCPULowPriority is --revocable_cpu_low_priority (Mesos' default: true).
	RevocableCPULowPriority bool
	// DestroyTimeout is --cgroups_destroy_timeout.
	DestroyTimeout time.Duration
}

// DefaultCgroupsFlags are Mesos' defaults.
func DefaultCgroupsFlags() CgroupsFlags {
	return CgroupsFlags{
		Hierarchy:               "/sys/fs/cgroup",
		Root:                    "mesos",
		RevocableCPULowPriority: true,
		DestroyTimeout:          time.Minute,
	}
}

// Mesos' constants (isolators/cgroups/constants.hpp, containerizer/mesos/constants.hpp).
const (
	cpuSharesPerCPU          = 1024
	cpuSharesPerCPURevocable = 10
	minCPUShares             = 2
	cpuCFSPeriod             = 100 * time.Millisecond
	minCPUCFSQuota           = time.Millisecond
	minMemory                = 32 << 20
	megabyte                 = 1 << 20
	cgroupSeparator          = "mesos"
	// clockTicks is sysconf(_SC_CLK_TCK), USER_HZ, 100 on every Linux architecture Go supports.
	clockTicks = 100
)

// CgroupPath is Mesos' containerizer::paths::getCgroupPath: <root>/<id> for a top-level container,
// <root>/<parent>/mesos/<child> for a nested one.
func CgroupPath(root string, id mesos.ContainerID) string {
	return filepath.Join(root, strings.Join(containerIDChain(id), "/"+cgroupSeparator+"/"))
}

func containerIDChain(id mesos.ContainerID) []string {
	var chain []string
	for p := &id; p != nil; p = p.Parent {
		chain = append([]string{p.Value}, chain...)
	}
	return chain
}

// containerIDString is Mesos' operator<< for a ContainerID (parent.child).
func containerIDString(id mesos.ContainerID) string {
	return strings.Join(containerIDChain(id), ".")
}

// sharesCgroups is Mesos' test in CgroupsIsolatorProcess::prepare: a nested container lives in its
// parent's cgroups unless its LinuxInfo.share_cgroups is false.
func sharesCgroups(c *Container) bool {
	return c.ID.Parent != nil && (c.Info == nil || c.Info.LinuxInfo.GetShareCgroups())
}

// geteuid is a variable for the test of the refusal without root.
var geteuid = os.Geteuid

// prepareHierarchy is cgroups::prepare without mounting: the subsystem's hierarchy must be mounted at
// <hierarchy>/<subsystem>; the root cgroup is created if missing.
func prepareHierarchy(flags CgroupsFlags, subsystem string) (string, error) {
	wrap := func(err error) error {
		return fmt.Errorf("Failed to prepare hierarchy for the subsystem '%s': %w", subsystem, err)
	}
	if geteuid() != 0 {
		return "", wrap(errors.New("Using cgroups requires root permissions"))
	}
	path := filepath.Join(flags.Hierarchy, subsystem)
	resolved, err := filepath.EvalSymlinks(path)
	ok := false
	if err == nil {
		if ok, err = cgroupV1Mounted(resolved, subsystem); err != nil {
			return "", wrap(err)
		}
	}
	if !ok {
		return "", wrap(fmt.Errorf("'%s' is not a cgroup v1 hierarchy with the '%s' subsystem attached "+
			"(these isolators need cgroup v1 and do not mount hierarchies)", path, subsystem))
	}
	if err := os.MkdirAll(filepath.Join(resolved, flags.Root), 0o755); err != nil {
		return "", wrap(fmt.Errorf("Failed to create root cgroup %s: %w", filepath.Join(resolved, flags.Root), err))
	}
	return resolved, nil
}

// cgroupV1Mounted tells whether path is a mount point of a cgroup (v1) filesystem with subsystem
// among its super options (/proc/self/mountinfo).
func cgroupV1Mounted(path, subsystem string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, after := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(after) < 3 || fields[4] != path || after[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(after[2], ",") {
			if opt == subsystem {
				return true, nil
			}
		}
	}
	return false, sc.Err()
}

// cgroupInfo is one container's cgroup (Mesos' CgroupsIsolatorProcess::Info) and what the subsystems
// keep for it.
type cgroupInfo struct {
	id     mesos.ContainerID
	cgroup string // relative to every hierarchy, e.g. mesos/<parent>/mesos/<child>
	cg     cgroup1.Cgroup

	mu sync.Mutex
	// cgroups/mem: whether the hard limit was set once, the OOM and pressure listeners and the
	// limitation they deliver.
	hardLimitUpdated bool
	cleaning         bool
	listeners        []*os.File
	pressure         map[string]*uint64
	limitation       chan Limitation
}

// cgroups is the part of Mesos' CgroupsIsolatorProcess both isolators share; each isolator owns the
// hierarchies of its subsystems (cgroups/cpu: cpu and cpuacct, cgroups/mem: memory).
type cgroups struct {
	Base
	name        string
	flags       CgroupsFlags
	subsystems  []cgroup1.Name
	hierarchies map[cgroup1.Name]string
	controllers []cgroup1.Subsystem

	mu    sync.Mutex
	infos map[string]*cgroupInfo // by cgroup
}

func newCgroups(name string, flags CgroupsFlags, controllers map[cgroup1.Name]func(root string) cgroup1.Subsystem, order ...cgroup1.Name) (*cgroups, error) {
	if flags.Root == "" {
		flags.Root = DefaultCgroupsFlags().Root
	}
	if flags.Hierarchy == "" {
		flags.Hierarchy = DefaultCgroupsFlags().Hierarchy
	}
	if flags.DestroyTimeout == 0 {
		flags.DestroyTimeout = DefaultCgroupsFlags().DestroyTimeout
	}
	cg := &cgroups{name: name, flags: flags, subsystems: order,
		hierarchies: map[cgroup1.Name]string{}, infos: map[string]*cgroupInfo{}}
	for _, s := range order {
		if _, err := prepareHierarchy(flags, string(s)); err != nil {
			return nil, err
		}
		// Through a symlink if co-mounted (cpu -> cpu,cpuacct), as the controllers join their name
		// to the directory they are given.
		cg.hierarchies[s] = filepath.Join(flags.Hierarchy, string(s))
		cg.controllers = append(cg.controllers, controllers[s](flags.Hierarchy))
	}
	return cg, nil
}

func (g *cgroups) Name() string { return g.name }

func (g *cgroups) path(s cgroup1.Name, cgroup string) string {
	return filepath.Join(g.hierarchies[s], cgroup)
}

func (g *cgroups) hierarchyOpt() cgroup1.InitOpts {
	return cgroup1.WithHierarchy(func() ([]cgroup1.Subsystem, error) { return g.controllers, nil })
}

// info is the container's own cgroup, nil for a nested container sharing its parent's.
func (g *cgroups) info(c *Container) *cgroupInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.infos[CgroupPath(g.flags.Root, c.ID)]
}

// findInfo is Mesos' findCgroupInfo: the container's cgroup or its closest ancestor's.
func (g *cgroups) findInfo(id mesos.ContainerID) *cgroupInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p := &id; p != nil; p = p.Parent {
		if info := g.infos[CgroupPath(g.flags.Root, *p)]; info != nil {
			return info
		}
	}
	return nil
}

// create is the first half of Mesos' CgroupsIsolatorProcess::prepare: the container's cgroup in each
// of the isolator's hierarchies, chowned (not recursively) to the container's user. The info is
// registered first so Cleanup undoes a failed prepare.
func (g *cgroups) create(c *Container) (*cgroupInfo, error) {
	if c.ID.Parent != nil && c.ID.Parent.Parent != nil {
		return nil, errors.New("2nd level or greater nested cgroups are not supported")
	}
	cgroup := CgroupPath(g.flags.Root, c.ID)
	g.mu.Lock()
	if g.infos[cgroup] != nil {
		g.mu.Unlock()
		return nil, errors.New("Container has already been prepared")
	}
	info := &cgroupInfo{id: c.ID, cgroup: cgroup}
	g.infos[cgroup] = info
	g.mu.Unlock()

	for _, s := range g.subsystems {
		path := g.path(s, cgroup)
		if _, err := os.Stat(path); err == nil {
			return nil, fmt.Errorf("The cgroup at '%s' already exists", path)
		}
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(cgroup), &specs.LinuxResources{}, g.hierarchyOpt())
	if err != nil {
		return nil, fmt.Errorf("Failed to create the cgroup at '%s': %w", g.path(g.subsystems[0], cgroup), err)
	}
	info.mu.Lock()
	info.cg = cg
	info.mu.Unlock()
	if c.User != "" {
		for _, s := range g.subsystems {
			if err := chownUser(g.path(s, cgroup), c.User); err != nil {
				return nil, fmt.Errorf("Failed to chown the cgroup at '%s' to user '%s': %w", g.path(s, cgroup), c.User, err)
			}
		}
	}
	return info, nil
}

func chownUser(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("Failed to get user information for '%s': %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

// assign is Mesos' CgroupsIsolatorProcess::_isolate: the pid goes into the container's cgroup, or for
// a nested container sharing cgroups into its closest ancestor's.
func (g *cgroups) assign(c *Container) error {
	info := g.findInfo(c.ID)
	if info == nil {
		return fmt.Errorf("Failed to find cgroup for container %s", containerIDString(c.ID))
	}
	for _, s := range g.subsystems {
		path := g.path(s, info.cgroup)
		if err := info.cg.AddProc(uint64(c.Pid), s); err != nil {
			return fmt.Errorf("Failed to assign container %s pid %d to cgroup at '%s': %w",
				containerIDString(c.ID), c.Pid, path, err)
		}
	}
	return nil
}

// destroy is cgroups::destroy for hierarchies without the freezer: the cgroup and the cgroups nested
// in it are emptied (SIGKILL until no process is left) and removed bottom-up, retrying rmdir on EBUSY
// with a doubling delay, within --cgroups_destroy_timeout.
func (g *cgroups) destroy(ctx context.Context, cgroup string) error {
	ctx, cancel := context.WithTimeout(ctx, g.flags.DestroyTimeout)
	defer cancel()
	var errs []string
	for _, s := range g.subsystems {
		if err := destroyCgroup(ctx, g.path(s, cgroup)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("Failed to destroy cgroups: Timed out after %s (%s)", g.flags.DestroyTimeout, strings.Join(errs, ";"))
		}
		return fmt.Errorf("Failed to destroy cgroups: %s", strings.Join(errs, ";"))
	}
	return nil
}

func destroyCgroup(ctx context.Context, path string) error {
	var dirs []string
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("Failed to get nested cgroups: %w", err)
	}
	// Deepest first.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := killCgroup(ctx, d); err != nil {
			return fmt.Errorf("Failed to kill tasks in nested cgroups: %w", err)
		}
	}
	for _, d := range dirs {
		if err := removeCgroup(ctx, d); err != nil {
			return fmt.Errorf("Failed to remove cgroups: %w", err)
		}
	}
	return nil
}

// killCgroup sends SIGKILL to the cgroup's processes until none is left (a process forking while it is
// being killed is caught by the next round).
func killCgroup(ctx context.Context, path string) error {
	delay := time.Millisecond
	for {
		pids, err := cgroupProcs(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("Failed to kill process %d: %w", pid, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v are still in cgroup %s", pids, path)
		case <-time.After(delay):
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

func cgroupProcs(path string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// removeCgroup is cgroups::internal::remove: rmdir, retried on EBUSY (a kernel may report a cgroup whose
// processes are dead as busy for a while).
func removeCgroup(ctx context.Context, path string) error {
	delay := time.Duration(0)
	for {
		err := unix.Rmdir(path)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			if _, serr := os.Stat(path); serr != nil {
				return nil
			}
			return fmt.Errorf("Failed to remove directory '%s': %s", path, err)
		}
		if delay == 0 {
			delay = time.Millisecond
		} else if delay < time.Second {
			delay *= 2
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Failed to remove directory '%s': %s", path, err)
		case <-time.After(delay):
		}
	}
}

// forget drops the container's info once its cgroups are gone.
func (g *cgroups) forget(info *cgroupInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.infos[info.cgroup] == info {
		delete(g.infos, info.cgroup)
	}
}

// cgroupMounts is Mesos' CgroupsIsolatorProcess::__prepare for a container with a root filesystem: its
// own (or its ancestor's) cgroup of each hierarchy bind-mounted at /sys/fs/cgroup/<subsystem> inside.
func (g *cgroups) cgroupMounts(c *Container, li *LaunchInfo) error {
	if c.Rootfs == "" {
		return nil
	}
	info := g.findInfo(c.ID)
	if info == nil {
		return fmt.Errorf("Failed to find cgroup for container %s", containerIDString(c.ID))
	}
	li.CloneNamespaces = appendUnique(li.CloneNamespaces, NamespaceMount)
	for _, s := range g.subsystems {
		li.Mounts = append(li.Mounts, Mount{
			Source:       g.path(s, info.cgroup),
			Target:       filepath.Join(c.Rootfs, "/sys/fs/cgroup", string(s)),
			Flags:        unix.MS_BIND | unix.MS_REC,
			CreateTarget: true,
		})
	}
	return nil
}

func appendUnique(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// scalar sums the named scalar resources (Mesos' Resources::get<Value::Scalar>), ok false if none.
func scalar(resources []mesos.Resource, name string) (sum float64, ok bool) {
	for _, r := range resources {
		if r.Name == name && r.GetType() == mesos.SCALAR && r.Scalar != nil {
			sum += r.Scalar.Value
			ok = true
		}
	}
	return sum, ok
}

func revocableCPUs(resources []mesos.Resource) bool {
	for _, r := range resources {
		if r.Name == "cpus" && r.Revocable != nil {
			return true
		}
	}
	return false
}

func limit(limits map[string]mesos.Value_Scalar, name string) (float64, bool) {
	v, ok := limits[name]
	return v.Value, ok
}

// ResourceLimitStatistics is what Mesos' MesosContainerizerProcess::_usage adds to every container's
// statistics from its resource requests and limits: cpus_soft_limit, cpus_limit (the limit, else the
// request with --cgroups_enable_cfs; an infinite limit is the host's cpus), mem_soft_limit_bytes and
// mem_limit_bytes (an infinite limit is the host's memory). The cgroups isolators add their part.
func ResourceLimitStatistics(c *Container, enableCFS bool, st *mesos.ResourceStatistics) {
	cpuLimitStatistics(c, enableCFS, st)
	memLimitStatistics(c, st)
}

func cpuLimitStatistics(c *Container, enableCFS bool, st *mesos.ResourceStatistics) {
	request, hasRequest := scalar(c.Resources, "cpus")
	if hasRequest {
		st.CPUsSoftLimit = &request
	}
	if l, ok := limit(c.Limits, "cpus"); ok {
		if math.IsInf(l, 1) {
			l = float64(onlineCPUs())
		}
		st.CPUsLimit = &l
	} else if enableCFS && hasRequest {
		st.CPUsLimit = &request
	}
}

func memLimitStatistics(c *Container, st *mesos.ResourceStatistics) {
	request, hasRequest := scalar(c.Resources, "mem")
	requestBytes := uint64(request) * megabyte
	if hasRequest {
		st.MemSoftLimitBytes = &requestBytes
	}
	if l, ok := limit(c.Limits, "mem"); ok {
		var b uint64
		if math.IsInf(l, 1) {
			b = totalMemory()
		} else {
			b = uint64(l) * megabyte
		}
		st.MemLimitBytes = &b
	} else if hasRequest {
		st.MemLimitBytes = &requestBytes
	}
}

func onlineCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		return set.Count()
	}
	return 1
}

func totalMemory() uint64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// readUint reads a control file holding one number.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// readStat parses a "key value" control file (cpu.stat, cpuacct.stat, memory.stat).
func readStat(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	stat := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("Failed to parse '%s': %w", line, err)
		}
		stat[k] = n
	}
	return stat, nil
}

// formatBytes is stout's operator<< for Bytes: the largest unit that loses no information.
func formatBytes(b uint64) string {
	switch {
	case b == 0:
		return "0B"
	case b%(1<<10) != 0:
		return fmt.Sprintf("%dB", b)
	case b%(1<<20) != 0:
		return fmt.Sprintf("%dKB", b>>10)
	case b%(1<<30) != 0:
		return fmt.Sprintf("%dMB", b>>20)
	case b%(1<<40) != 0:
		return fmt.Sprintf("%dGB", b>>30)
	default:
		return fmt.Sprintf("%dTB", b>>40)
	}
}

func init() {
	Register("cgroups/cpu", func(f Flags) (Isolator, error) { return NewCgroupsCPU(cgroupsFlags(f)) })
	Register("cgroups/mem", func(f Flags) (Isolator, error) { return NewCgroupsMem(cgroupsFlags(f)) })
}

func cgroupsFlags(f Flags) CgroupsFlags {
	flags := DefaultCgroupsFlags()
	if f.CgroupsHierarchy != "" {
		flags.Hierarchy = f.CgroupsHierarchy
	}
	if f.CgroupsRoot != "" {
		flags.Root = f.CgroupsRoot
	}
	flags.EnableCFS, flags.LimitSwap = f.CgroupsEnableCFS, f.CgroupsLimitSwap
	return flags
}

package containerizer

// cgroups/mem: Mesos' cgroups isolator with the memory subsystem (isolators/cgroups/subsystems/memory.cpp).

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/containerd/cgroups/v3/cgroup1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CgroupsMem is the cgroups/mem isolator: memory.soft_limit_in_bytes from the mem request,
// memory.limit_in_bytes from the mem limit (else the request), OOM kills reported as Mesos'
// REASON_CONTAINER_LIMITATION_MEMORY limitation, usage from memory.stat and the pressure counters.
type CgroupsMem struct {
	*cgroups
}

var pressureLevels = []cgroup1.MemoryPressureLevel{cgroup1.LowPressure, cgroup1.MediumPressure, cgroup1.CriticalPressure}

// NewCgroupsMem checks the memory hierarchy (root, cgroup v1 mounted at <hierarchy>/memory), creates
// <root> in it and makes sure the kernel OOM killer is enabled there.
func NewCgroupsMem(flags CgroupsFlags) (*CgroupsMem, error) {
	g, err := newCgroups("cgroups/mem", flags, map[cgroup1.Name]func(string) cgroup1.Subsystem{
		cgroup1.Memory: func(root string) cgroup1.Subsystem { return cgroup1.NewMemory(root, cgroup1.OptionalSwap()) },
	}, cgroup1.Memory)
	if err != nil {
		return nil, err
	}
	root := g.path(cgroup1.Memory, g.flags.Root)
	oom, err := os.ReadFile(filepath.Join(root, "memory.oom_control"))
	if err != nil {
		return nil, fmt.Errorf("Failed to enable kernel OOM killer: Could not find 'memory.oom_control' control file")
	}
	if strings.Contains(string(oom), "oom_kill_disable 1") {
		if err := os.WriteFile(filepath.Join(root, "memory.oom_control"), []byte("0"), 0); err != nil {
			return nil, fmt.Errorf("Failed to enable kernel OOM killer: Could not write 'memory.oom_control' control file: %w", err)
		}
	}
	if g.flags.LimitSwap {
		if _, err := os.Stat(filepath.Join(root, "memory.memsw.limit_in_bytes")); err != nil {
			return nil, errors.New("Failed to create subsystem 'memory': 'memory.memsw.limit_in_bytes' is not available")
		}
	}
	return &CgroupsMem{g}, nil
}

// Prepare creates the container's memory cgroup (none for a nested container sharing its parent's),
// starts listening for OOM and pressure events, and applies its resources and limits.
func (i *CgroupsMem) Prepare(ctx context.Context, c *Container, li *LaunchInfo) error {
	if !sharesCgroups(c) {
		info, err := i.create(c)
		if err != nil {
			return err
		}
		if err := i.listen(info); err != nil {
			return err
		}
		if err := i.update(info, c.Resources, c.Limits); err != nil {
			return fmt.Errorf("Failed to update subsystems: %w", err)
		}
	}
	return i.cgroupMounts(c, li)
}

// listen is MemorySubsystemProcess::oomListen and pressureListen: an eventfd on memory.oom_control whose
// event becomes the container's limitation, and one per pressure level counting events.
func (i *CgroupsMem) listen(info *cgroupInfo) error {
	info.mu.Lock()
	defer info.mu.Unlock()
	info.limitation = make(chan Limitation, 1)
	fd, err := info.cg.OOMEventFD()
	if err != nil {
		return fmt.Errorf("Failed to listen for OOM events for container %s: %w", containerIDString(info.id), err)
	}
	oom, err := pollableEventFD(fd)
	if err != nil {
		return err
	}
	info.listeners = append(info.listeners, oom)
	go i.oomWait(info, oom)

	info.pressure = map[string]*uint64{}
	for _, level := range pressureLevels {
		fd, err := info.cg.RegisterMemoryEvent(cgroup1.MemoryPressureEvent(level, cgroup1.DefaultMode))
		if err != nil {
			continue // Mesos logs this and reports no counter for the level
		}
		f, err := pollableEventFD(fd)
		if err != nil {
			continue
		}
		n := new(uint64)
		info.pressure[string(level)] = n
		info.listeners = append(info.listeners, f)
		go countEvents(f, n)
	}
	return nil
}

// pollableEventFD makes the eventfd non-blocking so that its reader goroutine sits in the runtime's
// poller and Close wakes it.
func pollableEventFD(fd uintptr) (*os.File, error) {
	if err := unix.SetNonblock(int(fd), true); err != nil {
		unix.Close(int(fd))
		return nil, err
	}
	return os.NewFile(fd, "eventfd"), nil
}

func countEvents(f *os.File, n *uint64) {
	buf := make([]byte, 8)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
		atomic.AddUint64(n, 1)
	}
}

// oomWait is MemorySubsystemProcess::oomWaited. The kernel also signals the eventfd when the cgroup is
// removed, which Cleanup does only after marking the container as cleaning.
func (i *CgroupsMem) oomWait(info *cgroupInfo, f *os.File) {
	if _, err := f.Read(make([]byte, 8)); err != nil {
		return
	}
	info.mu.Lock()
	cleaning := info.cleaning
	info.mu.Unlock()
	if cleaning {
		return
	}
	path := i.path(cgroup1.Memory, info.cgroup)
	var msg strings.Builder
	msg.WriteString("Memory limit exceeded: ")
	if limit, err := readUint(filepath.Join(path, "memory.limit_in_bytes")); err == nil {
		fmt.Fprintf(&msg, "Requested: %s ", formatBytes(limit))
	}
	used, err := readUint(filepath.Join(path, "memory.max_usage_in_bytes"))
	if err == nil {
		fmt.Fprintf(&msg, "Maximum Used: %s\n", formatBytes(used))
	}
	if stat, err := os.ReadFile(filepath.Join(path, "memory.stat")); err == nil {
		fmt.Fprintf(&msg, "\nMEMORY STATISTICS: \n%s\n", stat)
	}
	info.limitation <- Limitation{
		Reason:    mesos.REASON_CONTAINER_LIMITATION_MEMORY,
		Message:   msg.String(),
		Resources: []mesos.Resource{memResource(float64(used) / megabyte)},
	}
}

// memResource is Resources::parse("mem", stringify(mb), "*"): six significant digits, then Mesos'
// fixed-point scalar (three decimals).
func memResource(mb float64) mesos.Resource {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(mb, 'g', 6, 64), 64)
	v = math.Round(v*1000) / 1000
	return mesos.Resource{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

// Isolate sets the OOM score adjustment of a burstable nested container (soft limit below the hard
// limit) as Mesos does, then moves the helper into the container's (or its ancestor's) memory cgroup.
func (i *CgroupsMem) Isolate(ctx context.Context, c *Container) error {
	if info := i.info(c); info != nil && c.ID.Parent != nil {
		path := i.path(cgroup1.Memory, info.cgroup)
		soft, err := readUint(filepath.Join(path, "memory.soft_limit_in_bytes"))
		if err != nil {
			return fmt.Errorf("Failed to isolate subsystems: Failed to read 'memory.soft_limit_in_bytes': %w", err)
		}
		hard, err := readUint(filepath.Join(path, "memory.limit_in_bytes"))
		if err != nil {
			return fmt.Errorf("Failed to isolate subsystems: Failed to read 'memory.limit_in_bytes': %w", err)
		}
		if soft < hard {
			adj := 1000 - (1000*soft)/totalMemory()
			if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", c.Pid), []byte(strconv.FormatUint(adj, 10)), 0); err != nil {
				return fmt.Errorf("Failed to isolate subsystems: Failed to set OOM score adjustment: %w", err)
			}
		}
	}
	return i.assign(c)
}

// Watch delivers the container's OOM kill; nil for a nested container sharing its parent's cgroup
// (Mesos' pending future: the parent's limitation ends the parent).
func (i *CgroupsMem) Watch(c *Container) <-chan Limitation {
	info := i.info(c)
	if info == nil {
		return nil
	}
	info.mu.Lock()
	defer info.mu.Unlock()
	return info.limitation
}

// Update sets the memory limits for new resources and limits.
func (i *CgroupsMem) Update(ctx context.Context, c *Container, resources []mesos.Resource, limits map[string]mesos.Value_Scalar) error {
	info := i.info(c)
	if info == nil {
		return errors.New("Unknown container")
	}
	if err := i.update(info, resources, limits); err != nil {
		return fmt.Errorf("Failed to update subsystems: %w", err)
	}
	return nil
}

// update is MemorySubsystemProcess::update: the soft limit always; the hard limit (and with
// --cgroups_limit_swap memsw, in the order the kernel accepts) the first time and when it grows, as
// lowering it under a running container could OOM it.
func (i *CgroupsMem) update(info *cgroupInfo, resources []mesos.Resource, limits map[string]mesos.Value_Scalar) error {
	mem, ok := scalar(resources, "mem")
	if !ok {
		return errors.New("Failed to update subsystem 'memory': No memory resource given")
	}
	soft := max(int64(mem)*megabyte, minMemory)
	if err := info.cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: &soft}}); err != nil {
		return fmt.Errorf("Failed to set 'memory.soft_limit_in_bytes': %w", err)
	}
	current, err := readUint(filepath.Join(i.path(cgroup1.Memory, info.cgroup), "memory.limit_in_bytes"))
	if err != nil {
		return fmt.Errorf("Failed to read 'memory.limit_in_bytes': %w", err)
	}
	hard := soft // -1 is unlimited
	if l, ok := limit(limits, "mem"); ok {
		if math.IsInf(l, 1) {
			hard = -1
		} else {
			hard = max(int64(l)*megabyte, minMemory)
		}
	}
	setLimit := func() error {
		if err := info.cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &hard}}); err != nil {
			return fmt.Errorf("Failed to set 'memory.limit_in_bytes': %w", err)
		}
		return nil
	}
	setMemsw := func() error {
		if !i.flags.LimitSwap {
			return nil
		}
		if err := info.cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: &hard}}); err != nil {
			return fmt.Errorf("Failed to set 'memory.memsw.limit_in_bytes': %w", err)
		}
		return nil
	}
	info.mu.Lock()
	first := !info.hardLimitUpdated
	info.mu.Unlock()
	var steps []func() error
	switch {
	case first:
		steps = []func() error{setLimit, setMemsw}
	case hard == -1 || uint64(hard) > current:
		steps = []func() error{setMemsw, setLimit}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	info.mu.Lock()
	info.hardLimitUpdated = true
	info.mu.Unlock()
	return nil
}

// Usage is MemorySubsystemProcess::usage plus the memory limits.
func (i *CgroupsMem) Usage(ctx context.Context, c *Container, st *mesos.ResourceStatistics) error {
	memLimitStatistics(c, st)
	info := i.info(c)
	if info == nil {
		if i.findInfo(c.ID) != nil {
			return nil
		}
		return errors.New("Unknown container")
	}
	path := i.path(cgroup1.Memory, info.cgroup)
	usage, err := readUint(filepath.Join(path, "memory.usage_in_bytes"))
	if err != nil {
		return fmt.Errorf("Failed to parse 'memory.usage_in_bytes': %w", err)
	}
	st.MemTotalBytes = &usage
	// mem_kmem_usage_bytes and mem_kmem_tcp_usage_bytes are not in mesos-go v0.0.11's ResourceStatistics.
	if i.flags.LimitSwap {
		v, err := readUint(filepath.Join(path, "memory.memsw.usage_in_bytes"))
		if err != nil {
			return fmt.Errorf("Failed to parse 'memory.memsw.usage_in_bytes': %w", err)
		}
		st.MemTotalMemswBytes = &v
	}
	stat, err := readStat(filepath.Join(path, "memory.stat"))
	if err != nil {
		return fmt.Errorf("Failed to read 'memory.stat': %w", err)
	}
	set := func(key string, fields ...**uint64) {
		if v, ok := stat[key]; ok {
			for _, f := range fields {
				*f = &v
			}
		}
	}
	set("total_cache", &st.MemFileBytes, &st.MemCacheBytes)
	set("total_rss", &st.MemAnonBytes, &st.MemRSSBytes)
	set("total_mapped_file", &st.MemMappedFileBytes)
	set("total_swap", &st.MemSwapBytes)
	set("total_unevictable", &st.MemUnevictableBytes)

	info.mu.Lock()
	defer info.mu.Unlock()
	for level, field := range map[string]**uint64{
		"low": &st.MemLowPressureCounter, "medium": &st.MemMediumPressureCounter, "critical": &st.MemCriticalPressureCounter,
	} {
		if n := info.pressure[level]; n != nil {
			v := atomic.LoadUint64(n)
			*field = &v
		}
	}
	return nil
}

// Cleanup stops listening (so the removal's eventfd signal is not taken for an OOM), kills what is left
// in the container's memory cgroup and removes it. Idempotent.
func (i *CgroupsMem) Cleanup(ctx context.Context, c *Container) error {
	info := i.info(c)
	if info == nil {
		return nil
	}
	info.mu.Lock()
	info.cleaning = true
	for _, f := range info.listeners {
		f.Close()
	}
	info.listeners = nil
	info.mu.Unlock()
	if err := i.destroy(ctx, info.cgroup); err != nil {
		return err
	}
	i.forget(info)
	return nil
}

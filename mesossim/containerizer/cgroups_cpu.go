package containerizer

// cgroups/cpu: Mesos' cgroups isolator with the cpu and cpuacct subsystems
// (isolators/cgroups/subsystems/cpu.cpp, cpuacct.cpp).

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// CgroupsCPU is the cgroups/cpu isolator: cpu.shares from the cpus request, a CFS quota from the cpus
// limit (or from the request with --cgroups_enable_cfs), usage from cpuacct (and cpu.stat with CFS).
type CgroupsCPU struct {
	*cgroups
}

// NewCgroupsCPU checks the cpu and cpuacct hierarchies (root, cgroup v1 mounted at
// <hierarchy>/cpu and <hierarchy>/cpuacct) and creates <root> in them.
func NewCgroupsCPU(flags CgroupsFlags) (*CgroupsCPU, error) {
	g, err := newCgroups("cgroups/cpu", flags, map[cgroup1.Name]func(string) cgroup1.Subsystem{
		cgroup1.Cpu:     func(root string) cgroup1.Subsystem { return cgroup1.NewCpu(root) },
		cgroup1.Cpuacct: func(root string) cgroup1.Subsystem { return cgroup1.NewCpuacct(root) },
	}, cgroup1.Cpu, cgroup1.Cpuacct)
	if err != nil {
		return nil, err
	}
	if g.flags.EnableCFS {
		if _, err := os.Stat(filepath.Join(g.path(cgroup1.Cpu, g.flags.Root), "cpu.cfs_quota_us")); err != nil {
			return nil, fmt.Errorf("Failed to create subsystem 'cpu': Failed to find 'cpu.cfs_quota_us'. " +
				"Your kernel might be too old to use the CFS quota feature")
		}
	}
	return &CgroupsCPU{g}, nil
}

// Prepare creates the container's cgroups (none for a nested container sharing its parent's) and
// applies its resources and limits, as Mesos' prepare does through update.
func (i *CgroupsCPU) Prepare(ctx context.Context, c *Container, li *LaunchInfo) error {
	if !sharesCgroups(c) {
		info, err := i.create(c)
		if err != nil {
			return err
		}
		if err := i.update(info, c.Resources, c.Limits); err != nil {
			return fmt.Errorf("Failed to update subsystems: %w", err)
		}
	}
	return i.cgroupMounts(c, li)
}

// Isolate moves the helper into the container's (or its ancestor's) cpu and cpuacct cgroups.
func (i *CgroupsCPU) Isolate(ctx context.Context, c *Container) error {
	return i.assign(c)
}

// Update sets cpu.shares and the CFS quota for new resources and limits.
func (i *CgroupsCPU) Update(ctx context.Context, c *Container, resources []mesos.Resource, limits map[string]mesos.Value_Scalar) error {
	info := i.info(c)
	if info == nil {
		return errors.New("Unknown container")
	}
	if err := i.update(info, resources, limits); err != nil {
		return fmt.Errorf("Failed to update subsystems: %w", err)
	}
	return nil
}

// update is CpuSubsystemProcess::update: cpu.shares, then with a limit (or --cgroups_enable_cfs)
// cpu.cfs_period_us and cpu.cfs_quota_us, each written on its own with Mesos' text on failure (the
// kernel refuses a quota below a nested cgroup's: "Failed to update 'cpu.cfs_quota_us': Invalid
// argument").
func (i *CgroupsCPU) update(info *cgroupInfo, resources []mesos.Resource, limits map[string]mesos.Value_Scalar) error {
	request, ok := scalar(resources, "cpus")
	if !ok {
		return errors.New("Failed to update subsystem 'cpu': No cpus resource given")
	}
	perCPU := float64(cpuSharesPerCPU)
	if i.flags.RevocableCPULowPriority && revocableCPUs(resources) {
		perCPU = cpuSharesPerCPURevocable
	}
	dir := i.path(cgroup1.Cpu, info.cgroup)
	shares := max(uint64(perCPU*request), minCPUShares)
	if err := writeControl(dir, "cpu.shares", strconv.FormatUint(shares, 10)); err != nil {
		return err
	}
	l, hasLimit := limit(limits, "cpus")
	if !hasLimit && !i.flags.EnableCFS {
		return nil
	}
	if err := writeControl(dir, "cpu.cfs_period_us", strconv.FormatInt(int64(cpuCFSPeriod/time.Microsecond), 10)); err != nil {
		return err
	}
	quota := "-1"
	if !(hasLimit && math.IsInf(l, 1)) {
		q := request
		if hasLimit {
			q = l
		}
		d := max(time.Duration(float64(cpuCFSPeriod)*q), minCPUCFSQuota)
		quota = strconv.FormatInt(int64(d/time.Microsecond), 10)
	}
	return writeControl(dir, "cpu.cfs_quota_us", quota)
}

// writeControl is cgroups::write through stout's os::write: a failure is "Failed to update
// '<control>': " and the error's strerror text.
func writeControl(dir, control, value string) error {
	err := os.WriteFile(filepath.Join(dir, control), []byte(value), 0o644)
	if err == nil {
		return nil
	}
	text := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		// glibc's strerror, which Go's errno texts follow without the capital.
		text = errno.Error()
		if text != "" {
			text = strings.ToUpper(text[:1]) + text[1:]
		}
	}
	return fmt.Errorf("Failed to update '%s': %s", control, text)
}

// Usage reports cpuacct's user and system time, the CFS throttling with --cgroups_enable_cfs, the
// process and thread counts with --cgroups_cpu_enable_pids_and_tids_count, and the cpu limits.
func (i *CgroupsCPU) Usage(ctx context.Context, c *Container, st *mesos.ResourceStatistics) error {
	cpuLimitStatistics(c, i.flags.EnableCFS, st)
	info := i.info(c)
	if info == nil {
		if i.findInfo(c.ID) != nil {
			return nil // a nested container sharing its parent's cgroups has no usage of its own
		}
		return errors.New("Unknown container")
	}
	if i.flags.EnableCFS {
		stat, err := readStat(filepath.Join(i.path(cgroup1.Cpu, info.cgroup), "cpu.stat"))
		if err != nil {
			return fmt.Errorf("Failed to read 'cpu.stat': %w", err)
		}
		if v, ok := stat["nr_periods"]; ok {
			n := uint32(v)
			st.CPUsNrPeriods = &n
		}
		if v, ok := stat["nr_throttled"]; ok {
			n := uint32(v)
			st.CPUsNrThrottled = &n
		}
		if v, ok := stat["throttled_time"]; ok {
			s := time.Duration(v).Seconds()
			st.CPUsThrottledTimeSecs = &s
		}
	}
	if i.flags.CPUEnablePidsAndTidsCount {
		procs, err := info.cg.Processes(cgroup1.Cpuacct, false)
		if err != nil {
			return fmt.Errorf("Failed to get number of processes: %w", err)
		}
		tasks, err := info.cg.Tasks(cgroup1.Cpuacct, false)
		if err != nil {
			return fmt.Errorf("Failed to get number of threads: %w", err)
		}
		np, nt := uint32(len(procs)), uint32(len(tasks))
		st.Processes, st.Threads = &np, &nt
	}
	stat, err := readStat(filepath.Join(i.path(cgroup1.Cpuacct, info.cgroup), "cpuacct.stat"))
	if err != nil {
		return fmt.Errorf("Failed to read 'cpuacct.stat': %w", err)
	}
	user, uok := stat["user"]
	system, sok := stat["system"]
	if uok && sok {
		u, s := float64(user)/clockTicks, float64(system)/clockTicks
		st.CPUsUserTimeSecs, st.CPUsSystemTimeSecs = &u, &s
	}
	return nil
}

// Cleanup kills what is left in the container's cgroups (and the cgroups nested in them) and removes
// them. Idempotent.
func (i *CgroupsCPU) Cleanup(ctx context.Context, c *Container) error {
	info := i.info(c)
	if info == nil {
		return nil
	}
	if err := i.destroy(ctx, info.cgroup); err != nil {
		return err
	}
	i.forget(info)
	return nil
}

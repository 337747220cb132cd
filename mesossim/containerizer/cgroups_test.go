package containerizer

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// cgroupsTestFlags skips without root or without the cgroup v1 hierarchies, and gives a --cgroups_root
// of the test's own (other tests may use "mesos" at the same time) that must be empty at the end.
func cgroupsTestFlags(t testing.TB) CgroupsFlags {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cgroups isolators need root")
	}
	for _, s := range []string{"cpu", "cpuacct", "memory"} {
		if ok, err := cgroupV1Mounted(filepath.Join("/sys/fs/cgroup", s), s); err != nil || !ok {
			t.Skipf("cgroup v1 hierarchy /sys/fs/cgroup/%s is absent (%v)", s, err)
		}
	}
	flags := DefaultCgroupsFlags()
	flags.Root = fmt.Sprintf("kubemesos-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	t.Cleanup(func() {
		for _, s := range []string{"cpu", "cpuacct", "memory"} {
			dir := filepath.Join(flags.Hierarchy, s, flags.Root)
			left, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs"))
			if len(left) > 0 {
				t.Errorf("cgroups left behind in %s: %v", dir, left)
				for _, p := range left {
					destroyCgroup(context.Background(), filepath.Dir(p))
				}
			}
			if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
				t.Errorf("removing %s: %v", dir, err)
			}
		}
	})
	return flags
}

func cgroupsPair(t testing.TB, flags CgroupsFlags) (*CgroupsCPU, *CgroupsMem) {
	t.Helper()
	cpu, err := NewCgroupsCPU(flags)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := NewCgroupsMem(flags)
	if err != nil {
		t.Fatal(err)
	}
	return cpu, mem
}

func scalars(kv ...any) []mesos.Resource {
	var out []mesos.Resource
	for i := 0; i < len(kv); i += 2 {
		out = append(out, mesos.Resource{Name: kv[i].(string), Type: mesos.SCALAR.Enum(),
			Scalar: &mesos.Value_Scalar{Value: kv[i+1].(float64)}})
	}
	return out
}

func cgID(values ...string) mesos.ContainerID {
	var id *mesos.ContainerID
	for _, v := range values {
		id = &mesos.ContainerID{Value: v, Parent: id}
	}
	return *id
}

// gated is a process started by the test that waits on its stdin before running script, so that it can
// be isolated first, as the launch helper is.
type gated struct {
	cmd     *exec.Cmd
	release io.WriteCloser
	done    chan error
}

func startGated(t testing.TB, script string) *gated {
	t.Helper()
	cmd := exec.Command("sh", "-c", "read x; "+script)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gated{cmd: cmd, release: w, done: make(chan error, 1)}
	go func() { g.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-g.done
	})
	return g
}

func (g *gated) go_(t testing.TB) {
	t.Helper()
	if _, err := g.release.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
}

func prepareAll(t testing.TB, c *Container, isos ...Isolator) {
	t.Helper()
	for _, iso := range isos {
		if err := iso.Prepare(context.Background(), c, &LaunchInfo{}); err != nil {
			t.Fatalf("%s: Prepare: %v", iso.Name(), err)
		}
	}
}

func isolateAll(t testing.TB, c *Container, isos ...Isolator) {
	t.Helper()
	for _, iso := range isos {
		if err := iso.Isolate(context.Background(), c); err != nil {
			t.Fatalf("%s: Isolate: %v", iso.Name(), err)
		}
	}
}

func cleanupAll(t testing.TB, c *Container, isos ...Isolator) {
	t.Helper()
	for _, iso := range isos {
		if err := iso.Cleanup(context.Background(), c); err != nil {
			t.Fatalf("%s: Cleanup: %v", iso.Name(), err)
		}
	}
}

func readControl(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func procsOf(t testing.TB, path string) []int {
	t.Helper()
	pids, err := cgroupProcs(path)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

func containsPid(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

func TestCgroupPathNestsAsMesos(t *testing.T) {
	if got := CgroupPath("mesos", cgID("p")); got != "mesos/p" {
		t.Errorf("top-level: %q", got)
	}
	if got := CgroupPath("mesos", cgID("p", "c")); got != "mesos/p/mesos/c" {
		t.Errorf("nested: %q", got)
	}
	if got := containerIDString(cgID("p", "c")); got != "p.c" {
		t.Errorf("id: %q", got)
	}
	for b, want := range map[uint64]string{0: "0B", 1000: "1000B", 32 << 20: "32MB", 33554431: "33554431B", 4096: "4KB", 2 << 30: "2GB"} {
		if got := formatBytes(b); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", b, got, want)
		}
	}
}

func TestCgroupsRefuseWithoutCgroupV1OrRoot(t *testing.T) {
	euid := geteuid
	geteuid = func() int { return 1000 }
	_, err := NewCgroupsCPU(DefaultCgroupsFlags())
	geteuid = euid
	if err == nil || err.Error() != "Failed to prepare hierarchy for the subsystem 'cpu': Using cgroups requires root permissions" {
		t.Fatalf("not root: %v", err)
	}
	if os.Geteuid() != 0 {
		return
	}
	flags := DefaultCgroupsFlags()
	flags.Hierarchy = t.TempDir()
	_, err = NewCgroupsMem(flags)
	want := "Failed to prepare hierarchy for the subsystem 'memory': '" + flags.Hierarchy + "/memory' is not a cgroup v1 hierarchy " +
		"with the 'memory' subsystem attached (these isolators need cgroup v1 and do not mount hierarchies)"
	if err == nil || err.Error() != want {
		t.Fatalf("no hierarchy: %v", err)
	}
	if ok, _ := cgroupV1Mounted("/sys/fs/cgroup/unified", "memory"); !ok {
		// A cgroup2 mount is no cgroup v1 hierarchy.
		if err := os.Symlink("/sys/fs/cgroup/unified", filepath.Join(flags.Hierarchy, "memory")); err != nil {
			t.Fatal(err)
		}
		if _, err = NewCgroupsMem(flags); err == nil || err.Error() != want {
			t.Fatalf("cgroup2: %v", err)
		}
	}
	if err := os.Mkdir(filepath.Join(flags.Hierarchy, "cpu"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = NewCgroupsCPU(flags)
	if err == nil || !strings.Contains(err.Error(), "is not a cgroup v1 hierarchy with the 'cpu' subsystem attached") {
		t.Fatalf("plain directory: %v", err)
	}
}

func TestCgroupsFactoriesAreRegistered(t *testing.T) {
	flags := cgroupsTestFlags(t)
	isos, err := CreateIsolators(Flags{Isolation: "cgroups/cpu,cgroups/mem", CgroupsRoot: flags.Root, CgroupsEnableCFS: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(isos) != 2 || isos[0].Name() != "cgroups/cpu" || isos[1].Name() != "cgroups/mem" {
		t.Fatalf("%v", isos)
	}
	if !isos[0].(*CgroupsCPU).flags.EnableCFS || isos[0].(*CgroupsCPU).flags.Root != flags.Root {
		t.Errorf("flags not passed: %+v", isos[0].(*CgroupsCPU).flags)
	}
	if DefaultCgroupsFlags().Root != "mesos" || DefaultCgroupsFlags().Hierarchy != "/sys/fs/cgroup" {
		t.Errorf("Mesos' defaults: %+v", DefaultCgroupsFlags())
	}
}

func TestCgroupsMemOOMKillIsMesosLimitation(t *testing.T) {
	flags := cgroupsTestFlags(t)
	_, mem := cgroupsPair(t, flags)
	c := &Container{ID: cgID("oom"), Resources: scalars("cpus", 0.1, "mem", 32.0)}
	prepareAll(t, c, mem)
	path := filepath.Join(flags.Hierarchy, "memory", flags.Root, "oom")
	if got := readControl(t, filepath.Join(path, "memory.limit_in_bytes")); got != strconv.Itoa(32<<20) {
		t.Fatalf("memory.limit_in_bytes = %s", got)
	}
	if got := readControl(t, filepath.Join(path, "memory.soft_limit_in_bytes")); got != strconv.Itoa(32<<20) {
		t.Fatalf("memory.soft_limit_in_bytes = %s", got)
	}
	ch := mem.Watch(c)
	if ch == nil {
		t.Fatal("no watch channel")
	}
	// tail keeps /dev/zero's one endless line in memory.
	p := startGated(t, "exec tail /dev/zero")
	c.Pid = p.cmd.Process.Pid
	isolateAll(t, c, mem)
	if !containsPid(procsOf(t, path), c.Pid) {
		t.Fatal("pid not in the memory cgroup")
	}
	p.go_(t)

	var l Limitation
	select {
	case l = <-ch:
	case <-time.After(60 * time.Second):
		t.Fatal("no limitation")
	}
	if l.Reason != mesos.REASON_CONTAINER_LIMITATION_MEMORY {
		t.Errorf("reason %v", l.Reason)
	}
	prefix := "Memory limit exceeded: Requested: 32MB Maximum Used: 32MB\n\nMEMORY STATISTICS: \n"
	if !strings.HasPrefix(l.Message, prefix) || !strings.Contains(l.Message, "\ntotal_rss ") {
		t.Errorf("message %q", l.Message)
	}
	if len(l.Resources) != 1 || l.Resources[0].Name != "mem" || l.Resources[0].GetScalar().GetValue() != 32 {
		t.Errorf("resources %v", l.Resources)
	}
	err := <-p.done
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("process ended with %v, want the OOM killer's SIGKILL", err)
	}
	p.done <- err // for the test's cleanup
	if !strings.Contains(readControl(t, filepath.Join(path, "memory.oom_control")), "oom_kill 1") {
		t.Error("kernel did not count an OOM kill")
	}

	var st mesos.ResourceStatistics
	if err := mem.Usage(context.Background(), c, &st); err != nil {
		t.Fatal(err)
	}
	if st.GetMemLimitBytes() != 32<<20 || st.GetMemSoftLimitBytes() != 32<<20 || st.MemTotalBytes == nil || st.MemRSSBytes == nil {
		t.Errorf("usage %+v", st)
	}
	if st.MemLowPressureCounter == nil || st.MemCriticalPressureCounter == nil {
		t.Errorf("no pressure counters: %+v", st)
	}
	t.Logf("pressure events low %d medium %d critical %d", st.GetMemLowPressureCounter(), st.GetMemMediumPressureCounter(), st.GetMemCriticalPressureCounter())

	cleanupAll(t, c, mem)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("cgroup left: %v", err)
	}
	cleanupAll(t, c, mem) // idempotent
}

// Removing a cgroup signals its OOM eventfd: that must not read as an OOM.
func TestCgroupsMemCleanupIsNoLimitation(t *testing.T) {
	flags := cgroupsTestFlags(t)
	_, mem := cgroupsPair(t, flags)
	c := &Container{ID: cgID("quiet"), Resources: scalars("mem", 64.0)}
	prepareAll(t, c, mem)
	ch := mem.Watch(c)
	cleanupAll(t, c, mem)
	select {
	case l := <-ch:
		t.Fatalf("limitation after cleanup: %+v", l)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestCgroupsCPUQuotaHoldsBusyLoopNearLimit(t *testing.T) {
	flags := cgroupsTestFlags(t)
	cpu, _ := cgroupsPair(t, flags)
	c := &Container{ID: cgID("busy"), Resources: scalars("cpus", 0.1, "mem", 32.0),
		Limits: map[string]mesos.Value_Scalar{"cpus": {Value: 0.1}}}
	prepareAll(t, c, cpu)
	cpuPath := filepath.Join(flags.Hierarchy, "cpu", flags.Root, "busy")
	for file, want := range map[string]string{"cpu.shares": "102", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "10000"} {
		if got := readControl(t, filepath.Join(cpuPath, file)); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}
	p := startGated(t, "while :; do :; done")
	c.Pid = p.cmd.Process.Pid
	isolateAll(t, c, cpu)
	for _, s := range []string{"cpu", "cpuacct"} {
		if !containsPid(procsOf(t, filepath.Join(flags.Hierarchy, s, flags.Root, "busy")), c.Pid) {
			t.Fatalf("pid not in the %s cgroup", s)
		}
	}
	p.go_(t)

	usage := func() (float64, time.Time) {
		var st mesos.ResourceStatistics
		if err := cpu.Usage(context.Background(), c, &st); err != nil {
			t.Fatal(err)
		}
		return st.GetCPUsUserTimeSecs() + st.GetCPUsSystemTimeSecs(), time.Now()
	}
	time.Sleep(200 * time.Millisecond) // past the shell's start
	u0, t0 := usage()
	time.Sleep(2 * time.Second)
	u1, t1 := usage()
	rate := (u1 - u0) / t1.Sub(t0).Seconds()
	t.Logf("busy loop with a 0.1 cpu limit used %.3f cpu (cpuacct)", rate)
	if rate <= 0 || rate >= 0.3 {
		t.Errorf("cpu rate %.3f, want about 0.1", rate)
	}
	var st mesos.ResourceStatistics
	if err := cpu.Usage(context.Background(), c, &st); err != nil {
		t.Fatal(err)
	}
	if st.GetCPUsLimit() != 0.1 || st.GetCPUsSoftLimit() != 0.1 {
		t.Errorf("limits %+v", st)
	}
	if st.CPUsNrThrottled != nil {
		t.Errorf("cpu.stat reported without --cgroups_enable_cfs: %+v", st)
	}
	cleanupAll(t, c, cpu)
}

func TestCgroupsCPUEnableCFSQuotaFromRequestAndThrottling(t *testing.T) {
	flags := cgroupsTestFlags(t)
	flags.EnableCFS = true
	cpu, _ := cgroupsPair(t, flags)
	c := &Container{ID: cgID("cfs"), Resources: scalars("cpus", 0.2)}
	prepareAll(t, c, cpu)
	cpuPath := filepath.Join(flags.Hierarchy, "cpu", flags.Root, "cfs")
	if got := readControl(t, filepath.Join(cpuPath, "cpu.cfs_quota_us")); got != "20000" {
		t.Errorf("quota from the request: %s", got)
	}
	p := startGated(t, "while :; do :; done")
	c.Pid = p.cmd.Process.Pid
	isolateAll(t, c, cpu)
	p.go_(t)
	time.Sleep(500 * time.Millisecond)
	var st mesos.ResourceStatistics
	if err := cpu.Usage(context.Background(), c, &st); err != nil {
		t.Fatal(err)
	}
	if st.GetCPUsNrThrottled() == 0 || st.GetCPUsNrPeriods() == 0 || st.GetCPUsThrottledTimeSecs() <= 0 || st.GetCPUsLimit() != 0.2 {
		t.Errorf("throttling %+v", st)
	}

	// Mesos' update: shares always; an infinite limit lifts the quota; a tiny one is at least 1ms.
	up := func(res []mesos.Resource, limits map[string]mesos.Value_Scalar, shares, quota string) {
		t.Helper()
		if err := cpu.Update(context.Background(), c, res, limits); err != nil {
			t.Fatal(err)
		}
		if got := readControl(t, filepath.Join(cpuPath, "cpu.shares")); got != shares {
			t.Errorf("shares %s, want %s", got, shares)
		}
		if got := readControl(t, filepath.Join(cpuPath, "cpu.cfs_quota_us")); got != quota {
			t.Errorf("quota %s, want %s", got, quota)
		}
	}
	up(scalars("cpus", 2.0), nil, "2048", "200000")
	up(scalars("cpus", 0.001), nil, "2", "1000")
	up(scalars("cpus", 1.0), map[string]mesos.Value_Scalar{"cpus": {Value: math.Inf(1)}}, "1024", "-1")
	revocable := scalars("cpus", 1.0)
	revocable[0].Revocable = &mesos.Resource_RevocableInfo{}
	up(revocable, nil, "10", "100000")
	if err := cpu.Update(context.Background(), c, scalars("mem", 1.0), nil); err == nil ||
		err.Error() != "Failed to update subsystems: Failed to update subsystem 'cpu': No cpus resource given" {
		t.Errorf("no cpus: %v", err)
	}
	cleanupAll(t, c, cpu)
}

func TestCgroupsMemUpdateRaisesHardLimitOnly(t *testing.T) {
	flags := cgroupsTestFlags(t)
	_, mem := cgroupsPair(t, flags)
	c := &Container{ID: cgID("upd"), Resources: scalars("mem", 16.0)}
	prepareAll(t, c, mem)
	path := filepath.Join(flags.Hierarchy, "memory", flags.Root, "upd")
	check := func(soft, hard int64) {
		t.Helper()
		if got := readControl(t, filepath.Join(path, "memory.soft_limit_in_bytes")); got != strconv.FormatInt(soft, 10) {
			t.Errorf("soft %s, want %d", got, soft)
		}
		if got := readControl(t, filepath.Join(path, "memory.limit_in_bytes")); got != strconv.FormatInt(hard, 10) {
			t.Errorf("hard %s, want %d", got, hard)
		}
	}
	check(32<<20, 32<<20) // at least 32MB
	up := func(mb float64, limits map[string]mesos.Value_Scalar) {
		t.Helper()
		if err := mem.Update(context.Background(), c, scalars("mem", mb), limits); err != nil {
			t.Fatal(err)
		}
	}
	up(128, nil)
	check(128<<20, 128<<20)
	up(64, nil) // lowering keeps the hard limit
	check(64<<20, 128<<20)
	up(64, map[string]mesos.Value_Scalar{"mem": {Value: 256}})
	check(64<<20, 256<<20)
	up(64, map[string]mesos.Value_Scalar{"mem": {Value: math.Inf(1)}})
	unlimited, _ := strconv.ParseInt(readControl(t, filepath.Join(filepath.Dir(path), "memory.limit_in_bytes")), 10, 64)
	check(64<<20, unlimited)

	var st mesos.ResourceStatistics
	if err := mem.Usage(context.Background(), c, &st); err != nil {
		t.Fatal(err)
	}
	// Reported from the container's resources and limits (the launch's here: the containerizer
	// records an Update's), as Mesos' _usage does: the request, not the 32MB floor.
	if st.GetMemLimitBytes() != 16<<20 || st.GetMemSoftLimitBytes() != 16<<20 {
		t.Errorf("limits %+v", st)
	}
	if err := mem.Update(context.Background(), &Container{ID: cgID("nope")}, scalars("mem", 1.0), nil); err == nil || err.Error() != "Unknown container" {
		t.Errorf("unknown: %v", err)
	}
	cleanupAll(t, c, mem)
}

func TestCgroupsNestedContainersNestAsMesos(t *testing.T) {
	flags := cgroupsTestFlags(t)
	cpu, mem := cgroupsPair(t, flags)
	isos := []Isolator{cpu, mem}
	no := false
	parent := &Container{ID: cgID("p"), Resources: scalars("cpus", 1.0, "mem", 256.0)}
	own := &Container{ID: cgID("p", "own"), Parent: parent, Resources: scalars("cpus", 0.5, "mem", 64.0),
		Limits: map[string]mesos.Value_Scalar{"mem": {Value: 96}},
		Info:   &mesos.ContainerInfo{LinuxInfo: &mesos.LinuxInfo{ShareCgroups: &no}}}
	shared := &Container{ID: cgID("p", "shared"), Parent: parent, Resources: scalars("cpus", 0.5, "mem", 64.0)}
	prepareAll(t, parent, isos...)
	prepareAll(t, own, isos...)
	prepareAll(t, shared, isos...)

	for _, s := range []string{"cpu", "cpuacct", "memory"} {
		if _, err := os.Stat(filepath.Join(flags.Hierarchy, s, flags.Root, "p", "mesos", "own")); err != nil {
			t.Errorf("%s: no own cgroup <root>/p/mesos/own: %v", s, err)
		}
		if _, err := os.Stat(filepath.Join(flags.Hierarchy, s, flags.Root, "p", "mesos", "shared")); !os.IsNotExist(err) {
			t.Errorf("%s: a cgroup for the sharing container: %v", s, err)
		}
	}
	ownMem := filepath.Join(flags.Hierarchy, "memory", flags.Root, "p", "mesos", "own")
	if got := readControl(t, filepath.Join(ownMem, "memory.limit_in_bytes")); got != strconv.Itoa(96<<20) {
		t.Errorf("nested limit %s", got)
	}
	if got := readControl(t, filepath.Join(flags.Hierarchy, "cpu", flags.Root, "p", "mesos", "own", "cpu.shares")); got != "512" {
		t.Errorf("nested shares %s", got)
	}
	if mem.Watch(shared) != nil || mem.Watch(own) == nil {
		t.Error("watch: the sharing container has none, the one with its own cgroup has one")
	}

	pp := startGated(t, "sleep 600")
	po := startGated(t, "sleep 600")
	ps := startGated(t, "sleep 600")
	parent.Pid, own.Pid, shared.Pid = pp.cmd.Process.Pid, po.cmd.Process.Pid, ps.cmd.Process.Pid
	isolateAll(t, parent, isos...)
	isolateAll(t, own, isos...)
	isolateAll(t, shared, isos...)
	for _, s := range []string{"cpu", "cpuacct", "memory"} {
		pdir := filepath.Join(flags.Hierarchy, s, flags.Root, "p")
		if procs := procsOf(t, pdir); !containsPid(procs, parent.Pid) || !containsPid(procs, shared.Pid) || containsPid(procs, own.Pid) {
			t.Errorf("%s: parent cgroup holds %v", s, procs)
		}
		if procs := procsOf(t, filepath.Join(pdir, "mesos", "own")); !containsPid(procs, own.Pid) {
			t.Errorf("%s: own cgroup holds %v", s, procs)
		}
	}
	// Burstable nested container (soft 64MB < hard 96MB): Mesos' OOM score adjustment.
	if adj := readControl(t, fmt.Sprintf("/proc/%d/oom_score_adj", own.Pid)); adj == "0" {
		t.Error("no oom_score_adj for a burstable nested container")
	}
	var st mesos.ResourceStatistics
	if err := mem.Usage(context.Background(), shared, &st); err != nil || st.GetMemLimitBytes() != 64<<20 || st.MemTotalBytes != nil {
		t.Errorf("usage of the sharing container: %v %+v", err, st)
	}

	second := &Container{ID: cgID("p", "own", "x"), Parent: own,
		Info: &mesos.ContainerInfo{LinuxInfo: &mesos.LinuxInfo{ShareCgroups: &no}}, Resources: scalars("cpus", 0.1, "mem", 32.0)}
	if err := cpu.Prepare(context.Background(), second, &LaunchInfo{}); err == nil {
		t.Error("a second-level nested container got its own cgroups")
	}
	cleanupAll(t, second, isos...)

	// The parent's cleanup kills what is left in its cgroups and the nested ones, and removes them all.
	cleanupAll(t, shared, isos...)
	cleanupAll(t, parent, isos...)
	for _, p := range []*gated{pp, po, ps} {
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(10 * time.Second):
			t.Fatal("process survived the cleanup")
		}
	}
	for _, s := range []string{"cpu", "cpuacct", "memory"} {
		if _, err := os.Stat(filepath.Join(flags.Hierarchy, s, flags.Root, "p")); !os.IsNotExist(err) {
			t.Errorf("%s: parent cgroup left: %v", s, err)
		}
	}
	cleanupAll(t, own, isos...) // already gone with its parent
}

func TestCgroupsPrepareFailureIsCleanedUp(t *testing.T) {
	flags := cgroupsTestFlags(t)
	cpu, mem := cgroupsPair(t, flags)
	c := &Container{ID: cgID("nocpus"), Resources: scalars("mem", 32.0)}
	err := cpu.Prepare(context.Background(), c, &LaunchInfo{})
	if err == nil || err.Error() != "Failed to update subsystems: Failed to update subsystem 'cpu': No cpus resource given" {
		t.Fatalf("prepare: %v", err)
	}
	c2 := &Container{ID: cgID("nomem"), Resources: scalars("cpus", 1.0)}
	if err := mem.Prepare(context.Background(), c2, &LaunchInfo{}); err == nil ||
		err.Error() != "Failed to update subsystems: Failed to update subsystem 'memory': No memory resource given" {
		t.Fatalf("prepare: %v", err)
	}
	cleanupAll(t, c, cpu)
	cleanupAll(t, c2, mem)
	// The root's emptiness is checked by cgroupsTestFlags' cleanup.

	c3 := &Container{ID: cgID("taken"), Resources: scalars("mem", 32.0)}
	taken := filepath.Join(flags.Hierarchy, "memory", flags.Root, "taken")
	if err := os.Mkdir(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mem.Prepare(context.Background(), c3, &LaunchInfo{}); err == nil || err.Error() != "The cgroup at '"+taken+"' already exists" {
		t.Errorf("existing cgroup: %v", err)
	}
	if err := mem.Prepare(context.Background(), c3, &LaunchInfo{}); err == nil || err.Error() != "Container has already been prepared" {
		t.Errorf("prepared twice: %v", err)
	}
	cleanupAll(t, c3, mem)
}

func TestCgroupsRootfsContainerGetsItsCgroupsMounted(t *testing.T) {
	flags := cgroupsTestFlags(t)
	cpu, mem := cgroupsPair(t, flags)
	c := &Container{ID: cgID("r"), Rootfs: "/tmp/rootfs", Resources: scalars("cpus", 1.0, "mem", 32.0)}
	li := &LaunchInfo{}
	for _, iso := range []Isolator{cpu, mem} {
		if err := iso.Prepare(context.Background(), c, li); err != nil {
			t.Fatal(err)
		}
	}
	if len(li.CloneNamespaces) != 1 || li.CloneNamespaces[0] != NamespaceMount || len(li.Mounts) != 3 {
		t.Fatalf("%+v", li)
	}
	m := li.Mounts[2]
	if m.Source != filepath.Join(flags.Hierarchy, "memory", flags.Root, "r") || m.Target != "/tmp/rootfs/sys/fs/cgroup/memory" || !m.CreateTarget {
		t.Errorf("%+v", m)
	}
	cleanupAll(t, c, cpu, mem)
}

func TestCgroupsChurnLeavesNoCgroup(t *testing.T) {
	flags := cgroupsTestFlags(t)
	cpu, mem := cgroupsPair(t, flags)
	for i := 0; i < 50; i++ {
		c := &Container{ID: cgID(fmt.Sprintf("churn-%d", i)), Resources: scalars("cpus", 0.1, "mem", 32.0)}
		prepareAll(t, c, cpu, mem)
		p := startGated(t, "sleep 600")
		c.Pid = p.cmd.Process.Pid
		isolateAll(t, c, cpu, mem)
		p.go_(t)
		// Cleanup finds the process still running: it kills it.
		cleanupAll(t, c, cpu, mem)
		err := <-p.done
		p.done <- err
	}
	for _, s := range []string{"cpu", "cpuacct", "memory"} {
		entries, err := os.ReadDir(filepath.Join(flags.Hierarchy, s, flags.Root))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				t.Errorf("%s: cgroup %s left", s, e.Name())
			}
		}
	}
}

func BenchmarkCgroupsCreateCleanup(b *testing.B) {
	flags := cgroupsTestFlags(b)
	cpu, mem := cgroupsPair(b, flags)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := &Container{ID: cgID(fmt.Sprintf("bench-%d", i)), Resources: scalars("cpus", 0.1, "mem", 32.0)}
		prepareAll(b, c, cpu, mem)
		cleanupAll(b, c, cpu, mem)
	}
}

// Through the containerizer: the OOM kill ends the container with Mesos' limitation (what the agent
// turns into TASK_FAILED / the WAIT_NESTED_CONTAINER reason), for a nested container with its own
// cgroup without touching its parent.
func TestCgroupsOOMKillThroughContainerizer(t *testing.T) {
	flags := cgroupsTestFlags(t)
	z := newTestContainerizer(t, "filesystem/linux,namespaces/pid,cgroups/cpu,cgroups/mem", func(f *Flags) { f.CgroupsRoot = flags.Root })

	top, err := launch(t, z, &Container{ID: cgID("top"), Command: shell("exec tail /dev/zero"),
		Resources: scalars("cpus", 0.1, "mem", 32.0)})
	if err != nil {
		t.Fatal(err)
	}
	term, _ := wait(t, z, top)
	if term.Limitation == nil || term.Limitation.Reason != mesos.REASON_CONTAINER_LIMITATION_MEMORY ||
		!strings.HasPrefix(term.Limitation.Message, "Memory limit exceeded: Requested: 32MB Maximum Used: 32MB\n") {
		t.Fatalf("top-level termination %+v, stderr %s", term, stderrOf(top))
	}

	no := false
	parent := &Container{ID: cgID("parent"), Command: shell("exec sleep 600"), Resources: scalars("cpus", 0.5, "mem", 256.0)}
	pl, err := launch(t, z, parent)
	if err != nil {
		t.Fatal(err)
	}
	child := &Container{ID: cgID("parent", "child"), Parent: parent, Command: shell("exec tail /dev/zero"),
		Resources: scalars("cpus", 0.1, "mem", 32.0),
		Info:      &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: &mesos.LinuxInfo{ShareCgroups: &no}}}
	cl, err := launch(t, z, child)
	if err != nil {
		t.Fatal(err)
	}
	term, _ = wait(t, z, cl)
	if term.Limitation == nil || term.Limitation.Reason != mesos.REASON_CONTAINER_LIMITATION_MEMORY {
		t.Fatalf("nested termination %+v", term)
	}
	select {
	case <-pl.w.Done:
		t.Fatal("the parent ended with its nested container's OOM")
	default:
	}
	if _, err := os.Stat(filepath.Join(flags.Hierarchy, "memory", flags.Root, "parent", "mesos", "child")); !os.IsNotExist(err) {
		t.Errorf("nested cgroup left: %v", err)
	}
	if err := z.Destroy(context.Background(), parent.Key); err != nil {
		t.Fatal(err)
	}
}

// 200 containers (a pod's executor-like parent and a nested container with its own cgroups each, the
// way kubemesos runs pods) churned through the containerizer leave no cgroup behind.
func TestCgroupsContainerizerChurnLeavesNoCgroup(t *testing.T) {
	flags := cgroupsTestFlags(t)
	z := newTestContainerizer(t, "cgroups/cpu,cgroups/mem", func(f *Flags) { f.CgroupsRoot = flags.Root })
	no := false
	for i := 0; i < 100; i++ {
		parent := &Container{ID: cgID(fmt.Sprintf("pod-%d", i)), Command: shell("exec sleep 600"), Resources: scalars("cpus", 0.1, "mem", 32.0)}
		if _, err := launch(t, z, parent); err != nil {
			t.Fatal(err)
		}
		child := &Container{ID: cgID(parent.ID.Value, "c"), Parent: parent, Command: shell("sleep 600 & exec sleep 600"),
			Resources: scalars("cpus", 0.1, "mem", 32.0),
			Info:      &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: &mesos.LinuxInfo{ShareCgroups: &no}}}
		if _, err := launch(t, z, child); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{child.Key, parent.Key} {
			if err := z.Destroy(context.Background(), key); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range []string{"cpu", "cpuacct", "memory"} {
		entries, err := os.ReadDir(filepath.Join(flags.Hierarchy, s, flags.Root))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				t.Errorf("%s: cgroup %s left", s, e.Name())
			}
		}
	}
}

func TestCgroupsMemLimitSwapKeepsMemswWithLimit(t *testing.T) {
	flags := cgroupsTestFlags(t)
	flags.LimitSwap = true
	_, mem := cgroupsPair(t, flags)
	c := &Container{ID: cgID("swap"), Resources: scalars("mem", 64.0)}
	prepareAll(t, c, mem)
	path := filepath.Join(flags.Hierarchy, "memory", flags.Root, "swap")
	check := func(want int64) {
		t.Helper()
		for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
			if got := readControl(t, filepath.Join(path, f)); got != strconv.FormatInt(want, 10) {
				t.Errorf("%s = %s, want %d", f, got, want)
			}
		}
	}
	check(64 << 20)
	// Raising needs memsw first: the kernel refuses limit_in_bytes above memsw.limit_in_bytes.
	if err := mem.Update(context.Background(), c, scalars("mem", 128.0), nil); err != nil {
		t.Fatal(err)
	}
	check(128 << 20)
	var st mesos.ResourceStatistics
	if err := mem.Usage(context.Background(), c, &st); err != nil || st.MemTotalMemswBytes == nil {
		t.Errorf("memsw usage: %v %+v", err, st)
	}
	cleanupAll(t, c, mem)
}

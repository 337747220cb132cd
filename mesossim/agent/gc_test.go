package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
	testclock "k8s.io/utils/clock/testing"
)

func logged(hook *logtest.Hook, msg string) bool {
	for _, e := range hook.AllEntries() {
		if e.Message == msg {
			return true
		}
	}
	return false
}

// gcScheduled is the gc schedule: each path with its time left.
func (a *Agent) gcScheduled() map[string]time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]time.Duration{}
	for p, e := range a.gc.paths {
		out[p] = e.at.Sub(a.clock.Now())
	}
	return out
}

func (a *Agent) setDiskUsage(u float64) {
	a.mu.Lock()
	a.gc.usage = func(string) (float64, error) { return u, nil }
	a.mu.Unlock()
}

func (a *Agent) diskChecks() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gc.diskChecks
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func sortedKeys(m map[string]time.Duration) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// A terminated executor whose tasks are complete has its sandbox, its meta run directory and its
// executor directories (work and meta) removed gc_delay after, and a complete task of a live
// executor its meta task directory; the framework's directories stay while it has a live executor.
func TestGCRemovesTerminatedExecutorDirectories(t *testing.T) {
	clk := testclock.NewFakeClock(time.Now())
	m := &fakeMaster{autoAck: true}
	log, hook := testLog(t)
	a := newTestAgent(t, m, func(c *Config) {
		c.Clock, c.Log, c.GCDelay, c.DiskWatchInterval = clk, log, time.Hour, 1000*time.Hour
	})
	fw := testFramework(true)
	a.Launch(fw, processExecutor("live", nil), []mesos.TaskInfo{dataTask("t1", "wait"), dataTask("t2", "finish")}, false)
	waitFor(t, "t2 finished", func() bool { return len(m.states("t2")) == 2 })
	a.Launch(fw, nil, []mesos.TaskInfo{commandTask("c1", "echo out")}, false)
	waitFor(t, "c1 finished", func() bool { return len(m.states("c1")) == 3 })

	var live ExecutorState
	for _, e := range a.Executors() {
		if e.Info.ExecutorID.Value == "live" {
			live = e
		}
	}
	work := filepath.Join(a.cfg.WorkDir, "slaves", "agent-S0", "frameworks", "fw-1", "executors")
	meta := filepath.Join(a.cfg.WorkDir, "meta", "slaves", "agent-S0", "frameworks", "fw-1", "executors")
	waitFor(t, "c1's executor removed", func() bool { _, ok := a.gcScheduled()[filepath.Join(work, "c1")]; return ok })
	var run string
	runs, _ := os.ReadDir(filepath.Join(work, "c1", "runs"))
	for _, r := range runs {
		if r.Name() != "latest" {
			run = r.Name()
		}
	}
	sandbox := filepath.Join(work, "c1", "runs", run)
	if !exists(filepath.Join(sandbox, "stdout")) {
		t.Fatalf("no sandbox %s", sandbox)
	}
	// Touched when the executor is removed, so due in exactly gc_delay.
	touched := []string{filepath.Join(meta, "c1"), filepath.Join(meta, "c1", "runs", run), filepath.Join(work, "c1"), sandbox}
	// Complete tasks' checkpoints, by their modification time.
	tasks := []string{filepath.Join(meta, "c1", "runs", run, "tasks", "c1"), filepath.Join(meta, "live", "runs", live.ContainerID.Value, "tasks", "t2")}
	want := append(append([]string(nil), touched...), tasks...)
	sort.Strings(want)
	got := a.gcScheduled()
	if diff := cmp.Diff(want, sortedKeys(got)); diff != "" {
		t.Fatalf("scheduled (-want +got):\n%s", diff)
	}
	for _, p := range touched {
		if got[p] != time.Hour {
			t.Errorf("%s is due in %v, want gc_delay (1h)", p, got[p])
		}
	}
	if !logged(hook, "Scheduling '"+sandbox+"' for gc 1hrs in the future") {
		t.Errorf("no Mesos log line for scheduling the sandbox")
	}

	clk.Step(time.Hour - time.Second)
	if !exists(sandbox) {
		t.Fatalf("sandbox removed before gc_delay")
	}
	clk.Step(2 * time.Minute) // the task directory's mtime is the real one, a little later
	waitFor(t, "directories removed", func() bool {
		for _, p := range want {
			if exists(p) {
				return false
			}
		}
		return len(a.gcScheduled()) == 0
	})
	if !logged(hook, "Deleted '"+sandbox+"'") {
		t.Errorf("no Mesos log line for deleting the sandbox")
	}
	// The live executor's directories are untouched: its sandbox, its run, its other task.
	for _, p := range []string{live.Directory, filepath.Join(meta, "live", "runs", live.ContainerID.Value, "tasks", "t1", "task.info")} {
		if !exists(p) {
			t.Errorf("%s of the live executor was removed", p)
		}
	}
	a.Kill(*fw.ID, mesos.TaskID{Value: "t1"}, nil)
	waitFor(t, "t1 killed", func() bool { return len(m.states("t1")) == 2 })
}

// Above the headroom the disk watch removes what is older than gc_delay * (1 - headroom - usage)
// at once; younger directories wait.
func TestGCPrunesWhenTheDiskFills(t *testing.T) {
	clk := testclock.NewFakeClock(time.Now())
	m := &fakeMaster{autoAck: true}
	log, hook := testLog(t)
	a := newTestAgent(t, m, func(c *Config) {
		c.Clock, c.Log, c.GCDelay, c.DiskWatchInterval = clk, log, time.Hour, 31*time.Minute
	})
	a.setDiskUsage(0.4) // age: 1h * (1 - 0.1 - 0.4) = 30mins
	fw := testFramework(false)
	a.Launch(fw, processExecutor("keeper", nil), []mesos.TaskInfo{dataTask("k", "wait")}, false)
	waitFor(t, "k running", func() bool { return len(m.states("k")) == 1 })
	sandbox := func(id string) string {
		for p := range a.gcScheduled() {
			if strings.Contains(p, "/executors/"+id+"/runs/") {
				return p
			}
		}
		return ""
	}
	a.Launch(fw, nil, []mesos.TaskInfo{commandTask("old", "true")}, false)
	waitFor(t, "old's sandbox scheduled", func() bool { return sandbox("old") != "" })
	clk.Step(20 * time.Minute)
	a.Launch(fw, nil, []mesos.TaskInfo{commandTask("young", "true")}, false)
	waitFor(t, "young's sandbox scheduled", func() bool { return sandbox("young") != "" })
	oldDir, youngDir := sandbox("old"), sandbox("young")

	clk.Step(11 * time.Minute) // the disk check at 31mins: old is 31mins old, young 11mins
	waitFor(t, "old's directories removed", func() bool { return !exists(oldDir) && !exists(filepath.Dir(filepath.Dir(oldDir))) })
	if !exists(youngDir) {
		t.Errorf("young's sandbox (11mins old) was pruned")
	}
	for _, msg := range []string{"Current disk usage 40.00%. Max allowed age: 30mins", "Pruning directories with remaining removal time 29mins"} {
		if !logged(hook, msg) {
			t.Errorf("missing log line %q", msg)
		}
	}
	// Below the headroom younger directories stay.
	waitFor(t, "the next disk check armed", func() bool { return a.diskChecks() == 1 })
	a.setDiskUsage(0.1)        // max age 48mins
	clk.Step(31 * time.Minute) // young: 42mins old
	waitFor(t, "the second disk check", func() bool { return a.diskChecks() == 2 })
	if !exists(youngDir) || !logged(hook, "Current disk usage 10.00%. Max allowed age: 48mins") {
		t.Errorf("young's sandbox pruned below its max age")
	}
}

func TestGCAge(t *testing.T) {
	a := &Agent{cfg: Config{GCDelay: time.Hour}}
	h := 0.1
	a.cfg.GCDiskHeadroom = &h
	for usage, want := range map[float64]time.Duration{0: 54 * time.Minute, 0.4: 30 * time.Minute, 0.9: 0, 0.97: 0} {
		if got := a.gcAge(usage); got != want {
			t.Errorf("age at usage %v = %v, want %v", usage, got, want)
		}
	}
}

// A removed framework has its work and meta directories collected; a framework that comes back
// before they go has them unscheduled, and a new run of an executor keeps the executor's directory.
func TestGCFrameworkDirectories(t *testing.T) {
	clk := testclock.NewFakeClock(time.Now())
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) {
		c.Clock, c.GCDelay, c.DiskWatchInterval = clk, time.Hour, 1000*time.Hour
	})
	fw := testFramework(true)
	fwWork := filepath.Join(a.cfg.WorkDir, "slaves", "agent-S0", "frameworks", "fw-1")
	fwMeta := filepath.Join(a.cfg.WorkDir, "meta", "slaves", "agent-S0", "frameworks", "fw-1")

	a.Launch(fw, processExecutor("e", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	firstRun := a.Executors()[0].Directory
	a.ShutdownFramework(*fw.ID)
	waitFor(t, "framework directories scheduled", func() bool {
		s := a.gcScheduled()
		_, w := s[fwWork]
		_, m := s[fwMeta]
		return w && m
	})
	if s := a.gcScheduled(); s[fwWork] != time.Hour || s[fwMeta] != time.Hour {
		t.Errorf("framework directories due in %v and %v, want 1h", s[fwWork], s[fwMeta])
	}

	// Back before they go: the framework's and the executor's directories are unscheduled.
	clk.Step(30 * time.Minute)
	a.Launch(fw, processExecutor("e", nil), []mesos.TaskInfo{dataTask("t2", "wait")}, false)
	waitFor(t, "t2 running", func() bool { return len(m.states("t2")) == 1 })
	want := []string{firstRun, filepath.Join(fwMeta, "executors", "e", "runs", filepath.Base(firstRun))}
	sort.Strings(want)
	if diff := cmp.Diff(want, sortedKeys(a.gcScheduled())); diff != "" {
		t.Fatalf("scheduled after the framework came back (-want +got):\n%s", diff)
	}
	clk.Step(31 * time.Minute)
	waitFor(t, "the first run removed", func() bool { return !exists(firstRun) && len(a.gcScheduled()) == 0 })
	second := a.Executors()[0].Directory
	if !exists(second) || !exists(filepath.Join(fwMeta, "framework.info")) {
		t.Fatalf("the live run's directories were removed")
	}

	// Gone for good: everything of the framework goes.
	a.ShutdownFramework(*fw.ID)
	waitFor(t, "framework directories scheduled", func() bool { _, ok := a.gcScheduled()[fwWork]; return ok })
	clk.Step(time.Hour)
	waitFor(t, "framework directories removed", func() bool { return !exists(fwWork) && !exists(fwMeta) })
}

// After a restart the recovered agent schedules what the checkpoint says is over (a completed run,
// by its modification time) and never a live executor's directories.
func TestGCAfterRestart(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	cfg := restartConfig(t, m)
	log, hook := testLog(t)
	cfg.Log = log
	cfg.GCDelay = time.Hour
	a1 := startAgent(t, m, cfg)
	fw := testFramework(true)
	a1.Launch(fw, processExecutor("live", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	a1.Launch(fw, processExecutor("done", nil), []mesos.TaskInfo{dataTask("t2", "crash")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	// done's sandbox, run and executor directories, and t2's checkpoint.
	waitFor(t, "done's run scheduled", func() bool { return len(a1.gcScheduled()) == 5 })
	doneDirs := sortedKeys(a1.gcScheduled())
	var live ExecutorState
	for _, e := range a1.Executors() {
		live = e
	}

	cfg.ListenAddress = a1.Endpoint()
	a1.StopForRestart()
	time.Sleep(100 * time.Millisecond)
	cfg.GCDelay = 2 * time.Second // the next agent's flags: done's directories are due at once
	a2 := startAgent(t, m, cfg)
	<-a2.Recovered()
	a2.Reregistered()
	for p := range a2.gcScheduled() {
		if sort.SearchStrings(doneDirs, p) == len(doneDirs) || doneDirs[sort.SearchStrings(doneDirs, p)] != p {
			t.Errorf("%s scheduled after recovery, want only the completed run's %v", p, doneDirs)
		}
	}
	waitFor(t, "done's directories removed", func() bool {
		for _, p := range doneDirs {
			if exists(p) {
				return false
			}
		}
		return true
	})
	deleted := false
	for _, e := range hook.AllEntries() {
		deleted = deleted || strings.HasPrefix(e.Message, "Deleted '") && strings.Contains(e.Message, "/executors/done")
	}
	if !deleted {
		t.Errorf("no deletion of done's directories logged")
	}
	if !exists(live.Directory) {
		t.Fatalf("the live executor's sandbox was removed")
	}
	a2.Kill(*fw.ID, mesos.TaskID{Value: "t1"}, nil)
	waitFor(t, "t1 killed by the recovered executor", func() bool { return len(m.states("t1")) == 2 })
}

// --gc_disk_headroom outside [0, 1] stops the agent as mesos-agent; GET_FLAGS reports the gc flags.
func TestGCFlags(t *testing.T) {
	bad := 1.5
	_, err := New(Config{ID: mustID("agent-S9"), WorkDir: t.TempDir(), Master: &fakeMaster{}, Log: quietLog(), GCDiskHeadroom: &bad})
	if err == nil || !strings.Contains(err.Error(), "Invalid value '1.5' for --gc_disk_headroom. Must be between 0.0 and 1.0") {
		t.Errorf("New with --gc_disk_headroom=1.5: %v", err)
	}
	for _, tc := range []struct {
		mutate func(*Config)
		want   map[string]string
	}{
		{nil, map[string]string{"gc_delay": "1weeks", "gc_disk_headroom": "0.1", "disk_watch_interval": "1mins"}},
		{func(c *Config) {
			h := 0.25
			c.GCDelay, c.GCDiskHeadroom, c.DiskWatchInterval = 10*time.Minute, &h, 30*time.Second
		}, map[string]string{"gc_delay": "10mins", "gc_disk_headroom": "0.25", "disk_watch_interval": "30secs"}},
	} {
		a := newTestAgent(t, &fakeMaster{}, tc.mutate)
		got := flagMap(a.flags()) // what GET_FLAGS and /state report
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("flag %s = %q, want %q", k, got[k], v)
			}
		}
	}
}

func TestStoutDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0ns", 1500 * time.Microsecond: "1500us", -2 * time.Second: "-2secs", 90 * time.Minute: "90mins",
		time.Hour: "1hrs", time.Hour + 30*time.Second: "1.00833333333333hrs", 10 * 24 * time.Hour: "10days",
		7 * 24 * time.Hour: "1weeks", 2*time.Minute + 500*time.Millisecond: "2.00833333333333mins",
	} {
		if got := stoutDuration(d); got != want {
			t.Errorf("stoutDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// A mount left inside a directory to delete is unmounted first (MESOS-8830): deleting through it
// would empty what it shows, here a directory outside the work dir.
func TestGCUnmountsDanglingMounts(t *testing.T) {
	a, hook, host, target := agentWithMountIn(t, filepath.Join("e", "runs", "c 1"))
	run := filepath.Dir(filepath.Dir(target))
	a.mu.Lock()
	a.scheduleGCLocked(0, run)
	a.mu.Unlock()
	waitFor(t, "the run removed", func() bool { return !exists(run) })
	if !exists(filepath.Join(host, "keep")) {
		t.Errorf("the mounted directory was emptied")
	}
	if !logged(hook, "Unmounting dangling mount point '"+target+"' of persistent volume '"+host+"' inside garbage collected path '"+run+"'") {
		t.Errorf("no unmount logged")
	}
}

// A mount that will not unmount (busy) keeps every path due with it that holds it, as gc.cpp: the
// executor dir due with its run dir is not deleted through the mount either.
func TestGCKeepsPathsOverABusyMount(t *testing.T) {
	a, hook, host, target := agentWithMountIn(t, filepath.Join("e", "runs", "c1"))
	run := filepath.Dir(filepath.Dir(target))
	edir := filepath.Dir(filepath.Dir(run))
	busy, err := os.Open(filepath.Join(target, "keep")) // an open file: umount answers EBUSY
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	a.mu.Lock()
	a.scheduleGCLocked(0, run)
	a.scheduleGCLocked(0, edir)
	a.mu.Unlock()
	waitFor(t, "both deletions skipped", func() bool {
		return logged(hook, "Skipping deletion of '"+run+"' because unmount failed on '"+target+"': device or resource busy") &&
			logged(hook, "Skipping deletion of '"+edir+"' because unmount failed on '"+target+"': device or resource busy")
	})
	if !exists(filepath.Join(host, "keep")) || !exists(run) {
		t.Errorf("deleted through a mount that would not unmount: host file kept %v, run kept %v", exists(filepath.Join(host, "keep")), exists(run))
	}
}

// agentWithMountIn is an agent on a fake clock with a host directory (holding a file "keep") bind
// mounted at volumes/data of run, a path under its framework fw-1's executors dir.
func agentWithMountIn(t *testing.T, run string) (a *Agent, hook *logtest.Hook, host, target string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	clk := testclock.NewFakeClock(time.Now())
	log, hook := testLog(t)
	a = newTestAgent(t, &fakeMaster{}, func(c *Config) { c.Clock, c.Log, c.DiskWatchInterval = clk, log, 1000*time.Hour })
	host = t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	target = filepath.Join(a.cfg.WorkDir, "slaves", "agent-S0", "frameworks", "fw-1", "executors", run, "volumes", "data")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, target, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	return a, hook, host, target
}

// BenchmarkGCSchedule: scheduling and unscheduling one path while 10000 wait (an agent that ran
// many short-lived executors within gc_delay), and one disk check's prune of none of them.
func BenchmarkGCSchedule(b *testing.B) {
	clk := testclock.NewFakeClock(time.Now())
	a := newTestAgent(b, &fakeMaster{}, func(c *Config) { c.Clock, c.Log, c.DiskWatchInterval = clk, quietLog(), 1000*time.Hour })
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := 0; i < 10000; i++ {
		a.scheduleGCLocked(time.Hour, fmt.Sprintf("/nonexistent/pending/%d", i))
	}
	b.Run("schedule+unschedule", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p := "/nonexistent/new/" + strconv.Itoa(i)
			a.scheduleGCLocked(2*time.Hour, p)
			a.unscheduleGCLocked(p)
		}
	})
	b.Run("prune", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			a.pruneGCLocked(time.Minute)
		}
	})
}

// A task killed before its executor subscribed was never checkpointed: its completion collects
// nothing of it (no "Failed to find the mtime" error), its executor's run is collected as usual.
func TestGCTaskKilledBeforeDelivery(t *testing.T) {
	clk := testclock.NewFakeClock(time.Now())
	m := &fakeMaster{autoAck: true}
	log, hook := testLog(t)
	a := newTestAgent(t, m, func(c *Config) { c.Clock, c.Log, c.GCDelay, c.DiskWatchInterval = clk, log, time.Hour, 1000*time.Hour })
	never := "sleep 1000"
	info := &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "mute"}, Command: &mesos.CommandInfo{Value: &never}}
	a.Launch(testFramework(true), info, []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	waitFor(t, "executor process started", func() bool { return len(processesIn(a.cfg.WorkDir)) > 0 })
	a.Kill(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "t1"}, nil)
	// The run's four directories and the framework's two (it has nothing left here).
	waitFor(t, "the executor's run scheduled", func() bool { return len(a.gcScheduled()) == 6 })
	for p := range a.gcScheduled() {
		if strings.Contains(p, "/tasks/") {
			t.Errorf("%s scheduled", p)
		}
	}
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.ErrorLevel {
			t.Errorf("logged %s: %s", e.Level, e.Message)
		}
	}
}

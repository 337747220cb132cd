package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Garbage collection of sandboxes and checkpoints, as a Mesos 1.x agent does it (src/slave/gc.cpp,
// and the garbageCollect calls of src/slave/slave.cpp). When an executor is removed (it terminated
// and every task of it is complete, or its framework is shutting down) its run's sandbox and meta
// directory are scheduled for removal --gc_delay after their modification time, and so are the
// executor's own directories unless a newer run of the same executor lives; a removed framework's
// directories likewise, and a complete task's meta directory. A new framework or executor unschedules
// its directories, waiting for a removal in progress. Every --disk_watch_interval the agent measures
// the use of its work dir's file system and removes at once what is older than
// gc_delay * max(0, 1 - gc_disk_headroom - usage). The schedule is in memory: a restarted agent
// schedules again, from its checkpoint, what recovery finds completed. A nested container's sandbox
// is inside its parent's, so it goes with it; an executor's runs/latest symlinks (work and meta) are
// inside its directories, so they go with them (a newer run has moved them to itself); the
// provisioner's and network/cni's directories of a container go when the containerizer destroys it
// (mesossim/containerizer). Mounts left under a path are unmounted before it is deleted.
//
// Not done: Mesos' collection of the directories of other agent IDs under work_dir/slaves (the
// simulator's agents share a work dir, so those belong to live siblings).

// Defaults of Mesos' --gc_delay, --gc_disk_headroom and --disk_watch_interval (src/slave/constants.hpp).
const (
	DefaultGCDelay           = 7 * 24 * time.Hour
	DefaultGCDiskHeadroom    = 0.1
	DefaultDiskWatchInterval = time.Minute
)

// gcPath is one path scheduled for removal (GarbageCollectorProcess::PathInfo).
type gcPath struct {
	path     string
	at       time.Time // the removal time
	seq      uint64    // order of scheduling: paths due together go in that order, as in Mesos' multimap
	removing bool
	done     chan struct{} // closed once its removal was attempted
}

// garbageCollector is the agent's GarbageCollectorProcess; it lives under Agent.mu.
type garbageCollector struct {
	paths   map[string]*gcPath
	seq     uint64
	timer   *timerHandle // fires at timerAt for the earliest removal time
	timerAt time.Time
	// rmdirs serialises removals, as Mesos runs them all on one executor (MESOS-6549).
	rmdirs sync.Mutex
	// diskChecks counts the disk usage checks done (each re-arms the next before it counts).
	diskChecks int
	// usage is fs::usage of the work dir: the used fraction of its file system.
	usage func(path string) (float64, error)
}

func newGarbageCollector() *garbageCollector {
	return &garbageCollector{paths: map[string]*gcPath{}, usage: fsUsage}
}

// fsUsage is stout's fs::usage: (f_blocks - f_bfree) / f_blocks of statvfs.
func fsUsage(path string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("Error invoking statvfs on '%s': %w", path, err)
	}
	return float64(st.Blocks-st.Bfree) / float64(st.Blocks), nil
}

// stoutDuration prints a duration as stout's operator<< does (15 significant digits, the unit of its
// bucket unless a smaller one gives a whole number), which Mesos' gc log lines use.
func stoutDuration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	ns := int64(d)
	f := func(unit time.Duration, name string) string {
		return sign + strconv.FormatFloat(float64(ns)/float64(unit), 'g', 15, 64) + name
	}
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	pick := func(bucket, smaller time.Duration, bucketName, smallerName string) string {
		if ns%int64(bucket) != 0 && ns%int64(smaller) == 0 {
			return f(smaller, smallerName)
		}
		return f(bucket, bucketName)
	}
	switch {
	case d < time.Microsecond:
		return sign + strconv.FormatInt(ns, 10) + "ns"
	case d < time.Millisecond:
		if ns%int64(time.Microsecond) != 0 {
			return sign + strconv.FormatInt(ns, 10) + "ns"
		}
		return f(time.Microsecond, "us")
	case d < time.Second:
		return pick(time.Millisecond, time.Microsecond, "ms", "us")
	case d < time.Minute:
		return pick(time.Second, time.Millisecond, "secs", "ms")
	case d < time.Hour:
		return pick(time.Minute, time.Second, "mins", "secs")
	case d < day:
		return pick(time.Hour, time.Minute, "hrs", "mins")
	case d < week:
		return pick(day, time.Hour, "days", "hrs")
	}
	return pick(week, day, "weeks", "days")
}

// scheduleGCLocked is GarbageCollectorProcess::schedule: path goes in d (at once when d <= 0).
func (a *Agent) scheduleGCLocked(d time.Duration, path string) {
	a.log.Infof("Scheduling '%s' for gc %s in the future", path, stoutDuration(d))
	g := a.gc
	if g.paths[path] != nil {
		a.unscheduleGCLocked(path)
	}
	at := a.clock.Now().Add(d)
	g.seq++
	g.paths[path] = &gcPath{path: path, at: at, seq: g.seq, done: make(chan struct{})}
	if g.timer == nil || !g.timerAt.After(a.clock.Now()) || at.Before(g.timerAt) {
		a.resetGCLocked()
	}
}

// unscheduleGCLocked is GarbageCollectorProcess::unschedule. A path being removed cannot be saved:
// it returns false once the removal is over (the removal does not need a.mu to finish it).
func (a *Agent) unscheduleGCLocked(path string) bool {
	a.log.Infof("Unscheduling '%s' from gc", path)
	g := a.gc
	p := g.paths[path]
	if p == nil {
		return false
	}
	if p.removing {
		<-p.done
		return false
	}
	delete(g.paths, path)
	return true
}

// unscheduleIfExistsLocked unschedules the directories a new framework or executor is about to use
// (Slave::run unschedules only those that exist).
func (a *Agent) unscheduleIfExistsLocked(paths ...string) {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			a.unscheduleGCLocked(p)
		}
	}
}

// resetGCLocked arms the timer for the earliest removal time (GarbageCollectorProcess::reset).
func (a *Agent) resetGCLocked() {
	g := a.gc
	g.timer.cancel()
	g.timer = nil
	if len(g.paths) == 0 || a.stopped {
		return
	}
	// Paths being removed are left out: their removal resets the timer when it is over.
	var first time.Time
	for _, p := range g.paths {
		if !p.removing && (first.IsZero() || p.at.Before(first)) {
			first = p.at
		}
	}
	if first.IsZero() {
		return
	}
	g.timerAt = first
	g.timer = a.gcTimerLocked(first.Sub(a.clock.Now()), func() { a.removeGCLocked(first) })
}

// gcTimerLocked is afterLocked that also fires for a removal time already passed (a fake clock's
// timer of a non-positive duration waits for the clock to move).
func (a *Agent) gcTimerLocked(d time.Duration, f func()) *timerHandle {
	if d > 0 {
		return a.afterLocked(d, f)
	}
	h := &timerHandle{t: a.clock.NewTimer(0), stop: make(chan struct{})}
	h.t.Stop()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.mu.Lock()
		defer a.mu.Unlock()
		select {
		case <-h.stop:
		default:
			if !a.stopped {
				f()
			}
		}
	}()
	return h
}

// removeGCLocked is GarbageCollectorProcess::remove: the paths due at exactly at are deleted,
// outside the agent's lock.
func (a *Agent) removeGCLocked(at time.Time) {
	if a.stopped {
		return
	}
	g := a.gc
	var due []*gcPath
	matched := false
	for _, p := range g.paths {
		if !p.at.Equal(at) {
			continue
		}
		matched = true
		if p.removing {
			a.log.Debugf("Skipping deletion of '%s'  as it is already in progress", p.path)
			continue
		}
		p.removing = true
		due = append(due, p)
	}
	if !matched {
		a.log.Infof("Ignoring gc event at %s as the paths were already removed, or were unscheduled",
			stoutDuration(at.Sub(a.clock.Now())))
		a.resetGCLocked()
		return
	}
	if len(due) == 0 {
		return
	}
	sort.Slice(due, func(i, j int) bool { return due[i].seq < due[j].seq })
	log, workDir := a.log, a.cfg.WorkDir
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		g.rmdirs.Lock()
		paths := unmountDangling(log, workDir, due)
		for _, p := range paths {
			log.Infof("Deleting %s", p.path)
			if _, err := os.Lstat(p.path); errors.Is(err, fs.ErrNotExist) {
				log.Infof("Skipped '%s' which does not exist", p.path)
			} else if err := os.RemoveAll(p.path); err != nil {
				log.Warnf("Failed to delete '%s': %v", p.path, err)
			} else {
				log.Infof("Deleted '%s'", p.path)
			}
			close(p.done)
		}
		g.rmdirs.Unlock()
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, p := range due {
			if g.paths[p.path] == p {
				delete(g.paths, p.path)
			}
		}
		a.resetGCLocked()
	}()
}

// unmountDangling unmounts what is mounted under the work dir inside the paths to delete
// (MESOS-8830): os.RemoveAll would otherwise delete through a mount into what it shows (a host
// directory). A path whose mount cannot be unmounted is not deleted; the others are returned.
func unmountDangling(log logrus.FieldLogger, workDir string, due []*gcPath) []*gcPath {
	mounts, err := containerizer.MountPoints()
	if err != nil {
		log.Errorf("Skipping any path deletion because of failure on read MountInfoTable for agent process: %v", err)
		for _, p := range due {
			close(p.done)
		}
		return nil
	}
	// Mount points are absolute; a relative work dir is the agent's working directory's.
	under := func(p, dir string) bool {
		dir, _ = filepath.Abs(dir)
		return strings.HasPrefix(p+"/", dir+"/")
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if !under(m.Target, workDir) {
			continue
		}
		// As gc.cpp: a path whose unmount fails is dropped and the next path under the same mount
		// tries again (an executor dir due with its run dir must not be deleted through the mount).
		for j := 0; j < len(due); {
			p := due[j]
			if !under(m.Target, p.path) {
				j++
				continue
			}
			log.Warnf("Unmounting dangling mount point '%s' of persistent volume '%s' inside garbage collected path '%s'", m.Target, m.Root, p.path)
			if err := unix.Unmount(m.Target, 0); err != nil {
				log.Warnf("Skipping deletion of '%s' because unmount failed on '%s': %v", p.path, m.Target, err)
				close(p.done)
				due = append(due[:j:j], due[j+1:]...)
				continue
			}
			break
		}
	}
	return due
}

// pruneGCLocked is GarbageCollectorProcess::prune: every path due within d goes now.
func (a *Agent) pruneGCLocked(d time.Duration) {
	now := a.clock.Now()
	seen := map[time.Time]bool{}
	var ats []time.Time
	for _, p := range a.gc.paths {
		if !seen[p.at] && p.at.Sub(now) <= d {
			seen[p.at] = true
			ats = append(ats, p.at)
		}
	}
	sort.Slice(ats, func(i, j int) bool { return ats[i].Before(ats[j]) })
	for _, at := range ats {
		a.log.Infof("Pruning directories with remaining removal time %s", stoutDuration(at.Sub(now)))
		a.removeGCLocked(at)
	}
}

// garbageCollectLocked is Slave::garbageCollect: path goes gc_delay after its modification time.
func (a *Agent) garbageCollectLocked(path string) {
	st, err := os.Stat(path)
	if err != nil {
		a.log.Errorf("Failed to find the mtime of '%s': %v", path, err)
		return
	}
	a.scheduleGCLocked(a.cfg.GCDelay-a.clock.Now().Sub(st.ModTime()), path)
}

// touchLocked is os::utime on the agent's clock: a directory is collected gc_delay from now.
func (a *Agent) touchLocked(path string) {
	now := a.clock.Now()
	_ = os.Chtimes(path, now, now)
}

// gcAge is Slave::age: the maximum age of an executor directory at a disk usage.
func (a *Agent) gcAge(usage float64) time.Duration {
	return time.Duration(float64(a.cfg.GCDelay) * max(0.0, 1.0-*a.cfg.GCDiskHeadroom-usage))
}

// checkDiskUsageLocked is Slave::checkDiskUsage and _checkDiskUsage, every --disk_watch_interval.
func (a *Agent) checkDiskUsageLocked() {
	usage, err := a.gc.usage(a.cfg.WorkDir)
	if err != nil {
		a.log.Errorf("Failed to get disk usage: %v", err)
	} else {
		age := a.gcAge(usage)
		a.log.Infof("Current disk usage %.2f%%. Max allowed age: %s", 100*usage, stoutDuration(age))
		// Paths are scheduled gc_delay ahead, so those due within gc_delay - age are at least age old.
		a.pruneGCLocked(a.cfg.GCDelay - age)
	}
	a.afterLocked(a.cfg.DiskWatchInterval, a.checkDiskUsageLocked)
	a.gc.diskChecks++
}

func (a *Agent) workFrameworkDir(fid string) string {
	return filepath.Join(a.cfg.WorkDir, "slaves", a.cfg.ID.Value, "frameworks", fid)
}

func (a *Agent) workExecutorDir(fid, eid string) string {
	return filepath.Join(a.workFrameworkDir(fid), "executors", eid)
}

// unscheduleFrameworkLocked keeps a framework's directories for a framework that is back (Slave::run).
func (a *Agent) unscheduleFrameworkLocked(fid string) {
	a.unscheduleIfExistsLocked(a.workFrameworkDir(fid), a.metaFrameworkDir(fid))
}

// unscheduleExecutorLocked keeps an executor's directories for its new run (Slave::run).
func (a *Agent) unscheduleExecutorLocked(fid, eid string) {
	a.unscheduleIfExistsLocked(a.workExecutorDir(fid, eid), a.metaExecutorDir(fid, eid))
}

// removeExecutorLocked is the collection part of Slave::removeExecutor, for a terminated run whose
// tasks are all complete (or were dropped with its framework): its sandbox and meta run directory,
// and the executor's own directories unless a newer run of it lives (Mesos' pendingTasks check).
func (a *Agent) removeExecutorLocked(e *executorRun) {
	if e == nil || e.removed || a.stopped || e.state != executorTerminated {
		return
	}
	f := e.fw
	for _, t := range f.tasks {
		if t.executor == e {
			return // incomplete tasks: their updates are still checkpointed in the run
		}
	}
	e.removed = true
	fid, eid := f.info.GetID().GetValue(), e.info.ExecutorID.Value
	newer := f.executors[eid] != nil && f.executors[eid] != e
	collect := func(path string) {
		a.touchLocked(path)
		a.garbageCollectLocked(path)
	}
	collect(e.dir)
	if !newer {
		collect(a.workExecutorDir(fid, eid))
	}
	if f.info.GetCheckpoint() {
		collect(a.metaRunDir(e))
		if !newer {
			collect(a.metaExecutorDir(fid, eid))
		}
	}
}

// completeTaskLocked is Executor::completeTask's collection of a complete task's checkpoint. A task
// that never reached its executor (killed while queued) has none: Mesos completes only launched ones.
func (a *Agent) completeTaskLocked(t *task) {
	if t == nil || !t.launched || t.executor == nil || t.executor.removed || !t.executor.fw.info.GetCheckpoint() || a.stopped {
		return
	}
	a.garbageCollectLocked(a.metaTaskDir(t.executor, t.info.TaskID.Value))
}

// removeFrameworkDirsLocked is the collection part of Slave::removeFramework. A framework that
// launched nothing here has no directories to collect.
func (a *Agent) removeFrameworkDirsLocked(f *framework) {
	if a.stopped {
		return
	}
	fid := f.info.GetID().GetValue()
	paths := []string{a.workFrameworkDir(fid)}
	if f.info.GetCheckpoint() {
		paths = append(paths, a.metaFrameworkDir(fid))
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			a.touchLocked(p)
			a.garbageCollectLocked(p)
		}
	}
}

// recoverRunsGCLocked is what Framework::recoverExecutor collects of an executor's checkpoint: the
// runs older than latest, and everything of a completed latest run (by modification time, not
// touched).
func (a *Agent) recoverRunsGCLocked(fid, eid, latest string, completed bool) {
	runs, _ := os.ReadDir(filepath.Join(a.metaExecutorDir(fid, eid), "runs"))
	for _, r := range runs {
		if r.Name() == "latest" || r.Name() == latest || !r.IsDir() {
			continue
		}
		a.garbageCollectLocked(filepath.Join(a.workExecutorDir(fid, eid), "runs", r.Name()))
		a.garbageCollectLocked(filepath.Join(a.metaExecutorDir(fid, eid), "runs", r.Name()))
	}
	if completed {
		a.garbageCollectLocked(filepath.Join(a.workExecutorDir(fid, eid), "runs", latest))
		a.garbageCollectLocked(filepath.Join(a.metaExecutorDir(fid, eid), "runs", latest))
		a.garbageCollectLocked(a.workExecutorDir(fid, eid))
		a.garbageCollectLocked(a.metaExecutorDir(fid, eid))
	}
}

// formatHeadroom prints --gc_disk_headroom as Mesos streams a double.
func formatHeadroom(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

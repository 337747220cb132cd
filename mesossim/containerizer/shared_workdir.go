package containerizer

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// sharedWorkDirs counts the filesystem/linux isolators using each work_dir (by real path): the agents
// of one simulated cluster share it, and the self bind mount ensureSharedMount made is undone only
// when the last of them closes. Mesos leaves it in place when the agent stops (it is meant to outlive
// the agent); the simulator removes it so that a test's temporary work_dir can be deleted.
var sharedWorkDirs = struct {
	sync.Mutex
	refs  map[string]int
	bound map[string]bool
}{refs: map[string]int{}, bound: map[string]bool{}}

// acquireSharedWorkDir is filesystem/linux's ensureSharedMount(flags.work_dir) (isolators/filesystem/
// linux.cpp): the work_dir must be in a shared mount in its own peer group, so that a container's
// BIDIRECTIONAL mounts under it reach the agent's mount namespace and the agent's unmounts under it
// reach the containers'. It returns the real path to release.
func acquireSharedWorkDir(workDir string) (string, error) {
	real, err := filepath.EvalSymlinks(workDir)
	if err != nil {
		return "", errors.New("Failed to get the realpath of '" + workDir + "': " + errText(err))
	}
	sharedWorkDirs.Lock()
	defer sharedWorkDirs.Unlock()
	bound, err := ensureSharedMount(real)
	if err != nil {
		return "", err
	}
	sharedWorkDirs.refs[real]++
	if bound {
		sharedWorkDirs.bound[real] = true
	}
	return real, nil
}

// releaseSharedWorkDir drops one use of the work_dir; the last one unmounts the self bind mount made
// by acquireSharedWorkDir, with whatever is still mounted under it.
func releaseSharedWorkDir(real string) error {
	sharedWorkDirs.Lock()
	defer sharedWorkDirs.Unlock()
	if sharedWorkDirs.refs[real] == 0 {
		return nil
	}
	sharedWorkDirs.refs[real]--
	if sharedWorkDirs.refs[real] > 0 {
		return nil
	}
	delete(sharedWorkDirs.refs, real)
	if !sharedWorkDirs.bound[real] {
		return nil
	}
	delete(sharedWorkDirs.bound, real)
	if err := unix.Unmount(real, unix.MNT_DETACH); err != nil {
		return errors.New("Failed to unmount the work directory '" + real + "': " + errText(err))
	}
	return nil
}

// ensureSharedMount is Mesos' ensureSharedMount: when the mount containing dir is not shared, or is
// shared in the peer group of a mount above it (so that it is not a peer group of its own), dir is
// bind-mounted on itself (if it is not a mount point yet) and made private then shared. It reports
// whether it made the bind mount.
func ensureSharedMount(dir string) (bool, error) {
	table, err := readMountInfo()
	if err != nil {
		return false, errors.New("Failed to get mount table: " + errText(err))
	}
	m, err := findByTarget(table, dir)
	if err != nil {
		return false, errors.New("Failed to find the mount containing '" + dir + "': " + err.Error())
	}
	needed := m.shared == ""
	if !needed {
		for _, e := range table {
			if e.id != m.id && !strings.HasPrefix(e.target, dir+"/") && e.shared == m.shared &&
				strings.HasPrefix(dir, strings.TrimSuffix(e.target, "/")+"/") {
				needed = true
				break
			}
		}
	}
	if !needed {
		return false, nil
	}
	bound := false
	if m.target != dir {
		// "Bind mounting '<dir>' and making it a shared mount"
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return false, errors.New("Failed to bind mount '" + dir + "' and make it a shared mount: " + errText(err))
		}
		bound = true
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err == nil {
		err = unix.Mount("", dir, "", unix.MS_SHARED, "")
		if err == nil {
			return bound, nil
		}
	}
	if bound {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		return false, errors.New("Failed to bind mount '" + dir + "' and make it a shared mount: " + errText(err))
	}
	return false, errors.New("Failed to make '" + dir + "' a shared mount: " + errText(err))
}

// unmountUnder is filesystem/linux's cleanup in the host mount namespace: every mount whose target
// starts with dir (a plain prefix, as Mesos' strings::startsWith) is unmounted, deepest first, with
// MNT_DETACH (MESOS-7366), collecting the errors.
func unmountUnder(dir string) error {
	table, err := readMountInfo()
	if err != nil {
		return errors.New("Failed to get mount table: " + errText(err))
	}
	var errs []string
	for i := len(table) - 1; i >= 0; i-- {
		if !strings.HasPrefix(table[i].target, dir) {
			continue
		}
		if err := unix.Unmount(table[i].target, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			errs = append(errs, "Failed to unmount volume '"+table[i].target+"': "+errText(err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, ", "))
	}
	return nil
}

// UnmountUnder unmounts every mount under dir, as filesystem/linux's cleanup does: for a tool that
// wipes a work_dir an agent killed without its cleanup (SIGKILL) left mounted, as its shared
// work_dir or a sandbox's volumes.
func UnmountUnder(dir string) error {
	return unmountUnder(dir)
}

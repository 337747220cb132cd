package containerizer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
)

// mountsAt returns the mount table's entries whose target is dir or under it.
func mountsAt(t *testing.T, dir string) []mountEntry {
	t.Helper()
	table, err := readMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	var out []mountEntry
	for _, e := range table {
		if e.target == dir || strings.HasPrefix(e.target, dir+"/") {
			out = append(out, e)
		}
	}
	return out
}

// filesystem/linux makes the work_dir a shared mount in its own peer group, as Mesos'
// ensureSharedMount; the agents of one cluster share it, and the last containerizer to close removes
// the bind mount (so the directory can be deleted).
func TestWorkDirIsASharedMountOfItsOwn(t *testing.T) {
	requireRoot(t)
	work := t.TempDir()
	real, err := filepath.EvalSymlinks(work)
	if err != nil {
		t.Fatal(err)
	}
	if m := mountsAt(t, real); len(m) != 0 {
		t.Fatalf("the test's work_dir is a mount point already: %+v", m)
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	z1, err := New(Flags{Isolation: "filesystem/linux", WorkDir: work}, log)
	if err != nil {
		t.Fatal(err)
	}
	z2, err := New(Flags{Isolation: "filesystem/linux,volume/host_path", WorkDir: work}, log)
	if err != nil {
		_ = z1.Close()
		t.Fatal(err)
	}
	m := mountsAt(t, real)
	if len(m) != 1 || m[0].target != real || m[0].shared == "" {
		t.Fatalf("mounts at the work_dir = %+v, want one shared self bind mount", m)
	}
	table, _ := readMountInfo()
	for _, e := range table {
		if e.id != m[0].id && e.shared == m[0].shared && strings.HasPrefix(real, strings.TrimSuffix(e.target, "/")+"/") {
			t.Errorf("the work_dir's peer group %s is also %s's: not a peer group of its own", m[0].shared, e.target)
		}
	}
	if err := z1.Close(); err != nil {
		t.Fatal(err)
	}
	if len(mountsAt(t, real)) != 1 {
		t.Error("the first containerizer's Close removed the work_dir mount the second one still uses")
	}
	if err := z2.Close(); err != nil {
		t.Fatal(err)
	}
	if m := mountsAt(t, real); len(m) != 0 {
		t.Errorf("mounts left at the work_dir after the last Close: %+v", m)
	}
	if _, err := New(Flags{Isolation: "filesystem/linux", WorkDir: filepath.Join(work, "missing")}, log); err == nil ||
		!strings.Contains(err.Error(), "Failed to get the realpath of '"+filepath.Join(work, "missing")+"'") {
		t.Errorf("New with a missing work_dir = %v", err)
	}
}

// A container under the shared work_dir mounts a tmpfs in its sandbox through a BIDIRECTIONAL host
// path volume: the agent sees it while the container runs, and filesystem/linux's cleanup unmounts
// everything under the destroyed container's sandbox (Mesos' LinuxFilesystemIsolatorProcess::cleanup).
func TestCleanupUnmountsUnderTheSandbox(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, "filesystem/linux,volume/host_path")
	sandbox := filepath.Join(z.Flags().WorkDir, "slaves", "s", "runs", "c1")
	vol := filepath.Join(sandbox, "volumes", "cache")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	info := mesosInfo(hostPathVolume(sandbox, sandbox, mesos.RW))
	info.Volumes[0].Source.HostPath.MountPropagation = &mesos.MountPropagation{Mode: mesos.MountPropagation_BIDIRECTIONAL.Enum()}
	l, err := launch(t, z, &Container{ID: mesos.ContainerID{Value: "c1"}, Sandbox: sandbox, Info: info,
		Command: shell("set -e; mount -t tmpfs -o size=1m tmpfs " + vol + "; touch " + vol + "/ready; exec sleep 60")})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !isTmpfs(vol) || !pathExists(filepath.Join(vol, "ready")) {
		if time.Now().After(deadline) {
			t.Fatalf("the container's tmpfs never appeared in the agent's mount namespace; stderr:\n%s", stderrOf(l))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := z.Destroy(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	if isTmpfs(vol) {
		t.Error("the tmpfs under the destroyed container's sandbox is still mounted")
	}
	if m := mountsAt(t, sandbox); len(m) != 0 {
		t.Errorf("mounts left under the sandbox: %+v", m)
	}
}

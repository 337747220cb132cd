package agent

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// writeLauncherLines writes to a container's stderr what Mesos' containerizer launcher
// (src/slave/containerizer/mesos/launch.cpp) writes there before it execs the command, in its order:
//
//   - "Preparing rootfs at '<rootfs>'" when the container has an image (a provisioned rootfs);
//   - "Marked '/' as rslave" when its mount namespace is cloned with no shared mount: the
//     filesystem/linux isolator clones one for every container but DEBUG ones, and a rootfs needs it;
//   - "Changing root to <rootfs>" when it has a rootfs.
//
// Sessions (LAUNCH_NESTED_CONTAINER_SESSION) are DEBUG containers: they enter their parent's mount
// namespace and have no rootfs, so the launcher writes nothing for them. The rootfs path is the
// provisioner's (<work_dir>/provisioner/containers/<id>[/containers/<id>...]/backends/overlay/
// rootfses/<UUID>); the simulator runs the command on the host, so the path does not exist.
func (a *Agent) writeLauncherLines(id *mesos.ContainerID, sandbox string, ci *mesos.ContainerInfo, session bool) {
	if session {
		return
	}
	var lines []string
	rootfs := ""
	if ci.GetMesos().GetImage() != nil {
		rootfs = provisionedRootfs(a.cfg.WorkDir, id)
		lines = append(lines, "Preparing rootfs at '"+rootfs+"'")
	}
	if rootfs != "" || contains(tokenize(a.cfg.Isolation, ","), "filesystem/linux") {
		lines = append(lines, "Marked '/' as rslave")
	}
	if rootfs != "" {
		lines = append(lines, "Changing root to "+rootfs)
	}
	if len(lines) == 0 {
		return
	}
	f, err := os.OpenFile(filepath.Join(sandbox, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.log.WithError(err).Warn("writing the launcher's lines")
		return
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		a.log.WithError(err).Warn("writing the launcher's lines")
	}
}

// provisionedRootfs is where Mesos' provisioner puts a container's rootfs
// (provisioner::paths::getContainerRootfsDir with the overlay backend, Linux's default).
func provisionedRootfs(workDir string, id *mesos.ContainerID) string {
	var chain []string
	for p := id; p != nil; p = p.Parent {
		chain = append([]string{p.Value}, chain...)
	}
	dir := filepath.Join(workDir, "provisioner")
	for _, v := range chain {
		dir = filepath.Join(dir, "containers", v)
	}
	return filepath.Join(dir, "backends", "overlay", "rootfses", randomUUID())
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

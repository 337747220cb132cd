package nested

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/kubemesos/kubemesos/executor/podworker"
)

// emptyDir medium Memory. A kubelet mounts a tmpfs on the volume's directory and the runtime
// bind-mounts it into the containers. On Mesos a nested container's mount namespace is a copy of the
// agent's, not of its parent's (docs/conformance.md), so a tmpfs the executor mounted in its own
// namespace would not be what the pod's containers get. What reaches them through Mesos' public API:
// filesystem/linux keeps the agent's work_dir a shared mount, and a HOST_PATH volume with
// mount_propagation BIDIRECTIONAL keeps that mount shared inside a nested container. So a short
// helper nested container (this binary's TmpfsCommand, with CAP_SYS_ADMIN) mounts the tmpfs on the
// volume's directory for the agent's mount namespace, from which the pod's containers' namespaces
// are then copied; another one unmounts it when the pod is cleaned up (filesystem/linux also unmounts
// everything under a destroyed container's sandbox).

// TmpfsCommand is the kubemesos subcommand the helper container runs: `tmpfs-mount [--size=<bytes>]
// <dir>` or `tmpfs-mount --unmount <dir>`.
const TmpfsCommand = "tmpfs-mount"

// EventFailedMount is the kubelet's reason for a volume that could not be set up (events.FailedMountVolume).
const EventFailedMount = "FailedMount"

// MountTmpfs mounts a tmpfs of size bytes (0: the kernel's default, half the RAM) on dir, with the
// options the kubelet's emptyDir setupTmpfs gives it (only size=; the root keeps tmpfs' mode 1777).
func MountTmpfs(dir string, size int64) error {
	var opts []string
	if size > 0 {
		opts = append(opts, "size="+strconv.FormatInt(size, 10))
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, strings.Join(opts, ",")); err != nil {
		return fmt.Errorf("mount -t tmpfs -o %s tmpfs %s: %w", strings.Join(opts, ","), dir, err)
	}
	return nil
}

// UnmountTmpfs unmounts the tmpfs on dir (none there is not an error).
func UnmountTmpfs(dir string) error {
	if !IsTmpfs(dir) {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("umount %s: %w", dir, err)
	}
	return nil
}

// IsTmpfs tells whether a tmpfs is mounted on dir: dir is on a tmpfs, and on another device than its
// parent (a work_dir that is itself on a tmpfs, /tmp on some hosts, is not a mounted volume).
func IsTmpfs(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return false
	}
	var d, p unix.Stat_t
	return unix.Stat(dir, &d) == nil && unix.Stat(filepath.Dir(dir), &p) == nil && d.Dev != p.Dev
}

// MemoryEmptyDirSize is the kubelet's calculateEmptyDirMemorySize (pkg/volume/emptydir): "size limit
// defaults to node allocatable (pods can't consume more memory than all pods)", then the pod's memory
// limit when every container declares one (cm.ResourceConfigForPod) and it is below that, then the
// volume's sizeLimit when it is below that. A nil or zero result leaves the size to the kernel.
func MemoryEmptyDirSize(pod *corev1.Pod, v *corev1.Volume, allocatable *resource.Quantity) *resource.Quantity {
	size := allocatable
	zero := resource.MustParse("0")
	declared := true
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Resources.Limits.Memory().IsZero() {
				declared = false
			}
		}
	}
	if pod.Spec.Resources != nil && !pod.Spec.Resources.Limits.Memory().IsZero() {
		declared = true // pod-level resources
	}
	if declared {
		limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
		if l, ok := limits[corev1.ResourceMemory]; ok {
			podLimit := resource.NewQuantity(l.Value(), resource.BinarySI)
			if podLimit.Cmp(zero) > 0 && (size == nil || podLimit.Cmp(*size) < 1) {
				size = podLimit
			}
		}
	}
	if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
		sl := v.EmptyDir.SizeLimit
		if sl.Cmp(zero) > 0 && (size == nil || sl.Cmp(*size) < 1) {
			size = sl
		}
	}
	return size
}

// TmpfsHelperLaunch is the helper container that mounts (size bytes) or unmounts a tmpfs on dir, a
// directory of the agent host under its work_dir: executable (this binary, on the host) runs
// TmpfsCommand without a root filesystem, with dir's parent (the pod's volumes directory) as a
// HOST_PATH volume at the same path whose mount_propagation is BIDIRECTIONAL (Mesos requires
// CAP_SYS_ADMIN for it, which the mount needs too). The parent, not dir: volume/host_path keeps shared
// the mount containing the host path (fs::MountInfoTable::findByTarget), which for dir itself would
// be the tmpfs once mounted, so an unmount would not propagate back to the agent's work_dir mount.
func TmpfsHelperLaunch(executable, dir string, size int64, unmount bool) (*mesos.CommandInfo, *mesos.ContainerInfo) {
	host := filepath.Dir(dir)
	args := []string{executable, TmpfsCommand}
	if unmount {
		args = append(args, "--unmount")
	} else if size > 0 {
		args = append(args, "--size="+strconv.FormatInt(size, 10))
	}
	args = append(args, dir)
	no := false
	cmd := &mesos.CommandInfo{Value: &executable, Arguments: args, Shell: &no}
	sysAdmin := []mesos.CapabilityInfo_Capability{mesos.CapabilityInfo_SYS_ADMIN}
	info := &mesos.ContainerInfo{
		Type: mesos.ContainerInfo_MESOS.Enum(),
		Volumes: []mesos.Volume{{
			ContainerPath: host,
			Mode:          mesos.RW.Enum(),
			Source: &mesos.Volume_Source{
				Type: mesos.Volume_Source_HOST_PATH,
				HostPath: &mesos.Volume_Source_HostPath{Path: host,
					MountPropagation: &mesos.MountPropagation{Mode: mesos.MountPropagation_BIDIRECTIONAL.Enum()}},
			},
		}},
		LinuxInfo: &mesos.LinuxInfo{
			EffectiveCapabilities: &mesos.CapabilityInfo{Capabilities: sysAdmin},
			BoundingCapabilities:  &mesos.CapabilityInfo{Capabilities: sysAdmin},
		},
	}
	return cmd, info
}

// memoryEmptyDirs are the pod's emptyDir volumes of medium Memory.
func memoryEmptyDirs(pod *corev1.Pod) []*corev1.Volume {
	var out []*corev1.Volume
	for i := range pod.Spec.Volumes {
		if ed := pod.Spec.Volumes[i].EmptyDir; ed != nil && ed.Medium == corev1.StorageMediumMemory {
			out = append(out, &pod.Spec.Volumes[i])
		}
	}
	return out
}

// mountTmpfsVolumes mounts the pod's memory emptyDirs (podDir as for PrepareVolumes, whose
// directories must exist). A failure is a CreateContainerConfigError of the container being started
// with a Warning event naming the cause: the volume is never silently left on disk.
func (r *Runtime) mountTmpfsVolumes(ctx context.Context, pod *corev1.Pod, podDir string, pe PodEnv) error {
	vols := memoryEmptyDirs(pod)
	if len(vols) == 0 {
		return nil
	}
	var allocatable *resource.Quantity
	if pe.Allocatable != nil {
		if list, err := pe.Allocatable(ctx, pod.Spec.NodeName); err == nil {
			if m, ok := list[corev1.ResourceMemory]; ok {
				allocatable = &m
			}
		}
	}
	for _, v := range vols {
		dir := filepath.Join(podDir, VolumesDir, v.Name)
		if IsTmpfs(dir) {
			continue // SetUp is idempotent: mounted already
		}
		var size int64
		if q := MemoryEmptyDirSize(pod, v, allocatable); q != nil {
			size = q.Value()
		}
		err := r.runTmpfsHelper(ctx, dir, size, false)
		if err == nil && !IsTmpfs(dir) {
			err = errors.New("the helper container succeeded but no tmpfs reached the agent's mount namespace (is the agent's work_dir a shared mount?)")
		}
		if err != nil {
			msg := fmt.Sprintf("MountVolume.SetUp failed for volume %q (emptyDir medium Memory): %v", v.Name, err)
			if r.cfg.Event != nil {
				r.cfg.Event(pod, corev1.EventTypeWarning, EventFailedMount, msg)
			}
			return &podworker.CreateError{Reason: podworker.ReasonCreateContainerConfigError, Message: msg}
		}
	}
	return nil
}

// unmountTmpfsVolumes unmounts the pod's memory emptyDirs still mounted.
func (r *Runtime) unmountTmpfsVolumes(ctx context.Context, pod *corev1.Pod, podDir string) error {
	var errs []error
	for _, v := range memoryEmptyDirs(pod) {
		dir := filepath.Join(podDir, VolumesDir, v.Name)
		if !IsTmpfs(dir) {
			continue
		}
		if err := r.runTmpfsHelper(ctx, dir, 0, true); err != nil {
			errs = append(errs, fmt.Errorf("unmounting volume %q: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

// tmpfsHelperCleanup bounds killing and removing a tmpfs helper container.
const tmpfsHelperCleanup = 30 * time.Second

// runTmpfsHelper runs the helper container under the kubelet executor's own container (which lives
// as long as the executor, unlike a pod's sandbox) and waits for it.
func (r *Runtime) runTmpfsHelper(ctx context.Context, dir string, size int64, unmount bool) error {
	r.mu.Lock()
	parent := r.parent
	r.mu.Unlock()
	if parent == nil {
		return errors.New("the executor has no container to nest the tmpfs helper in yet")
	}
	exe := r.cfg.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	op := "mount"
	if unmount {
		op = "umount"
	}
	// Random: a restarted executor must not reuse a leftover helper's ID.
	idValue := "tmpfs-" + op + "-" + hex.EncodeToString(b[:])
	id := mesos.ContainerID{Value: idValue, Parent: parent}
	cmd, info := TmpfsHelperLaunch(exe, dir, size, unmount)
	if err := r.launch(ctx, agentcalls.LaunchContainer(id, cmd, info, nil)); err != nil {
		return fmt.Errorf("launching the tmpfs helper container: %w", err)
	}
	ended := false
	defer func() {
		// Bounded, and killed first when its wait was cut short: the agent removes only ended
		// containers, and a pod's cleanup must not hang on a helper.
		rctx, cancel := context.WithTimeout(context.Background(), tmpfsHelperCleanup)
		defer cancel()
		if !ended {
			_ = r.call(rctx, agentcalls.KillContainer(id))
			_, _ = r.waitOnce(rctx, id)
		}
		_ = r.call(rctx, agentcalls.RemoveContainer(id))
	}()
	w, err := r.waitOnce(ctx, id)
	if err != nil {
		return fmt.Errorf("waiting for the tmpfs helper container: %w", err)
	}
	ended = true
	if w.ExitStatus == nil || *w.ExitStatus != 0 {
		stderr, _ := os.ReadFile(filepath.Join(r.cfg.Sandbox, "containers", idValue, "stderr"))
		msg := strings.TrimSpace(string(stderr))
		if len(msg) > 1024 {
			msg = "…" + msg[len(msg)-1024:]
		}
		if m := w.GetMessage(); m != "" {
			msg = strings.TrimSpace(m + "; " + msg)
		}
		return fmt.Errorf("the tmpfs helper container failed (wait status %d): %s", w.GetExitStatus(), msg)
	}
	return nil
}

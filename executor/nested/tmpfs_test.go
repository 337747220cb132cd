package nested_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// runTmpfsCommand is cmd/kubemesos' tmpfs-mount for the test binary: [--size=<n>|--unmount] <dir>.
func runTmpfsCommand(args []string) int {
	var size int64
	unmount := false
	for _, a := range args[:len(args)-1] {
		switch {
		case a == "--unmount":
			unmount = true
		case strings.HasPrefix(a, "--size="):
			size, _ = strconv.ParseInt(strings.TrimPrefix(a, "--size="), 10, 64)
		}
	}
	dir := args[len(args)-1]
	var err error
	if unmount {
		err = nested.UnmountTmpfs(dir)
	} else {
		err = nested.MountTmpfs(dir, size)
	}
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	return 0
}

// The helper container: this binary's tmpfs-mount without a rootfs, the pod's volumes directory as a
// HOST_PATH volume at the same path with BIDIRECTIONAL propagation, CAP_SYS_ADMIN only.
func TestTmpfsHelperLaunch(t *testing.T) {
	exe, dir := "/work/slaves/S0/frameworks/F/executors/E/runs/C/kubemesos", "/work/slaves/S0/frameworks/F/executors/P/runs/D/volumes/cache"
	no := false
	sysAdmin := []mesos.CapabilityInfo_Capability{mesos.CapabilityInfo_SYS_ADMIN}
	wantInfo := &mesos.ContainerInfo{
		Type: mesos.ContainerInfo_MESOS.Enum(),
		Volumes: []mesos.Volume{{
			ContainerPath: filepath.Dir(dir),
			Mode:          mesos.RW.Enum(),
			Source: &mesos.Volume_Source{
				Type: mesos.Volume_Source_HOST_PATH,
				HostPath: &mesos.Volume_Source_HostPath{Path: "/work/slaves/S0/frameworks/F/executors/P/runs/D/volumes",
					MountPropagation: &mesos.MountPropagation{Mode: mesos.MountPropagation_BIDIRECTIONAL.Enum()}},
			},
		}},
		LinuxInfo: &mesos.LinuxInfo{
			EffectiveCapabilities: &mesos.CapabilityInfo{Capabilities: sysAdmin},
			BoundingCapabilities:  &mesos.CapabilityInfo{Capabilities: sysAdmin},
		},
	}
	cmd, info := nested.TmpfsHelperLaunch(exe, dir, 1<<20, false)
	if want := (&mesos.CommandInfo{Value: &exe, Arguments: []string{exe, "tmpfs-mount", "--size=1048576", dir}, Shell: &no}); !cmd.Equal(want) {
		t.Errorf("mount command = %v, want %v", cmd, want)
	}
	if !info.Equal(wantInfo) {
		t.Errorf("ContainerInfo:\n%s", cmp.Diff(wantInfo, info))
	}
	cmd, info = nested.TmpfsHelperLaunch(exe, dir, 0, true)
	if want := (&mesos.CommandInfo{Value: &exe, Arguments: []string{exe, "tmpfs-mount", "--unmount", dir}, Shell: &no}); !cmd.Equal(want) {
		t.Errorf("unmount command = %v, want %v", cmd, want)
	}
	if !info.Equal(wantInfo) {
		t.Errorf("unmount ContainerInfo:\n%s", cmp.Diff(wantInfo, info))
	}
	if cmd, _ := nested.TmpfsHelperLaunch(exe, dir, 0, false); len(cmd.Arguments) != 3 {
		t.Errorf("a size of 0 (the kernel's default) is passed: %v", cmd.Arguments)
	}
}

// The kubelet's calculateEmptyDirMemorySize: node allocatable, else the pod's memory limit when every
// container (init ones too) has one and it is smaller, else the volume's sizeLimit when smaller.
func TestMemoryEmptyDirSize(t *testing.T) {
	q := resource.MustParse
	limits := func(mem string) corev1.ResourceRequirements {
		if mem == "" {
			return corev1.ResourceRequirements{}
		}
		return corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: q(mem)}}
	}
	pod := func(sizeLimit string, mems ...string) (*corev1.Pod, *corev1.Volume) {
		p := &corev1.Pod{}
		for _, m := range mems {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + strconv.Itoa(len(p.Spec.Containers)), Resources: limits(m)})
		}
		v := corev1.Volume{Name: "m", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}
		if sizeLimit != "" {
			sl := q(sizeLimit)
			v.EmptyDir.SizeLimit = &sl
		}
		p.Spec.Volumes = []corev1.Volume{v}
		return p, &p.Spec.Volumes[0]
	}
	alloc := q("8Gi")
	for _, tc := range []struct {
		name      string
		sizeLimit string
		mems      []string
		init      string
		alloc     *resource.Quantity
		want      int64
	}{
		{"node allocatable", "", []string{"", ""}, "", &alloc, 8 << 30},
		{"pod limit: every container has one", "", []string{"100Mi", "200Mi"}, "", &alloc, 300 << 20},
		{"one container without a limit", "", []string{"100Mi", ""}, "", &alloc, 8 << 30},
		{"an init container without a limit", "", []string{"100Mi"}, "none", &alloc, 8 << 30},
		{"an init container's larger limit", "", []string{"100Mi"}, "1Gi", &alloc, 1 << 30},
		{"sizeLimit below the pod limit", "64Mi", []string{"100Mi"}, "", &alloc, 64 << 20},
		{"sizeLimit above the pod limit", "1Gi", []string{"100Mi"}, "", &alloc, 100 << 20},
		{"sizeLimit above node allocatable", "16Gi", nil, "", &alloc, 8 << 30},
		{"pod limit above node allocatable", "", []string{"10Gi"}, "", &alloc, 8 << 30},
		{"unknown allocatable: sizeLimit", "64Mi", []string{""}, "", nil, 64 << 20},
		{"unknown allocatable, no limits: the kernel's default", "", []string{""}, "", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, v := pod(tc.sizeLimit, tc.mems...)
			switch tc.init {
			case "":
			case "none":
				p.Spec.InitContainers = []corev1.Container{{Name: "i"}}
			default:
				p.Spec.InitContainers = []corev1.Container{{Name: "i", Resources: limits(tc.init)}}
			}
			var got int64
			if s := nested.MemoryEmptyDirSize(p, v, tc.alloc); s != nil {
				got = s.Value()
			}
			if got != tc.want {
				t.Errorf("size = %d, want %d", got, tc.want)
			}
		})
	}
}

const isolationWithCaps = "filesystem/linux,docker/runtime,volume/sandbox_path,volume/host_path,linux/capabilities"

// mountedUnder lists the mount points at or under dir in this (the agent's) mount namespace.
func mountedUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// A pod's memory emptyDir is a tmpfs of the sizeLimit in the pod's container (writing past it fails
// with ENOSPC) and in the agent's mount namespace, mounted by the helper container; CleanupPod
// unmounts it and leaves no mount under the agent's work_dir.
func TestIsolatedMemoryEmptyDir(t *testing.T) {
	registry := busyboxRegistry(t)
	var workDir string
	r := isolatingRuntime(t, isolationWithCaps, func(c *agent.Config) {
		c.ImageProviders, c.DockerRegistry, c.DockerStoreDir = "docker", registry, t.TempDir()
		workDir = c.WorkDir
	})
	pod := shPod("tmpfs", `stat -f -c %T /cache; dd if=/dev/zero of=/cache/big bs=1024 count=2048 2>&1; echo "dd exit $?"`,
		nil, nil, corev1.ResourceRequirements{})
	oneMi := resource.MustParse("1Mi")
	pod.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: &oneMi}}}}
	c := &pod.Spec.Containers[0]
	c.Image = "busybox"
	c.VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}}
	st, out := run(t, r, pod)
	if st.ExitCode != 0 || !strings.HasPrefix(out, "tmpfs\n") || !strings.Contains(out, "No space left on device") || !strings.Contains(out, "dd exit 1") {
		t.Fatalf("exit %d, output %q; want tmpfs and dd failing with ENOSPC past 1Mi", st.ExitCode, out)
	}
	dir, _, _ := r.SandboxFor(pod.UID)
	vol := filepath.Join(dir, nested.PodsDir, string(pod.UID), nested.VolumesDir, "cache")
	var sf unix.Statfs_t
	if err := unix.Statfs(vol, &sf); err != nil || sf.Type != unix.TMPFS_MAGIC || sf.Blocks*uint64(sf.Bsize) != 1<<20 {
		t.Errorf("the agent's %s: statfs %+v, %v; want a 1Mi tmpfs", vol, sf, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.CleanupPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(workDir)
	for _, m := range mountedUnder(t, real) {
		if m != real {
			t.Errorf("mount left under the agent's work_dir: %s", m)
		}
	}
	if _, err := os.Stat(vol); !os.IsNotExist(err) {
		t.Errorf("the volume's directory after CleanupPod: %v", err)
	}
}

// An agent that does not allow CAP_SYS_ADMIN (--bounding_capabilities) refuses the helper: the
// container is not started (CreateContainerConfigError) and a FailedMount Warning names the cause;
// it never runs with the volume on disk.
func TestIsolatedMemoryEmptyDirRefused(t *testing.T) {
	r := isolatingRuntime(t, isolationWithCaps, func(c *agent.Config) {
		c.BoundingCapabilities = []string{"CHOWN", "KILL"}
	})
	var events []string
	nested.SetEventForTest(r, func(_ *corev1.Pod, typ, reason, msg string) { events = append(events, typ+" "+reason+": "+msg) })
	pod := shPod("tmpfs-refused", `stat -f -c %T /cache`, nil, nil, corev1.ResourceRequirements{})
	pod.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}}
	withSandbox(t, r, pod, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := r.Start(ctx, pod, &pod.Spec.Containers[0], 0)
	var ce *podworker.CreateError
	if !errors.As(err, &ce) || ce.Reason != podworker.ReasonCreateContainerConfigError || !strings.Contains(ce.Message, `volume "cache"`) || !strings.Contains(ce.Message, "SYS_ADMIN") {
		t.Fatalf("Start = %v, want a CreateContainerConfigError naming the volume and the refused capability", err)
	}
	if len(events) != 1 || !strings.HasPrefix(events[0], "Warning FailedMount: ") {
		t.Errorf("events %q, want one FailedMount Warning", events)
	}
	t.Log(ce.Message)
}

// IsTmpfs is a tmpfs mounted on the directory, not a directory that lies on one (a work_dir under a
// tmpfs /tmp would otherwise look mounted already).
func TestIsTmpfsIsAMountOfItsOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if nested.IsTmpfs(dir) {
		t.Fatal("a plain directory is a tmpfs")
	}
	if err := nested.MountTmpfs(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if !nested.IsTmpfs(dir) || nested.IsTmpfs(sub) {
		t.Errorf("IsTmpfs(mounted) = %v, IsTmpfs(a directory on it) = %v; want true, false", nested.IsTmpfs(dir), nested.IsTmpfs(sub))
	}
	if err := nested.UnmountTmpfs(sub); err != nil || !nested.IsTmpfs(dir) {
		t.Errorf("UnmountTmpfs of a directory on the tmpfs: %v, and the tmpfs is still mounted: %v", err, nested.IsTmpfs(dir))
	}
	if err := nested.UnmountTmpfs(dir); err != nil || nested.IsTmpfs(dir) {
		t.Errorf("UnmountTmpfs: %v, still mounted: %v", err, nested.IsTmpfs(dir))
	}
}

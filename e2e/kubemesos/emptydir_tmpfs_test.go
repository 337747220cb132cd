package kubemesos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// tmpfsMountsUnder lists the tmpfs mounts of this process's mount namespace (the simulated agents')
// under dir.
func tmpfsMountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[4], dir+"/") {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "tmpfs" {
				out = append(out, f[4])
			}
		}
	}
	return out
}

// An emptyDir of medium Memory is a tmpfs the pod's two containers share, of its sizeLimit (writing
// past it fails with ENOSPC), mounted by the executor's helper nested container through the agents'
// shared work_dir; once the pod is deleted no mount of it is left under the agents' work_dir.
func TestEmptyDirMemoryMedium(t *testing.T) {
	e := newPodNetworkEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	workDir, err := filepath.EvalSymlinks(filepath.Join(e.dir, "mesos"))
	if err != nil {
		t.Fatal(err)
	}
	oneMi := resource.MustParse("1Mi")
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tmpfs"}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To[int64](1),
		Volumes: []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: &oneMi}}}},
		Containers: []corev1.Container{
			{Name: "writer", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}},
				Command: []string{"sh", "-c", `stat -f -c %T /cache; dd if=/dev/zero of=/cache/big bs=1024 count=2048 2>&1 | grep -o 'No space left on device'; rm /cache/big; echo from-writer > /cache/msg; exec sleep 3600`}},
			{Name: "reader", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "cache", MountPath: "/data"}},
				Command: []string{"sh", "-c", `until [ -f /data/msg ]; do sleep 0.2; done; stat -f -c %T /data; cat /data/msg; exec sleep 3600`}},
		}}}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// As the upstream "memory backed volumes of specified size" spec reads it (kubectl exec), as soon
	// as the pod runs (an exec racing the container's launch once joined the wrong pid namespace).
	e.eventually("the pod to run", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "tmpfs", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodRunning, fmt.Errorf("pod tmpfs: %s", containerSummary(p))
	})
	stdout, stderr, code, err := e.kubectl(ctx, "exec", "tmpfs", "-c", "reader", "--", "sh", "-c", "df | grep /data | awk '{print $2}'")
	if err != nil || code != 0 || stdout != "1024\n" {
		t.Errorf("df of the volume in the reader: %q (exit %d, %v; stderr %q), want 1024 (1Ki blocks)", stdout, code, err, stderr)
	}
	want := map[string]string{"writer": "tmpfs\nNo space left on device\n", "reader": "tmpfs\nfrom-writer\n"}
	e.eventually("both containers to see the shared tmpfs", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "tmpfs", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && strings.HasSuffix(w.Reason, "Error") {
				return false, fatalf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
			}
			if tr := cs.State.Terminated; tr != nil {
				return false, fatalf("container %s exited %d: %s", cs.Name, tr.ExitCode, tr.Message)
			}
		}
		for c, w := range want {
			b, err := e.kube.CoreV1().Pods(e.ns).GetLogs("tmpfs", &corev1.PodLogOptions{Container: c}).DoRaw(ctx)
			if err != nil || string(b) != w {
				return false, fmt.Errorf("%s's log %q (%v), want %q; pod: %s", c, b, err, w, containerSummary(p))
			}
		}
		return true, nil
	})
	mounts := tmpfsMountsUnder(t, workDir)
	var vol string
	for _, m := range mounts {
		if strings.HasSuffix(m, "/volumes/cache") {
			vol = m
		}
	}
	var st unix.Statfs_t
	if vol == "" {
		t.Fatalf("no tmpfs of the volume in the agents' mount namespace; tmpfs mounts under the work_dir: %q", mounts)
	} else if err := unix.Statfs(vol, &st); err != nil || st.Blocks*uint64(st.Bsize) != 1<<20 {
		t.Errorf("the agent's %s: %d blocks of %d (%v), want 1Mi", vol, st.Blocks, st.Bsize, err)
	}

	if err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, "tmpfs", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("the pod to be gone", 2*time.Minute, func(ctx context.Context) (bool, error) {
		_, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "tmpfs", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	e.eventually("no tmpfs left under the agents' work_dir", time.Minute, func(context.Context) (bool, error) {
		if m := tmpfsMountsUnder(t, workDir); len(m) > 0 {
			return false, fmt.Errorf("tmpfs mounts under %s: %q", workDir, m)
		}
		return true, nil
	})
}

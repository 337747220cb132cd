package nested

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type tokenLookup struct {
	fakeLookup
	audiences []string
}

func (l *tokenLookup) Token(_ context.Context, pod *corev1.Pod, audience string, exp int64) (string, error) {
	l.audiences = append(l.audiences, audience)
	return "token-for-" + pod.Name, nil
}

func TestPrepareVolumes(t *testing.T) {
	mode := int32(0o600)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1", Labels: map[string]string{"b": "2", "a": "1"}},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
				Items:                []corev1.KeyToPath{{Key: "MODE", Path: "conf/mode.txt"}},
			}}},
			{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds", DefaultMode: &mode}}},
			{Name: "sa", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
					{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				}}},
			}}}},
		}},
	}
	lookup := &tokenLookup{fakeLookup: fakeLookup{
		cms:     map[string]map[string]string{"ns/cfg": {"MODE": "fast", "LEVEL": "3"}},
		secrets: map[string]map[string][]byte{"ns/creds": {"token": []byte("s3cr3t")}},
	}}
	sandbox := t.TempDir()
	if err := PrepareVolumes(context.Background(), sandbox, pod, PodEnv{Lookup: lookup}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(sandbox, "volumes")
	// Writable by a container running as another user than the executor (runAsUser).
	if fi, err := os.Stat(filepath.Join(root, "scratch")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o777 {
		t.Errorf("emptyDir mode %v, want 0777 as the kubelet makes it", fi.Mode())
	}
	want := map[string]string{
		"cfg/conf/mode.txt": "fast",
		"creds/token":       "s3cr3t",
		"sa/token":          "token-for-web",
		"sa/namespace":      "ns",
		"sa/labels":         "a=\"1\"\nb=\"2\"",
	}
	got := visibleFiles(t, root)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(root, "scratch")); err != nil || !fi.IsDir() {
		t.Errorf("emptyDir: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "creds/token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret mode %v", fi.Mode().Perm())
	}
	if err := RemoveVolumes(sandbox); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("volumes left: %v", err)
	}

	// A missing required ConfigMap is an error; a path escaping the volume too.
	bad := pod.DeepCopy()
	bad.Spec.Volumes = []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}}}}}
	if err := PrepareVolumes(context.Background(), sandbox, bad, PodEnv{Lookup: lookup}); err == nil {
		t.Error("missing configmap accepted")
	}
	bad.Spec.Volumes = []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "MODE", Path: "../../escape"}}}}}}
	if err := PrepareVolumes(context.Background(), sandbox, bad, PodEnv{Lookup: lookup}); err == nil {
		t.Error("escaping path accepted")
	}
}

func TestMesosVolumes(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u1"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "data"}, {Name: "cfg"}}}}
	c := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{
		{Name: "data", MountPath: "/data"},
		{Name: "cfg", MountPath: "/etc/app", ReadOnly: true, SubPath: "app"},
	}}
	got, err := MesosVolumes(pod, c, "")
	if err != nil {
		t.Fatal(err)
	}
	src := func(p string) *mesos.Volume_Source {
		return &mesos.Volume_Source{Type: mesos.Volume_Source_SANDBOX_PATH,
			SandboxPath: &mesos.Volume_Source_SandboxPath{Type: mesos.Volume_Source_SandboxPath_PARENT, Path: p}}
	}
	want := []mesos.Volume{
		{ContainerPath: "/data", Mode: mesos.RW.Enum(), Source: src("volumes/data")},
		{ContainerPath: "/etc/app", Mode: mesos.RO.Enum(), Source: src("volumes/cfg/app")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	// A host-network pod's directory is pods/<uid> in the kubelet executor's sandbox.
	if got, err := MesosVolumes(pod, c, "pods/u1"); err != nil || got[0].Source.SandboxPath.Path != "pods/u1/volumes/data" {
		t.Errorf("with the pods/u1 prefix: %v, %v", got, err)
	}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}
	if _, err := MesosVolumes(pod, c, ""); err == nil {
		t.Error("unknown volume accepted")
	}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/x", SubPath: "../up"}}
	if _, err := MesosVolumes(pod, c, ""); err == nil {
		t.Error("escaping subPath accepted")
	}
}

func TestTerminationMessageVolume(t *testing.T) {
	podDir := t.TempDir()
	c := &corev1.Container{Name: "app", TerminationMessagePath: "/dev/termination-log"}
	vols, host, err := TerminationMessageVolume(podDir, "pods/u1", c, "u1-app-2")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(podDir, "termination-log", "u1-app-2"); host != want {
		t.Errorf("host path %q, want %q", host, want)
	}
	// Empty and writable by any user (the container may run as another user), as the kubelet makes it.
	if fi, err := os.Stat(host); err != nil {
		t.Fatal(err)
	} else if fi.Size() != 0 || fi.Mode().Perm() != 0o666 || !fi.Mode().IsRegular() {
		t.Errorf("file %v size %d, want an empty regular file 0666", fi.Mode(), fi.Size())
	}
	want := []mesos.Volume{{
		ContainerPath: "/dev/termination-log",
		Mode:          mesos.RW.Enum(),
		Source: &mesos.Volume_Source{
			Type: mesos.Volume_Source_SANDBOX_PATH,
			SandboxPath: &mesos.Volume_Source_SandboxPath{Type: mesos.Volume_Source_SandboxPath_PARENT,
				Path: "pods/u1/termination-log/u1-app-2"},
		},
	}}
	if diff := cmp.Diff(want, vols); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	// A relaunch of the same attempt starts from an empty file.
	if err := os.WriteFile(host, []byte("old"), 0o666); err != nil {
		t.Fatal(err)
	}
	if _, _, err := TerminationMessageVolume(podDir, "pods/u1", c, "u1-app-2"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(host); len(data) != 0 {
		t.Errorf("relaunched attempt's file holds %q", data)
	}
	// No terminationMessagePath: nothing.
	if vols, host, err := TerminationMessageVolume(podDir, "", &corev1.Container{Name: "x"}, "u1-x-0"); err != nil || vols != nil || host != "" {
		t.Errorf("without a path: %v %q %v", vols, host, err)
	}
	// The files go with the pod's volumes.
	if err := RemoveVolumes(podDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(podDir, TerminationMessageDir)); !os.IsNotExist(err) {
		t.Errorf("termination files left after RemoveVolumes: %v", err)
	}
}

// visibleFiles is what a container sees under root: the files' contents by path, through the
// AtomicWriter's symlinks, without its ..data and ..<timestamp> entries.
func visibleFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	var walk func(rel string)
	walk = func(rel string) {
		entries, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "..") {
				continue
			}
			r := filepath.Join(rel, e.Name())
			fi, err := os.Stat(filepath.Join(root, r))
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() {
				walk(r)
				continue
			}
			b, err := os.ReadFile(filepath.Join(root, r))
			if err != nil {
				t.Fatal(err)
			}
			got[r] = string(b)
		}
	}
	walk("")
	return got
}

// SyncVolumes brings the volumes to the API's current content as the kubelet's re-mount on pod sync
// does ("optional updates should be reflected in volume"): updated keys, a deleted optional
// ConfigMap's files gone, a created optional Secret's there; a required ConfigMap that disappeared
// leaves its volume as it was; the pod's token is not requested again; a container that opened the
// volume's directory before the update reads the new content through it.
func TestSyncVolumes(t *testing.T) {
	yes := true
	mode := int32(0o400)
	cmVol := func(name, cm string, optional *bool) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Optional: optional, DefaultMode: &mode}}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{
			cmVol("upd", "upd", nil),
			cmVol("del", "del", &yes),
			{Name: "create", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "create", Optional: &yes}}},
			cmVol("required", "required", nil),
			{Name: "sa", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "upd"}}},
			}}}},
		}},
	}
	lookup := &tokenLookup{fakeLookup: fakeLookup{
		cms: map[string]map[string]string{
			"ns/upd":      {"data-1": "value-1"},
			"ns/del":      {"data-1": "value-1"},
			"ns/required": {"data-1": "value-1"},
		},
		secrets: map[string]map[string][]byte{},
	}}
	sandbox := t.TempDir()
	if err := PrepareVolumes(context.Background(), sandbox, pod, PodEnv{Lookup: lookup}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(sandbox, "volumes")
	mounted, err := os.Open(filepath.Join(root, "upd")) // what a bind mount of the directory holds on to
	if err != nil {
		t.Fatal(err)
	}
	defer mounted.Close()

	lookup.cms["ns/upd"] = map[string]string{"data-1": "value-2", "data-3": "value-3"}
	delete(lookup.cms, "ns/del")
	delete(lookup.cms, "ns/required")
	lookup.secrets["ns/create"] = map[string][]byte{"data-1": []byte("value-1")}
	err = SyncVolumes(context.Background(), sandbox, pod, PodEnv{Lookup: lookup})
	if err == nil || !strings.Contains(err.Error(), "volume required") {
		t.Errorf("SyncVolumes = %v, want the required ConfigMap's error", err)
	}
	want := map[string]string{
		"upd/data-1":      "value-2",
		"upd/data-3":      "value-3",
		"create/data-1":   "value-1",
		"required/data-1": "value-1",
		"sa/token":        "token-for-web",
		"sa/data-1":       "value-2",
		"sa/data-3":       "value-3",
	}
	if diff := cmp.Diff(want, visibleFiles(t, root)); diff != "" {
		t.Errorf("after the sync (-want +got):\n%s", diff)
	}
	if len(lookup.audiences) != 1 {
		t.Errorf("tokens requested %d times, want once (when the pod started)", len(lookup.audiences))
	}
	if fi, err := os.Stat(filepath.Join(root, "upd", "data-3")); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("new key's mode: %v %v, want the defaultMode 0400", fi, err)
	}
	b, err := os.ReadFile(filepath.Join("/proc/self/fd", strconv.Itoa(int(mounted.Fd())), "data-1"))
	if err != nil || string(b) != "value-2" {
		t.Errorf("through the directory opened before the sync: %q %v", b, err)
	}
	// One payload directory per volume: the previous ones are gone.
	for _, v := range []string{"upd", "del", "create", "sa"} {
		entries, _ := os.ReadDir(filepath.Join(root, v))
		n := 0
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "..") && e.Name() != "..data" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("volume %s has %d payload directories, want 1", v, n)
		}
	}
}

// lockedLookup is a ConfigMap store a test changes while the runtime reads it.
type lockedLookup struct {
	mu  sync.Mutex
	cms map[string]map[string]string
}

func (l *lockedLookup) ConfigMap(_ context.Context, ns, name string) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, ok := l.cms[ns+"/"+name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, ErrNotFound)
}

func (l *lockedLookup) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	return nil, fmt.Errorf("secret %s/%s: %w", ns, name, ErrNotFound)
}

func (l *lockedLookup) set(key string, data map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cms[key] = data
}

// A started pod's configMap volume follows the ConfigMap every VolumeSyncPeriod until CleanupPod,
// which stops the sync before it removes the volumes (a late sync would write them back).
func TestRuntimeSyncsVolumesUntilCleanup(t *testing.T) {
	a := &launchAgent{}
	srv := httptest.NewServer(a)
	defer srv.Close()
	lookup := &lockedLookup{cms: map[string]map[string]string{"ns/cfg": {"k": "v1"}}}
	r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Env: PodEnv{Lookup: lookup}, Images: fakeImages{}, VolumeSyncPeriod: 10 * time.Millisecond})
	c := corev1.Container{Name: "app", Command: []string{"app"}, VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}}}
	pod := testPod(c)
	pod.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}
	ready(t, r, pod)
	if _, err := r.Start(context.Background(), pod, &c, 0); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	file := filepath.Join(r.podDirs[pod.UID], VolumesDir, "cfg", "k")
	r.mu.Unlock()
	read := func() string { b, _ := os.ReadFile(file); return string(b) }
	if got := read(); got != "v1" {
		t.Fatalf("volume at start %q, want v1", got)
	}
	lookup.set("ns/cfg", map[string]string{"k": "v2"})
	deadline := time.Now().Add(10 * time.Second)
	for read() != "v2" {
		if time.Now().After(deadline) {
			t.Fatalf("volume still %q, want the ConfigMap's update v2", read())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.CleanupPod(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // five sync periods
	if _, err := os.Stat(filepath.Dir(file)); !os.IsNotExist(err) {
		t.Errorf("the volume is back after CleanupPod: %v", err)
	}
}

// A pod's containers start at once, and each Start prepares the pod's volumes: one writes them,
// the others wait ("optional updates" specs' three containers failed with StartError when two
// writers swapped the same ..data).
func TestConcurrentStartsPrepareVolumesOnce(t *testing.T) {
	a := &launchAgent{}
	srv := httptest.NewServer(a)
	defer srv.Close()
	lookup := &tokenLookup{fakeLookup: fakeLookup{cms: map[string]map[string]string{"ns/cfg": {"k": "v"}}}}
	r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Env: PodEnv{Lookup: lookup}, Images: fakeImages{}})
	var cs []corev1.Container
	for _, n := range []string{"a", "b", "c", "d"} {
		cs = append(cs, corev1.Container{Name: n, Command: []string{"app"}, VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}, {Name: "sa", MountPath: "/sa"}}})
	}
	pod := testPod(cs[0])
	pod.Spec.Containers = cs
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "sa", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}},
	}
	ready(t, r, pod)
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	for i := range pod.Spec.Containers {
		wg.Add(1)
		go func(c *corev1.Container) {
			defer wg.Done()
			_, err := r.Start(context.Background(), pod, c, 0)
			errs <- err
		}(&pod.Spec.Containers[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if len(lookup.audiences) != 1 {
		t.Errorf("%d tokens requested, want 1: the volumes are prepared once", len(lookup.audiences))
	}
	if err := r.CleanupPod(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

// A hostPath volume is Mesos' HOST_PATH volume of the agent host's path (with the mount's subPath),
// read-only when the mount is; it gets no directory in the pod's.
func TestMesosVolumesHostPath(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u1"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"}}},
	}}}
	c := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{
		{Name: "host", MountPath: "/test-volume"},
		{Name: "host", MountPath: "/sub", SubPath: "sub-path", ReadOnly: true},
	}}
	got, err := MesosVolumes(pod, c, "pods/u1")
	if err != nil {
		t.Fatal(err)
	}
	src := func(p string) *mesos.Volume_Source {
		return &mesos.Volume_Source{Type: mesos.Volume_Source_HOST_PATH, HostPath: &mesos.Volume_Source_HostPath{Path: p}}
	}
	want := []mesos.Volume{
		{ContainerPath: "/test-volume", Mode: mesos.RW.Enum(), Source: src("/tmp")},
		{ContainerPath: "/sub", Mode: mesos.RO.Enum(), Source: src("/tmp/sub-path")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	sandbox := t.TempDir()
	if err := PrepareVolumes(context.Background(), sandbox, pod, PodEnv{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sandbox, VolumesDir, "host")); !os.IsNotExist(err) {
		t.Errorf("a hostPath volume got a directory in the pod's: %v", err)
	}
}

// The kubelet's hostPath type checks and creations, and the subPath directory made with the
// volume's mode (the sticky /tmp-like 1777 here).
func TestPrepareHostPaths(t *testing.T) {
	root := t.TempDir()
	typ := func(t corev1.HostPathType) *corev1.HostPathType { return &t }
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sticky := filepath.Join(root, "sticky")
	if err := os.Mkdir(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		hp      corev1.HostPathVolumeSource
		subPath string
		wantErr string
		check   func(t *testing.T)
	}{
		{name: "DirectoryOrCreate creates", hp: corev1.HostPathVolumeSource{Path: filepath.Join(root, "new/dir"), Type: typ(corev1.HostPathDirectoryOrCreate)},
			check: func(t *testing.T) {
				if fi, err := os.Stat(filepath.Join(root, "new/dir")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
					t.Errorf("created %v %v, want a 0755 directory", fi, err)
				}
			}},
		{name: "FileOrCreate creates", hp: corev1.HostPathVolumeSource{Path: filepath.Join(root, "new-file"), Type: typ(corev1.HostPathFileOrCreate)},
			check: func(t *testing.T) {
				if fi, err := os.Stat(filepath.Join(root, "new-file")); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("created %v %v, want a file", fi, err)
				}
			}},
		{name: "Directory on a file", hp: corev1.HostPathVolumeSource{Path: file, Type: typ(corev1.HostPathDirectory)},
			wantErr: `MountVolume.SetUp failed for volume "v" : hostPath type check failed: ` + file + ` is not a directory`},
		{name: "File missing", hp: corev1.HostPathVolumeSource{Path: filepath.Join(root, "absent"), Type: typ(corev1.HostPathFile)},
			wantErr: "is not a file"},
		{name: "Socket on a file", hp: corev1.HostPathVolumeSource{Path: file, Type: typ(corev1.HostPathSocket)}, wantErr: "is not a socket file"},
		{name: "untyped missing path is created", hp: corev1.HostPathVolumeSource{Path: filepath.Join(root, "untyped")},
			check: func(t *testing.T) {
				if fi, err := os.Stat(filepath.Join(root, "untyped")); err != nil || !fi.IsDir() {
					t.Errorf("created %v %v, want a directory", fi, err)
				}
			}},
		{name: "subPath made with the volume's mode", hp: corev1.HostPathVolumeSource{Path: sticky}, subPath: "sub-path",
			check: func(t *testing.T) {
				fi, err := os.Stat(filepath.Join(sticky, "sub-path"))
				if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
					t.Errorf("subPath %v %v, want drwxrwxrwt", fi, err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{HostPath: &tt.hp}}}}}
			c := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/v", SubPath: tt.subPath}}}
			err := PrepareHostPaths(pod, c)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t)
			}
		})
	}
}

// A pod update's labels and annotations reach its downwardAPI volume at once ("Downward API volume
// should update annotations on modification"), without waiting for the periodic sync.
func TestPodUpdatedRefreshesDownwardAPI(t *testing.T) {
	a := &launchAgent{}
	srv := httptest.NewServer(a)
	defer srv.Close()
	r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Env: PodEnv{Lookup: &lockedLookup{cms: map[string]map[string]string{}}}, Images: fakeImages{}, VolumeSyncPeriod: time.Hour})
	c := corev1.Container{Name: "app", Command: []string{"app"}, VolumeMounts: []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}}}
	pod := testPod(c)
	pod.Annotations = map[string]string{"builder": "bar"}
	pod.Spec.Volumes = []corev1.Volume{{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
		{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
	}}}}}
	ready(t, r, pod)
	if _, err := r.Start(context.Background(), pod, &c, 0); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	file := filepath.Join(r.podDirs[pod.UID], VolumesDir, "podinfo", "annotations")
	r.mu.Unlock()
	read := func() string { b, _ := os.ReadFile(file); return string(b) }
	if got := read(); got != `builder="bar"` {
		t.Fatalf("at start %q", got)
	}
	updated := pod.DeepCopy()
	updated.Annotations["builder"] = "foo"
	r.PodUpdated(updated)
	deadline := time.Now().Add(10 * time.Second)
	for read() != `builder="foo"` {
		if time.Now().After(deadline) {
			t.Fatalf("annotations still %q after the update", read())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.CleanupPod(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	r.PodUpdated(updated) // after cleanup: nothing to do, no panic
}

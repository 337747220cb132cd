package nested

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
	got := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			got[rel] = string(b)
		}
		return nil
	})
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

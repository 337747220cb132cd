package nested

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
)

// TokenSource issues service account tokens for projected serviceAccountToken volumes (the executor
// implements it with the TokenRequest API). A Lookup that also implements TokenSource is used for them.
type TokenSource interface {
	Token(ctx context.Context, pod *corev1.Pod, audience string, expirationSeconds int64) (string, error)
}

// VolumesDir is where, in the pod's directory (the PARENT of the pod's containers, or pods/<uid> in
// it, see sandbox.go), the volumes of the pod are materialized: volumes/<volume name>.
const VolumesDir = "volumes"

// PrepareVolumes materializes the pod's volumes under podDir/VolumesDir: emptyDir as an empty
// directory, configMap, secret, downwardAPI and projected volumes as files (written once, when the pod
// starts: later changes of the ConfigMap or Secret are not propagated, and tokens are not refreshed).
// Volume types it does not know are errors (podtranslate refuses such pods before they get here).
func PrepareVolumes(ctx context.Context, podDir string, pod *corev1.Pod, pe PodEnv) error {
	root := filepath.Join(podDir, VolumesDir)
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(root, v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := fillVolume(ctx, dir, pod, v, pe); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	return nil
}

func fillVolume(ctx context.Context, dir string, pod *corev1.Pod, v corev1.Volume, pe PodEnv) error {
	switch {
	case v.EmptyDir != nil:
		// World-writable as the kubelet makes it: containers may run as another user (runAsUser) than
		// the executor that creates it.
		return os.Chmod(dir, 0o777)
	case v.ConfigMap != nil:
		return writeConfigMap(ctx, dir, pod, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, v.ConfigMap.DefaultMode, pe)
	case v.Secret != nil:
		return writeSecret(ctx, dir, pod, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, v.Secret.DefaultMode, pe)
	case v.DownwardAPI != nil:
		return writeDownward(ctx, dir, pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, pe)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			var err error
			switch {
			case src.ConfigMap != nil:
				err = writeConfigMap(ctx, dir, pod, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, v.Projected.DefaultMode, pe)
			case src.Secret != nil:
				err = writeSecret(ctx, dir, pod, src.Secret.Name, src.Secret.Items, src.Secret.Optional, v.Projected.DefaultMode, pe)
			case src.DownwardAPI != nil:
				err = writeDownward(ctx, dir, pod, src.DownwardAPI.Items, v.Projected.DefaultMode, pe)
			case src.ServiceAccountToken != nil:
				err = writeToken(ctx, dir, pod, src.ServiceAccountToken, v.Projected.DefaultMode, pe)
			default:
				err = errors.New("unsupported projected source")
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	return errors.New("unsupported volume type")
}

func mode(item *int32, def *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item)
	case def != nil:
		return os.FileMode(*def)
	}
	return 0o644
}

// writeFile writes data at rel under dir, refusing paths that leave dir.
func writeFile(dir, rel string, data []byte, m os.FileMode) error {
	clean := filepath.Clean(rel)
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("path %q leaves the volume", rel)
	}
	p := filepath.Join(dir, clean)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, m&0o777)
}

func writeKeys(dir string, data map[string][]byte, items []corev1.KeyToPath, defMode *int32, what string) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := writeFile(dir, k, v, mode(nil, defMode)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		if err := writeFile(dir, it.Path, v, mode(it.Mode, defMode)); err != nil {
			return err
		}
	}
	return nil
}

func writeConfigMap(ctx context.Context, dir string, pod *corev1.Pod, name string, items []corev1.KeyToPath, optional *bool, defMode *int32, pe PodEnv) error {
	if pe.Lookup == nil {
		return errors.New("configMap volumes need an API client")
	}
	data, err := pe.Lookup.ConfigMap(ctx, pod.Namespace, name)
	if err != nil {
		if optional != nil && *optional && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	bin := make(map[string][]byte, len(data))
	for k, v := range data {
		bin[k] = []byte(v)
	}
	return writeKeys(dir, bin, items, defMode, "configmap "+name)
}

func writeSecret(ctx context.Context, dir string, pod *corev1.Pod, name string, items []corev1.KeyToPath, optional *bool, defMode *int32, pe PodEnv) error {
	if pe.Lookup == nil {
		return errors.New("secret volumes need an API client")
	}
	data, err := pe.Lookup.Secret(ctx, pod.Namespace, name)
	if err != nil {
		if optional != nil && *optional && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return writeKeys(dir, data, items, defMode, "secret "+name)
}

func writeDownward(ctx context.Context, dir string, pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defMode *int32, pe PodEnv) error {
	for _, it := range items {
		var (
			v   string
			err error
		)
		switch {
		case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.labels":
			v = formatMap(pod.Labels)
		case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.annotations":
			v = formatMap(pod.Annotations)
		case it.FieldRef != nil:
			v, err = fieldValue(pod, it.FieldRef.FieldPath, pe)
		case it.ResourceFieldRef != nil:
			c := containerNamed(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return fmt.Errorf("downwardAPI %s: no container %q", it.Path, it.ResourceFieldRef.ContainerName)
			}
			v, err = resourceValue(ctx, pod, c, it.ResourceFieldRef, pe)
		}
		if err != nil {
			return fmt.Errorf("downwardAPI %s: %w", it.Path, err)
		}
		if err := writeFile(dir, it.Path, []byte(v), mode(it.Mode, defMode)); err != nil {
			return err
		}
	}
	return nil
}

func containerNamed(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// formatMap renders labels/annotations as the kubelet does: key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

func writeToken(ctx context.Context, dir string, pod *corev1.Pod, p *corev1.ServiceAccountTokenProjection, defMode *int32, pe PodEnv) error {
	ts, ok := pe.Lookup.(TokenSource)
	if !ok {
		return errors.New("serviceAccountToken volumes need an API client")
	}
	exp := int64(3600)
	if p.ExpirationSeconds != nil {
		exp = *p.ExpirationSeconds
	}
	tok, err := ts.Token(ctx, pod, p.Audience, exp)
	if err != nil {
		return err
	}
	return writeFile(dir, p.Path, []byte(tok), mode(nil, defMode))
}

// RemoveVolumes deletes a pod's materialized volumes and its containers' termination message files
// (podDir as for PrepareVolumes).
func RemoveVolumes(podDir string) error {
	if err := os.RemoveAll(filepath.Join(podDir, VolumesDir)); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(podDir, TerminationMessageDir))
}

// MesosVolumes are the volumes of a container: each volumeMount is the pod volume's directory in the
// pod's directory, prefix relative to the parent's sandbox (SANDBOX_PATH of the PARENT, as Mesos'
// default executor shares task group volumes), read-only when the mount says so. Mounts of unknown
// volumes are errors.
func MesosVolumes(pod *corev1.Pod, c *corev1.Container, prefix string) ([]mesos.Volume, error) {
	known := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		known[v.Name] = true
	}
	var out []mesos.Volume
	for _, m := range c.VolumeMounts {
		if !known[m.Name] {
			return nil, fmt.Errorf("container %s mounts unknown volume %q", c.Name, m.Name)
		}
		rel := path.Join(prefix, VolumesDir, m.Name)
		if m.SubPath != "" {
			sub := path.Clean(m.SubPath)
			if path.IsAbs(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
				return nil, fmt.Errorf("container %s: subPath %q leaves the volume", c.Name, m.SubPath)
			}
			rel = path.Join(rel, sub)
		}
		md := mesos.RW
		if m.ReadOnly {
			md = mesos.RO
		}
		out = append(out, mesos.Volume{
			ContainerPath: m.MountPath,
			Mode:          md.Enum(),
			Source: &mesos.Volume_Source{
				Type:        mesos.Volume_Source_SANDBOX_PATH,
				SandboxPath: &mesos.Volume_Source_SandboxPath{Type: mesos.Volume_Source_SandboxPath_PARENT, Path: rel},
			},
		})
	}
	return out, nil
}

// TerminationMessageDir is the directory, in the pod's directory, of its containers' termination
// message files: one per container attempt, named by its container ID (the kubelet keeps one per
// container instance under pods/<uid>/containers/<name>/).
const TerminationMessageDir = "termination-log"

// TerminationMessageVolume creates the empty termination message file of one attempt (container ID
// id) of c in podDir and returns the volume that bind-mounts it at c.TerminationMessagePath (prefix
// as for MesosVolumes; a file SANDBOX_PATH volume, which Mesos' volume/sandbox_path mounts as a
// file) and the file's path on the host, from which the pod worker reads the message once the
// attempt ended. A container without a terminationMessagePath gets neither. The file is writable
// by every user, as the kubelet makes it: the container may run as another user than the executor.
func TerminationMessageVolume(podDir, prefix string, c *corev1.Container, id string) ([]mesos.Volume, string, error) {
	if c.TerminationMessagePath == "" {
		return nil, "", nil
	}
	if strings.ContainsRune(id, '/') || id == "" || id == "." || id == ".." {
		return nil, "", fmt.Errorf("container ID %q is not a file name", id)
	}
	dir := filepath.Join(podDir, TerminationMessageDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("termination message file of %s: %w", c.Name, err)
	}
	host := filepath.Join(dir, id)
	// A retried launch of the same attempt starts from an empty file.
	f, err := os.OpenFile(host, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o666)
	if err != nil {
		return nil, "", fmt.Errorf("termination message file of %s: %w", c.Name, err)
	}
	f.Close()
	// Chmod: the executor's umask trims OpenFile's mode.
	if err := os.Chmod(host, 0o666); err != nil {
		return nil, "", fmt.Errorf("termination message file of %s: %w", c.Name, err)
	}
	return []mesos.Volume{{
		ContainerPath: c.TerminationMessagePath,
		Mode:          mesos.RW.Enum(),
		Source: &mesos.Volume_Source{
			Type: mesos.Volume_Source_SANDBOX_PATH,
			SandboxPath: &mesos.Volume_Source_SandboxPath{Type: mesos.Volume_Source_SandboxPath_PARENT,
				Path: path.Join(prefix, TerminationMessageDir, id)},
		},
	}}, host, nil
}

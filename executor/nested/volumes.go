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
	"time"

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
// directory, configMap, secret, downwardAPI and projected volumes as files written as the kubelet's
// AtomicWriter does (see writePayload), so that SyncVolumes can later replace their content while
// containers have them mounted. Volume types it does not know are errors (podtranslate refuses such
// pods before they get here).
func PrepareVolumes(ctx context.Context, podDir string, pod *corev1.Pod, pe PodEnv) error {
	return syncVolumes(ctx, podDir, pod, pe, false)
}

// SyncVolumes rewrites the content of the pod's configMap, secret, downwardAPI and projected volumes
// from the API, as the kubelet re-mounts them on every pod sync (their plugins' RequiresRemount): an
// updated key has its new value, a deleted optional ConfigMap or Secret leaves no files, a created
// one appears. A source that cannot be read (a required ConfigMap deleted) keeps the volume as it
// was, as the kubelet's failed SetUp does. Service account tokens already written are kept.
func SyncVolumes(ctx context.Context, podDir string, pod *corev1.Pod, pe PodEnv) error {
	return syncVolumes(ctx, podDir, pod, pe, true)
}

func syncVolumes(ctx context.Context, podDir string, pod *corev1.Pod, pe PodEnv, resync bool) error {
	root := filepath.Join(podDir, VolumesDir)
	var errs []error
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(root, v.Name)
		if (resync && !hasPayload(v)) || v.HostPath != nil {
			// hostPath: the agent's, not in the pod's directory (PrepareHostPaths).
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := fillVolume(ctx, dir, pod, v, pe, resync); err != nil {
			if !resync {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

// PrepareHostPaths checks the agent host's paths of the hostPath volumes c mounts as the kubelet's
// hostPath plugin does (checkType: DirectoryOrCreate and FileOrCreate create what is missing, the
// other types must match) and creates the directories of their subPaths with the volume's mode, as
// the kubelet's makeMounts does. An untyped path that does not exist is created as a directory, as
// containerd creates a missing bind-mount source; Mesos' volume/host_path would refuse it.
func PrepareHostPaths(pod *corev1.Pod, c *corev1.Container) error {
	for _, m := range c.VolumeMounts {
		var hp *corev1.HostPathVolumeSource
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == m.Name {
				hp = pod.Spec.Volumes[i].HostPath
			}
		}
		if hp == nil {
			continue
		}
		if err := checkHostPathType(hp); err != nil {
			return fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", m.Name, err)
		}
		if m.SubPath == "" {
			continue
		}
		fi, err := os.Stat(hp.Path)
		if err != nil {
			return fmt.Errorf("volume %q: %w", m.Name, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("volume %q: subPath %q of a hostPath that is not a directory", m.Name, m.SubPath)
		}
		sub := filepath.Join(hp.Path, filepath.Clean("/"+m.SubPath))
		if err := os.MkdirAll(sub, fi.Mode().Perm()); err != nil {
			return fmt.Errorf("volume %q: creating subPath %q: %w", m.Name, m.SubPath, err)
		}
		// MkdirAll's mode is trimmed by the umask; the kubelet's SafeMakeDir chmods it.
		if err := os.Chmod(sub, fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid)); err != nil {
			return fmt.Errorf("volume %q: subPath %q: %w", m.Name, m.SubPath, err)
		}
	}
	return nil
}

// checkHostPathType is the kubelet's hostPath checkType (pkg/volume/hostpath/host_path.go), with its
// texts.
func checkHostPathType(hp *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	fi, err := os.Stat(hp.Path)
	exists := err == nil
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	switch t {
	case corev1.HostPathUnset:
		if !exists {
			return os.MkdirAll(hp.Path, 0o755)
		}
	case corev1.HostPathDirectoryOrCreate:
		if !exists {
			if err := os.MkdirAll(hp.Path, 0o755); err != nil {
				return err
			}
			return os.Chmod(hp.Path, 0o755)
		}
		if !fi.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", hp.Path)
		}
	case corev1.HostPathDirectory:
		if !exists || !fi.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", hp.Path)
		}
	case corev1.HostPathFileOrCreate:
		if !exists {
			f, err := os.OpenFile(hp.Path, os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", hp.Path)
		}
	case corev1.HostPathFile:
		if !exists || !fi.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", hp.Path)
		}
	case corev1.HostPathSocket:
		if !exists || fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a socket file", hp.Path)
		}
	case corev1.HostPathCharDev:
		if !exists || fi.Mode()&os.ModeCharDevice == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a character device", hp.Path)
		}
	case corev1.HostPathBlockDev:
		if !exists || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a block device", hp.Path)
		}
	default:
		return fmt.Errorf("%s is an invalid volume type", t)
	}
	return nil
}

// hasPayload tells the volumes whose content comes from the API.
func hasPayload(v corev1.Volume) bool {
	return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
}

// NeedsSync tells whether the pod has volumes SyncVolumes would rewrite.
func NeedsSync(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if hasPayload(v) {
			return true
		}
	}
	return false
}

// payload is a volume's files by path relative to the volume.
type payload map[string]payloadFile

type payloadFile struct {
	data []byte
	mode os.FileMode
}

func fillVolume(ctx context.Context, dir string, pod *corev1.Pod, v corev1.Volume, pe PodEnv, resync bool) error {
	p := payload{}
	var err error
	switch {
	case v.EmptyDir != nil:
		// World-writable as the kubelet makes it: containers may run as another user (runAsUser) than
		// the executor that creates it.
		return os.Chmod(dir, 0o777)
	case v.ConfigMap != nil:
		err = addConfigMap(ctx, p, pod, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, v.ConfigMap.DefaultMode, pe)
	case v.Secret != nil:
		err = addSecret(ctx, p, pod, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, v.Secret.DefaultMode, pe)
	case v.DownwardAPI != nil:
		err = addDownward(ctx, p, pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, pe)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				err = addConfigMap(ctx, p, pod, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, v.Projected.DefaultMode, pe)
			case src.Secret != nil:
				err = addSecret(ctx, p, pod, src.Secret.Name, src.Secret.Items, src.Secret.Optional, v.Projected.DefaultMode, pe)
			case src.DownwardAPI != nil:
				err = addDownward(ctx, p, pod, src.DownwardAPI.Items, v.Projected.DefaultMode, pe)
			case src.ServiceAccountToken != nil:
				if resync {
					// The token the pod got stays: a new one is requested only when the pod starts.
					b, rerr := os.ReadFile(filepath.Join(dir, src.ServiceAccountToken.Path))
					if rerr == nil {
						p[src.ServiceAccountToken.Path] = payloadFile{b, mode(nil, v.Projected.DefaultMode)}
						continue
					}
				}
				err = addToken(ctx, p, pod, src.ServiceAccountToken, v.Projected.DefaultMode, pe)
			default:
				err = errors.New("unsupported projected source")
			}
			if err != nil {
				break
			}
		}
	default:
		return errors.New("unsupported volume type")
	}
	if err != nil {
		return err
	}
	return writePayload(dir, p)
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

// dataDirName is the kubelet AtomicWriter's symlink to the current payload directory.
const dataDirName = "..data"

// writePayload makes dir hold exactly p, as the kubelet's AtomicWriter (pkg/volume/util/
// atomic_writer.go) does: the files go into a new directory ..<timestamp>.<random>, the symlink
// ..data is switched to it with a rename (atomic: a container reading the volume sees the old or
// the new payload, never a mix), every top-level name of the payload is a symlink into ..data, and
// the names and the directory of the previous payload are removed.
func writePayload(dir string, p payload) error {
	tops := map[string]bool{}
	for rel := range p {
		clean := filepath.Clean(rel)
		// The AtomicWriter's validatePath: relative, no "..", no leading "..".
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("path %q leaves the volume", rel)
		}
		tops[strings.SplitN(clean, string(filepath.Separator), 2)[0]] = true
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for rel, f := range p {
		fp := filepath.Join(ts, filepath.Clean(rel))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(fp, f.data, 0o600); err != nil {
			return err
		}
		// Chmod: the executor's umask trims WriteFile's mode.
		if err := os.Chmod(fp, f.mode&0o777); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, dataDirName))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataDirName)); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || tops[name] {
			continue
		}
		// A name of the previous payload.
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	for top := range tops {
		link := filepath.Join(dir, top)
		target := filepath.Join(dataDirName, top)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		if err := os.RemoveAll(link); err != nil {
			return err
		}
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	if old != "" && old != filepath.Base(ts) && strings.HasPrefix(old, "..") && !strings.ContainsRune(old, filepath.Separator) {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

func addKeys(p payload, data map[string][]byte, items []corev1.KeyToPath, defMode *int32, what string) error {
	if len(items) == 0 {
		for k, v := range data {
			p[k] = payloadFile{v, mode(nil, defMode)}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		p[it.Path] = payloadFile{v, mode(it.Mode, defMode)}
	}
	return nil
}

func addConfigMap(ctx context.Context, p payload, pod *corev1.Pod, name string, items []corev1.KeyToPath, optional *bool, defMode *int32, pe PodEnv) error {
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
	return addKeys(p, bin, items, defMode, "configmap "+name)
}

func addSecret(ctx context.Context, p payload, pod *corev1.Pod, name string, items []corev1.KeyToPath, optional *bool, defMode *int32, pe PodEnv) error {
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
	return addKeys(p, data, items, defMode, "secret "+name)
}

func addDownward(ctx context.Context, p payload, pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defMode *int32, pe PodEnv) error {
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
		p[it.Path] = payloadFile{[]byte(v), mode(it.Mode, defMode)}
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

func addToken(ctx context.Context, out payload, pod *corev1.Pod, p *corev1.ServiceAccountTokenProjection, defMode *int32, pe PodEnv) error {
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
	out[p.Path] = payloadFile{[]byte(tok), mode(nil, defMode)}
	return nil
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
	known := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		known[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var out []mesos.Volume
	for _, m := range c.VolumeMounts {
		v := known[m.Name]
		if v == nil {
			return nil, fmt.Errorf("container %s mounts unknown volume %q", c.Name, m.Name)
		}
		sub := ""
		if m.SubPath != "" {
			sub = path.Clean(m.SubPath)
			if path.IsAbs(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
				return nil, fmt.Errorf("container %s: subPath %q leaves the volume", c.Name, m.SubPath)
			}
		}
		md := mesos.RW
		if m.ReadOnly {
			md = mesos.RO
		}
		if hp := v.HostPath; hp != nil {
			// Mesos' volume/host_path bind-mounts the agent host's path.
			out = append(out, mesos.Volume{
				ContainerPath: m.MountPath,
				Mode:          md.Enum(),
				Source: &mesos.Volume_Source{
					Type:     mesos.Volume_Source_HOST_PATH,
					HostPath: &mesos.Volume_Source_HostPath{Path: path.Join(hp.Path, sub)},
				},
			})
			continue
		}
		rel := path.Join(prefix, VolumesDir, m.Name, sub)
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

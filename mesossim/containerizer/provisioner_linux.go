package containerizer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// availableBackends is Backend::create on Linux: copy always, overlay when the kernel has overlayfs
// and the agent runs as root (OverlayBackend::create).
func availableBackends() map[string]backend {
	b := map[string]backend{BackendCopy: copyBackend{}}
	if fsList, err := os.ReadFile("/proc/filesystems"); err == nil && os.Geteuid() == 0 &&
		slices.ContainsFunc(strings.Split(string(fsList), "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) > 0 && f[len(f)-1] == "overlay"
		}) {
		b[BackendOverlay] = overlayBackend{}
	}
	return b
}

// validateBackend is Mesos' check of a backend against the provisioner directory's filesystem:
// overlayfs cannot stack on aufs, btrfs, ecryptfs, zfs or overlayfs, and needs d_type.
func validateBackend(name, dir string) error {
	if name != BackendOverlay {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("Failed to get filesystem type id from directory '%s': %v", dir, err)
	}
	exclusive := map[int64]string{
		0x61756673:                 "aufs",
		unix.BTRFS_SUPER_MAGIC:     "btrfs",
		unix.ECRYPTFS_SUPER_MAGIC:  "ecryptfs",
		0x2fc12fc1:                 "zfs",
		unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
	}
	if fsName, ok := exclusive[int64(st.Type)]; ok {
		return fmt.Errorf("Backend '%s' is not supported on the underlying filesystem '%s'", BackendOverlay, fsName)
	}
	return nil
}

// overlayBackend is Mesos' OverlayBackend: the layers (whiteouts converted to overlayfs' in the store)
// as lowerdirs through symlinks in a temporary directory (short mount options), an upperdir and
// workdir under <backend dir>/scratch/<rootfs id>, the mount marked slave then shared.
type overlayBackend struct{}

func (overlayBackend) name() string { return BackendOverlay }

func (overlayBackend) provision(layers []string, rootfs, backendDir string) error {
	if len(layers) == 0 {
		return errors.New("No filesystem layer provided")
	}
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return fmt.Errorf("Failed to create container rootfs at '%s': %v", rootfs, err)
	}
	scratch := filepath.Join(backendDir, "scratch", filepath.Base(rootfs))
	upper, work := filepath.Join(scratch, "upperdir"), filepath.Join(scratch, "workdir")
	if err := os.MkdirAll(upper, 0o755); err != nil {
		return fmt.Errorf("Failed to create overlay upperdir at '%s': %v", upper, err)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("Failed to create overlay workdir at '%s': %v", work, err)
	}
	tmp, err := os.MkdirTemp("", "")
	if err != nil {
		return fmt.Errorf("Failed to create temporary directory for symlinks to layers: %v", err)
	}
	tempLink := filepath.Join(scratch, "links")
	if err := os.Symlink(tmp, tempLink); err != nil {
		return fmt.Errorf("Failed to create symlink '%s' -> '%s': %v", tempLink, tmp, err)
	}
	links := make([]string, len(layers))
	for i, layer := range layers {
		link := filepath.Join(tmp, fmt.Sprint(i))
		if err := os.Symlink(layer, link); err != nil {
			return fmt.Errorf("Failed to create symlink at '%s' -> '%s': %v", link, layer, err)
		}
		// overlayfs lists the top lowerdir first.
		links[len(layers)-1-i] = link
	}
	options := "lowerdir=" + strings.Join(links, ":") + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", rootfs, "overlay", 0, options); err != nil {
		return fmt.Errorf("Failed to mount rootfs '%s' with overlayfs: %v", rootfs, err)
	}
	if err := unix.Mount("", rootfs, "", unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("Failed to mark mount '%s' as a slave mount: %v", rootfs, err)
	}
	if err := unix.Mount("", rootfs, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("Failed to mark mount '%s' as a shared mount: %v", rootfs, err)
	}
	return nil
}

func (overlayBackend) destroy(rootfs, backendDir string) error {
	mounted, err := isMountPoint(rootfs)
	if err != nil {
		return fmt.Errorf("Failed to read mount table: %v", err)
	}
	if !mounted {
		return nil
	}
	if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("Failed to destroy overlay-mounted rootfs '%s': %v", rootfs, err)
	}
	_ = os.Remove(rootfs)
	tempLink := filepath.Join(backendDir, "scratch", filepath.Base(rootfs), "links")
	target, err := os.Readlink(tempLink)
	if err != nil {
		return nil
	}
	if err := os.RemoveAll(target); err != nil {
		return fmt.Errorf("Failed to remove temporary directory for symlinks at '%s': %v", target, err)
	}
	if err := os.Remove(tempLink); err != nil {
		return fmt.Errorf("Failed to remove symlink at '%s': %v", tempLink, err)
	}
	return nil
}

// isMountPoint reports whether p is a mount target in /proc/self/mountinfo.
func isMountPoint(p string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == p {
			return true, nil
		}
	}
	return false, nil
}

func unescapeMountinfo(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// convertWhiteouts turns a layer's AUFS whiteouts into overlayfs': `.wh.<name>` becomes a 0/0
// character device <name>, `.wh..wh..opq` the directory's trusted.overlay.opaque=y.
func convertWhiteouts(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(d.Name(), whiteoutPrefix) {
			return nil
		}
		parent := filepath.Dir(path)
		if d.Name() == whiteoutOpaquePrefix {
			if err := unix.Setxattr(parent, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				return fmt.Errorf("Failed to set extended attribute 'trusted.overlay.opaque' for the directory '%s': %v", parent, err)
			}
		} else {
			original := filepath.Join(parent, strings.TrimPrefix(d.Name(), whiteoutPrefix))
			if err := unix.Mknod(original, unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("Failed to create character device '%s': %v", original, err)
			}
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("Failed to remove AUFS whiteout file '%s': %v", path, err)
		}
		return nil
	})
}

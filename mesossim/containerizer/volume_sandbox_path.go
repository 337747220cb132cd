package containerizer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"golang.org/x/sys/unix"
)

func init() {
	Register("volume/sandbox_path", func(f Flags) (Isolator, error) { return &sandboxPathIsolator{flags: f}, nil })
}

// sandboxPathIsolator is Mesos' volume/sandbox_path (isolators/volume/sandbox_path.cpp): a SANDBOX_PATH
// volume (or a legacy relative host_path) bind-mounts a directory of the container's own sandbox (SELF)
// or of its parent's (PARENT, how the containers of a pod share an emptyDir) at the container path.
type sandboxPathIsolator struct {
	Base
	flags Flags
}

func (*sandboxPathIsolator) Name() string { return "volume/sandbox_path" }

func (s *sandboxPathIsolator) Prepare(_ context.Context, c *Container, li *LaunchInfo) error {
	if len(volumes(c)) == 0 {
		return nil
	}
	if err := checkMesosContainer(c); err != nil {
		return err
	}
	for _, v := range volumes(c) {
		if err := validateVolume(v); err != nil {
			return errors.New("Invalid volume: " + err.Error())
		}
		var sp *mesos.Volume_Source_SandboxPath
		if v.HostPath != nil && !filepath.IsAbs(*v.HostPath) {
			self := mesos.Volume_Source_SandboxPath_SELF
			sp = &mesos.Volume_Source_SandboxPath{Type: self, Path: *v.HostPath}
		}
		if src := v.Source; src != nil && src.GetType() == mesos.Volume_Source_SANDBOX_PATH {
			if filepath.IsAbs(src.SandboxPath.Path) {
				return errors.New("Path '" + src.SandboxPath.Path + "' in SANDBOX_PATH volume is absolute")
			}
			sp = src.SandboxPath
		}
		if sp == nil {
			continue
		}
		if c.Debug {
			return errors.New("SANDBOX_PATH volume is not supported for DEBUG containers")
		}
		var source, sourceRoot string
		switch sp.GetType() {
		case mesos.Volume_Source_SandboxPath_SELF:
			if !filepath.IsAbs(v.ContainerPath) {
				return errors.New("'container_path' is relative for SANDBOX_PATH volume SELF type")
			}
			sourceRoot = c.Sandbox
			source = filepath.Join(c.Sandbox, sp.Path)
		case mesos.Volume_Source_SandboxPath_PARENT:
			if c.Parent == nil {
				return errors.New("SANDBOX_PATH volume PARENT type only works for nested container")
			}
			if c.Parent.Sandbox == "" {
				return errors.New("Failed to locate the sandbox for the parent container")
			}
			sourceRoot = c.Parent.Sandbox
			source = filepath.Join(c.Parent.Sandbox, sp.Path)
		default:
			return errors.New("Unknown SANDBOX_PATH volume type")
		}
		// A new volume belongs to the sandbox's owner (the container's user); an existing one is left
		// as it is.
		if !pathExists(source) {
			if err := os.MkdirAll(source, 0o755); err != nil {
				return errors.New("Failed to create the directory '" + source + "' in the sandbox: " + errText(err))
			}
			var st unix.Stat_t
			if err := unix.Stat(sourceRoot, &st); err != nil {
				return errors.New("Failed to stat '" + sourceRoot + "': " + errText(err))
			}
			if err := os.Chown(source, int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("Failed to change the ownership of the SANDBOX_PATH volume at '%s' with UID %d and GID %d: %s",
					source, st.Uid, st.Gid, errText(err))
			}
		}
		var target string
		if filepath.IsAbs(v.ContainerPath) {
			if c.Rootfs != "" {
				target = filepath.Join(c.Rootfs, v.ContainerPath)
				if err := makeMountPoint(source, target, "directory"); err != nil {
					return err
				}
			} else {
				target = v.ContainerPath
				if !pathExists(target) {
					return errors.New("Mount point '" + target + "' is an absolute path. " +
						"It must exist if the container shares the host filesystem")
				}
			}
		} else {
			// The mount point is made in the sandbox: with a rootfs, the sandbox's bind mount would
			// hide one made there.
			if err := makeMountPoint(source, filepath.Join(c.Sandbox, v.ContainerPath), "the directory"); err != nil {
				return err
			}
			if c.Rootfs != "" {
				target = filepath.Join(c.Rootfs, s.flags.SandboxDirectory, v.ContainerPath)
			} else {
				target = filepath.Join(c.Sandbox, v.ContainerPath)
			}
		}
		li.Mounts = append(li.Mounts, Mount{Source: source, Target: target, Flags: volumeFlags(v)})
	}
	return nil
}

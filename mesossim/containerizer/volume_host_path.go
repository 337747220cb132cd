package containerizer

import (
	"context"
	"errors"
	"path/filepath"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func init() {
	Register("volume/host_path", func(f Flags) (Isolator, error) { return &hostPathIsolator{flags: f}, nil })
}

// hostPathIsolator is Mesos' volume/host_path (isolators/volume/host_path.cpp): HOST_PATH volumes (and
// legacy absolute host_path ones) are bind-mounted at their container path: absolute inside the
// container's rootfs (or an existing host path without one), relative to the sandbox otherwise.
type hostPathIsolator struct {
	Base
	flags Flags
}

func (*hostPathIsolator) Name() string { return "volume/host_path" }

func (h *hostPathIsolator) Prepare(_ context.Context, c *Container, li *LaunchInfo) error {
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
		hostPath := ""
		if v.HostPath != nil && filepath.IsAbs(*v.HostPath) {
			hostPath = *v.HostPath
		}
		if s := v.Source; s != nil && s.GetType() == mesos.Volume_Source_HOST_PATH {
			if !filepath.IsAbs(s.HostPath.Path) {
				return errors.New("Path '" + s.HostPath.Path + "' in HOST_PATH volume is not absolute")
			}
			hostPath = s.HostPath.Path
		}
		if hostPath == "" {
			continue
		}
		if c.Debug {
			return errors.New("HOST_PATH volume is not supported for DEBUG containers")
		}
		if !pathExists(hostPath) {
			// Mesos creates it only under --host_path_volume_force_creation, which the simulator lacks.
			return errors.New("Path '" + hostPath + "' in HOST_PATH volume does not exist")
		}
		var mountPoint string
		if filepath.IsAbs(v.ContainerPath) {
			if c.Rootfs != "" {
				mountPoint = filepath.Join(c.Rootfs, v.ContainerPath)
				if err := makeMountPoint(hostPath, mountPoint, "directory"); err != nil {
					return err
				}
			} else {
				mountPoint = v.ContainerPath
				if !pathExists(mountPoint) {
					return errors.New("Mount point '" + mountPoint + "' is an absolute path. " +
						"It must exist if the container shares the host filesystem")
				}
			}
		} else {
			mountPoint = filepath.Join(c.Sandbox, v.ContainerPath)
			if err := makeMountPoint(hostPath, mountPoint, "the directory"); err != nil {
				return err
			}
			if c.Rootfs != "" {
				mountPoint = filepath.Join(c.Rootfs, h.flags.SandboxDirectory, v.ContainerPath)
			}
		}
		if hostPath != mountPoint {
			li.Mounts = append(li.Mounts, Mount{Source: hostPath, Target: mountPoint, Flags: volumeFlags(v)})
		}
	}
	return nil
}

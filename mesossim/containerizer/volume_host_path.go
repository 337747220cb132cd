package containerizer

import (
	"context"
	"errors"
	"path/filepath"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"golang.org/x/sys/unix"
)

func init() {
	Register("volume/host_path", func(f Flags) (Isolator, error) { return &hostPathIsolator{flags: f}, nil })
}

// hostPathIsolator is Mesos' volume/host_path (isolators/volume/host_path.cpp): HOST_PATH volumes (and
// legacy absolute host_path ones) are bind-mounted at their container path: absolute inside the
// container's rootfs (or an existing host path without one), relative to the sandbox otherwise. With
// mount_propagation BIDIRECTIONAL the shared mount containing the host path stays shared in the
// container (the launch helper marks every other mount slave instead of '/' rslave), so mounts the
// container makes under it reach the agent's mount namespace (as CSI plugins' do).
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
		if v.Source.GetHostPath().GetMountPropagation().GetMode() == mesos.MountPropagation_BIDIRECTIONAL {
			// The mount containing the host path must be shared; the marker tells the launch helper to
			// keep it shared in the container (not slave), so that mounts the container makes under it
			// propagate to the agent's mount namespace.
			table, err := readMountInfo()
			if err != nil {
				return errors.New("Failed to read mount table: " + errText(err))
			}
			e, err := findByTarget(table, hostPath)
			if err != nil {
				return errors.New("Cannot find the mount containing host path '" + hostPath + "': " + err.Error())
			}
			if e.shared == "" {
				return errors.New("Cannot setup bidirectional mount propagation for host path '" + hostPath +
					"' because it is not under a shared mount")
			}
			li.Mounts = append(li.Mounts, Mount{Target: e.target, Flags: unix.MS_SHARED})
		}
		if hostPath != mountPoint {
			li.Mounts = append(li.Mounts, Mount{Source: hostPath, Target: mountPoint, Flags: volumeFlags(v)})
		}
	}
	return nil
}

// findByTarget is fs::MountInfoTable::findByTarget: the last entry of the table whose target is the
// real path of target or one of its parent directories.
func findByTarget(table []mountEntry, target string) (mountEntry, error) {
	real, err := filepath.EvalSymlinks(target)
	if err != nil {
		return mountEntry{}, errors.New("Failed to get the realpath of '" + target + "': " + errText(err))
	}
	for i := len(table) - 1; i >= 0; i-- {
		t := table[i].target
		if t == real || strings.HasPrefix(real, strings.TrimSuffix(t, "/")+"/") {
			return table[i], nil
		}
	}
	return mountEntry{}, errors.New("Not found")
}

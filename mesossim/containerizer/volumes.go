package containerizer

import (
	"errors"
	"os"
	"path/filepath"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"golang.org/x/sys/unix"
)

// validateVolume is common::validation::validateVolume.
func validateVolume(v mesos.Volume) error {
	count := 0
	if v.HostPath != nil {
		count++
	}
	if v.Image != nil {
		count++
	}
	if v.Source != nil {
		count++
	}
	if count != 1 {
		return errors.New("Only one of them should be set: 'host_path', 'image' and 'source'")
	}
	if s := v.Source; s != nil {
		switch s.GetType() {
		case mesos.Volume_Source_DOCKER_VOLUME:
			if s.DockerVolume == nil {
				return errors.New("'source.docker_volume' is not set for DOCKER_VOLUME volume")
			}
		case mesos.Volume_Source_HOST_PATH:
			if s.HostPath == nil {
				return errors.New("'source.host_path' is not set for HOST_PATH volume")
			}
		case mesos.Volume_Source_SANDBOX_PATH:
			if s.SandboxPath == nil {
				return errors.New("'source.sandbox_path' is not set for SANDBOX_PATH volume")
			}
		case mesos.Volume_Source_SECRET:
			if s.Secret == nil {
				return errors.New("'source.secret' is not set for SECRET volume")
			}
		default:
			return errors.New("'source.type' is unknown")
		}
	}
	return nil
}

func volumeFlags(v mesos.Volume) uintptr {
	flags := uintptr(unix.MS_BIND | unix.MS_REC)
	if v.GetMode() == mesos.RO {
		flags |= unix.MS_RDONLY
	}
	return flags
}

func sourceIsDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func pathExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// makeMountPoint creates a mount point for source at target, as the volume isolators do: a directory
// for a directory, else an empty file in a created parent. dirText is the directory failure's wording
// ("directory" or "the directory", which differ between Mesos' call sites).
func makeMountPoint(source, target, dirText string) error {
	if sourceIsDir(source) {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return errors.New("Failed to create the mount point at '" + target + "': " + errText(err))
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return errors.New("Failed to create " + dirText + " '" + filepath.Dir(target) + "' for the mount point: " + errText(err))
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return errors.New("Failed to touch the mount point at '" + target + "': " + errText(err))
	}
	return f.Close()
}

// errText is stout's rendering of an errno (strerror), without Go's "op path:" prefix.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func volumes(c *Container) []mesos.Volume {
	if c.Info == nil {
		return nil
	}
	return c.Info.Volumes
}

func checkMesosContainer(c *Container) error {
	if c.Info != nil && c.Info.GetType() != mesos.ContainerInfo_MESOS {
		return errors.New("Only support MESOS containers")
	}
	return nil
}

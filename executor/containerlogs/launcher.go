package containerlogs

import (
	"regexp"
)

// launcherLine matches the lines the Mesos containerizer's launcher (mesos-containerizer launch,
// src/slave/containerizer/mesos/launch.cpp) writes to a container's stderr on its way to exec'ing the
// command, when nothing fails:
//
//	Preparing rootfs at '<rootfs>'              the container has an image (a rootfs)
//	Marked '/' as rslave                        its mount namespace is cloned without shared mounts
//	                                            (the filesystem/linux isolator clones one for every
//	                                            container but DEBUG ones, i.e. exec sessions)
//	Executing pre-exec command '<CommandInfo>'  an isolator (network/port_mapping) asked for one
//	Changing root to <rootfs>                   the container has an image
//	Overwriting environment variable '<name>'   two of its environment variables share a name
//
// Its error lines ("Failed to …") are kept: they are the only account of why such a container never
// ran its command.
//
// A container launched with a TTY (stdin or tty in its spec, see package nested) has its terminal as
// stderr: the lines go to its stdout file, ending "\r\n".
var launcherLine = regexp.MustCompile(`^(?:` +
	`Preparing rootfs at '.*'` +
	`|Marked '/' as rslave` +
	`|Executing pre-exec command '.*'` +
	`|Changing root to .*` +
	`|Overwriting environment variable '.*'` +
	`)\r?$`)

// IsLauncherLine tells whether line (without its newline) is one of the launcher's lines. They come
// before the command runs, so only a prefix of stderr is checked (see follower.strip).
func IsLauncherLine(line []byte) bool {
	return launcherLine.Match(line)
}

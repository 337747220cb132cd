// Package version holds what the build stamped into the binary, so `kubemesos version`, logs and the
// framework's metrics can say exactly which build is running.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped with -ldflags "-X github.com/kubemesos/kubemesos/internal/version.Version=… -X ….Commit=…".
var (
	Version = "dev"
	Commit  = ""
)

// String is the one-line form printed by `kubemesos version`.
func String() string {
	commit := Commit
	if commit == "" {
		commit = vcsRevision()
	}
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("kubemesos %s (commit %s, %s, %s/%s)", Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// vcsRevision falls back to what `go build` records from git when nothing was stamped.
func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}

// Package cniplugins builds the reference CNI plugins (bridge, host-local, portmap, loopback) from the
// github.com/containernetworking/plugins module and caches them in a directory keyed by what
// determines their content, for the simulated agents' --network_cni_plugins_dir.
//
// The plugins are built with `go install <pkg>@<version>`, i.e. with the plugins module's own go.mod
// and go.sum as upstream releases them (checked against the Go checksum database), so the root
// module does not carry the plugins' dependency graph (netlink, knftables, go-iptables, hcsshim, dhcp
// ...), and no separate module needs keeping in step with it.
package cniplugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubemesos/kubemesos/internal/buildcache"
)

// Module and Version are the plugins' module and the release built. ModuleSum is its go.sum hash
// (h1:), part of the cache key.
const (
	Module    = "github.com/containernetworking/plugins"
	Version   = "v1.10.0"
	ModuleSum = "h1:4lwzpgsn5NdIneXrag/EEfKzhNSriJc1zTxZxfdfPLQ="
)

// Plugins are the main packages built; each binary is named after its package's last element.
var Plugins = []string{
	Module + "/plugins/main/bridge",
	Module + "/plugins/main/loopback",
	Module + "/plugins/ipam/host-local",
	Module + "/plugins/meta/portmap",
}

// Names are the binaries' names, in Plugins' order.
func Names() []string {
	out := make([]string, len(Plugins))
	for i, p := range Plugins {
		out[i] = filepath.Base(p)
	}
	return out
}

// BuildArgs are the fixed `go install` arguments (without the packages): static, reproducible, with
// the version stamped as the upstream release build does (`bridge --version`, CNI VERSION).
func BuildArgs() []string {
	return []string{"install", "-trimpath", "-ldflags",
		"-s -w -X " + Module + "/pkg/utils/buildversion.BuildVersion=" + Version}
}

// BuildEnv is fixed on top of the caller's environment.
func BuildEnv() []string {
	return []string{"CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"}
}

// Options tune Ensure; the zero value works.
type Options struct {
	// CacheDir is the root of the cache; empty means $KUBEMESOS_CACHE_DIR, else
	// <user cache dir>/kubemesos (~/.cache/kubemesos).
	CacheDir string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Log receives what the build is doing; nil means os.Stderr.
	Log io.Writer
}

// CacheKey changes when the plugins' release, the Go toolchain, the platform or the build arguments
// change, and only then.
func CacheKey(goVersion, goos, goarch string) string {
	h := sha256.New()
	for _, part := range []struct{ label, value string }{
		{"module", Module + "@" + Version + " " + ModuleSum},
		{"plugins", strings.Join(Plugins, "\x00")},
		{"go", goVersion},
		{"platform", goos + "/" + goarch},
		{"args", strings.Join(BuildArgs(), "\x00")},
		{"env", strings.Join(BuildEnv(), "\x00")},
	} {
		// Length-prefixed so that no two different inputs hash the same.
		fmt.Fprintf(h, "%s %d\n%s", part.label, len(part.value), part.value)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Ensure returns the directory holding the plugin binaries, building them first if they are missing.
// Concurrent callers (test packages, local-up) are serialized by a lock file, so only one builds.
func Ensure(ctx context.Context) (string, error) { return EnsureWith(ctx, Options{}) }

// EnsureWith is Ensure with options.
func EnsureWith(ctx context.Context, opts Options) (string, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	env, err := o.goEnv(ctx, "GOVERSION", "GOOS", "GOARCH")
	if err != nil {
		return "", err
	}
	base := filepath.Join(o.CacheDir, "cni-plugins-"+Version+"-"+CacheKey(env[0], env[1], env[2]))
	bin := filepath.Join(base, "bin")
	if present(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating cache dir: %w", err)
	}
	unlock, err := buildcache.Lock(ctx, base+".lock", "cniplugins", o.Log)
	if err != nil {
		return "", err
	}
	defer unlock()
	if present(bin) { // built by whoever held the lock
		return bin, nil
	}
	if err := o.build(ctx, base, bin); err != nil {
		return "", err
	}
	return bin, nil
}

func present(bin string) bool {
	var paths []string
	for _, n := range Names() {
		paths = append(paths, filepath.Join(bin, n))
	}
	return buildcache.Executables(paths...)
}

func (o Options) withDefaults() (Options, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Go == "" {
		o.Go = "go"
	}
	var err error
	o.CacheDir, err = buildcache.Root(o.CacheDir)
	return o, err
}

func (o Options) goEnv(ctx context.Context, names ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, o.Go, append([]string{"env"}, names...)...)
	cmd.Dir = os.TempDir() // outside any module: the values must not depend on the caller's go.mod
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env %s: %w: %s", strings.Join(names, " "), err, stderr.String())
	}
	vals := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(vals) != len(names) {
		return nil, fmt.Errorf("go env %s: got %d values, want %d", strings.Join(names, " "), len(vals), len(names))
	}
	return vals, nil
}

// build runs one `go install` of every plugin into a temporary directory next to the final one and
// renames it into place, so an interrupted build never leaves a half-filled bin directory.
func (o Options) build(ctx context.Context, base, bin string) error {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", base, err)
	}
	if stale, err := filepath.Glob(filepath.Join(base, "bin-building-*")); err == nil {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	tmp, err := os.MkdirTemp(base, "bin-building-")
	if err != nil {
		return fmt.Errorf("creating build dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp's 0700 would keep the plugins from agents that are not root.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(o.Log, "cniplugins: building %s from %s@%s into %s\n", strings.Join(Names(), ", "), Module, Version, bin)
	args := BuildArgs()
	for _, p := range Plugins {
		args = append(args, p+"@"+Version)
	}
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = os.TempDir() // `go install pkg@version` ignores any go.mod; keep it from looking
	cmd.Env = append(append(os.Environ(), BuildEnv()...), "GOBIN="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	if !present(tmp) {
		return fmt.Errorf("go install finished but plugins are missing in %s", tmp)
	}
	if err := os.RemoveAll(bin); err != nil {
		return fmt.Errorf("clearing %s: %w", bin, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("moving plugins into place: %w", err)
	}
	fmt.Fprintf(o.Log, "cniplugins: built in %s: %s\n", time.Since(start).Round(time.Second), bin)
	return nil
}

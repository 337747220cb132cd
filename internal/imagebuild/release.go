package imagebuild

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

// goRelease is one Go program built from its release module with `go install pkg@version` outside
// our modules (its own go.mod and go.sum, checked against the checksum database), cached by content
// under <cache>/<name>-<version>-<key>/bin/<name>: CoreDNS and metrics-server.
type goRelease struct {
	name    string // the binary, the cache directory's prefix, the log's prefix
	module  string
	version string
	sum     string // the module's go.sum hash (h1:)
	pkg     string // the main package; "" is the module itself
	args    []string
	env     []string
}

func (r goRelease) mainPackage() string {
	if r.pkg == "" {
		return r.module
	}
	return r.pkg
}

// cacheKey changes when the release, the Go toolchain, the platform or the build arguments change,
// and only then.
func (r goRelease) cacheKey(goVersion, goos, goarch string) string {
	h := sha256.New()
	parts := []struct{ label, value string }{{"module", r.module + "@" + r.version + " " + r.sum}}
	if r.pkg != "" {
		parts = append(parts, struct{ label, value string }{"package", r.pkg})
	}
	parts = append(parts, []struct{ label, value string }{
		{"go", goVersion},
		{"platform", goos + "/" + goarch},
		{"args", strings.Join(r.args, "\x00")},
		{"env", strings.Join(r.env, "\x00")},
	}...)
	for _, part := range parts {
		// Length-prefixed so that no two different inputs hash the same.
		fmt.Fprintf(h, "%s %d\n%s", part.label, len(part.value), part.value)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ensure returns the cached binary and how long building it took (zero when found in the cache),
// building it first when it is missing. Concurrent callers are serialized by a lock file, so only one
// builds. cacheDir, goCmd and log are the options' (defaults applied).
func (r goRelease) ensure(ctx context.Context, cacheDir, goCmd string, log io.Writer) (string, time.Duration, error) {
	if log == nil {
		log = os.Stderr
	}
	if goCmd == "" {
		goCmd = "go"
	}
	root, err := buildcache.Root(cacheDir)
	if err != nil {
		return "", 0, err
	}
	env, err := goEnv(ctx, goCmd, "GOVERSION", "GOOS", "GOARCH")
	if err != nil {
		return "", 0, err
	}
	base := filepath.Join(root, r.name+"-"+r.version+"-"+r.cacheKey(env[0], env[1], env[2]))
	bin := filepath.Join(base, "bin")
	exe := filepath.Join(bin, r.name)
	if buildcache.Executables(exe) {
		return exe, 0, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", 0, fmt.Errorf("creating cache dir: %w", err)
	}
	unlock, err := buildcache.Lock(ctx, base+".lock", r.name, log)
	if err != nil {
		return "", 0, err
	}
	defer unlock()
	if buildcache.Executables(exe) { // built by whoever held the lock
		return exe, 0, nil
	}
	took, err := r.build(ctx, goCmd, log, base, bin)
	return exe, took, err
}

// build runs `go install` into a temporary directory next to bin and renames it into place, so an
// interrupted build never leaves a partial binary where ensure looks.
func (r goRelease) build(ctx context.Context, goCmd string, log io.Writer, base, bin string) (time.Duration, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return 0, fmt.Errorf("creating %s: %w", base, err)
	}
	if stale, err := filepath.Glob(filepath.Join(base, "bin-building-*")); err == nil {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	tmp, err := os.MkdirTemp(base, "bin-building-")
	if err != nil {
		return 0, fmt.Errorf("creating build dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp's 0700
		return 0, err
	}
	fmt.Fprintf(log, "%s: building %s@%s into %s (a few minutes the first time)\n", r.name, r.mainPackage(), r.version, bin)
	args := append(append([]string(nil), r.args...), r.mainPackage()+"@"+r.version)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = os.TempDir() // `go install pkg@version` ignores any go.mod; keep it from looking
	cmd.Env = append(append(os.Environ(), r.env...), "GOBIN="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	took := time.Since(start)
	if !buildcache.Executables(filepath.Join(tmp, r.name)) {
		return 0, fmt.Errorf("go install finished but %s is missing in %s", r.name, tmp)
	}
	if err := os.RemoveAll(bin); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return 0, fmt.Errorf("moving %s into place: %w", r.name, err)
	}
	fmt.Fprintf(log, "%s: built in %s\n", r.name, took.Round(time.Second))
	return took, nil
}

// fileSHA256 is the hex SHA-256 of a file: what an image's content depends on.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// goEnv reads go env values outside any module: they must not depend on the caller's go.mod.
func goEnv(ctx context.Context, goCmd string, names ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, goCmd, append([]string{"env"}, names...)...)
	cmd.Dir = os.TempDir()
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

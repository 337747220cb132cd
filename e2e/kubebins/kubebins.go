// Package kubebins builds the real Kubernetes binaries (kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl, kube-proxy) from the k8s.io/kubernetes module pinned in e2e/go.mod, and
// caches them in a directory keyed by what determines their content.
//
// It exists because kubemesos is tested against a real API server and controller-manager, and no
// Kubernetes release can be downloaded here: building them takes ~10 minutes on 2 cores the first
// time, so every later run (tests, local-up, benchmarks) must reuse the result in seconds.
package kubebins

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubemesos/kubemesos/internal/buildcache"
)

// KubernetesVersion is the k8s.io/kubernetes release e2e/go.mod requires. The binaries are stamped
// with it, so `kubectl version` and /version report it instead of "v0.0.0-master".
const KubernetesVersion = "v1.37.2"

// modulePath is the import path of the e2e module, used to find its directory.
const modulePath = "github.com/kubemesos/kubemesos/e2e"

// Commands are the main packages built; e2e/go.mod's tool block lists each, so its go.sum has
// their dependencies.
var Commands = []string{
	"k8s.io/kubernetes/cmd/kube-apiserver",
	"k8s.io/kubernetes/cmd/kube-controller-manager",
	"k8s.io/kubernetes/cmd/kube-scheduler",
	"k8s.io/kubernetes/cmd/kubectl",
	// The pod network's Services (ClusterIPs, NodePorts) are kube-proxy's, run as a host process.
	"k8s.io/kubernetes/cmd/kube-proxy",
}

// versionPkg is where kubernetes' version variables live.
const versionPkg = "k8s.io/component-base/version"

// BuildArgs is the one fixed set of `go build` arguments (without -o and the packages). Changing any
// of them changes the Go build cache keys of every package, i.e. forces a full rebuild, so they are
// constants and part of the cache key. buildDate is the release's module timestamp, so builds are
// reproducible.
func BuildArgs() []string {
	ldflags := []string{
		"-s", "-w",
		"-X", versionPkg + ".gitMajor=1",
		"-X", versionPkg + ".gitMinor=37",
		"-X", versionPkg + ".gitVersion=" + KubernetesVersion,
		"-X", versionPkg + ".gitTreeState=clean",
		"-X", versionPkg + ".buildDate=2026-10-27T12:01:04Z",
	}
	return []string{"build", "-trimpath", "-ldflags", strings.Join(ldflags, " ")}
}

// BuildEnv is the environment that is fixed for the build on top of the caller's: static binaries
// like Kubernetes' release builds, and no VCS stamping (the module comes from the module cache).
func BuildEnv() []string {
	return []string{"CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"}
}

// Binaries are the paths of the built executables.
type Binaries struct {
	Dir                   string
	KubeAPIServer         string
	KubeControllerManager string
	KubeScheduler         string
	Kubectl               string
	KubeProxy             string
}

func binariesIn(dir string) Binaries {
	return Binaries{
		Dir:                   dir,
		KubeAPIServer:         filepath.Join(dir, "kube-apiserver"),
		KubeControllerManager: filepath.Join(dir, "kube-controller-manager"),
		KubeScheduler:         filepath.Join(dir, "kube-scheduler"),
		Kubectl:               filepath.Join(dir, "kubectl"),
		KubeProxy:             filepath.Join(dir, "kube-proxy"),
	}
}

func (b Binaries) all() []string {
	return []string{b.KubeAPIServer, b.KubeControllerManager, b.KubeScheduler, b.Kubectl, b.KubeProxy}
}

// Options tune Ensure. The zero value works from anywhere inside the repository.
type Options struct {
	// ModuleDir is the e2e module's directory; empty means found from the working directory.
	ModuleDir string
	// CacheDir is the root of the cache; empty means $KUBEMESOS_CACHE_DIR, else
	// <user cache dir>/kubemesos (~/.cache/kubemesos).
	CacheDir string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Log receives what the build is doing; nil means os.Stderr.
	Log io.Writer
}

// CacheKey is the content key of a build: it changes when the module graph (go.mod, go.sum), the Go
// toolchain, the platform, the fixed build arguments or the commands built change, and only then.
func CacheKey(goMod, goSum []byte, goVersion, goos, goarch string, args, env, commands []string) string {
	h := sha256.New()
	write := func(label string, b []byte) {
		// Length-prefixed so that no two different inputs hash the same.
		fmt.Fprintf(h, "%s %d\n", label, len(b))
		h.Write(b)
	}
	write("go.mod", goMod)
	write("go.sum", goSum)
	write("go", []byte(goVersion))
	write("platform", []byte(goos+"/"+goarch))
	write("args", []byte(strings.Join(args, "\x00")))
	write("env", []byte(strings.Join(env, "\x00")))
	write("commands", []byte(strings.Join(commands, "\x00")))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Ensure returns the cached binaries, building them first if they are missing. Concurrent callers
// (parallel test packages, local-up) are serialized by a lock file, so only one builds.
func Ensure(ctx context.Context, opts Options) (Binaries, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Binaries{}, err
	}
	goMod, err := os.ReadFile(filepath.Join(o.ModuleDir, "go.mod"))
	if err != nil {
		return Binaries{}, fmt.Errorf("reading e2e go.mod: %w", err)
	}
	goSum, err := os.ReadFile(filepath.Join(o.ModuleDir, "go.sum"))
	if err != nil {
		return Binaries{}, fmt.Errorf("reading e2e go.sum: %w", err)
	}
	goEnv, err := o.goEnv(ctx, "GOVERSION", "GOOS", "GOARCH")
	if err != nil {
		return Binaries{}, err
	}
	key := CacheKey(goMod, goSum, goEnv[0], goEnv[1], goEnv[2], BuildArgs(), BuildEnv(), Commands)
	base := filepath.Join(o.CacheDir, "kube-"+key)
	bins := binariesIn(filepath.Join(base, "bin"))
	if bins.present() {
		return bins, nil
	}

	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("creating cache dir: %w", err)
	}
	unlock, err := buildcache.Lock(ctx, base+".lock", "kubebins", o.Log)
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()
	if bins.present() { // built by whoever held the lock
		return bins, nil
	}
	if err := o.build(ctx, base, bins); err != nil {
		return Binaries{}, err
	}
	return bins, nil
}

func (b Binaries) present() bool { return buildcache.Executables(b.all()...) }

func (o Options) withDefaults() (Options, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.ModuleDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return o, fmt.Errorf("working directory: %w", err)
		}
		dir, err := FindModuleDir(wd)
		if err != nil {
			return o, err
		}
		o.ModuleDir = dir
	}
	var err error
	o.CacheDir, err = buildcache.Root(o.CacheDir)
	return o, err
}

// ErrNoModule means the e2e module was not found above the starting directory.
var ErrNoModule = errors.New("e2e module (" + modulePath + ") not found")

// FindModuleDir walks up from dir looking for the e2e module: either dir itself (or a parent) is the
// module, or it has an e2e/ child that is (the repository root).
func FindModuleDir(dir string) (string, error) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		for _, cand := range []string{d, filepath.Join(d, "e2e")} {
			if isE2EModule(cand) {
				return cand, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w above %s", ErrNoModule, dir)
		}
	}
}

func isE2EModule(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}

func (o Options) goEnv(ctx context.Context, names ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, o.Go, append([]string{"env"}, names...)...)
	cmd.Dir = o.ModuleDir
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

// build runs one `go build` for all commands into a temporary directory next to the final one and
// renames it into place, so an interrupted build never leaves a half-filled bin directory.
func (o Options) build(ctx context.Context, base string, bins Binaries) error {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", base, err)
	}
	// Leftovers of builds that were killed; nobody else builds here while we hold the lock.
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

	names := make([]string, len(Commands))
	for i, c := range Commands {
		names[i] = filepath.Base(c)
	}
	fmt.Fprintf(o.Log, "kubebins: building %s from k8s.io/kubernetes %s into %s\n",
		strings.Join(names, ", "), KubernetesVersion, bins.Dir)
	fmt.Fprintf(o.Log, "kubebins: the first build takes ~10 minutes on 2 cores (later runs reuse the cache); packages follow as they compile\n")

	args := append(BuildArgs(), "-v", "-o", tmp+string(filepath.Separator))
	args = append(args, Commands...)
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.ModuleDir
	cmd.Env = append(os.Environ(), BuildEnv()...)
	var tail tailWriter
	out := io.MultiWriter(o.Log, &tail) // one writer for both, so exec copies with one goroutine
	cmd.Stdout = out
	cmd.Stderr = out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail.String())
	}
	if err := os.RemoveAll(bins.Dir); err != nil {
		return fmt.Errorf("clearing %s: %w", bins.Dir, err)
	}
	if err := os.Rename(tmp, bins.Dir); err != nil {
		return fmt.Errorf("moving binaries into place: %w", err)
	}
	if !bins.present() {
		return fmt.Errorf("build finished but binaries are missing in %s", bins.Dir)
	}
	fmt.Fprintf(o.Log, "kubebins: built in %s: %s\n", time.Since(start).Round(time.Second), bins.Dir)
	return nil
}

// tailWriter keeps the last few KiB written to it, for error messages.
type tailWriter struct{ buf []byte }

const tailMax = 4096

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = t.buf[len(t.buf)-tailMax:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return string(t.buf) }

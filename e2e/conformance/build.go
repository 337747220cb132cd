// Package conformance runs Kubernetes' own node tests against kubemesos: it builds the upstream e2e
// suite (e2e.test from k8s.io/kubernetes, and the ginkgo CLI that runs it on several processes) into
// the content-keyed cache under ~/.cache/kubemesos, selects the [NodeConformance] specs as
// `make conformance` runs them (Selection), keeps the committed skip list (skip.yaml: one reason per
// spec not run), and turns ginkgo's report into JUnit and a one-line summary of the selected specs.
package conformance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubemesos/kubemesos/e2e/kubebins"
	"github.com/kubemesos/kubemesos/internal/buildcache"
)

// BuildModule is the directory, under the e2e module, of the Go module e2e.test is built in. It is
// a module of its own so that the suite's test-only dependencies (ginkgo, gomega, …) stay out of
// e2e/go.sum, whose every change is a new kubebins cache key (a 10-minute rebuild of kube-apiserver
// & co.); it pins the same k8s.io/kubernetes and staging replacements as e2e/go.mod.
const BuildModule = "conformance/e2etest"

// Packages built: the e2e suite (a test binary) and the ginkgo CLI, which runs it on --procs processes.
const (
	E2EPackage    = "k8s.io/kubernetes/test/e2e"
	GinkgoPackage = "github.com/onsi/ginkgo/v2/ginkgo"
)

// Binaries are the built executables.
type Binaries struct {
	Dir     string
	E2ETest string
	Ginkgo  string
}

func binariesIn(dir string) Binaries {
	return Binaries{Dir: dir, E2ETest: filepath.Join(dir, "e2e.test"), Ginkgo: filepath.Join(dir, "ginkgo")}
}

// testArgs are kubebins' build arguments for `go test -c`: the same -trimpath, version stamp and
// environment, so the Go build cache kube-apiserver & co. filled serves most of the suite's packages.
func testArgs() []string {
	return append([]string{"test", "-c"}, kubebins.BuildArgs()[1:]...)
}

// Options tune Ensure. The zero value works from anywhere inside the repository.
type Options struct {
	// ModuleDir is the e2e module's directory; empty means found from the working directory.
	ModuleDir string
	// CacheDir is the cache root; empty means $KUBEMESOS_CACHE_DIR, else ~/.cache/kubemesos.
	CacheDir string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Log receives progress; nil means os.Stderr.
	Log io.Writer
}

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
			return o, err
		}
		if o.ModuleDir, err = kubebins.FindModuleDir(wd); err != nil {
			return o, err
		}
	}
	var err error
	o.CacheDir, err = buildcache.Root(o.CacheDir)
	return o, err
}

// CacheKey is the key of a build: the build module's go.mod and go.sum, the toolchain and platform,
// and the fixed arguments, environment and packages.
func CacheKey(goMod, goSum []byte, goVersion, goos, goarch string) string {
	return kubebins.CacheKey(goMod, goSum, goVersion, goos, goarch, testArgs(), kubebins.BuildEnv(),
		[]string{E2EPackage, GinkgoPackage})
}

// Ensure returns e2e.test and ginkgo from the cache, building them first if they are missing (~16
// minutes cold on 2 cores, about one when the Go build cache is warm). Concurrent callers are
// serialized by a lock file.
func Ensure(ctx context.Context, opts Options) (Binaries, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Binaries{}, err
	}
	modDir := filepath.Join(o.ModuleDir, BuildModule)
	goMod, err := os.ReadFile(filepath.Join(modDir, "go.mod"))
	if err != nil {
		return Binaries{}, err
	}
	goSum, err := os.ReadFile(filepath.Join(modDir, "go.sum"))
	if err != nil {
		return Binaries{}, err
	}
	cmd := exec.CommandContext(ctx, o.Go, "env", "GOVERSION", "GOOS", "GOARCH")
	cmd.Dir = modDir
	out, err := cmd.Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("go env: %w", err)
	}
	env := strings.Fields(string(out))
	if len(env) != 3 {
		return Binaries{}, fmt.Errorf("go env GOVERSION GOOS GOARCH: %q", out)
	}
	base := filepath.Join(o.CacheDir, "e2etest-"+CacheKey(goMod, goSum, env[0], env[1], env[2]))
	bins := binariesIn(filepath.Join(base, "bin"))
	if bins.present() {
		return bins, nil
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return Binaries{}, err
	}
	unlock, err := buildcache.Lock(ctx, base+".lock", "conformance", o.Log)
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()
	if bins.present() {
		return bins, nil
	}
	return bins, o.build(ctx, modDir, base, bins)
}

func (b Binaries) present() bool { return buildcache.Executables(b.E2ETest, b.Ginkgo) }

// build compiles into a temporary directory next to the final one and renames it into place, so an
// interrupted build leaves nothing that looks complete.
func (o Options) build(ctx context.Context, modDir, base string, bins Binaries) error {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	if stale, err := filepath.Glob(filepath.Join(base, "bin-building-*")); err == nil {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	tmp, err := os.MkdirTemp(base, "bin-building-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(o.Log, "conformance: building e2e.test and ginkgo from k8s.io/kubernetes %s into %s (~16 minutes cold on 2 cores; later runs reuse it)\n",
		kubebins.KubernetesVersion, bins.Dir)
	start := time.Now()
	for _, args := range [][]string{
		append(testArgs(), "-o", filepath.Join(tmp, "e2e.test"), E2EPackage),
		append(kubebins.BuildArgs(), "-o", filepath.Join(tmp, "ginkgo"), GinkgoPackage),
	} {
		cmd := exec.CommandContext(ctx, o.Go, args...)
		cmd.Dir = modDir
		cmd.Env = append(os.Environ(), kubebins.BuildEnv()...)
		var out bytes.Buffer
		cmd.Stdout = io.MultiWriter(o.Log, &out)
		cmd.Stderr = cmd.Stdout
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	if err := os.RemoveAll(bins.Dir); err != nil {
		return err
	}
	if err := os.Rename(tmp, bins.Dir); err != nil {
		return err
	}
	if !bins.present() {
		return fmt.Errorf("build finished but %s lacks e2e.test or ginkgo", bins.Dir)
	}
	fmt.Fprintf(o.Log, "conformance: built in %s: %s\n", time.Since(start).Round(time.Second), bins.Dir)
	return nil
}

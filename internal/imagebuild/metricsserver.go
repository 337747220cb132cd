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

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubemesos/kubemesos/internal/buildcache"
)

// metrics-server's module and the release built, with its go.sum hash (h1:), part of the cache key.
// v0.8.0 is the newest release (v0.9.0 is served by the module proxy but is not an approved release);
// its go.mod has no replace directives, so `go install` builds it with its own go.mod and go.sum,
// checked against the Go checksum database, and none of its dependencies enter this repository's
// modules.
const (
	MetricsServerModule    = "sigs.k8s.io/metrics-server"
	MetricsServerVersion   = "v0.8.0"
	MetricsServerModuleSum = "h1:Zlsi3sBWEtFKCD3+xSysThvXyLQ363rUAlqpnsY5JwI="
	metricsServerPkg       = MetricsServerModule + "/cmd/metrics-server"
)

// MetricsServerBuildArgs are the fixed `go install` arguments (without the package): static and
// stripped like the release's `make metrics-server` (CGO_ENABLED=0, -trimpath, -w; -s as well), with
// the release's version stamp (its Makefile's VERSION_LDFLAGS, without commit and date, which would
// make the build unreproducible): `metrics-server --version` prints it.
func MetricsServerBuildArgs() []string {
	return []string{"install", "-trimpath", "-ldflags", "-s -w -X k8s.io/client-go/pkg/version.gitVersion=" + MetricsServerVersion}
}

// MetricsServerBuildEnv is fixed on top of the caller's environment, as CoreDNSBuildEnv.
func MetricsServerBuildEnv() []string { return CoreDNSBuildEnv() }

// MetricsServer is a built metrics-server binary.
type MetricsServer struct {
	Path    string // the binary
	Version string // MetricsServerVersion
	SHA256  string // of the binary
	// BuildTime is how long the build that made it took (zero when found in the cache).
	BuildTime time.Duration
}

// MetricsServerOptions tune EnsureMetricsServer; the zero value works.
type MetricsServerOptions struct {
	// CacheDir is the cache root; empty means $KUBEMESOS_CACHE_DIR, else ~/.cache/kubemesos.
	CacheDir string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Log receives what the build is doing; nil means os.Stderr.
	Log io.Writer
}

// MetricsServerCacheKey changes when the release, the Go toolchain, the platform or the build
// arguments change, and only then.
func MetricsServerCacheKey(goVersion, goos, goarch string) string {
	h := sha256.New()
	for _, part := range []struct{ label, value string }{
		{"module", MetricsServerModule + "@" + MetricsServerVersion + " " + MetricsServerModuleSum},
		{"package", metricsServerPkg},
		{"go", goVersion},
		{"platform", goos + "/" + goarch},
		{"args", strings.Join(MetricsServerBuildArgs(), "\x00")},
		{"env", strings.Join(MetricsServerBuildEnv(), "\x00")},
	} {
		fmt.Fprintf(h, "%s %d\n%s", part.label, len(part.value), part.value)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// EnsureMetricsServer returns the cached metrics-server binary
// (<cache>/metrics-server-<version>-<key>/bin/metrics-server), building it first when it is missing.
// Concurrent callers are serialized by a lock file, so only one builds.
func EnsureMetricsServer(ctx context.Context, o MetricsServerOptions) (MetricsServer, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Go == "" {
		o.Go = "go"
	}
	root, err := buildcache.Root(o.CacheDir)
	if err != nil {
		return MetricsServer{}, err
	}
	env, err := goEnv(ctx, o.Go, "GOVERSION", "GOOS", "GOARCH")
	if err != nil {
		return MetricsServer{}, err
	}
	base := filepath.Join(root, "metrics-server-"+MetricsServerVersion+"-"+MetricsServerCacheKey(env[0], env[1], env[2]))
	bin := filepath.Join(base, "bin")
	exe := filepath.Join(bin, "metrics-server")
	if buildcache.Executables(exe) {
		return metricsServerAt(exe, 0)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return MetricsServer{}, fmt.Errorf("creating cache dir: %w", err)
	}
	unlock, err := buildcache.Lock(ctx, base+".lock", "metrics-server", o.Log)
	if err != nil {
		return MetricsServer{}, err
	}
	defer unlock()
	if buildcache.Executables(exe) { // built by whoever held the lock
		return metricsServerAt(exe, 0)
	}
	took, err := buildMetricsServer(ctx, o, base, bin)
	if err != nil {
		return MetricsServer{}, err
	}
	return metricsServerAt(exe, took)
}

// buildMetricsServer runs `go install` into a temporary directory next to bin and renames it into
// place, so an interrupted build never leaves a partial binary where EnsureMetricsServer looks.
func buildMetricsServer(ctx context.Context, o MetricsServerOptions, base, bin string) (time.Duration, error) {
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
	if err := os.Chmod(tmp, 0o755); err != nil {
		return 0, err
	}
	fmt.Fprintf(o.Log, "metrics-server: building %s@%s into %s (a few minutes the first time)\n", metricsServerPkg, MetricsServerVersion, bin)
	args := append(MetricsServerBuildArgs(), metricsServerPkg+"@"+MetricsServerVersion)
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = os.TempDir() // `go install pkg@version` ignores any go.mod; keep it from looking
	cmd.Env = append(append(os.Environ(), MetricsServerBuildEnv()...), "GOBIN="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	took := time.Since(start)
	if !buildcache.Executables(filepath.Join(tmp, "metrics-server")) {
		return 0, fmt.Errorf("go install finished but metrics-server is missing in %s", tmp)
	}
	if err := os.RemoveAll(bin); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return 0, fmt.Errorf("moving metrics-server into place: %w", err)
	}
	fmt.Fprintf(o.Log, "metrics-server: built in %s\n", took.Round(time.Second))
	return took, nil
}

func metricsServerAt(path string, took time.Duration) (MetricsServer, error) {
	f, err := os.Open(path)
	if err != nil {
		return MetricsServer{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return MetricsServer{}, err
	}
	return MetricsServer{Path: path, Version: MetricsServerVersion, SHA256: hex.EncodeToString(h.Sum(nil)), BuildTime: took}, nil
}

// MetricsServerUser is upstream's USER (the Dockerfile's `USER 65534`, nobody).
const MetricsServerUser = "65534"

// MetricsServerConfig is the metrics-server image's config: upstream's ENTRYPOINT ["/metrics-server"]
// and USER 65534 on gcr.io/distroless/static.
var MetricsServerConfig = v1.Config{
	Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	Entrypoint: []string{"/metrics-server"},
	User:       MetricsServerUser,
	WorkingDir: "/",
}

// MetricsServerLayer is the metrics-server image's root filesystem: /metrics-server, the distroless
// base's users and groups (those of the coredns image), /root and /tmp.
func MetricsServerLayer(m MetricsServer) (*Layer, error) {
	l := NewLayer()
	l.Dir("etc", 0o755)
	l.Dir("root", 0o700)
	l.Dir("tmp", 0o1777)
	if err := l.HostFile("metrics-server", 0o755, m.Path); err != nil {
		return nil, err
	}
	l.File("etc/passwd", 0o644, []byte(CoreDNSPasswd))
	l.File("etc/group", 0o644, []byte(CoreDNSGroup))
	return l, nil
}

// MetricsServerImage is the metrics-server image: MetricsServerLayer under MetricsServerConfig.
func MetricsServerImage(m MetricsServer) (v1.Image, error) {
	l, err := MetricsServerLayer(m)
	if err != nil {
		return nil, err
	}
	layer, err := l.Build()
	if err != nil {
		return nil, err
	}
	return Image(MetricsServerConfig, layer)
}

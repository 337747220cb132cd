package imagebuild

import (
	"context"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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

// metricsServerRelease is how EnsureMetricsServer builds it.
func metricsServerRelease() goRelease {
	return goRelease{name: "metrics-server", module: MetricsServerModule, version: MetricsServerVersion,
		sum: MetricsServerModuleSum, pkg: metricsServerPkg, args: MetricsServerBuildArgs(), env: MetricsServerBuildEnv()}
}

// MetricsServerCacheKey changes when the release, the Go toolchain, the platform or the build
// arguments change, and only then.
func MetricsServerCacheKey(goVersion, goos, goarch string) string {
	return metricsServerRelease().cacheKey(goVersion, goos, goarch)
}

// EnsureMetricsServer returns the cached metrics-server binary
// (<cache>/metrics-server-<version>-<key>/bin/metrics-server), building it first when it is missing.
// Concurrent callers are serialized by a lock file, so only one builds.
func EnsureMetricsServer(ctx context.Context, o MetricsServerOptions) (MetricsServer, error) {
	path, took, err := metricsServerRelease().ensure(ctx, o.CacheDir, o.Go, o.Log)
	if err != nil {
		return MetricsServer{}, err
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return MetricsServer{}, err
	}
	return MetricsServer{Path: path, Version: MetricsServerVersion, SHA256: sum, BuildTime: took}, nil
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

package imagebuild

import (
	"context"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CoreDNS' module and the release built, with its go.sum hash (h1:), part of the cache key. v1.14.7
// is the newest v1.14 release; its go.mod has no replace directives, so `go install` builds it with
// its own go.mod and go.sum, checked against the Go checksum database, and none of its dependencies
// (cloud SDKs, client-go at its own version, …) enter this repository's modules.
const (
	CoreDNSModule    = "github.com/coredns/coredns"
	CoreDNSVersion   = "v1.14.7"
	CoreDNSModuleSum = "h1:UPDkn4QN+xyNfjz3U5ldgoLszDYpMZEJoy3+ze9au4Q="
)

// CoreDNSBuildArgs are the fixed `go install` arguments (without the package): static, stripped and
// reproducible like the release's `make` (CGO_ENABLED=0, -s -w).
func CoreDNSBuildArgs() []string { return []string{"install", "-trimpath", "-ldflags", "-s -w"} }

// CoreDNSBuildEnv is fixed on top of the caller's environment; GOWORK=off so that no go.work above
// the build directory can pull the build into a workspace.
func CoreDNSBuildEnv() []string {
	return []string{"CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off"}
}

// CoreDNS is a built coredns binary.
type CoreDNS struct {
	Path    string // the binary
	Version string // CoreDNSVersion
	SHA256  string // of the binary: what an image's content depends on
	// BuildTime is how long the build that made it took (zero when found in the cache).
	BuildTime time.Duration
}

// CoreDNSOptions tune EnsureCoreDNS; the zero value works.
type CoreDNSOptions struct {
	// CacheDir is the cache root; empty means $KUBEMESOS_CACHE_DIR, else ~/.cache/kubemesos.
	CacheDir string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Log receives what the build is doing; nil means os.Stderr.
	Log io.Writer
}

// coreDNSRelease is how EnsureCoreDNS builds it.
func coreDNSRelease() goRelease {
	return goRelease{name: "coredns", module: CoreDNSModule, version: CoreDNSVersion, sum: CoreDNSModuleSum,
		args: CoreDNSBuildArgs(), env: CoreDNSBuildEnv()}
}

// CoreDNSCacheKey changes when the release, the Go toolchain, the platform or the build arguments
// change, and only then.
func CoreDNSCacheKey(goVersion, goos, goarch string) string {
	return coreDNSRelease().cacheKey(goVersion, goos, goarch)
}

// EnsureCoreDNS returns the cached coredns binary (<cache>/coredns-<version>-<key>/bin/coredns),
// building it first when it is missing. Concurrent callers are serialized by a lock file, so only one
// builds.
func EnsureCoreDNS(ctx context.Context, o CoreDNSOptions) (CoreDNS, error) {
	path, took, err := coreDNSRelease().ensure(ctx, o.CacheDir, o.Go, o.Log)
	if err != nil {
		return CoreDNS{}, err
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return CoreDNS{}, err
	}
	return CoreDNS{Path: path, Version: CoreDNSVersion, SHA256: sum, BuildTime: took}, nil
}

// CoreDNSPasswd and CoreDNSGroup are the users and groups of upstream's base image
// (gcr.io/distroless/static-debian12).
const (
	CoreDNSPasswd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`
	CoreDNSGroup = `root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
`
)

// CoreDNSConfig is the coredns image's config: upstream's ENTRYPOINT ["/coredns"] and EXPOSE, with
// the Corefile path of Kubernetes' CoreDNS Deployment (kubeadm's args) as the default command, and
// 9153/tcp, its Prometheus endpoint. Unlike upstream (USER 65532 with cap_net_bind_service as a file
// capability on /coredns) it runs as root: the store's layers carry no extended attributes.
var CoreDNSConfig = v1.Config{
	Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	Entrypoint: []string{"/coredns"},
	Cmd:        []string{"-conf", "/etc/coredns/Corefile"},
	WorkingDir: "/",
	ExposedPorts: map[string]struct{}{
		"53/tcp":   {},
		"53/udp":   {},
		"9153/tcp": {},
	},
}

// CoreDNSLayer is the coredns image's root filesystem: /coredns, the base image's users and groups,
// /root and /tmp.
func CoreDNSLayer(c CoreDNS) (*Layer, error) {
	l := NewLayer()
	l.Dir("etc", 0o755)
	l.Dir("root", 0o700)
	l.Dir("tmp", 0o1777)
	if err := l.HostFile("coredns", 0o755, c.Path); err != nil {
		return nil, err
	}
	l.File("etc/passwd", 0o644, []byte(CoreDNSPasswd))
	l.File("etc/group", 0o644, []byte(CoreDNSGroup))
	return l, nil
}

// CoreDNSImage is the coredns image: CoreDNSLayer under CoreDNSConfig.
func CoreDNSImage(c CoreDNS) (v1.Image, error) {
	l, err := CoreDNSLayer(c)
	if err != nil {
		return nil, err
	}
	layer, err := l.Build()
	if err != nil {
		return nil, err
	}
	return Image(CoreDNSConfig, layer)
}

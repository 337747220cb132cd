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

// CoreDNSCacheKey changes when the release, the Go toolchain, the platform or the build arguments
// change, and only then.
func CoreDNSCacheKey(goVersion, goos, goarch string) string {
	h := sha256.New()
	for _, part := range []struct{ label, value string }{
		{"module", CoreDNSModule + "@" + CoreDNSVersion + " " + CoreDNSModuleSum},
		{"go", goVersion},
		{"platform", goos + "/" + goarch},
		{"args", strings.Join(CoreDNSBuildArgs(), "\x00")},
		{"env", strings.Join(CoreDNSBuildEnv(), "\x00")},
	} {
		// Length-prefixed so that no two different inputs hash the same.
		fmt.Fprintf(h, "%s %d\n%s", part.label, len(part.value), part.value)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// EnsureCoreDNS returns the cached coredns binary (<cache>/coredns-<version>-<key>/bin/coredns),
// building it first when it is missing. Concurrent callers are serialized by a lock file, so only one
// builds.
func EnsureCoreDNS(ctx context.Context, o CoreDNSOptions) (CoreDNS, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Go == "" {
		o.Go = "go"
	}
	root, err := buildcache.Root(o.CacheDir)
	if err != nil {
		return CoreDNS{}, err
	}
	env, err := goEnv(ctx, o.Go, "GOVERSION", "GOOS", "GOARCH")
	if err != nil {
		return CoreDNS{}, err
	}
	base := filepath.Join(root, "coredns-"+CoreDNSVersion+"-"+CoreDNSCacheKey(env[0], env[1], env[2]))
	bin := filepath.Join(base, "bin")
	if buildcache.Executables(filepath.Join(bin, "coredns")) {
		return corednsAt(filepath.Join(bin, "coredns"), 0)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return CoreDNS{}, fmt.Errorf("creating cache dir: %w", err)
	}
	unlock, err := buildcache.Lock(ctx, base+".lock", "coredns", o.Log)
	if err != nil {
		return CoreDNS{}, err
	}
	defer unlock()
	if buildcache.Executables(filepath.Join(bin, "coredns")) { // built by whoever held the lock
		return corednsAt(filepath.Join(bin, "coredns"), 0)
	}
	took, err := buildCoreDNS(ctx, o, base, bin)
	if err != nil {
		return CoreDNS{}, err
	}
	return corednsAt(filepath.Join(bin, "coredns"), took)
}

// buildCoreDNS runs `go install` into a temporary directory next to bin and renames it into place,
// so an interrupted build never leaves a partial binary where EnsureCoreDNS looks.
func buildCoreDNS(ctx context.Context, o CoreDNSOptions, base, bin string) (time.Duration, error) {
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
	fmt.Fprintf(o.Log, "coredns: building %s@%s into %s (a few minutes the first time)\n", CoreDNSModule, CoreDNSVersion, bin)
	args := append(CoreDNSBuildArgs(), CoreDNSModule+"@"+CoreDNSVersion)
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = os.TempDir() // `go install pkg@version` ignores any go.mod; keep it from looking
	cmd.Env = append(append(os.Environ(), CoreDNSBuildEnv()...), "GOBIN="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	took := time.Since(start)
	if !buildcache.Executables(filepath.Join(tmp, "coredns")) {
		return 0, fmt.Errorf("go install finished but coredns is missing in %s", tmp)
	}
	if err := os.RemoveAll(bin); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return 0, fmt.Errorf("moving coredns into place: %w", err)
	}
	fmt.Fprintf(o.Log, "coredns: built in %s\n", took.Round(time.Second))
	return took, nil
}

func corednsAt(path string, took time.Duration) (CoreDNS, error) {
	f, err := os.Open(path)
	if err != nil {
		return CoreDNS{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return CoreDNS{}, err
	}
	return CoreDNS{Path: path, Version: CoreDNSVersion, SHA256: hex.EncodeToString(h.Sum(nil)), BuildTime: took}, nil
}

func goEnv(ctx context.Context, goCmd string, names ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, goCmd, append([]string{"env"}, names...)...)
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

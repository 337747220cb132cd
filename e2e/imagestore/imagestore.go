// Package imagestore builds the local image registry of the simulated Mesos agents
// (--docker_registry=<dir>): real `docker save` archives with real layers, named as Mesos' local
// puller looks them up (<dir>/<image>.tar), for the images Kubernetes' conformance specs and local-up
// use. Nothing is pulled: busybox is built from upstream's source (imagebuild.BuildBusybox), agnhost and nonewprivs
// are built from the k8s.io/kubernetes module e2e/go.mod requires, pause from ./pause, coredns (the
// cluster DNS) and metrics-server from their own modules' releases (internal/imagebuild.EnsureCoreDNS,
// EnsureMetricsServer), glibc-dns-testing
// from busybox and this host's Debian hostname and dash. The result is
// cached under ~/.cache/kubemesos/images-<key>, the key covering every input.
package imagestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubemesos/kubemesos/e2e/kubebins"
	"github.com/kubemesos/kubemesos/internal/buildcache"
	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/internal/imagebuild"
)

// builderVersion changes whenever what this package writes changes, so that old stores are not reused.
const builderVersion = "imagestore/7"

// PATH is the images' PATH (the upstream busybox image's).
const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Go packages built into the images.
const (
	agnhostPkg    = "k8s.io/kubernetes/test/images/agnhost"
	nonewprivsPkg = "k8s.io/kubernetes/test/images/nonewprivs"
	pausePkg      = "github.com/kubemesos/kubemesos/e2e/imagestore/pause"
)

// CoreDNSImage is the cluster DNS image, CoreDNS built from its release: what the kube-dns
// Deployment runs. Its other names are "coredns", "coredns:latest", "coredns:1.14.7" and
// registry.k8s.io's "registry.k8s.io/coredns/coredns:v1.14.7".
const CoreDNSImage = "coredns:" + imagebuild.CoreDNSVersion

// MetricsServerImage is metrics-server built from its release (what `kubectl top` reads through);
// its other names are "metrics-server", "metrics-server:latest" and registry.k8s.io's.
const MetricsServerImage = "metrics-server:" + imagebuild.MetricsServerVersion

// Images are the store's images: the first name is the one Kubernetes' e2e specs use
// (k8s.io/kubernetes/test/utils/image), the others the short names a user types. Mesos does not
// normalise names, so each name is its own archive path (hard links to one archive per image).
var Images = []struct {
	Names  []string
	Config v1.Config
}{
	{[]string{"registry.k8s.io/e2e-test-images/busybox:1.37.0-2", "busybox", "busybox:latest", "busybox:1.37.0-2"},
		v1.Config{Env: []string{PATH}, Cmd: []string{"sh"}}},
	// agnhost:2.55 is test/utils/image's AgnhostPrev, the first image of [Conformance] specs outside
	// the node selection (Pods lifecycle, Deployment rollover, kubectl), which then move to 2.66.1:
	// only the release's agnhost is built here, so the previous tag names the same image (the specs
	// need a second runnable name).
	{[]string{"registry.k8s.io/e2e-test-images/agnhost:2.66.1", "agnhost", "agnhost:latest", "agnhost:2.66.1",
		"registry.k8s.io/e2e-test-images/agnhost:2.55"},
		v1.Config{Env: []string{PATH}, Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}}},
	{[]string{"registry.k8s.io/pause:3.10.2", "pause", "pause:latest", "pause:3.10.2"},
		v1.Config{Env: []string{PATH}, Entrypoint: []string{"/pause"}}},
	{[]string{"registry.k8s.io/e2e-test-images/nonewprivs:1.4", "nonewprivs", "nonewprivs:latest", "nonewprivs:1.4"},
		v1.Config{Env: []string{PATH}, Cmd: []string{"nnp"}}},
	{[]string{"registry.k8s.io/e2e-test-images/nonroot:1.5", "nonroot", "nonroot:latest", "nonroot:1.5"},
		v1.Config{Env: []string{PATH}, Cmd: []string{"sh"}, User: "1234"}},
	{[]string{imagearchive.EchoEntrypointImage}, imagearchive.EchoEntrypointConfig},
	{[]string{"registry.k8s.io/coredns/coredns:" + imagebuild.CoreDNSVersion, CoreDNSImage, "coredns", "coredns:latest",
		"coredns:" + strings.TrimPrefix(imagebuild.CoreDNSVersion, "v")}, imagebuild.CoreDNSConfig},
	// Upstream is Debian with glibc's resolver, for the hostname specs (`hostname -f` as glibc
	// answers it): busybox plus, from this host, Debian's hostname and dash as /bin/sh with their
	// libraries, and Debian's nsswitch.conf (files before dns, so /etc/hosts names the pod's FQDN).
	{[]string{"registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1", "glibc-dns-testing", "glibc-dns-testing:latest",
		"glibc-dns-testing:2.1.1"}, v1.Config{Env: []string{PATH}, Cmd: []string{"sh"}}},
	{[]string{"registry.k8s.io/metrics-server/metrics-server:" + imagebuild.MetricsServerVersion, MetricsServerImage,
		"metrics-server", "metrics-server:latest"}, imagebuild.MetricsServerConfig},
}

// NSSwitch is the glibc-dns-testing image's /etc/nsswitch.conf, Debian's hosts line.
const NSSwitch = "hosts:          files dns\n"

// Store is a built image store.
type Store struct {
	// Dir is the registry directory, what the agents' --docker_registry names.
	Dir string `json:"-"`
	// Images maps each image's first name to all its names.
	Images map[string][]string `json:"images"`
	// Bytes is the store's size on disk (each archive counted once).
	Bytes int64 `json:"bytes"`
	// BuildTime is how long the build that made the store took.
	BuildTime time.Duration `json:"buildTime"`
	// Busybox is the busybox-static version the busybox layer comes from.
	Busybox string `json:"busybox"`
	// CoreDNS is the CoreDNS release the coredns image has.
	CoreDNS string `json:"coredns"`
	// MetricsServer is the metrics-server release the metrics-server image has.
	MetricsServer string `json:"metricsServer"`
	// Cached is true when Ensure found the store already built.
	Cached bool `json:"-"`
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

// Inputs are what a store's content depends on.
type Inputs struct {
	Busybox   imagebuild.Busybox
	GoVersion string // `go env GOVERSION GOOS GOARCH`
	GoMod     []byte // e2e/go.mod and go.sum: the k8s.io/kubernetes version agnhost and nonewprivs come from
	GoSum     []byte
	PauseSrc  []byte
	Bash      Bash
	Hostname  Bash // Debian's hostname (glibc) and its libraries, for glibc-dns-testing
	Dash      Bash // Debian's /bin/sh, for glibc-dns-testing
	Curl      Bash // Debian's curl, for agnhost (upstream's alpine has it: the exec hook specs run curl)
	// CoreDNS is the coredns binary's release and build key (imagebuild.CoreDNSCacheKey): the build
	// is reproducible, so they determine its content without building it to hash it.
	CoreDNS string
	// MetricsServer is the metrics-server binary's release and build key, as CoreDNS.
	MetricsServer string
}

// Bash is a Debian program and the shared libraries it loads (ldd), from this host: agnhost's image
// has bash (upstream's is alpine with bash) for the specs that run /bin/bash in it; glibc-dns-testing
// has hostname.
type Bash struct {
	Version string   // the program's package's
	Files   []string // the program, then the libraries, as ldd names them
	SHA256  string   // of the files' contents
}

// FindBash finds bash and its libraries on this host.
func FindBash(ctx context.Context) (Bash, error) { return findProgram(ctx, "bash", "/bin/bash") }

// FindHostname finds Debian's hostname and its libraries on this host.
func FindHostname(ctx context.Context) (Bash, error) {
	return findProgram(ctx, "hostname", "/bin/hostname")
}

// FindCurl finds Debian's curl and its libraries on this host.
func FindCurl(ctx context.Context) (Bash, error) { return findProgram(ctx, "curl", "/usr/bin/curl") }

// FindDash finds Debian's dash (its /bin/sh) and its libraries on this host.
func FindDash(ctx context.Context) (Bash, error) { return findProgram(ctx, "dash", "/bin/dash") }

func findProgram(ctx context.Context, pkg, path string) (Bash, error) {
	var b Bash
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return b, fmt.Errorf("dpkg-query %s: %w", pkg, err)
	}
	b.Version = string(out)
	b.Files = []string{path}
	ldd, err := exec.CommandContext(ctx, "ldd", path).Output()
	if err != nil {
		return b, fmt.Errorf("ldd %s: %w", path, err)
	}
	for _, line := range strings.Split(string(ldd), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			b.Files = append(b.Files, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			b.Files = append(b.Files, f[0])
		}
	}
	h := sha256.New()
	for _, p := range b.Files {
		f, err := os.Open(p)
		if err != nil {
			return b, err
		}
		fmt.Fprintf(h, "%s\n", p)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return b, err
		}
	}
	b.SHA256 = hex.EncodeToString(h.Sum(nil))
	return b, nil
}

// Key is the store's content key.
func (in Inputs) Key() string {
	h := sha256.New()
	for _, f := range []struct {
		label string
		b     []byte
	}{
		{"builder", []byte(builderVersion)},
		{"busybox", []byte(in.Busybox.Version + " " + in.Busybox.SHA256)},
		{"go", []byte(in.GoVersion)},
		{"go.mod", in.GoMod},
		{"go.sum", in.GoSum},
		{"pause", in.PauseSrc},
		{"bash", []byte(in.Bash.Version + " " + in.Bash.SHA256)},
		{"hostname", []byte(in.Hostname.Version + " " + in.Hostname.SHA256)},
		{"dash", []byte(in.Dash.Version + " " + in.Dash.SHA256)},
		{"curl", []byte(in.Curl.Version + " " + in.Curl.SHA256)},
		{"coredns", []byte(in.CoreDNS)},
		{"metrics-server", []byte(in.MetricsServer)},
		{"args", []byte(strings.Join(append(buildArgs(), buildEnv()...), "\x00"))},
	} {
		fmt.Fprintf(h, "%s %d\n", f.label, len(f.b)) // length-prefixed: no two inputs hash alike
		h.Write(f.b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Build flags shared with kubebins' (-trimpath, CGO_ENABLED=0, no VCS stamp), so the Go build cache
// the Kubernetes binaries filled serves agnhost's packages too.
func buildArgs() []string { return []string{"build", "-trimpath", "-ldflags", "-s -w"} }
func buildEnv() []string  { return []string{"CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"} }

// Ensure returns the image store, building it first when the cache lacks it. Concurrent callers are
// serialized by a lock file, so only one builds.
func Ensure(ctx context.Context, opts Options) (Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Store{}, err
	}
	in, err := o.inputs(ctx)
	if err != nil {
		return Store{}, err
	}
	base := filepath.Join(o.CacheDir, "images-"+in.Key())
	if s, err := load(base); err == nil {
		return s, nil
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return Store{}, err
	}
	unlock, err := buildcache.Lock(ctx, base+".lock", "imagestore", o.Log)
	if err != nil {
		return Store{}, err
	}
	defer unlock()
	if s, err := load(base); err == nil {
		return s, nil
	}
	return o.build(ctx, in, base)
}

func load(base string) (Store, error) {
	b, err := os.ReadFile(filepath.Join(base, "store.json"))
	if err != nil {
		return Store{}, err
	}
	var s Store
	if err := json.Unmarshal(b, &s); err != nil {
		return Store{}, err
	}
	s.Dir = filepath.Join(base, "registry")
	s.Cached = true
	return s, nil
}

func (o Options) inputs(ctx context.Context) (Inputs, error) {
	var in Inputs
	var err error
	// Upstream's busybox, as the upstream image's: Debian's ash drops environment variables whose
	// names are not identifiers (envFrom's `data-1`), upstream's passes them on (BuildBusybox).
	if in.Busybox, err = imagebuild.BuildBusybox(ctx, imagebuild.BusyboxOptions{CacheDir: o.CacheDir, Log: o.Log}); err != nil {
		return in, fmt.Errorf("busybox: %w", err)
	}
	cmd := exec.CommandContext(ctx, o.Go, "env", "GOVERSION", "GOOS", "GOARCH")
	cmd.Dir = o.ModuleDir
	out, err := cmd.Output()
	if err != nil {
		return in, fmt.Errorf("go env: %w", err)
	}
	goEnv := strings.Fields(string(out))
	if len(goEnv) != 3 {
		return in, fmt.Errorf("go env GOVERSION GOOS GOARCH: %q", out)
	}
	in.GoVersion = strings.Join(goEnv, " ")
	in.CoreDNS = imagebuild.CoreDNSVersion + " " + imagebuild.CoreDNSCacheKey(goEnv[0], goEnv[1], goEnv[2])
	in.MetricsServer = imagebuild.MetricsServerVersion + " " + imagebuild.MetricsServerCacheKey(goEnv[0], goEnv[1], goEnv[2])
	if in.GoMod, err = os.ReadFile(filepath.Join(o.ModuleDir, "go.mod")); err != nil {
		return in, err
	}
	if in.GoSum, err = os.ReadFile(filepath.Join(o.ModuleDir, "go.sum")); err != nil {
		return in, err
	}
	if in.PauseSrc, err = os.ReadFile(filepath.Join(o.ModuleDir, "imagestore", "pause", "main.go")); err != nil {
		return in, err
	}
	if in.Bash, err = FindBash(ctx); err != nil {
		return in, err
	}
	if in.Hostname, err = FindHostname(ctx); err != nil {
		return in, err
	}
	if in.Dash, err = FindDash(ctx); err != nil {
		return in, err
	}
	if in.Curl, err = FindCurl(ctx); err != nil {
		return in, err
	}
	return in, nil
}

// build makes the store in a temporary directory next to base and renames it into place, so an
// interrupted build leaves no half-made store.
func (o Options) build(ctx context.Context, in Inputs, base string) (Store, error) {
	start := time.Now()
	fmt.Fprintf(o.Log, "imagestore: building the image store %s (busybox %s; agnhost, nonewprivs from k8s.io/kubernetes; pause; coredns %s; metrics-server %s)\n",
		base, in.Busybox.Version, imagebuild.CoreDNSVersion, imagebuild.MetricsServerVersion)
	if stale, err := filepath.Glob(base + ".building-*"); err == nil {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(base), filepath.Base(base)+".building-")
	if err != nil {
		return Store{}, err
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp's 0700 would keep agents running as other users out of the registry.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Store{}, err
	}
	bins, err := o.buildBinaries(ctx, filepath.Join(tmp, "bin"))
	if err != nil {
		return Store{}, err
	}

	bbLayer, err := imagebuild.BusyboxLayer(ctx, in.Busybox)
	if err != nil {
		return Store{}, err
	}
	bb, err := bbLayer.Build()
	if err != nil {
		return Store{}, err
	}
	layerWith := func(path string, mode int64, src string) (v1.Layer, error) {
		l := imagebuild.NewLayer()
		if err := l.HostFile(path, mode, src); err != nil {
			return nil, err
		}
		return l.Build()
	}
	agnhostLayer := imagebuild.NewLayer()
	if err := agnhostLayer.HostFile("agnhost", 0o755, bins["agnhost"]); err != nil {
		return Store{}, err
	}
	for _, f := range append(append([]string(nil), in.Bash.Files...), in.Curl.Files...) {
		if err := agnhostLayer.HostFile(f, 0o755, f); err != nil {
			return Store{}, err
		}
	}
	// Upstream: RUN ln -s agnhost agnhost-2 ("entrypoint-tester related tests override this image's
	// entrypoint with agnhost-2").
	agnhostLayer.Symlink("agnhost-2", "agnhost")
	// Upstream: ADD porter/localhost.crt localhost.crt, ADD porter/localhost.key localhost.key
	// (netexec's --tls-cert-file/--tls-private-key-file in the HTTPS lifecycle hook specs).
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		if err := agnhostLayer.HostFile(f, 0o644, bins[f]); err != nil {
			return Store{}, err
		}
	}
	agnhost, err := agnhostLayer.Build()
	if err != nil {
		return Store{}, err
	}
	// Upstream: COPY nnp /usr/local/bin/nnp; RUN chmod +s (root-owned, setuid and setgid).
	nnp, err := layerWith("usr/local/bin/nnp", 0o6755, bins["nonewprivs"])
	if err != nil {
		return Store{}, err
	}
	pause, err := layerWith("pause", 0o755, bins["pause"])
	if err != nil {
		return Store{}, err
	}
	coredns, err := imagebuild.EnsureCoreDNS(ctx, imagebuild.CoreDNSOptions{CacheDir: o.CacheDir, Go: o.Go, Log: o.Log})
	if err != nil {
		return Store{}, err
	}
	corednsLayer, err := imagebuild.CoreDNSLayer(coredns)
	if err != nil {
		return Store{}, err
	}
	dns, err := corednsLayer.Build()
	if err != nil {
		return Store{}, err
	}
	// Debian's dash is /bin/sh, as upstream's: busybox's sh would run its own hostname applet.
	glibcLayer := imagebuild.NewLayer()
	for _, f := range append(append([]string{}, in.Hostname.Files...), in.Dash.Files...) {
		if err := glibcLayer.HostFile(f, 0o755, f); err != nil {
			return Store{}, err
		}
	}
	if err := glibcLayer.HostFile("bin/sh", 0o755, in.Dash.Files[0]); err != nil {
		return Store{}, err
	}
	glibcLayer.File("etc/nsswitch.conf", 0o644, []byte(NSSwitch))
	glibc, err := glibcLayer.Build()
	if err != nil {
		return Store{}, err
	}
	ms, err := imagebuild.EnsureMetricsServer(ctx, imagebuild.MetricsServerOptions{CacheDir: o.CacheDir, Go: o.Go, Log: o.Log})
	if err != nil {
		return Store{}, err
	}
	msLayer, err := imagebuild.MetricsServerLayer(ms)
	if err != nil {
		return Store{}, err
	}
	metricsServer, err := msLayer.Build()
	if err != nil {
		return Store{}, err
	}
	layers := [][]v1.Layer{{bb}, {bb, agnhost}, {pause}, {bb, nnp}, {bb}, {bb}, {dns}, {bb, glibc}, {metricsServer}}

	registry := filepath.Join(tmp, "registry")
	s := Store{Images: map[string][]string{}, Busybox: in.Busybox.Version, CoreDNS: coredns.Version, MetricsServer: ms.Version}
	for i, im := range Images {
		img, err := imagebuild.Image(im.Config, layers[i]...)
		if err != nil {
			return Store{}, fmt.Errorf("%s: %w", im.Names[0], err)
		}
		size, err := imagebuild.WriteArchives(registry, img, im.Names...)
		if err != nil {
			return Store{}, err
		}
		s.Images[im.Names[0]] = im.Names
		s.Bytes += size
	}
	if err := os.RemoveAll(filepath.Join(tmp, "bin")); err != nil {
		return Store{}, err
	}
	s.BuildTime = time.Since(start)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return Store{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "store.json"), b, 0o644); err != nil {
		return Store{}, err
	}
	_ = os.RemoveAll(base)
	if err := os.Rename(tmp, base); err != nil {
		return Store{}, err
	}
	s.Dir = filepath.Join(base, "registry")
	fmt.Fprintf(o.Log, "imagestore: built in %s, %d MB: %s\n", s.BuildTime.Round(100*time.Millisecond), s.Bytes>>20, s.Dir)
	return s, nil
}

// buildBinaries builds agnhost, nonewprivs and pause statically into dir. agnhost needs a module
// (github.com/ishidawataru/sctp) e2e/go.sum lacks: the build works on a copy of go.mod/go.sum
// (-modfile, -mod=mod) so that the module's files, and kubebins' cache key, stay as they are.
func (o Options) buildBinaries(ctx context.Context, dir string) (map[string]string, error) {
	modDir, err := os.MkdirTemp("", "imagestore-mod-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(modDir)
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(o.ModuleDir, f))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(modDir, f), b, 0o644); err != nil {
			return nil, err
		}
	}
	args := append(buildArgs(), "-modfile="+filepath.Join(modDir, "go.mod"), "-mod=mod", "-o", dir+string(filepath.Separator),
		agnhostPkg, nonewprivsPkg, pausePkg)
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.ModuleDir
	cmd.Env = append(os.Environ(), buildEnv()...)
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(o.Log, &out)
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	fmt.Fprintf(o.Log, "imagestore: agnhost, nonewprivs, pause built in %s\n", time.Since(start).Round(100*time.Millisecond))
	bins := map[string]string{}
	for _, name := range []string{"agnhost", "nonewprivs", "pause"} {
		bins[name] = filepath.Join(dir, name)
		if _, err := os.Stat(bins[name]); err != nil {
			return nil, err
		}
	}
	// agnhost's certificate and key, from the same k8s.io/kubernetes module the binary came from.
	list := exec.CommandContext(ctx, o.Go, "list", "-modfile="+filepath.Join(modDir, "go.mod"), "-mod=mod", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes")
	list.Dir = o.ModuleDir
	list.Env = cmd.Env
	kdir, err := list.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m k8s.io/kubernetes: %w", err)
	}
	for _, name := range []string{"localhost.crt", "localhost.key"} {
		bins[name] = filepath.Join(strings.TrimSpace(string(kdir)), "test/images/agnhost/porter", name)
		if _, err := os.Stat(bins[name]); err != nil {
			return nil, err
		}
	}
	return bins, nil
}

// DiskUsage is the bytes under dir, each file once however many hard links it has.
func DiskUsage(dir string) (int64, error) {
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += fi.Size()
		return nil
	})
	return total, err
}

// Names lists every name in the store, sorted.
func (s Store) Names() []string {
	var all []string
	for _, ns := range s.Images {
		all = append(all, ns...)
	}
	sort.Strings(all)
	return all
}

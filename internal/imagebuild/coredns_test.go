package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestCoreDNSCacheKey(t *testing.T) {
	k := CoreDNSCacheKey("go1.26.8", "linux", "amd64")
	if len(k) != 16 || k != CoreDNSCacheKey("go1.26.8", "linux", "amd64") {
		t.Fatalf("key %q is not a stable 16-character key", k)
	}
	for _, other := range []string{CoreDNSCacheKey("go1.26.9", "linux", "amd64"), CoreDNSCacheKey("go1.26.8", "linux", "arm64"),
		CoreDNSCacheKey("go1.26.8", "darwin", "amd64")} {
		if other == k {
			t.Errorf("a different toolchain or platform gave the same key %s", k)
		}
	}
}

// fakeGoInstall stands in for the go command: `go env` answers fixed values, `go install PKG@V`
// checks the build environment, writes $GOBIN/coredns and counts its invocations.
const fakeGoInstall = `#!/bin/sh
case "$1" in
env) printf 'go1.26.8\nlinux\namd64\n' ;;
install)
  echo "$PWD $*" >> "$COUNT_FILE"
  [ "$CGO_ENABLED" = 0 ] || { echo "CGO_ENABLED=$CGO_ENABLED" >&2; exit 3; }
  [ "$GOWORK" = off ] || { echo "GOWORK=$GOWORK" >&2; exit 3; }
  [ -n "$FAIL_BUILD" ] && { echo "compile error: boom" >&2; exit 2; }
  printf '#!/bin/sh\necho CoreDNS-fake\n' > "$GOBIN/coredns"; chmod +x "$GOBIN/coredns" ;;
*) exit 1 ;;
esac
`

func fakeGo(t *testing.T) (goCmd, count string) {
	t.Helper()
	dir := t.TempDir()
	goCmd = filepath.Join(dir, "go")
	if err := os.WriteFile(goCmd, []byte(fakeGoInstall), 0o755); err != nil {
		t.Fatal(err)
	}
	count = filepath.Join(dir, "count")
	t.Setenv("COUNT_FILE", count)
	t.Setenv("CGO_ENABLED", "1") // the build must override these
	t.Setenv("GOWORK", "/somewhere/go.work")
	return goCmd, count
}

func installs(t *testing.T, count string) []string {
	t.Helper()
	b, err := os.ReadFile(count)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestEnsureCoreDNSBuildsOnceAndReuses(t *testing.T) {
	goCmd, count := fakeGo(t)
	cache := t.TempDir()
	var log bytes.Buffer
	opts := CoreDNSOptions{CacheDir: cache, Go: goCmd, Log: &log}
	base := filepath.Join(cache, "coredns-"+CoreDNSVersion+"-"+CoreDNSCacheKey("go1.26.8", "linux", "amd64"))
	// What a build killed halfway leaves; the next build clears it.
	stale := filepath.Join(base, "bin-building-killed")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}

	first, err := EnsureCoreDNS(context.Background(), opts)
	if err != nil {
		t.Fatalf("EnsureCoreDNS: %v\nlog:\n%s", err, log.String())
	}
	if want := filepath.Join(base, "bin", "coredns"); first.Path != want {
		t.Errorf("path %s, want %s", first.Path, want)
	}
	if first.Version != CoreDNSVersion || len(first.SHA256) != 64 || first.BuildTime <= 0 {
		t.Errorf("first = %+v", first)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale build dir still there (stat: %v)", err)
	}
	got := installs(t, count)
	if len(got) != 1 {
		t.Fatalf("go install ran %d times, want 1: %q", len(got), got)
	}
	// Outside any module, the module's own go.mod: `go install module@version`.
	if want := os.TempDir() + " install -trimpath -ldflags -s -w " + CoreDNSModule + "@" + CoreDNSVersion; got[0] != want {
		t.Errorf("build ran %q, want %q", got[0], want)
	}
	if !strings.Contains(log.String(), "coredns: building github.com/coredns/coredns@v1.14.7") {
		t.Errorf("the build did not say what it does; log:\n%s", log.String())
	}

	log.Reset()
	second, err := EnsureCoreDNS(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	first.BuildTime = 0
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("cached EnsureCoreDNS (-first +second):\n%s", diff)
	}
	if n := len(installs(t, count)); n != 1 {
		t.Errorf("go install ran %d times after the second EnsureCoreDNS, want 1 (cache not reused)", n)
	}
	if log.Len() != 0 {
		t.Errorf("cached EnsureCoreDNS printed %q", log.String())
	}
}

func TestEnsureCoreDNSFailureLeavesNoBinary(t *testing.T) {
	goCmd, _ := fakeGo(t)
	t.Setenv("FAIL_BUILD", "1")
	cache := t.TempDir()
	_, err := EnsureCoreDNS(context.Background(), CoreDNSOptions{CacheDir: cache, Go: goCmd, Log: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "compile error: boom") {
		t.Fatalf("err = %v, want the build's output in it", err)
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "coredns-*", "bin*")); len(m) != 0 {
		t.Errorf("failed build left %v behind", m)
	}
}

// TestCoreDNSBuildRuns builds the real release (or finds it in the cache) and runs it.
func TestCoreDNSBuildRuns(t *testing.T) {
	c, err := EnsureCoreDNS(context.Background(), CoreDNSOptions{Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(c.Path, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -version: %v: %s", c.Path, err, out)
	}
	if !strings.HasPrefix(string(out), "CoreDNS-1.14.7\n") {
		t.Errorf("coredns -version printed %q, want CoreDNS-1.14.7 first", out)
	}
	// Static: no interpreter a minimal root filesystem would lack.
	if out, err := exec.Command("file", "-L", c.Path).Output(); err == nil && !strings.Contains(string(out), "statically linked") {
		t.Errorf("file %s: %s, want statically linked", c.Path, out)
	}
}

func TestCoreDNSImage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "coredns")
	if err := os.WriteFile(bin, []byte("\x7fELF coredns"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := CoreDNSImage(CoreDNS{Path: bin, Version: CoreDNSVersion})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	files := layerFiles(t, layers[0])
	if h := files["coredns"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Size != int64(len("\x7fELF coredns")) {
		t.Errorf("coredns = %+v", h)
	}
	if h := files["tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp = %+v", h)
	}
	for _, p := range []string{"etc/passwd", "etc/group", "root"} {
		if files[p] == nil {
			t.Errorf("%s missing", p)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Entrypoint:   []string{"/coredns"},
		Cmd:          []string{"-conf", "/etc/coredns/Corefile"},
		WorkingDir:   "/",
		ExposedPorts: map[string]struct{}{"53/udp": {}, "53/tcp": {}, "9153/tcp": {}},
	}
	if diff := cmp.Diff(want, cf.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if cf.OS != "linux" {
		t.Errorf("os %q", cf.OS)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

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

func TestMetricsServerCacheKey(t *testing.T) {
	k := MetricsServerCacheKey("go1.26.8", "linux", "amd64")
	if len(k) != 16 || k != MetricsServerCacheKey("go1.26.8", "linux", "amd64") {
		t.Fatalf("key %q is not a stable 16-character key", k)
	}
	for _, other := range []string{MetricsServerCacheKey("go1.26.9", "linux", "amd64"), MetricsServerCacheKey("go1.26.8", "linux", "arm64"),
		CoreDNSCacheKey("go1.26.8", "linux", "amd64")} {
		if other == k {
			t.Errorf("a different toolchain, platform or release gave the same key %s", k)
		}
	}
}

// fakeGoInstallMS is fakeGoInstall writing $GOBIN/metrics-server.
var fakeGoInstallMS = strings.ReplaceAll(strings.ReplaceAll(fakeGoInstall, "$GOBIN/coredns", "$GOBIN/metrics-server"), "CoreDNS-fake", "v0.8.0")

func fakeGoMS(t *testing.T) (goCmd, count string) {
	t.Helper()
	goCmd, count = fakeGo(t)
	if err := os.WriteFile(goCmd, []byte(fakeGoInstallMS), 0o755); err != nil {
		t.Fatal(err)
	}
	return goCmd, count
}

func TestEnsureMetricsServerBuildsOnceAndReuses(t *testing.T) {
	goCmd, count := fakeGoMS(t)
	cache := t.TempDir()
	var log bytes.Buffer
	opts := MetricsServerOptions{CacheDir: cache, Go: goCmd, Log: &log}
	base := filepath.Join(cache, "metrics-server-"+MetricsServerVersion+"-"+MetricsServerCacheKey("go1.26.8", "linux", "amd64"))
	stale := filepath.Join(base, "bin-building-killed")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	first, err := EnsureMetricsServer(context.Background(), opts)
	if err != nil {
		t.Fatalf("EnsureMetricsServer: %v\nlog:\n%s", err, log.String())
	}
	if want := filepath.Join(base, "bin", "metrics-server"); first.Path != want {
		t.Errorf("path %s, want %s", first.Path, want)
	}
	if first.Version != "v0.8.0" || len(first.SHA256) != 64 || first.BuildTime <= 0 {
		t.Errorf("first = %+v", first)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale build dir still there (stat: %v)", err)
	}
	got := installs(t, count)
	if len(got) != 1 {
		t.Fatalf("go install ran %d times, want 1: %q", len(got), got)
	}
	want := os.TempDir() + " install -trimpath -ldflags -s -w -X k8s.io/client-go/pkg/version.gitVersion=v0.8.0 sigs.k8s.io/metrics-server/cmd/metrics-server@v0.8.0"
	if got[0] != want {
		t.Errorf("build ran %q, want %q", got[0], want)
	}
	log.Reset()
	second, err := EnsureMetricsServer(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	first.BuildTime = 0
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("cached EnsureMetricsServer (-first +second):\n%s", diff)
	}
	if n := len(installs(t, count)); n != 1 {
		t.Errorf("go install ran %d times after the second call, want 1 (cache not reused)", n)
	}
	if log.Len() != 0 {
		t.Errorf("cached EnsureMetricsServer printed %q", log.String())
	}
}

func TestEnsureMetricsServerFailureLeavesNoBinary(t *testing.T) {
	goCmd, _ := fakeGoMS(t)
	t.Setenv("FAIL_BUILD", "1")
	cache := t.TempDir()
	_, err := EnsureMetricsServer(context.Background(), MetricsServerOptions{CacheDir: cache, Go: goCmd, Log: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "compile error: boom") {
		t.Fatalf("err = %v, want the build's output in it", err)
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "metrics-server-*", "bin*")); len(m) != 0 {
		t.Errorf("failed build left %v behind", m)
	}
}

// TestMetricsServerBuildRuns builds the real release (or finds it in the cache) and runs it.
func TestMetricsServerBuildRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds metrics-server")
	}
	m, err := EnsureMetricsServer(context.Background(), MetricsServerOptions{Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(m.Path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", m.Path, err, out)
	}
	if strings.TrimSpace(string(out)) != "v0.8.0" {
		t.Errorf("metrics-server --version printed %q, want v0.8.0", out)
	}
	if out, err := exec.Command("file", "-L", m.Path).Output(); err == nil && !strings.Contains(string(out), "statically linked") {
		t.Errorf("file %s: %s, want statically linked", m.Path, out)
	}
}

func TestMetricsServerImage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "metrics-server")
	if err := os.WriteFile(bin, []byte("\x7fELF ms"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := MetricsServerImage(MetricsServer{Path: bin, Version: MetricsServerVersion})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	files := layerFiles(t, layers[0])
	if h := files["metrics-server"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
		t.Errorf("metrics-server = %+v", h)
	}
	if h := files["tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp = %+v", h)
	}
	for _, p := range []string{"etc/passwd", "etc/group"} {
		if files[p] == nil {
			t.Errorf("%s missing", p)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Entrypoint: []string{"/metrics-server"},
		User:       "65534",
		WorkingDir: "/",
	}
	if diff := cmp.Diff(want, cf.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

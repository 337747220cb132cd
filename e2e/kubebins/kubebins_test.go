package kubebins

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCacheKey(t *testing.T) {
	base := func() (goMod, goSum []byte, goVersion, goos, goarch string, args, env, commands []string) {
		return []byte("module m\n"), []byte("a v1 h1:x\n"), "go1.26.8", "linux", "amd64", BuildArgs(), BuildEnv(), Commands
	}
	baseKey := CacheKey(base())
	tests := []struct {
		name     string
		mutate   func(goMod, goSum *[]byte, goVersion, goos, goarch *string, args, env, commands *[]string)
		wantSame bool
	}{
		{name: "identical inputs", mutate: func(*[]byte, *[]byte, *string, *string, *string, *[]string, *[]string, *[]string) {}, wantSame: true},
		{name: "go.sum changes", mutate: func(_, s *[]byte, _, _, _ *string, _, _, _ *[]string) { *s = append(*s, "b v2 h1:y\n"...) }},
		{name: "go.mod changes", mutate: func(m, _ *[]byte, _, _, _ *string, _, _, _ *[]string) {
			*m = []byte("module m\nrequire x v1\n")
		}},
		{name: "go version changes", mutate: func(_, _ *[]byte, v, _, _ *string, _, _, _ *[]string) { *v = "go1.26.9" }},
		{name: "arch changes", mutate: func(_, _ *[]byte, _, _, a *string, _, _, _ *[]string) { *a = "arm64" }},
		{name: "build args change", mutate: func(_, _ *[]byte, _, _, _ *string, a, _, _ *[]string) { *a = append(*a, "-race") }},
		{name: "env changes", mutate: func(_, _ *[]byte, _, _, _ *string, _, e, _ *[]string) { *e = []string{"CGO_ENABLED=1"} }},
		{name: "commands change", mutate: func(_, _ *[]byte, _, _, _ *string, _, _, c *[]string) {
			*c = append(slices.Clone(*c), "k8s.io/kubernetes/cmd/kubelet")
		}},
		// Length prefixes keep bytes from moving between fields unnoticed.
		{name: "bytes move from go.mod to go.sum", mutate: func(m, s *[]byte, _, _, _ *string, _, _, _ *[]string) {
			*m = []byte("module m")
			*s = append([]byte("\n"), *s...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			goMod, goSum, goVersion, goos, goarch, args, env, commands := base()
			tt.mutate(&goMod, &goSum, &goVersion, &goos, &goarch, &args, &env, &commands)
			got := CacheKey(goMod, goSum, goVersion, goos, goarch, args, env, commands)
			if len(got) != 16 {
				t.Errorf("key %q: want 16 hex characters", got)
			}
			if same := got == baseKey; same != tt.wantSame {
				t.Errorf("key %s vs base %s: same=%v, want %v", got, baseKey, same, tt.wantSame)
			}
		})
	}
}

func TestFindModuleDir(t *testing.T) {
	root := t.TempDir()
	e2e := filepath.Join(root, "e2e")
	deep := filepath.Join(e2e, "cluster", "sub")
	other := filepath.Join(root, "other")
	for _, d := range []string{deep, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "go.mod"), "module github.com/kubemesos/kubemesos\n")
	writeFile(t, filepath.Join(e2e, "go.mod"), "// comment\nmodule github.com/kubemesos/kubemesos/e2e\n\ngo 1.26.0\n")

	tests := []struct {
		name, from, want string
	}{
		{name: "module dir itself", from: e2e, want: e2e},
		{name: "package below the module", from: deep, want: e2e},
		{name: "repository root", from: root, want: e2e},
		{name: "sibling of e2e", from: other, want: e2e},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindModuleDir(tt.from)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FindModuleDir(%s) (-want +got):\n%s", tt.from, diff)
			}
		})
	}

	t.Run("not found", func(t *testing.T) {
		if _, err := FindModuleDir(t.TempDir()); !errors.Is(err, ErrNoModule) {
			t.Errorf("err = %v, want ErrNoModule", err)
		}
	})
}

// fakeGo is a stand-in for the go command: `go env` answers fixed values, `go build -o DIR/ ...`
// writes an executable per package into DIR and counts its invocations in a file.
const fakeGo = `#!/bin/sh
case "$1" in
env) printf 'go1.26.8\nlinux\namd64\n' ;;
build)
  echo build >> "$COUNT_FILE"
  [ "$CGO_ENABLED" = 0 ] || { echo "CGO_ENABLED=$CGO_ENABLED" >&2; exit 3; }
  [ -n "$FAIL_BUILD" ] && { echo "compile error: boom" >&2; exit 2; }
  [ -n "$SLOW_BUILD" ] && sleep 0.5
  out=""; prev=""
  for a in "$@"; do
    [ "$prev" = "-o" ] && out="$a"
    case "$a" in k8s.io/*) printf '#!/bin/sh\n' > "$out$(basename "$a")"; chmod +x "$out$(basename "$a")"; echo "$a" >&2 ;; esac
    prev="$a"
  done ;;
*) exit 1 ;;
esac
`

func TestEnsureBuildsOnceAndReuses(t *testing.T) {
	dir := t.TempDir()
	goCmd := filepath.Join(dir, "go")
	writeFile(t, goCmd, fakeGo)
	if err := os.Chmod(goCmd, 0o755); err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(dir, "e2e")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mod, "go.mod"), "module github.com/kubemesos/kubemesos/e2e\n")
	writeFile(t, filepath.Join(mod, "go.sum"), "x v1 h1:abc\n")
	count := filepath.Join(dir, "count")
	t.Setenv("COUNT_FILE", count)
	t.Setenv("CGO_ENABLED", "1") // the build must override it
	builds := func() int {
		b, err := os.ReadFile(count)
		if errors.Is(err, os.ErrNotExist) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "build")
	}

	cache := filepath.Join(dir, "cache")
	var log bytes.Buffer
	opts := Options{ModuleDir: mod, CacheDir: cache, Go: goCmd, Log: &log}
	ctx := context.Background()

	wantKey := CacheKey([]byte("module github.com/kubemesos/kubemesos/e2e\n"), []byte("x v1 h1:abc\n"),
		"go1.26.8", "linux", "amd64", BuildArgs(), BuildEnv(), Commands)
	// What a build killed halfway leaves; the next build clears it.
	stale := filepath.Join(cache, "kube-"+wantKey, "bin-building-killed")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}

	first, err := Ensure(ctx, opts)
	if err != nil {
		t.Fatalf("first Ensure: %v\nlog:\n%s", err, log.String())
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale build dir still there (stat: %v)", err)
	}
	if diff := cmp.Diff(binariesIn(filepath.Join(cache, "kube-"+wantKey, "bin")), first); diff != "" {
		t.Errorf("binaries (-want +got):\n%s", diff)
	}
	if !first.present() {
		t.Errorf("binaries missing after build: %+v", first)
	}
	if !strings.Contains(log.String(), "kubebins: building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kube-proxy from") {
		t.Errorf("first build did not say what it does; log:\n%s", log.String())
	}
	if got := builds(); got != 1 {
		t.Errorf("builds after first Ensure = %d, want 1", got)
	}

	log.Reset()
	second, err := Ensure(ctx, opts)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second Ensure returned other binaries (-want +got):\n%s", diff)
	}
	if got := builds(); got != 1 {
		t.Errorf("builds after second Ensure = %d, want 1 (cache not reused)", got)
	}
	if log.Len() != 0 {
		t.Errorf("cached Ensure printed %q, want nothing", log.String())
	}

	// A changed go.sum is a different key: built again, into another directory.
	writeFile(t, filepath.Join(mod, "go.sum"), "x v1 h1:abc\ny v2 h1:def\n")
	third, err := Ensure(ctx, opts)
	if err != nil {
		t.Fatalf("Ensure after go.sum change: %v", err)
	}
	if third.Dir == first.Dir {
		t.Errorf("go.sum change reused %s", first.Dir)
	}
	if got := builds(); got != 2 {
		t.Errorf("builds after go.sum change = %d, want 2", got)
	}
}

// TestEnsureConcurrentCallersBuildOnce: parallel test packages and local-up may all find the
// binaries missing at once; the lock makes one of them build and the others reuse the result.
func TestEnsureConcurrentCallersBuildOnce(t *testing.T) {
	dir := t.TempDir()
	goCmd := filepath.Join(dir, "go")
	writeFile(t, goCmd, fakeGo)
	if err := os.Chmod(goCmd, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "go.mod"), "module github.com/kubemesos/kubemesos/e2e\n")
	writeFile(t, filepath.Join(dir, "go.sum"), "")
	count := filepath.Join(dir, "count")
	t.Setenv("COUNT_FILE", count)
	t.Setenv("SLOW_BUILD", "1") // so that every caller finds the binaries missing

	const callers = 4
	results := make(chan error, callers)
	dirs := make(chan string, callers)
	for range callers {
		go func() {
			bins, err := Ensure(context.Background(), Options{ModuleDir: dir, CacheDir: filepath.Join(dir, "cache"), Go: goCmd, Log: io.Discard})
			dirs <- bins.Dir
			results <- err
		}()
	}
	seen := map[string]bool{}
	for range callers {
		if err := <-results; err != nil {
			t.Errorf("Ensure: %v", err)
		}
		seen[<-dirs] = true
	}
	if len(seen) != 1 {
		t.Errorf("callers got different directories: %v", seen)
	}
	b, err := os.ReadFile(count)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "build"); got != 1 {
		t.Errorf("%d builds for %d concurrent callers, want 1", got, callers)
	}
}

func TestEnsureBuildFailureLeavesNoBinaries(t *testing.T) {
	dir := t.TempDir()
	goCmd := filepath.Join(dir, "go")
	writeFile(t, goCmd, fakeGo)
	if err := os.Chmod(goCmd, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "go.mod"), "module github.com/kubemesos/kubemesos/e2e\n")
	writeFile(t, filepath.Join(dir, "go.sum"), "")
	t.Setenv("COUNT_FILE", filepath.Join(dir, "count"))
	t.Setenv("FAIL_BUILD", "1")

	opts := Options{ModuleDir: dir, CacheDir: filepath.Join(dir, "cache"), Go: goCmd, Log: &bytes.Buffer{}}
	_, err := Ensure(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "compile error: boom") {
		t.Fatalf("err = %v, want the build's output in it", err)
	}
	matches, globErr := filepath.Glob(filepath.Join(dir, "cache", "kube-*", "bin*"))
	if globErr != nil {
		t.Fatal(globErr)
	}
	if len(matches) != 0 {
		t.Errorf("failed build left %v behind", matches)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBuiltBinariesRun builds the real binaries (or finds them in the cache) and runs each: they are
// the release pinned in e2e/go.mod, stamped with its version.
func TestBuiltBinariesRun(t *testing.T) {
	bins, err := Ensure(context.Background(), Options{Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range [][]string{
		{bins.KubeProxy, "--version"},
		{bins.KubeAPIServer, "--version"},
		{bins.KubeControllerManager, "--version"},
		{bins.KubeScheduler, "--version"},
		{bins.Kubectl, "version", "--client"},
	} {
		out, err := exec.Command(run[0], run[1:]...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v: %s", strings.Join(run, " "), err, out)
			continue
		}
		if !strings.Contains(string(out), KubernetesVersion) {
			t.Errorf("%s printed %q, want %s", strings.Join(run, " "), out, KubernetesVersion)
		}
	}
	if out, _ := exec.Command(bins.KubeProxy, "--version").Output(); string(out) != "Kubernetes "+KubernetesVersion+"\n" {
		t.Errorf("kube-proxy --version printed %q", out)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

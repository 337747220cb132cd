package kubemesos

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/imagestore"
	"github.com/kubemesos/kubemesos/e2e/simhost"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// The tests share one control plane (started on first use) and run one after the other: each has its
// own namespace (also the framework's --state-namespace), its own simulated Mesos cluster whose agent
// hostnames (= Node names) carry a unique prefix, and its own framework process. They must not run in
// parallel: a framework serving default-scheduler schedules every pending pod of the cluster.
// The node lifecycle controller notices NotReady Nodes within seconds, so taint-based eviction (pods'
// short tolerations) acts quickly.
var shared = cluster.Shared{Options: cluster.Options{
	ExtraControllerManagerArgs: []string{"--node-monitor-grace-period=8s", "--node-monitor-period=1s"},
}}

func controlPlane(t testing.TB) *cluster.ControlPlane {
	t.Helper()
	return shared.Get(t)
}

// The kubemesos binary, built once per test binary without -race (agents fetch it as the executor,
// so it is also what runs every pod), or the one $E2E_KUBEMESOS_BINARY names: `make e2e` builds it
// once for its concurrent shards of this package.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func kubemesosBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		binary.path, binary.err = buildKubemesos()
	})
	if binary.err != nil {
		t.Fatalf("building kubemesos: %v", binary.err)
	}
	return binary.path
}

// prebuiltBinaryEnv names a kubemesos binary to use instead of building one. Not KUBEMESOS_*: that
// prefix configures the framework and executors (see cleanEnv).
const prebuiltBinaryEnv = "E2E_KUBEMESOS_BINARY"

func buildKubemesos() (string, error) {
	if p := os.Getenv(prebuiltBinaryEnv); p != "" {
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("$%s: %w", prebuiltBinaryEnv, err)
		}
		if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("$%s: %s is not an executable file", prebuiltBinaryEnv, p)
		}
		return p, nil // not ours: binary.dir stays empty, nothing is removed
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	if binary.dir, err = os.MkdirTemp("", "kubemesos-e2e-bin-"); err != nil {
		return "", fmt.Errorf("creating binary dir: %w", err)
	}
	out := filepath.Join(binary.dir, "kubemesos")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// Stripped, as make e2e builds it: agents copy it into every sandbox (85 MB instead of 122).
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-s -w", "-o", out, "./cmd/kubemesos")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/kubemesos in %s: %w\n%s", root, err, stderr.Bytes())
	}
	return out, nil
}

// $E2E_KUBEMESOS_BINARY replaces the build: an executable is used as it is (and left in place), a
// missing or non-executable file is an error rather than a silent build.
func TestPrebuiltKubemesosBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "kubemesos")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(prebuiltBinaryEnv, exe)
	if p, err := buildKubemesos(); err != nil || p != exe {
		t.Fatalf("prebuilt: %q, %v; want %q", p, err, exe)
	}
	for _, bad := range []string{plain, filepath.Join(dir, "missing")} {
		t.Setenv(prebuiltBinaryEnv, bad)
		if p, err := buildKubemesos(); err == nil {
			t.Errorf("%s: used %q, want an error", bad, p)
		}
	}
	if _, err := os.Stat(exe); err != nil {
		t.Errorf("the prebuilt binary was removed: %v", err)
	}
}

// repoRoot is the root module's directory: two levels up from this package, checked by its go.mod.
func repoRoot() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("reading the root go.mod: %w", err)
	}
	if !bytes.HasPrefix(mod, []byte("module github.com/kubemesos/kubemesos\n")) {
		return "", fmt.Errorf("%s/go.mod is not the kubemesos root module", root)
	}
	return root, nil
}

// -isolation is the simulated agents' --isolation: Linux isolators by default (isolating mode, as
// root), simhost.Process for process mode.
var isolationFlag = flag.String("isolation", simhost.Isolating, "the simulated agents' --isolation ("+simhost.Process+": process mode)")

var modeOnce sync.Once

// agentMode is the agents' mode for this test binary, logged once.
func agentMode() simhost.Mode {
	m := simhost.Resolve(*isolationFlag)
	modeOnce.Do(func() { fmt.Fprintf(os.Stderr, "e2e: simulated agents: %s\n", m) })
	return m
}

// The real image store (e2e/imagestore), built or found in the cache once per test binary.
var store struct {
	once sync.Once
	dir  string
	err  error
}

func imageStore(t testing.TB) string {
	t.Helper()
	store.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		var s imagestore.Store
		s, store.err = imagestore.Ensure(ctx, imagestore.Options{})
		store.dir = s.Dir
	})
	if store.err != nil {
		t.Fatalf("image store: %v", store.err)
	}
	return store.dir
}

func TestMain(m *testing.M) {
	// The simulated agents re-execute this binary as Mesos' launch helper.
	containerizer.MaybeRunHelper()
	flag.Parse()
	// Isolating agents are on the pod network: the API server must be reachable from pods and
	// Services need kube-proxy.
	shared.Options.PodNetwork = agentMode().Isolating
	shared.Options.LazyKubeProxy = true // started by the envs that need Services
	// Binding creates are audited: TestLeaderTakeovers counts them per pod.
	shared.Options.ExtraAPIServerArgs = append(shared.Options.ExtraAPIServerArgs, bindingAuditArgs()...)
	code := m.Run()
	shared.Close(code != 0)
	removeBindingAudit()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

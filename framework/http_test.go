package framework

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

func TestHTTPEndpoints(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kubemesos")
	if err := os.WriteFile(bin, []byte("the executor binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	m.offersReceived.Add(3)
	r := &readiness{}
	artifact, err := newExecutorArtifact(bin)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(m.registry, r.ready, artifact, false))
	defer srv.Close()

	get := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name     string
		method   string
		path     string
		setup    func()
		wantCode int
		wantBody string
	}{
		{name: "healthz", method: "GET", path: "/healthz", wantCode: 200, wantBody: "ok"},
		{name: "readyz before sync", method: "GET", path: "/readyz", wantCode: 503, wantBody: "informers not synced"},
		{name: "readyz before subscription", method: "GET", path: "/readyz", setup: func() { r.synced.Store(true) }, wantCode: 503, wantBody: "not subscribed"},
		{name: "readyz ready", method: "GET", path: "/readyz", setup: func() { r.subscribed.Store(true) }, wantCode: 200, wantBody: "ok"},
		{name: "readyz standby", method: "GET", path: "/readyz", setup: func() {
			r.synced.Store(false)
			r.subscribed.Store(false)
			r.electing.Store(true)
		}, wantCode: 200, wantBody: "ok"},
		{name: "readyz leader not yet subscribed", method: "GET", path: "/readyz", setup: func() { r.leading.Store(true) }, wantCode: 503, wantBody: "informers not synced"},
		{name: "metrics", method: "GET", path: "/metrics", wantCode: 200, wantBody: "kubemesos_offers_received_total 3"},
		{name: "executor binary", method: "GET", path: ExecutorPath, wantCode: 200, wantBody: "the executor binary"},
		{name: "executor binary POST", method: "POST", path: ExecutorPath, wantCode: 405, wantBody: "method not allowed"},
		{name: "executor binary by its digest", method: "GET", path: ExecutorPath + "?sha256=" + artifact.digest, wantCode: 200, wantBody: "the executor binary"},
		{name: "executor binary HEAD (the fetcher cache's size)", method: "HEAD", path: ExecutorPath + "?sha256=" + artifact.digest, wantCode: 200},
		{name: "another binary's digest", method: "GET", path: ExecutorPath + "?sha256=0123", wantCode: 404, wantBody: "executor binary sha256 0123 is not served here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			code, body := get(tt.method, tt.path)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

// Only one instance leads; when the leader stops, it releases the Lease and a standby takes over.
func TestLeaderElectionHandsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("leader election waits for retry periods")
	}
	kube := fake.NewClientset()
	cfg := DefaultConfig()
	log := quiet()
	type instance struct {
		cancel context.CancelFunc
		led    chan struct{}
		done   chan error
	}
	start := func(name string) *instance {
		ctx, cancel := context.WithCancel(context.Background())
		in := &instance{cancel: cancel, led: make(chan struct{}), done: make(chan error, 1)}
		go func() {
			in.done <- runElected(ctx, cfg, kube, name, log, newMetrics(), func(ctx context.Context, fence *leaseFence) error {
				if err := fence.held(); err != nil {
					t.Errorf("%s leads without holding the fence: %v", name, err)
				}
				close(in.led)
				<-ctx.Done()
				return nil
			})
		}()
		return in
	}
	a := start("a")
	receive(t, a.led)
	b := start("b")
	select {
	case <-b.led:
		t.Fatal("b leads while a holds the Lease")
	default:
	}
	a.cancel()
	if err := receive(t, a.done); err != nil {
		t.Errorf("a returned %v after cancel, want nil", err)
	}
	receive(t, b.led)
	b.cancel()
	if err := receive(t, b.done); err != nil {
		t.Errorf("b returned %v after cancel, want nil", err)
	}

	// A leader whose work fails ends the election with that error.
	boom := errors.New("boom")
	err := runElected(context.Background(), cfg, kube, "c", log, newMetrics(), func(context.Context, *leaseFence) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("runElected() = %v, want %v", err, boom)
	}
}

// The artifact's digest is the binary's SHA-256, and pinned adds it to a URI as its query.
func TestExecutorArtifactDigest(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kubemesos")
	if err := os.WriteFile(bin, []byte("the executor binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := newExecutorArtifact(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("the executor binary"))
	if a.digest != hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s, want %x", a.digest, sum)
	}
	if got := a.pinned("http://fw:10260/executor/kubemesos"); got != "http://fw:10260/executor/kubemesos?sha256="+a.digest {
		t.Errorf("pinned %q", got)
	}
	if got := a.pinned("http://fw/x?v=1"); got != "http://fw/x?v=1&sha256="+a.digest {
		t.Errorf("pinned with a query %q", got)
	}
	if _, err := newExecutorArtifact(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing binary has a digest")
	}
}

// The sandbox executors' URI: the framework's own, pinned and cached; --executor-uri only with
// --executor-uri-cache; none when the binary's digest is unknown.
func TestSandboxExecutorURI(t *testing.T) {
	a := executorArtifact{digest: "abc"}
	for _, tc := range []struct {
		name     string
		cfg      func(*Config)
		artifact executorArtifact
		want     string
	}{
		{"own binary", func(c *Config) { c.AdvertiseURL = "http://fw:10260" }, a, "http://fw:10260/executor/kubemesos?sha256=abc"},
		{"own binary, digest unknown", func(c *Config) { c.AdvertiseURL = "http://fw:10260" }, executorArtifact{}, ""},
		{"--executor-uri", func(c *Config) { c.ExecutorURI = "https://dl/kubemesos-1.2" }, a, ""},
		{"--executor-uri --executor-uri-cache", func(c *Config) { c.ExecutorURI, c.ExecutorURICache = "https://dl/kubemesos-1.2", true }, a, "https://dl/kubemesos-1.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			u := cfg.sandboxExecutorURI("host", tc.artifact)
			if tc.want == "" {
				if u != nil {
					t.Errorf("URI %+v, want none", u)
				}
				return
			}
			if u == nil || u.Value != tc.want || !u.GetCache() || !u.GetExecutable() || u.GetExtract() || u.GetOutputFile() != "kubemesos" {
				t.Errorf("URI %+v, want %s cached, executable, not extracted, as kubemesos", u, tc.want)
			}
		})
	}
}

// --profiling serves pprof (kube-scheduler's default); without it the path is not found.
func TestHTTPProfiling(t *testing.T) {
	for _, profiling := range []bool{true, false} {
		artifact, err := newExecutorArtifact(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(newHandler(newMetrics().registry, func() error { return nil }, artifact, profiling))
		resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		served := resp.StatusCode == http.StatusOK && strings.Contains(string(b), "goroutine profile:")
		if served != profiling {
			t.Errorf("profiling %v: GET /debug/pprof/goroutine answered %d %.60q", profiling, resp.StatusCode, b)
		}
	}
}

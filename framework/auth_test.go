package framework

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/mesossim"
)

// Against a master that authenticates HTTP frameworks (--authenticate_http_frameworks, basic,
// --credentials), the framework with a wrong secret is refused with 401 and says so in an error log,
// never subscribing; with the right secret it subscribes under its principal.
func TestFrameworkAuthenticatesToTheMaster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test with the simulator")
	}
	c, err := mesossim.StartCluster(mesossim.ClusterConfig{
		Master: mesossim.Config{Log: quiet(), AllocationInterval: 50 * time.Millisecond, HeartbeatInterval: time.Second,
			AuthenticateHTTPFrameworks: true, Credentials: map[string]string{"kubemesos": "s3cret"}},
		Agents: 1, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	run := func(secret string) (*logtest.Hook, *readiness, func()) {
		file := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Master, cfg.LeaderElect, cfg.Principal, cfg.SecretFile = c.URL, false, "kubemesos", file
		cfg.ExecutorURI = "http://127.0.0.1:1/executor/kubemesos"
		log, hook := logtest.NewNullLogger()
		if os.Getenv("KUBEMESOS_TEST_LOG") != "" {
			log.SetOutput(os.Stderr)
		}
		log.SetLevel(logrus.DebugLevel)
		ready := &readiness{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- runLeader(ctx, cfg, leaderDeps{kube: fake.NewClientset(), clock: clock.RealClock{}, log: log,
				metrics: newMetrics(), ready: ready, hostname: "framework-host"})
		}()
		return hook, ready, func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("framework did not stop")
			}
		}
	}

	hook, ready, stop := run("guess")
	deadline := time.Now().Add(20 * time.Second)
	var refused string
	for refused == "" && time.Now().Before(deadline) {
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.ErrorLevel && strings.Contains(e.Message, "refused the framework's credentials (401)") {
				refused = e.Message
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if refused == "" {
		t.Fatal("no error log that the master refused the credentials")
	}
	if ready.subscribed.Load() {
		t.Error("subscribed with a wrong secret")
	}
	stop()

	_, ready, stop = run("s3cret")
	defer stop()
	deadline = time.Now().Add(20 * time.Second)
	for !ready.subscribed.Load() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !ready.subscribed.Load() {
		t.Fatal("not subscribed with the right secret")
	}
}

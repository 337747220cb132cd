package e2e_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kubemesos/kubemesos/e2e/cluster"
)

// The tests of this package share one control plane (started on first use) and stay apart through
// namespaces (cp.Namespace). A test that needs other flags starts its own with cluster.StartT.
var shared struct {
	once sync.Once
	cp   *cluster.ControlPlane
	err  error
}

// sharedControlPlaneOptions: the node lifecycle controller's grace period is shortened so that a
// test can watch it mark a silent Node unknown in seconds instead of a minute.
var sharedControlPlaneOptions = cluster.Options{
	ExtraControllerManagerArgs: []string{"--node-monitor-grace-period=8s", "--node-startup-grace-period=8s", "--node-monitor-period=1s"},
}

func controlPlane(t *testing.T) *cluster.ControlPlane {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // includes a first build
		defer cancel()
		shared.cp, shared.err = cluster.Start(ctx, sharedControlPlaneOptions)
	})
	if shared.err != nil {
		t.Fatalf("starting the shared control plane: %v", shared.err)
	}
	return shared.cp
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cp != nil {
		if code != 0 {
			for _, c := range []string{"kube-apiserver", "kube-controller-manager", "etcd"} {
				fmt.Fprintf(os.Stderr, "--- last lines of %s:\n%s\n", c, shared.cp.LogTail(c, 20))
			}
		}
		shared.cp.Stop()
	}
	os.Exit(code)
}

package e2e_test

import (
	"os"
	"testing"

	"github.com/kubemesos/kubemesos/e2e/cluster"
)

// The tests of this package share one control plane (started on first use) and stay apart through
// namespaces (cp.Namespace). A test that needs other flags starts its own with cluster.StartT.
// The node lifecycle controller's grace period is shortened so that a test can watch it mark a silent
// Node unknown in seconds instead of a minute.
var shared = cluster.Shared{Options: cluster.Options{
	ExtraControllerManagerArgs: []string{"--node-monitor-grace-period=8s", "--node-startup-grace-period=8s", "--node-monitor-period=1s"},
}}

func controlPlane(t *testing.T) *cluster.ControlPlane {
	t.Helper()
	return shared.Get(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close(code != 0)
	os.Exit(code)
}

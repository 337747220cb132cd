package framework

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// --kube-api-qps and --kube-api-burst default to kube-scheduler's client limits, parse, and must be
// positive (the scheduling benchmark raises both to scheduler_perf's 5000).
func TestKubeAPILimits(t *testing.T) {
	d := DefaultConfig()
	if d.KubeAPIQPS != 50 || d.KubeAPIBurst != 100 {
		t.Errorf("defaults %v/%d, want kube-scheduler's 50/100", d.KubeAPIQPS, d.KubeAPIBurst)
	}
	var c Config
	fs := pflag.NewFlagSet("framework", pflag.ContinueOnError)
	c.BindFlags(fs)
	if err := fs.Parse([]string{"--kube-api-qps=5000", "--kube-api-burst=5000"}); err != nil {
		t.Fatal(err)
	}
	if c.KubeAPIQPS != 5000 || c.KubeAPIBurst != 5000 {
		t.Errorf("parsed %v/%d, want 5000/5000", c.KubeAPIQPS, c.KubeAPIBurst)
	}
	c = DefaultConfig()
	c.KubeAPIQPS = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--kube-api-qps") {
		t.Errorf("Validate with QPS 0 = %v", err)
	}
}

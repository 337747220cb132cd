package executor

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/spf13/pflag"
)

func TestMesosConfig(t *testing.T) {
	env := map[string]string{
		"MESOS_FRAMEWORK_ID": "fw", "MESOS_EXECUTOR_ID": "ex", "MESOS_DIRECTORY": "/d", "MESOS_SANDBOX": "/s",
		"MESOS_AGENT_ENDPOINT": "10.1.1.1:5051", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
		"MESOS_CHECKPOINT": "1", "MESOS_RECOVERY_TIMEOUT": "15mins", "MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs",
	}
	got, err := mesosConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{FrameworkID: "fw", ExecutorID: "ex", Directory: "/d", Sandbox: "/s", AgentEndpoint: "10.1.1.1:5051",
		ExecutorShutdownGracePeriod: 5 * time.Second, Checkpoint: true, RecoveryTimeout: 15 * time.Minute, SubscriptionBackoffMax: 2 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	delete(env, "MESOS_SANDBOX")
	env["MESOS_RECOVERY_TIMEOUT"] = "soon"
	if _, err := mesosConfig(func(k string) string { return env[k] }); err == nil {
		t.Error("missing/invalid variables accepted")
	}
}

func TestHostIPAndServiceEnv(t *testing.T) {
	env := map[string]string{"LIBPROCESS_IP": "10.2.2.2"}
	get := func(k string) string { return env[k] }
	tests := []struct {
		flag, endpoint, want string
		libprocess           bool
	}{
		{"10.9.9.9", "10.1.1.1:5051", "10.9.9.9", true},
		{"", "10.1.1.1:5051", "10.2.2.2", true},
		{"", "10.1.1.1:5051", "10.1.1.1", false},
	}
	for _, tt := range tests {
		g := get
		if !tt.libprocess {
			g = func(string) string { return "" }
		}
		if got := hostIP(tt.flag, g, tt.endpoint); got != tt.want {
			t.Errorf("hostIP(%q, %q) = %q, want %q", tt.flag, tt.endpoint, got, tt.want)
		}
	}
	if diff := cmp.Diff(map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, serviceEnv("https://10.0.0.1")); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff(map[string]string{"KUBERNETES_SERVICE_HOST": "api.example", "KUBERNETES_SERVICE_PORT": "6443"}, serviceEnv("https://api.example:6443/")); diff != "" {
		t.Error(diff)
	}
}

func TestFlagsAndValidate(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("executor", pflag.ContinueOnError)
	c.BindFlags(fs)
	if err := fs.Parse([]string{"--kubeconfig=/k", "--host-ip=10.0.0.5", "--shutdown-margin=3s"}); err != nil {
		t.Fatal(err)
	}
	if c.Kubeconfig != "/k" || c.HostIP != "10.0.0.5" || c.ShutdownMargin != 3*time.Second || c.StatusFlushTimeout != 10*time.Second {
		t.Errorf("parsed %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	c.HostIP, c.LogLevel = "not-an-ip", "loud"
	if err := c.Validate(); err == nil {
		t.Error("invalid host IP and log level accepted")
	}
	var d Config
	fs = pflag.NewFlagSet("executor", pflag.ContinueOnError)
	d.BindFlags(fs)
	if d.SandboxTimeout != 2*time.Minute {
		t.Errorf("default --sandbox-timeout %s, want the kubelet's 2m runtime request timeout", d.SandboxTimeout)
	}
	if err := fs.Parse([]string{"--sandbox-timeout=-1s"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(); err == nil {
		t.Error("a negative --sandbox-timeout accepted")
	}
}

// --bootstrap-kubeconfig replaces --kubeconfig (the kubelet's TLS bootstrap): both at once is refused.
func TestBootstrapKubeconfigExcludesKubeconfig(t *testing.T) {
	c := DefaultConfig()
	c.BootstrapKubeconfig = "/b"
	if err := c.Validate(); err != nil {
		t.Fatalf("bootstrap alone: %v", err)
	}
	c.Kubeconfig = "/k"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--bootstrap-kubeconfig") {
		t.Fatalf("both: %v", err)
	}
	if err := ValidateEnv(map[string]string{"KUBEMESOS_BOOTSTRAP_KUBECONFIG": "/b", "KUBEMESOS_CLIENT_CA_FILE": "/ca", "KUBEMESOS_CERT_DIR": "/d"}); err != nil {
		t.Fatalf("executor env: %v", err)
	}
}

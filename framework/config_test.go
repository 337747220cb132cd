package framework

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func TestBindFlagsDefaults(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("framework", pflag.ContinueOnError)
	c.BindFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultConfig(), c); diff != "" {
		t.Errorf("defaults differ from DefaultConfig (-want +got):\n%s", diff)
	}
	// The design's table: every flag exists.
	for _, name := range []string{"master", "kubeconfig", "framework-name", "roles", "principal", "secret-file",
		"failover-timeout", "scheduler-name", "serve-default-scheduler", "state-namespace", "leader-elect",
		"http-address", "advertise-url", "executor-uri", "executor-kubeconfig", "executor-cpus", "executor-mem",
		"pod-overhead-cpus", "pod-overhead-mem", "offer-hold", "refuse-seconds", "log-level", "pod-network", "pod-cidr-attribute",
		"mesos-user", "executor-uri-cache"} {
		if fs.Lookup(name) == nil {
			t.Errorf("flag --%s missing", name)
		}
	}
}

func TestBindFlagsParse(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("framework", pflag.ContinueOnError)
	c.BindFlags(fs)
	err := fs.Parse([]string{"--roles=a,b", "--offer-hold=2s", "--serve-default-scheduler", "--executor-mem=128", "--refuse-seconds=1.5",
		"--pod-network=kubemesos", "--pod-cidr-attribute=podnet", "--mesos-user=nobody"})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Roles = []string{"a", "b"}
	want.OfferHold = 2 * time.Second
	want.ServeDefaultScheduler = true
	want.ExecutorMemMB = 128
	want.RefuseSeconds = 1.5
	want.PodNetwork, want.PodCIDRAttribute = "kubemesos", "podnet"
	want.MesosUser = "nobody"
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("parsed config (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{"kubemesos": true, "default-scheduler": true}, c.SchedulerNames()); diff != "" {
		t.Errorf("scheduler names (-want +got):\n%s", diff)
	}
	if got := frameworkInfo(c).User; got != "nobody" {
		t.Errorf("FrameworkInfo.user with --mesos-user=nobody: %q", got)
	}
	if got := frameworkInfo(DefaultConfig()).User; got == "" || got == "nobody" {
		t.Errorf("FrameworkInfo.user without --mesos-user: %q, want the process's user", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr []string
	}{
		{name: "defaults", mutate: func(*Config) {}},
		{name: "relative master", mutate: func(c *Config) { c.Master = "127.0.0.1:5050" }, wantErr: []string{"--master"}},
		{name: "star role", mutate: func(c *Config) { c.Roles = []string{"*"} }, wantErr: []string{"invalid role"}},
		{name: "no roles", mutate: func(c *Config) { c.Roles = nil }, wantErr: []string{"--roles is empty"}},
		{name: "role Mesos refuses", mutate: func(c *Config) { c.Roles = []string{"ok", "a//b"} }, wantErr: []string{"--roles: Role 'a//b' cannot contain two adjacent slashes"}},
		{name: "default role Mesos refuses", mutate: func(c *Config) { c.DefaultRole = "-x" }, wantErr: []string{"--default-role: Role component '-x' is invalid because it starts with a dash"}},
		{name: "several errors at once", mutate: func(c *Config) { c.OfferHold = 0; c.LogLevel = "loud"; c.ExecutorCPUs = -1 },
			wantErr: []string{"--offer-hold", "--log-level", "must not be negative"}},
		{name: "pod network named", mutate: func(c *Config) { c.PodNetwork = "kubemesos-1.net_a" }},
		{name: "empty pod network", mutate: func(c *Config) { c.PodNetwork = "" }, wantErr: []string{"--pod-network is empty"}},
		{name: "pod network not a CNI name", mutate: func(c *Config) { c.PodNetwork = "my net/1" },
			wantErr: []string{`--pod-network "my net/1": invalid characters found in network name`}},
		{name: "bad advertise url", mutate: func(c *Config) { c.AdvertiseURL = "host:1" }, wantErr: []string{"--advertise-url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestExecutorURI(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "derived from hostname and port", cfg: Config{HTTPAddress: ":10260"}, want: "http://fw-host:10260/executor/kubemesos"},
		{name: "from advertise url", cfg: Config{HTTPAddress: ":1", AdvertiseURL: "http://10.0.0.1:8080/"}, want: "http://10.0.0.1:8080/executor/kubemesos"},
		{name: "explicit", cfg: Config{AdvertiseURL: "http://x", ExecutorURI: "https://dl/kubemesos"}, want: "https://dl/kubemesos"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.executorURI("fw-host"); got != tt.want {
				t.Errorf("executorURI() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTranslateOptions(t *testing.T) {
	c := DefaultConfig()
	c.PodOverheadCPUs, c.PodOverheadMemMB, c.PodNetwork = 0.1, 16, "kubemesos"
	o := c.translateOptions()
	if o.Overhead.CPUs != 0.1 || o.Overhead.MemMB != 16 || o.PodNetwork != "kubemesos" {
		t.Errorf("translateOptions() = %+v", o)
	}
	if d := DefaultConfig(); !d.translateOptions().HostMode() {
		t.Error("the default config is not host mode")
	}
}

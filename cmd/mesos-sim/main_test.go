package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"contract flags", []string{"--listen", "127.0.0.1:0", "--agents", "3", "--agent-resources", "cpus:4;mem:8192;disk:65536;ports:[31000-32000]", "--agent-attributes", "rack:r%d", "--work-dir", "/tmp/x", "--allocation-interval", "1s"}, ""},
		{"bad resources", []string{"--agent-resources", "cpus:four"}, "--agent-resources"},
		{"bad range", []string{"--agent-resources", "ports:[32000-31000]"}, "--agent-resources"},
		{"bad attributes", []string{"--agent-attributes", "rack"}, "--agent-attributes"},
		{"bad weights", []string{"--weights", "web=-1"}, "--weights"},
		{"bad image command", []string{"--image-command", "nginx"}, "--image-command"},
		{"unknown flag", []string{"--nope"}, "unknown flag"},
		{"negative agents", []string{"--agents", "-1"}, "--agents"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if err == nil {
				_, err = o.clusterConfig(logrus.New())
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if (tc.wantErr == "") != (got == "") || !strings.Contains(got, tc.wantErr) {
				t.Errorf("error %q, want containing %q", got, tc.wantErr)
			}
		})
	}
}

func TestContractFlagsReachConfig(t *testing.T) {
	o, err := parseFlags([]string{"--agents", "2", "--agent-attributes", "rack:r%d", "--weights", "a=1,b=3", "--image-command", "nginx=sleep 3600"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.clusterConfig(logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]float64{"a": 1, "b": 3}, cfg.Master.Weights); diff != "" {
		t.Errorf("weights (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"nginx": "sleep 3600"}, cfg.ImageCommands); diff != "" {
		t.Errorf("image commands (-want +got):\n%s", diff)
	}
	if cfg.Agents != 2 || cfg.AgentAttributes != "rack:r%d" {
		t.Errorf("config %+v", cfg)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run(ctx, []string{"--listen", "127.0.0.1:0", "--agents", "2", "--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
}

// The agents' image flags carry Mesos' names and reach every agent; an agent that Mesos would refuse
// to start makes the simulator fail at startup.
func TestImageFlags(t *testing.T) {
	o, err := parseFlags([]string{"--image_providers", "docker", "--docker_registry", "/srv/images", "--isolation", "filesystem/linux,docker/runtime"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.clusterConfig(logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	if got := [3]string{cfg.ImageProviders, cfg.DockerRegistry, cfg.Isolation}; got != [3]string{"docker", "/srv/images", "filesystem/linux,docker/runtime"} {
		t.Errorf("image flags = %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = run(ctx, []string{"--listen", "127.0.0.1:0", "--agents", "1", "--log-level", "error", "--image_providers", "docker", "--docker_registry", "/srv/images"})
	if err == nil || !strings.Contains(err.Error(), "The 'filesystem/linux' isolator must be enabled for container image support") {
		t.Errorf("run without filesystem/linux: %v", err)
	}
	err = run(ctx, []string{"--listen", "127.0.0.1:0", "--agents", "1", "--log-level", "error", "--image_providers", "docker", "--isolation", "filesystem/linux,docker/runtime"})
	if err == nil || !strings.Contains(err.Error(), "cannot pull from 'https://registry-1.docker.io'") {
		t.Errorf("run with the default (registry) --docker_registry: %v", err)
	}
}

// The Linux isolators' flags carry Mesos' names and reach every agent's config; capabilities are
// Mesos' CapabilityInfo JSON, and an unknown capability is refused at startup.
func TestIsolatorFlags(t *testing.T) {
	a := agentConfig(t, 0, "--isolation", "filesystem/linux,namespaces/pid,linux/capabilities",
		"--cgroups_hierarchy", "/cg", "--cgroups_root", "sim", "--effective_capabilities", `{"capabilities":["NET_RAW"]}`,
		"--bounding_capabilities", `{"capabilities":["NET_RAW","CHOWN"]}`, "--disallow_sharing_agent_pid_namespace",
		"--fetcher_cache_dir", "/var/cache/fetch-%d", "--fetcher_cache_size", "1073741824")
	want := agent.Config{CgroupsHierarchy: "/cg", CgroupsRoot: "sim", EffectiveCapabilities: []string{"NET_RAW"},
		BoundingCapabilities: []string{"NET_RAW", "CHOWN"}, DisallowSharingAgentPidNamespace: true,
		FetcherCacheDir: "/var/cache/fetch-0", FetcherCacheSize: 1 << 30}
	if diff := cmp.Diff(want, a, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("agent config (-want +got):\n%s", diff)
	}
	o, _ := parseFlags([]string{"--effective_capabilities", `{"capabilities":["NOPE"]}`})
	if _, err := o.clusterConfig(logrus.New()); err == nil || !strings.Contains(err.Error(), `--effective_capabilities: unknown capability "NOPE"`) {
		t.Errorf("unknown capability: %v", err)
	}
}

// network/cni's flags carry Mesos' names; "%d" in the config and runtime dirs gives each agent its own.
func TestNetworkFlags(t *testing.T) {
	a := agentConfig(t, 1, "--isolation", "filesystem/linux,network/cni", "--network_cni_config_dir", "/etc/cni/agent-%d",
		"--network_cni_plugins_dir", "/opt/cni/bin", "--runtime_dir", "/run/sim/%d")
	if got := [3]string{a.NetworkCNIConfigDir, a.NetworkCNIPluginsDir, a.RuntimeDir}; got != [3]string{"/etc/cni/agent-1", "/opt/cni/bin", "/run/sim/1"} {
		t.Errorf("agent 1's network flags = %v", got)
	}
	a = agentConfig(t, 0)
	if a.NetworkCNIConfigDir != "" || a.NetworkCNIPluginsDir != "" || a.RuntimeDir != "" {
		t.Errorf("defaults: %+v, want the agent's (Mesos') defaults", a)
	}
}

// The agents' authentication flags reach every agent's config, and Mesos' deprecated
// --executor_secret_key names --jwt_secret_key.
func TestAgentAuthenticationFlags(t *testing.T) {
	for _, keyFlag := range []string{"--jwt_secret_key", "--executor_secret_key"} {
		a := agentConfig(t, 1, "--authenticate_http_executors", "--authenticate_http_readwrite", "--authenticate_http_readonly",
			keyFlag, "/etc/mesos/jwt.key", "--http_authenticators", "basic,jwt", "--http_credentials", "/etc/mesos/http.json")
		want := agent.Config{AuthenticateHTTPExecutors: true, AuthenticateHTTPReadwrite: true, AuthenticateHTTPReadonly: true,
			JWTSecretKey: "/etc/mesos/jwt.key", HTTPAuthenticators: "basic,jwt", HTTPCredentials: "/etc/mesos/http.json"}
		got := agent.Config{AuthenticateHTTPExecutors: a.AuthenticateHTTPExecutors, AuthenticateHTTPReadwrite: a.AuthenticateHTTPReadwrite,
			AuthenticateHTTPReadonly: a.AuthenticateHTTPReadonly, JWTSecretKey: a.JWTSecretKey, HTTPAuthenticators: a.HTTPAuthenticators,
			HTTPCredentials: a.HTTPCredentials}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(agent.Config{})); diff != "" {
			t.Errorf("%s: agent config (-want +got):\n%s", keyFlag, diff)
		}
	}
}

// The agents serve https with libprocess' LIBPROCESS_SSL_* variables of mesos-sim's environment, and
// --executor_environment_variables (string values only) reaches every agent.
func TestAgentSSLAndExecutorEnvironment(t *testing.T) {
	o, err := parseFlags([]string{"--executor_environment_variables", `{"LIBPROCESS_SSL_ENABLED":"true"}`})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": "/c.pem", "LIBPROCESS_SSL_KEY_FILE": "/k.pem"}
	o.getenv = func(k string) string { return env[k] }
	cfg, err := o.clusterConfig(logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	var a agent.Config
	cfg.AgentTweak(0, &a)
	if want := (agent.SSLConfig{Enabled: true, CertFile: "/c.pem", KeyFile: "/k.pem"}); a.SSL != want {
		t.Errorf("SSL %+v, want %+v", a.SSL, want)
	}
	if diff := cmp.Diff(map[string]string{"LIBPROCESS_SSL_ENABLED": "true"}, a.ExecutorEnvironmentVariables); diff != "" {
		t.Errorf("executor environment (-want +got):\n%s", diff)
	}
	o, _ = parseFlags([]string{"--executor_environment_variables", `{"N":1}`})
	if _, err := o.clusterConfig(logrus.New()); err == nil || !strings.Contains(err.Error(), "must only contain string values") {
		t.Errorf("a non-string value: %v", err)
	}
}

// The agents' garbage collection flags carry Mesos' names and duration syntax; unset, the agents
// keep Mesos' defaults.
func TestGCFlags(t *testing.T) {
	a := agentConfig(t, 2, "--gc_delay", "10mins", "--gc_disk_headroom", "0.25", "--disk_watch_interval", "1.5mins")
	if a.GCDelay != 10*time.Minute || a.GCDiskHeadroom == nil || *a.GCDiskHeadroom != 0.25 || a.DiskWatchInterval != 90*time.Second {
		t.Errorf("agent config: gc_delay %v, gc_disk_headroom %v, disk_watch_interval %v", a.GCDelay, a.GCDiskHeadroom, a.DiskWatchInterval)
	}
	a = agentConfig(t, 0)
	if a.GCDelay != 0 || a.GCDiskHeadroom != nil || a.DiskWatchInterval != 0 {
		t.Errorf("defaults: %v %v %v, want the agent's (Mesos')", a.GCDelay, a.GCDiskHeadroom, a.DiskWatchInterval)
	}
	if _, err := parseFlags([]string{"--gc_delay", "10m"}); err == nil || !strings.Contains(err.Error(), `unknown duration unit "m"`) {
		t.Errorf("--gc_delay 10m: %v", err)
	}
}

// --executor_registration_timeout reaches every agent in Mesos' syntax; unset, they keep Mesos' 1mins.
func TestExecutorRegistrationTimeoutFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"--executor_registration_timeout", "5mins"}, 5 * time.Minute},
		{nil, 0},
	} {
		if a := agentConfig(t, 1, tt.args...); a.ExecutorRegistrationTimeout != tt.want {
			t.Errorf("%v: agent's executor_registration_timeout %v, want %v", tt.args, a.ExecutorRegistrationTimeout, tt.want)
		}
	}
}

// agentConfig is agent i's configuration from mesos-sim's args.
func agentConfig(t *testing.T, i int, args ...string) agent.Config {
	t.Helper()
	o, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.clusterConfig(logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	var a agent.Config
	cfg.AgentTweak(i, &a)
	return a
}

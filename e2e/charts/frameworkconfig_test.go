package charts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/framework"
	"github.com/kubemesos/kubemesos/internal/cli"
)

const testPodIP = "10.1.2.3"

// parseFramework runs `kubemesos framework` flag parsing exactly as the binary does (framework.Config's
// flags, then cli.Apply: flag > KUBEMESOS_* env > --config file) and validates the result.
func parseFramework(t *testing.T, args []string, env map[string]string) framework.Config {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, cli.EnvPrefix+"_") {
			t.Setenv(k, "") // the test's own environment must not leak in
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c framework.Config
	cmd := &cobra.Command{
		Use:           "framework",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cli.Apply(cmd) },
	}
	c.BindFlags(cmd.Flags())
	cli.AddConfigFlag(cmd.Flags())
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("kubemesos framework %v: %v", args, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the framework rejects the configuration: %v", err)
	}
	return c
}

// chartFrameworkConfig is what the framework reads in the chart's Deployment: its args, its KUBEMESOS_*
// env (with $(POD_IP) expanded as the kubelet does) and the ConfigMap as the --config file.
func chartFrameworkConfig(t *testing.T, values string) framework.Config {
	t.Helper()
	return chartFrameworkConfigFrom(t, mustRender(t, valuesYAML(t, values)))
}

func chartFrameworkConfigFrom(t *testing.T, r *rendered) framework.Config {
	t.Helper()
	c := named[*appsv1.Deployment](t, r, testFullname).Spec.Template.Spec.Containers[0]
	dir := t.TempDir()
	configFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configFile, []byte(named[*corev1.ConfigMap](t, r, testFullname+"-config").Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.Args[0] != "framework" {
		t.Fatalf("args %v do not start with the framework subcommand", c.Args)
	}
	var args []string
	for _, a := range c.Args[1:] {
		switch {
		case strings.HasPrefix(a, "--config="):
			a = "--config=" + configFile
		case strings.HasPrefix(a, "--secret-file="):
			a = "--secret-file=/mounted/secret"
		}
		args = append(args, a)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, cli.EnvPrefix+"_") {
			env[e.Name] = strings.ReplaceAll(e.Value, "$(POD_IP)", testPodIP)
		}
	}
	return parseFramework(t, args, env)
}

// marathonFrameworkConfig is what the framework reads in the rendered Marathon app: args and env.
func marathonFrameworkConfig(t *testing.T, opts string) framework.Config {
	t.Helper()
	obj, text, err := loadUniverse(t).RenderMarathon(options(t, opts))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	app := validApp(t, obj)
	if len(app.Args) == 0 || app.Args[0] != "framework" {
		t.Fatalf("args %v do not start with the framework subcommand", app.Args)
	}
	return parseFramework(t, app.Args[1:], plainEnv(t, app))
}

// The chart and the Universe package configure the same framework: given the same options, the framework
// ends up with the same configuration (apart from where its credentials are mounted).
func TestChartAndUniversePackageConfigureTheSameFramework(t *testing.T) {
	wherever := cmpopts.IgnoreFields(framework.Config{}, "Kubeconfig", "SecretFile")
	defaults := framework.DefaultConfig()
	for _, tc := range []struct {
		name       string
		values     string // Helm values
		options    string // DC/OS options
		want       framework.Config
		chartOnly  func(c *framework.Config) // what only the chart sets (pod IP, release namespace)
		dcosOnly   func(c *framework.Config)
		wantSecret bool
	}{
		{
			name: "defaults",
			want: func() framework.Config {
				c := defaults
				c.Master = "http://leader.mesos:5050"
				c.MesosUser = "root"
				return c
			}(),
			chartOnly: func(c *framework.Config) {
				c.StateNamespace = testNamespace
				c.AdvertiseURL = "http://" + testPodIP + ":10260"
			},
		},
		{
			name: "every option",
			values: `
mesos: {master: "https://mesos.example.com/mesos", frameworkName: km, roles: [a, "b/c"], defaultRole: "b/d", failoverTimeout: 1h30m,
        principal: km-principal, secret: {value: s3cr3t}, offerHold: 2s, refuseSeconds: 0.5, user: nobody}
scheduler: {name: mesos, serveDefaultScheduler: true}
framework: {stateNamespace: kubemesos-state, leaderElect: false, httpPort: 9090,
            advertiseURL: "http://km.example.com:9090", logLevel: debug}
executor: {uri: "https://artifacts.example.com/kubemesos", kubeconfig: /etc/executor.kubeconfig, cpus: 0.25, mem: 128,
           env: {KUBEMESOS_LOG_LEVEL: debug, KUBEMESOS_KUBELET_ADDRESS: ":10250"}}
podOverhead: {cpus: 0.05, mem: 16}
podNetwork: {name: kubemesos, podCIDRAttribute: subnet, clusterDNS: 10.0.0.10, clusterDomain: k8s.example}
`,
			options: `{
"mesos": {"master": "https://mesos.example.com/mesos", "framework_name": "km", "roles": "a,b/c", "default_role": "b/d", "failover_timeout": "1h30m",
          "principal": "km-principal", "secret_name": "km/secret", "offer_hold": "2s", "refuse_seconds": 0.5, "user": "nobody"},
"scheduler": {"name": "mesos", "serve_default_scheduler": true},
"framework": {"state_namespace": "kubemesos-state", "leader_elect": false, "advertise_url": "http://km.example.com:9090"},
"service": {"port": 9090, "log_level": "debug"},
"executor": {"uri": "https://artifacts.example.com/kubemesos", "kubeconfig": "/etc/executor.kubeconfig", "cpus": 0.25, "mem": 128,
             "env": "KUBEMESOS_KUBELET_ADDRESS=:10250,KUBEMESOS_LOG_LEVEL=debug"},
"pod_overhead": {"cpus": 0.05, "mem": 16},
"pod_network": {"name": "kubemesos", "pod_cidr_attribute": "subnet", "cluster_dns": "10.0.0.10", "cluster_domain": "k8s.example"}}`,
			want: func() framework.Config {
				c := defaults
				c.Master = "https://mesos.example.com/mesos"
				c.FrameworkName = "km"
				c.Roles = []string{"a", "b/c"}
				c.DefaultRole = "b/d"
				c.FailoverTimeout = 90 * time.Minute
				c.Principal = "km-principal"
				c.MesosUser = "nobody"
				c.OfferHold = 2 * time.Second
				c.RefuseSeconds = 0.5
				c.SchedulerName = "mesos"
				c.ServeDefaultScheduler = true
				c.StateNamespace = "kubemesos-state"
				c.LeaderElect = false
				c.HTTPAddress = ":9090"
				c.AdvertiseURL = "http://km.example.com:9090"
				c.LogLevel = "debug"
				c.ExecutorURI = "https://artifacts.example.com/kubemesos"
				c.ExecutorKubeconfig = "/etc/executor.kubeconfig"
				c.ExecutorCPUs = 0.25
				c.ExecutorMemMB = 128
				c.ExecutorEnv = []string{"KUBEMESOS_CLUSTER_DNS=10.0.0.10", "KUBEMESOS_CLUSTER_DOMAIN=k8s.example",
					"KUBEMESOS_KUBELET_ADDRESS=:10250", "KUBEMESOS_LOG_LEVEL=debug"}
				c.PodOverheadCPUs = 0.05
				c.PodOverheadMemMB = 16
				c.PodNetwork, c.PodCIDRAttribute = "kubemesos", "subnet"
				return c
			}(),
			wantSecret: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, side := range []struct {
				name  string
				got   framework.Config
				extra func(*framework.Config)
			}{
				{"helm", chartFrameworkConfig(t, tc.values), tc.chartOnly},
				{"dcos", marathonFrameworkConfig(t, tc.options), tc.dcosOnly},
			} {
				want := tc.want
				if side.extra != nil {
					side.extra(&want)
				}
				if diff := cmp.Diff(want, side.got, wherever); diff != "" {
					t.Errorf("%s: framework configuration (-want +got):\n%s", side.name, diff)
				}
				if (side.got.SecretFile != "") != tc.wantSecret {
					t.Errorf("%s: --secret-file %q, want set: %v", side.name, side.got.SecretFile, tc.wantSecret)
				}
			}
			if dcos := marathonFrameworkConfig(t, tc.options); dcos.Kubeconfig == "" {
				t.Error("dcos: no --kubeconfig: outside Kubernetes there is no in-cluster configuration")
			}
		})
	}
}

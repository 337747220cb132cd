package charts

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/utils/ptr"
)

var update = flag.Bool("update", false, "rewrite testdata/marathon-default.json from the rendered default Marathon app")

func loadUniverse(t testing.TB) *UniversePackage {
	t.Helper()
	p, err := LoadUniversePackage(dcosDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// options parses install options written as JSON, like `dcos package install --options`.
func options(t testing.TB, doc string) map[string]any {
	t.Helper()
	if doc == "" {
		return nil
	}
	v, err := decodeJSON([]byte(doc))
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	return v.(map[string]any)
}

// universePackageJSON is package.json for packagingVersion 4.0: the fields Universe accepts.
type universePackageJSON struct {
	PackagingVersion      string   `json:"packagingVersion"`
	Name                  string   `json:"name"`
	Version               string   `json:"version"`
	MinDcosReleaseVersion string   `json:"minDcosReleaseVersion"`
	UpgradesFrom          []string `json:"upgradesFrom"`
	DowngradesTo          []string `json:"downgradesTo"`
	Maintainer            string   `json:"maintainer"`
	Scm                   string   `json:"scm"`
	Website               string   `json:"website"`
	Description           string   `json:"description"`
	Framework             bool     `json:"framework"`
	Selected              bool     `json:"selected"`
	Tags                  []string `json:"tags"`
	Licenses              []struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	} `json:"licenses"`
	PreInstallNotes    string `json:"preInstallNotes"`
	PostInstallNotes   string `json:"postInstallNotes"`
	PostUninstallNotes string `json:"postUninstallNotes"`
}

type universeResourceJSON struct {
	Assets struct {
		URIs      map[string]string `json:"uris,omitempty"`
		Container struct {
			Docker map[string]string `json:"docker"`
		} `json:"container"`
	} `json:"assets"`
}

func decodeStrict(t testing.TB, path string, into any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(readFile(t, path))))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
}

// package.json and resource.json follow Universe's v4 rules and name the same release as the Helm chart.
func TestUniversePackageMetadata(t *testing.T) {
	var pkg universePackageJSON
	decodeStrict(t, filepath.Join(dcosDir(t), PackageFile), &pkg)
	var res universeResourceJSON
	decodeStrict(t, filepath.Join(dcosDir(t), ResourceFile), &res)
	chrt, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}

	if pkg.PackagingVersion != "4.0" {
		t.Errorf("packagingVersion %q, want 4.0", pkg.PackagingVersion)
	}
	for field, v := range map[string]string{"name": pkg.Name, "version": pkg.Version, "maintainer": pkg.Maintainer, "description": pkg.Description, "minDcosReleaseVersion": pkg.MinDcosReleaseVersion} {
		if v == "" {
			t.Errorf("package.json %s is required", field)
		}
	}
	if pkg.UpgradesFrom == nil || pkg.DowngradesTo == nil {
		t.Error("package.json: upgradesFrom and downgradesTo are required in packaging version 4.0")
	}
	if !regexp.MustCompile(`^[-a-zA-Z0-9.]+$`).MatchString(pkg.Version) {
		t.Errorf("version %q: letters, digits, '-' and '.' only", pkg.Version)
	}
	if !regexp.MustCompile(`^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$`).MatchString(pkg.MinDcosReleaseVersion) {
		t.Errorf("minDcosReleaseVersion %q is not a DC/OS release version", pkg.MinDcosReleaseVersion)
	}
	if len(pkg.Tags) == 0 {
		t.Error("package.json: tags are required")
	}
	for _, tag := range pkg.Tags {
		if tag == "" || strings.ContainsAny(tag, " \t\n") {
			t.Errorf("tag %q: no whitespace allowed", tag)
		}
	}
	if !pkg.Framework {
		t.Error("package.json: framework must be true, the package installs a Mesos framework")
	}
	for _, l := range pkg.Licenses {
		if l.Name == "" || !strings.HasPrefix(l.URL, "https://") {
			t.Errorf("license %+v needs a name and an https URL", l)
		}
	}
	if pkg.Version != chrt.Metadata.AppVersion {
		t.Errorf("package version %q, Helm chart appVersion %q: both install the same kubemesos", pkg.Version, chrt.Metadata.AppVersion)
	}
	wantImage := "kubemesos/kubemesos:" + chrt.Metadata.AppVersion
	if got := res.Assets.Container.Docker["kubemesos"]; got != wantImage {
		t.Errorf("resource.json image %q, want %q (the chart's image)", got, wantImage)
	}
}

// Every name marathon.json.mustache uses must be defined by config.json or resource.json: mustache renders
// an unknown name as nothing, so a typo would silently drop a setting.
func TestUniverseTemplateUsesOnlyDefinedOptions(t *testing.T) {
	p := loadUniverse(t)
	names, err := p.TemplateVariables()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("found only %d names in the template", len(names))
	}
	ctx := Merge(p.Defaults(), map[string]any{"resource": p.Resource})
	for _, n := range names {
		if _, ok := Lookup(ctx, n); !ok {
			t.Errorf("marathon.json.mustache uses %q, which config.json and resource.json do not define", n)
		}
	}
}

func TestUniverseDefaultsAreValidOptions(t *testing.T) {
	p := loadUniverse(t)
	d := p.Defaults()
	for _, section := range []string{"service", "mesos", "scheduler", "framework", "executor", "pod_overhead", "kubernetes"} {
		if _, ok := d[section].(map[string]any); !ok {
			t.Errorf("defaults lack section %q: %v", section, d)
		}
	}
	if _, err := p.Options(nil); err != nil {
		t.Errorf("config.json rejects its own defaults: %v", err)
	}
}

// The rendered Marathon app for the default options, checked field by field and kept in
// testdata/marathon-default.json (go test -run TestMarathonAppForDefaults -update rewrites it).
func TestMarathonAppForDefaults(t *testing.T) {
	p := loadUniverse(t)
	obj, text, err := p.RenderMarathon(nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	app := validApp(t, obj)

	if app.ID != "kubemesos" || app.Instances == nil || *app.Instances != 1 {
		t.Errorf("id %q instances %v, want kubemesos x1", app.ID, app.Instances)
	}
	if diff := cmp.Diff([]string{"framework"}, app.Args); diff != "" || app.Cmd != nil {
		t.Errorf("args (-want +got):\n%s (cmd %v): the distroless image has no shell, so args, not cmd", diff, app.Cmd)
	}
	if app.Container == nil || app.Container.Type != "MESOS" || app.Container.Docker.Image != "kubemesos/kubemesos:0.1.0" {
		t.Errorf("container %+v, want the UCR running kubemesos/kubemesos:0.1.0", app.Container)
	}
	wantHC := []MarathonHealthCheck{{Protocol: "MESOS_HTTP", Path: "/healthz", PortIndex: ptr.To(0), GracePeriodSeconds: 60, IntervalSeconds: 15, TimeoutSeconds: 5, DelaySeconds: 15, MaxConsecutiveFailures: 3}}
	if diff := cmp.Diff(wantHC, app.HealthChecks); diff != "" {
		t.Errorf("healthChecks (-want +got):\n%s", diff)
	}
	if len(app.ReadinessChecks) != 0 {
		t.Errorf("readinessChecks %+v: only the leader is ready, so a deployment of 2 instances would never finish", app.ReadinessChecks)
	}
	wantEnv := map[string]string{
		"KUBEMESOS_KUBECONFIG":              "/mnt/mesos/sandbox/kubeconfig",
		"KUBEMESOS_MASTER":                  "http://leader.mesos:5050",
		"KUBEMESOS_FRAMEWORK_NAME":          "kubemesos",
		"KUBEMESOS_ROLES":                   "kubemesos",
		"KUBEMESOS_FAILOVER_TIMEOUT":        "168h",
		"KUBEMESOS_OFFER_HOLD":              "500ms",
		"KUBEMESOS_REFUSE_SECONDS":          "5",
		"KUBEMESOS_SCHEDULER_NAME":          "kubemesos",
		"KUBEMESOS_SERVE_DEFAULT_SCHEDULER": "false",
		"KUBEMESOS_STATE_NAMESPACE":         "kube-system",
		"KUBEMESOS_LEADER_ELECT":            "true",
		"KUBEMESOS_HTTP_ADDRESS":            ":10260",
		"KUBEMESOS_EXECUTOR_CPUS":           "0.1",
		"KUBEMESOS_EXECUTOR_MEM":            "96",
		"KUBEMESOS_POD_OVERHEAD_CPUS":       "0",
		"KUBEMESOS_POD_OVERHEAD_MEM":        "0",
		"KUBEMESOS_POD_NETWORK":             "host",
		"KUBEMESOS_POD_CIDR_ATTRIBUTE":      "pod_cidr",
		"KUBEMESOS_LOG_LEVEL":               "info",
		"KUBEMESOS_MESOS_USER":              "root",
	}
	if diff := cmp.Diff(wantEnv, plainEnv(t, app)); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]MarathonSecret{"kubeconfig": {Source: "kubemesos/kubeconfig"}}, app.Secrets); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]MarathonVolume{{ContainerPath: "kubeconfig", Secret: "kubeconfig"}}, app.Container.Volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	if len(app.Fetch) != 0 {
		t.Errorf("fetch %+v, want none with a kubeconfig secret", app.Fetch)
	}

	pretty, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	pretty = append(pretty, '\n')
	golden := filepath.Join("testdata", "marathon-default.json")
	if *update {
		if err := os.WriteFile(golden, pretty, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := decodeJSON([]byte(readFile(t, golden)))
	if err != nil {
		t.Fatalf("%s: %v", golden, err)
	}
	if diff := cmp.Diff(want, any(obj)); diff != "" {
		t.Errorf("rendered default app differs from %s (-want +got; -update rewrites it):\n%s", golden, diff)
	}
}

// validApp decodes a rendered app strictly and applies Marathon's rules.
func validApp(t testing.TB, obj map[string]any) *MarathonApp {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	app, err := DecodeMarathonApp(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if err := app.Validate(); err != nil {
		t.Fatalf("not a valid Marathon app: %v\n%s", err, data)
	}
	return app
}

func plainEnv(t testing.TB, app *MarathonApp) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range app.Env {
		if v.Secret != "" {
			t.Errorf("env %s is a secret reference", k)
			continue
		}
		out[k] = v.Value
	}
	return out
}

func TestMarathonAppForOverrides(t *testing.T) {
	for _, tc := range []struct {
		name        string
		options     string
		wantEnv     map[string]string // entries that must be present with these values
		wantNoEnv   []string
		wantSecrets map[string]MarathonSecret
		wantVolumes []MarathonVolume
		wantFetch   []MarathonFetch
		check       func(t *testing.T, app *MarathonApp)
	}{
		{
			name: "kubeconfig from a URI, no secrets at all",
			options: `{"kubernetes": {"kubeconfig_secret": "", "kubeconfig_uri": "https://config.example.com/kubeconfig"},
			           "service": {"name": "/infra/kubemesos", "instances": 2, "cpus": 1, "mem": 512, "port": 9090}}`,
			wantEnv:   map[string]string{"KUBEMESOS_KUBECONFIG": "/mnt/mesos/sandbox/kubeconfig", "KUBEMESOS_HTTP_ADDRESS": ":9090"},
			wantNoEnv: []string{"KUBEMESOS_PRINCIPAL", "KUBEMESOS_SECRET_FILE"},
			wantFetch: []MarathonFetch{{URI: "https://config.example.com/kubeconfig"}},
			check: func(t *testing.T, app *MarathonApp) {
				if app.ID != "/infra/kubemesos" || *app.Instances != 2 || app.CPUs != 1 || app.Mem != 512 {
					t.Errorf("app %s x%d cpus %v mem %v", app.ID, *app.Instances, app.CPUs, app.Mem)
				}
				if app.PortDefinitions[0].Port != 9090 || !app.RequirePorts {
					t.Errorf("port definitions %+v requirePorts %v", app.PortDefinitions, app.RequirePorts)
				}
			},
		},
		{
			name:    "authenticated with a DC/OS service account secret",
			options: `{"mesos": {"principal": "kubemesos-sa", "secret_name": "kubemesos/sa-secret", "roles": "kubemesos,eng/batch"}}`,
			wantEnv: map[string]string{
				"KUBEMESOS_PRINCIPAL":   "kubemesos-sa",
				"KUBEMESOS_SECRET_FILE": "/mnt/mesos/sandbox/mesos-secret",
				"KUBEMESOS_ROLES":       "kubemesos,eng/batch",
			},
			wantSecrets: map[string]MarathonSecret{"kubeconfig": {Source: "kubemesos/kubeconfig"}, "mesosSecret": {Source: "kubemesos/sa-secret"}},
			wantVolumes: []MarathonVolume{{ContainerPath: "kubeconfig", Secret: "kubeconfig"}, {ContainerPath: "mesos-secret", Secret: "mesosSecret"}},
		},
		{
			name:        "mesos secret with a kubeconfig URI",
			options:     `{"mesos": {"principal": "p", "secret_name": "s"}, "kubernetes": {"kubeconfig_secret": "", "kubeconfig_uri": "https://c.example.com/k/kubeconfig"}}`,
			wantEnv:     map[string]string{"KUBEMESOS_SECRET_FILE": "/mnt/mesos/sandbox/mesos-secret"},
			wantSecrets: map[string]MarathonSecret{"mesosSecret": {Source: "s"}},
			wantVolumes: []MarathonVolume{{ContainerPath: "mesos-secret", Secret: "mesosSecret"}},
			wantFetch:   []MarathonFetch{{URI: "https://c.example.com/k/kubeconfig"}},
		},
		{
			name: "https master: CA bundle and client certificate from DC/OS secrets, with a Mesos secret",
			options: `{"mesos": {"master": "https://leader.mesos:5050", "principal": "p", "secret_name": "s", "user": "nobody",
			           "ca_secret": "km/ca", "cert_secret": "km/cert", "key_secret": "km/key"}}`,
			wantEnv: map[string]string{
				"KUBEMESOS_MESOS_CA_FILE":   "/mnt/mesos/sandbox/mesos-ca.pem",
				"KUBEMESOS_MESOS_CERT_FILE": "/mnt/mesos/sandbox/mesos-cert.pem",
				"KUBEMESOS_MESOS_KEY_FILE":  "/mnt/mesos/sandbox/mesos-key.pem",
				"KUBEMESOS_MESOS_USER":      "nobody",
			},
			wantSecrets: map[string]MarathonSecret{"kubeconfig": {Source: "kubemesos/kubeconfig"}, "mesosSecret": {Source: "s"},
				"mesosCA": {Source: "km/ca"}, "mesosCert": {Source: "km/cert"}, "mesosKey": {Source: "km/key"}},
			wantVolumes: []MarathonVolume{{ContainerPath: "kubeconfig", Secret: "kubeconfig"}, {ContainerPath: "mesos-secret", Secret: "mesosSecret"},
				{ContainerPath: "mesos-ca.pem", Secret: "mesosCA"}, {ContainerPath: "mesos-cert.pem", Secret: "mesosCert"},
				{ContainerPath: "mesos-key.pem", Secret: "mesosKey"}},
		},
		{
			name:        "https master: only a CA bundle, kubeconfig from a URI",
			options:     `{"mesos": {"ca_secret": "km/ca"}, "kubernetes": {"kubeconfig_secret": "", "kubeconfig_uri": "https://c.example.com/k/kubeconfig"}}`,
			wantEnv:     map[string]string{"KUBEMESOS_MESOS_CA_FILE": "/mnt/mesos/sandbox/mesos-ca.pem"},
			wantNoEnv:   []string{"KUBEMESOS_MESOS_CERT_FILE", "KUBEMESOS_MESOS_KEY_FILE"},
			wantSecrets: map[string]MarathonSecret{"mesosCA": {Source: "km/ca"}},
			wantVolumes: []MarathonVolume{{ContainerPath: "mesos-ca.pem", Secret: "mesosCA"}},
			wantFetch:   []MarathonFetch{{URI: "https://c.example.com/k/kubeconfig"}},
		},
		{
			name:        "https master: only a client certificate",
			options:     `{"mesos": {"cert_secret": "km/cert", "key_secret": "km/key"}}`,
			wantEnv:     map[string]string{"KUBEMESOS_MESOS_CERT_FILE": "/mnt/mesos/sandbox/mesos-cert.pem"},
			wantNoEnv:   []string{"KUBEMESOS_MESOS_CA_FILE"},
			wantSecrets: map[string]MarathonSecret{"kubeconfig": {Source: "kubemesos/kubeconfig"}, "mesosCert": {Source: "km/cert"}, "mesosKey": {Source: "km/key"}},
			wantVolumes: []MarathonVolume{{ContainerPath: "kubeconfig", Secret: "kubeconfig"}, {ContainerPath: "mesos-cert.pem", Secret: "mesosCert"},
				{ContainerPath: "mesos-key.pem", Secret: "mesosKey"}},
		},
		{
			name: "pod network with cluster DNS, merged with the executor settings",
			options: `{"pod_network": {"name": "kubemesos", "pod_cidr_attribute": "subnet", "cluster_dns": "10.0.0.10", "cluster_domain": "k8s.example"},
			           "executor": {"env": "KUBEMESOS_KUBELET_ADDRESS=:10250"}}`,
			wantEnv: map[string]string{
				"KUBEMESOS_POD_NETWORK":        "kubemesos",
				"KUBEMESOS_POD_CIDR_ATTRIBUTE": "subnet",
				"KUBEMESOS_EXECUTOR_ENV":       "KUBEMESOS_CLUSTER_DNS=10.0.0.10,KUBEMESOS_CLUSTER_DOMAIN=k8s.example,KUBEMESOS_KUBELET_ADDRESS=:10250",
			},
		},
		{
			name:    "cluster DNS alone",
			options: `{"pod_network": {"name": "kubemesos", "cluster_dns": "fd00::a"}}`,
			wantEnv: map[string]string{"KUBEMESOS_EXECUTOR_ENV": "KUBEMESOS_CLUSTER_DNS=fd00::a,KUBEMESOS_CLUSTER_DOMAIN=cluster.local"},
		},
		{
			name:      "pod network without cluster DNS",
			options:   `{"pod_network": {"name": "kubemesos"}}`,
			wantEnv:   map[string]string{"KUBEMESOS_POD_NETWORK": "kubemesos"},
			wantNoEnv: []string{"KUBEMESOS_EXECUTOR_ENV"},
		},
		{
			name: "every framework option",
			options: `{"scheduler": {"name": "mesos", "serve_default_scheduler": true},
			           "framework": {"state_namespace": "mesos", "leader_elect": false, "advertise_url": "http://kubemesos.example.com:10260"},
			           "executor": {"uri": "https://artifacts.example.com/kubemesos", "kubeconfig": "/etc/kubemesos/executor.kubeconfig", "cpus": 0.25, "mem": 128,
			                        "env": "KUBEMESOS_LOG_LEVEL=debug,KUBEMESOS_KUBELET_ADDRESS=:10250"},
			           "pod_overhead": {"cpus": 0.05, "mem": 16},
			           "mesos": {"master": "https://mesos.example.com/mesos", "failover_timeout": "1h30m", "offer_hold": "2s", "refuse_seconds": 0.5},
			           "service": {"log_level": "debug", "sandbox_path": "/sandbox"},
			           "kubernetes": {"kubeconfig_path": "/sandbox/config/kubeconfig"}}`,
			wantEnv: map[string]string{
				"KUBEMESOS_SCHEDULER_NAME":          "mesos",
				"KUBEMESOS_SERVE_DEFAULT_SCHEDULER": "true",
				"KUBEMESOS_STATE_NAMESPACE":         "mesos",
				"KUBEMESOS_LEADER_ELECT":            "false",
				"KUBEMESOS_ADVERTISE_URL":           "http://kubemesos.example.com:10260",
				"KUBEMESOS_EXECUTOR_URI":            "https://artifacts.example.com/kubemesos",
				"KUBEMESOS_EXECUTOR_KUBECONFIG":     "/etc/kubemesos/executor.kubeconfig",
				"KUBEMESOS_EXECUTOR_ENV":            "KUBEMESOS_LOG_LEVEL=debug,KUBEMESOS_KUBELET_ADDRESS=:10250",
				"KUBEMESOS_EXECUTOR_CPUS":           "0.25",
				"KUBEMESOS_EXECUTOR_MEM":            "128",
				"KUBEMESOS_POD_OVERHEAD_CPUS":       "0.05",
				"KUBEMESOS_POD_OVERHEAD_MEM":        "16",
				"KUBEMESOS_MASTER":                  "https://mesos.example.com/mesos",
				"KUBEMESOS_FAILOVER_TIMEOUT":        "1h30m",
				"KUBEMESOS_OFFER_HOLD":              "2s",
				"KUBEMESOS_REFUSE_SECONDS":          "0.5",
				"KUBEMESOS_LOG_LEVEL":               "debug",
				"KUBEMESOS_KUBECONFIG":              "/sandbox/config/kubeconfig",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadUniverse(t)
			obj, text, err := p.RenderMarathon(options(t, tc.options))
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			app := validApp(t, obj)
			env := plainEnv(t, app)
			for k, want := range tc.wantEnv {
				if got, ok := env[k]; !ok || got != want {
					t.Errorf("env %s = %q (set: %v), want %q", k, got, ok, want)
				}
			}
			for _, k := range tc.wantNoEnv {
				if _, ok := env[k]; ok {
					t.Errorf("env %s is set, want it absent", k)
				}
			}
			if tc.wantSecrets != nil {
				if diff := cmp.Diff(tc.wantSecrets, app.Secrets); diff != "" {
					t.Errorf("secrets (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tc.wantVolumes, app.Container.Volumes); diff != "" {
					t.Errorf("volumes (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.wantFetch, app.Fetch, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("fetch (-want +got):\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, app)
			}
		})
	}
}

// config.json rejects what the framework or Marathon would not accept, naming the option.
func TestUniverseConfigRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options string
		want    []string
	}{
		{"master without scheme", `{"mesos": {"master": "leader.mesos:5050"}}`, []string{"/mesos/master", "does not match pattern"}},
		{"empty roles", `{"mesos": {"roles": ""}}`, []string{"/mesos/roles"}},
		{"star role", `{"mesos": {"roles": "kubemesos,*"}}`, []string{"/mesos/roles"}},
		{"default role of two", `{"mesos": {"default_role": "a,b"}}`, []string{"/mesos/default_role"}},
		{"roles as an array", `{"mesos": {"roles": ["a"]}}`, []string{"/mesos/roles", "want string"}},
		{"zero instances", `{"service": {"instances": 0}}`, []string{"/service/instances", "minimum"}},
		{"fractional instances", `{"service": {"instances": 1.5}}`, []string{"/service/instances", "want integer"}},
		{"tiny memory", `{"service": {"mem": 16}}`, []string{"/service/mem", "minimum"}},
		{"bad app id", `{"service": {"name": "Kube_Mesos"}}`, []string{"/service/name"}},
		{"port out of range", `{"service": {"port": 70000}}`, []string{"/service/port", "maximum"}},
		{"secret without principal", `{"mesos": {"secret_name": "kubemesos/secret"}}`, []string{"/mesos/principal"}},
		{"client certificate without its key", `{"mesos": {"cert_secret": "km/cert"}}`, []string{"/mesos"}},
		{"client key without its certificate", `{"mesos": {"key_secret": "km/key"}}`, []string{"/mesos"}},
		{"no kubeconfig at all", `{"kubernetes": {"kubeconfig_secret": ""}}`, []string{"/kubernetes", "oneOf"}},
		{"two kubeconfigs", `{"kubernetes": {"kubeconfig_uri": "https://c.example.com/kubeconfig"}}`, []string{"/kubernetes", "oneOf"}},
		{"bad duration", `{"mesos": {"failover_timeout": "one week"}}`, []string{"/mesos/failover_timeout"}},
		{"bad log level", `{"service": {"log_level": "verbose"}}`, []string{"/service/log_level"}},
		{"executor setting not KEY=VALUE", `{"executor": {"env": "KUBEMESOS_LOG_LEVEL"}}`, []string{"/executor/env", "does not match pattern"}},
		{"executor setting not a KUBEMESOS_ variable", `{"executor": {"env": "LOG_LEVEL=debug"}}`, []string{"/executor/env"}},
		{"unknown option", `{"mesos": {"mastr": "http://m:5050"}}`, []string{"/mesos", "mastr"}},
		{"quote in a string", `{"mesos": {"principal": "a\"b"}}`, []string{"/mesos/principal"}},
		{"pod network not a CNI name", `{"pod_network": {"name": "my net"}}`, []string{"/pod_network/name"}},
		{"cluster DNS not an IP", `{"pod_network": {"cluster_dns": "10.0.0"}}`, []string{"/pod_network/cluster_dns"}},
		{"two cluster DNS IPs", `{"pod_network": {"cluster_dns": "10.0.0.10,10.0.0.11"}}`, []string{"/pod_network/cluster_dns"}},
		{"cluster DNS through executor env", `{"executor": {"env": "KUBEMESOS_LOG_LEVEL=debug,KUBEMESOS_CLUSTER_DNS=10.0.0.10"}}`, []string{"/executor/env"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadUniverse(t)
			_, _, err := p.RenderMarathon(options(t, tc.options))
			if err == nil {
				t.Fatal("options accepted, want an error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q:\n%v", want, err)
				}
			}
		})
	}
}

// Cosmos' mustache semantics, on a small package: defaults nest, user options merge deeply, strings are
// JSON-escaped but not HTML-escaped, array elements keep their quotes, integral numbers print as integers.
func TestRenderMarathonSemantics(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		PackageFile:  `{"packagingVersion": "4.0", "name": "x"}`,
		ResourceFile: `{"assets": {"container": {"docker": {"img": "repo/img:1"}}}}`,
		ConfigFile: `{"type": "object", "properties": {
			"s": {"type": "object", "properties": {
				"name": {"type": "string", "default": "a<b>&\"c\"\\d"},
				"n": {"type": "number", "default": 2},
				"f": {"type": "number", "default": 0.5},
				"on": {"type": "boolean", "default": false},
				"list": {"type": "array", "default": ["x", "y"]},
				"opt": {"type": "string", "default": ""}}}}}`,
		MarathonFile: `{"id": "{{s.name}}", "n": {{s.n}}, "f": {{s.f}}, "on": {{s.on}}, "list": [{{#s.list}}{{.}},{{/s.list}}"end"],
			{{#s.opt}}"opt": "{{s.opt}}",{{/s.opt}}{{^s.on}}"off": true,{{/s.on}} "img": "{{resource.assets.container.docker.img}}"}`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := LoadUniversePackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		options string
		want    string
	}{
		{"defaults", ``, `{"id": "a<b>&\"c\"\\d", "n": 2, "f": 0.5, "on": false, "list": ["x","y","end"], "off": true, "img": "repo/img:1"}`},
		{"deep merge keeps sibling defaults", `{"s": {"opt": "o", "on": true, "n": 3.0}}`, `{"id": "a<b>&\"c\"\\d", "n": 3, "f": 0.5, "on": true, "list": ["x","y","end"], "opt": "o", "img": "repo/img:1"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, text, err := p.RenderMarathon(options(t, tc.options))
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			want, err := decodeJSON([]byte(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, any(got)); diff != "" {
				t.Errorf("rendered (-want +got):\n%s\n%s", diff, text)
			}
		})
	}
}

// The validator must catch what Marathon refuses, or the tests above prove nothing.
func TestMarathonAppValidateRejects(t *testing.T) {
	p := loadUniverse(t)
	obj, _, err := p.RenderMarathon(nil)
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(app map[string]any)
		want   string
	}{
		{"upper-case id", func(a map[string]any) { a["id"] = "KubeMesos" }, "id"},
		{"cmd and args", func(a map[string]any) { a["cmd"] = "kubemesos framework" }, "mutually exclusive"},
		{"health check on a missing port", func(a map[string]any) {
			a["healthChecks"].([]any)[0].(map[string]any)["portIndex"] = 1
		}, "portIndex 1"},
		{"unknown health protocol", func(a map[string]any) { a["healthChecks"].([]any)[0].(map[string]any)["protocol"] = "GRPC2" }, "protocol"},
		{"volume of an undefined secret", func(a map[string]any) { a["secrets"] = map[string]any{} }, "not defined in secrets"},
		{"unused secret", func(a map[string]any) {
			a["secrets"].(map[string]any)["extra"] = map[string]any{"source": "x"}
		}, "never used"},
		{"readiness on an unnamed port", func(a map[string]any) {
			a["readinessChecks"] = []any{map[string]any{"name": "r", "protocol": "HTTP", "path": "/readyz", "portName": "metrics"}}
		}, "portName"},
		{"bad constraint", func(a map[string]any) { a["constraints"] = []any{[]any{"hostname", "ONLY"}} }, "operator"},
		{"zero cpus", func(a map[string]any) { a["cpus"] = 0 }, "cpus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var app map[string]any
			if err := json.Unmarshal(good, &app); err != nil {
				t.Fatal(err)
			}
			tc.mutate(app)
			data, _ := json.Marshal(app)
			decoded, err := DecodeMarathonApp(data)
			if err == nil {
				err = decoded.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("unknown field", func(t *testing.T) {
		if _, err := DecodeMarathonApp([]byte(`{"id": "x", "healthcheck": []}`)); err == nil || !strings.Contains(err.Error(), "healthcheck") {
			t.Errorf("error %v, want the misspelt field named", err)
		}
	})
}

package charts

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// overrideSets are representative installs: each must lint, render and (with a cluster) be accepted.
var overrideSets = []struct {
	name   string
	values string
}{
	{"defaults", ``},
	{"authenticated-created-secret", `
mesos:
  master: https://mesos.example.com:5050/mesos
  roles: [kubemesos, "eng/batch"]
  principal: kubemesos
  secret:
    value: s3cr3t
replicaCount: 3
`},
	{"existing-secret-and-custom-scheduler", `
mesos:
  master: http://10.0.0.5:5050
  principal: kubemesos
  secret:
    existingSecret: mesos-credentials
    key: password
scheduler:
  name: mesos
  serveDefaultScheduler: true
framework:
  stateNamespace: kube-system
  leaderElect: false
  advertiseURL: http://kubemesos.example.com:10260
  logLevel: debug
executor:
  uri: https://artifacts.example.com/kubemesos
  kubeconfig: /etc/kubemesos/executor.kubeconfig
  cpus: 0.25
  mem: 128
  env:
    KUBEMESOS_SHUTDOWN_MARGIN: 2s
    KUBEMESOS_KUBELET_ADDRESS: ":10250"
podOverhead:
  cpus: 0.05
  mem: 16
replicaCount: 1
updateStrategy:
  type: RollingUpdate
  rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
`},
	{"service-monitor-and-no-rbac", `
serviceMonitor:
  enabled: true
  labels: {release: prometheus}
rbac:
  create: false
serviceAccount:
  create: false
  name: kubemesos
resources:
  requests: {cpu: "1", memory: 1Gi}
  limits: {cpu: 2, memory: 2Gi}
image:
  repository: registry.example.com:5000/kubemesos/kubemesos
  tag: v0.2.0-rc.1
  pullPolicy: Always
`},
	{"pod-network-kube-proxy-and-coredns", podNetworkValues},
}

// podNetworkValues: a CNI pod network with cluster DNS, kube-proxy and CoreDNS run by kubemesos.
const podNetworkValues = `
scheduler:
  name: mesos
podNetwork:
  name: kubemesos
  podCIDRAttribute: pod_subnet
  clusterDNS: 10.0.0.10
  clusterDomain: k8s.example
kubeProxy:
  enabled: true
  apiServer: https://192.0.2.2:6443
  clusterCIDR: 10.244.0.0/16
coreDNS:
  enabled: true
  replicas: 3
executor:
  env:
    KUBEMESOS_KUBELET_ADDRESS: ":10250"
`

func TestChartLints(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range overrideSets {
		t.Run(tc.name, func(t *testing.T) {
			l := action.NewLint()
			l.Strict = true
			l.Namespace = testNamespace
			l.KubeVersion = kv
			res := l.Run([]string{chartDir(t)}, valuesYAML(t, tc.values))
			for _, m := range res.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("lint: %s", m)
				}
			}
			for _, err := range res.Errors {
				t.Errorf("lint error: %v", err)
			}
			if res.TotalChartsLinted != 1 {
				t.Errorf("linted %d charts, want 1", res.TotalChartsLinted)
			}
		})
	}
}

func TestChartRendersDefaults(t *testing.T) {
	r := mustRender(t, nil)

	var kinds []string
	for _, o := range r.Objects {
		kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind)
	}
	slices.Sort(kinds)
	wantKinds := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Role", "Role", "RoleBinding", "RoleBinding", "Service", "ServiceAccount"}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("rendered kinds (-want +got):\n%s", diff)
	}

	d := only[*appsv1.Deployment](t, r)
	if d.Name != testFullname || d.Namespace != testNamespace {
		t.Errorf("deployment %s/%s, want %s/%s", d.Namespace, d.Name, testNamespace, testFullname)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("strategy %+v, want RollingUpdate with maxUnavailable 0 (standbys are ready, the leader goes last)", d.Spec.Strategy)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != testFullname {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, testFullname)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != "kubemesos/kubemesos:0.1.0" {
		t.Errorf("image %q, want the chart's appVersion", c.Image)
	}
	if diff := cmp.Diff([]string{"framework", "--config=/etc/kubemesos/config/config.yaml"}, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	wantProbe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}}}
	}
	ignoreTiming := cmp.Transformer("handler", func(p *corev1.Probe) *corev1.Probe {
		if p == nil {
			return nil
		}
		return &corev1.Probe{ProbeHandler: p.ProbeHandler}
	})
	if diff := cmp.Diff(wantProbe("/healthz"), c.LivenessProbe, ignoreTiming); diff != "" {
		t.Errorf("liveness probe (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantProbe("/readyz"), c.ReadinessProbe, ignoreTiming); diff != "" {
		t.Errorf("readiness probe (-want +got):\n%s", diff)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 10260 {
		t.Errorf("ports %+v, want http:10260", c.Ports)
	}
	if env := envValue(c, "KUBEMESOS_ADVERTISE_URL"); env != "http://$(POD_IP):10260" {
		t.Errorf("KUBEMESOS_ADVERTISE_URL %q, want the pod IP", env)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
	}) {
		t.Errorf("env %+v: want GOMEMLIMIT from the container's limits.memory", c.Env)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container security context %+v: want no privilege escalation and a read-only root", sc)
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod security context %+v: want runAsNonRoot", psc)
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("pod template has no checksum/config annotation: config changes would not roll the pods")
	}
	if !selectorMatches(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("selector %v does not select the template's labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}

	svc := only[*corev1.Service](t, r)
	if !selectorMatches(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("service selector %v does not select the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http-metrics" || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("service ports %+v, want http-metrics -> http", svc.Spec.Ports)
	}
	for _, want := range []string{"http://leader.mesos:5050", "schedulerName: kubemesos", "rollout status deployment/" + testFullname} {
		if !strings.Contains(r.Notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, r.Notes)
		}
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func selectorMatches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The framework's (and, when asked for, the executors') exact API usage (docs/design.md, issue 6): anything
// more is not least privilege, anything less breaks it.
func TestChartRBACIsExactlyWhatTheFrameworkUses(t *testing.T) {
	rule := func(groups, resources, names, verbs []string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, ResourceNames: names, Verbs: verbs}
	}
	core := []string{""}
	coord := []string{"coordination.k8s.io"}
	certs := []string{"certificates.k8s.io"}
	frameworkRules := []rbacv1.PolicyRule{
		rule(core, []string{"pods"}, nil, []string{"get", "list", "watch", "update", "patch", "delete"}),
		rule(core, []string{"pods/binding"}, nil, []string{"create"}),
		rule(core, []string{"pods/status"}, nil, []string{"update", "patch"}),
		rule(core, []string{"nodes"}, nil, []string{"get", "list", "watch", "create", "update", "patch", "delete"}),
		rule(core, []string{"nodes/status"}, nil, []string{"update", "patch"}),
		rule(core, []string{"events"}, nil, []string{"create", "patch"}),
		rule(core, []string{"namespaces"}, nil, []string{"list", "watch"}),
		rule([]string{"policy"}, []string{"poddisruptionbudgets"}, nil, []string{"list"}),
		rule(core, []string{"pods/eviction"}, nil, []string{"create"}),
		// The executors' client certificates (framework/csrapprover.go).
		rule(certs, []string{"certificatesigningrequests"}, nil, []string{"get", "list", "watch"}),
		rule(certs, []string{"certificatesigningrequests/approval"}, nil, []string{"update"}),
		rule(certs, []string{"signers"}, []string{"kubernetes.io/kube-apiserver-client-kubelet"}, []string{"approve"}),
		rule([]string{"authorization.k8s.io"}, []string{"subjectaccessreviews"}, nil, []string{"create"}),
	}
	// Only a kubelet's TLS bootstrap: the executor does everything else as its Node.
	executorRules := []rbacv1.PolicyRule{
		rule(certs, []string{"certificatesigningrequests"}, nil, []string{"create", "get", "list", "watch"}),
		rule(certs, []string{"certificatesigningrequests/kubemesos-executor"}, nil, []string{"create"}),
	}
	stateRules := []rbacv1.PolicyRule{
		rule(core, []string{"configmaps"}, []string{"kubemesos-framework"}, []string{"get", "update"}),
		rule(core, []string{"configmaps"}, nil, []string{"create"}),
		rule(coord, []string{"leases"}, []string{"kubemesos-framework"}, []string{"get", "update"}),
		rule(coord, []string{"leases"}, nil, []string{"create"}),
	}
	nodeLeaseRules := []rbacv1.PolicyRule{rule(coord, []string{"leases"}, nil, []string{"get", "create", "update", "delete"})}
	executorSA := testFullname + "-executor"

	for _, tc := range []struct {
		name         string
		values       string
		stateNS      string
		wantExecutor bool
	}{
		{"state in release namespace", ``, testNamespace, false},
		{"state in kube-system", "framework:\n  stateNamespace: kube-system\n", "kube-system", false},
		{"with the executors' identity", "executor:\n  serviceAccount:\n    create: true\n", testNamespace, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, valuesYAML(t, tc.values))
			wantCluster := map[string][]rbacv1.PolicyRule{testFullname: frameworkRules}
			// binding -> ServiceAccount and the role it grants (ours have the binding's name)
			type grant struct{ ServiceAccount, Role string }
			wantClusterBindings := map[string]grant{testFullname: {testFullname, testFullname}}
			wantSAs := []string{testFullname}
			wantRoles := map[string][]rbacv1.PolicyRule{
				tc.stateNS + "/" + testFullname + "-state":        stateRules,
				"kube-node-lease/" + testFullname + "-node-lease": nodeLeaseRules,
			}
			wantRoleBindings := map[string]grant{}
			for key := range wantRoles {
				ns, name, _ := strings.Cut(key, "/")
				wantRoleBindings[ns+"/"+name] = grant{testFullname, name}
			}
			if tc.wantExecutor {
				wantCluster[executorSA] = executorRules
				wantSAs = append(wantSAs, executorSA)
				wantClusterBindings[executorSA] = grant{executorSA, executorSA}
			}

			gotCluster := map[string][]rbacv1.PolicyRule{}
			for _, cr := range each[*rbacv1.ClusterRole](r) {
				gotCluster[cr.Name] = cr.Rules
			}
			if diff := cmp.Diff(wantCluster, gotCluster); diff != "" {
				t.Errorf("ClusterRoles (-want +got):\n%s", diff)
			}
			gotRoles := map[string][]rbacv1.PolicyRule{}
			for _, role := range each[*rbacv1.Role](r) {
				gotRoles[role.Namespace+"/"+role.Name] = role.Rules
			}
			if diff := cmp.Diff(wantRoles, gotRoles); diff != "" {
				t.Errorf("Roles (-want +got):\n%s", diff)
			}

			gotClusterBindings := map[string]grant{}
			for _, crb := range each[*rbacv1.ClusterRoleBinding](r) {
				if len(crb.Subjects) != 1 || crb.Subjects[0].Kind != "ServiceAccount" || crb.Subjects[0].Namespace != testNamespace || crb.RoleRef.Kind != "ClusterRole" {
					t.Errorf("ClusterRoleBinding %s: subjects %+v, roleRef %+v; want one ServiceAccount of %s, a ClusterRole", crb.Name, crb.Subjects, crb.RoleRef, testNamespace)
					continue
				}
				gotClusterBindings[crb.Name] = grant{crb.Subjects[0].Name, crb.RoleRef.Name}
			}
			if diff := cmp.Diff(wantClusterBindings, gotClusterBindings); diff != "" {
				t.Errorf("ClusterRoleBindings (-want +got):\n%s", diff)
			}
			gotRoleBindings := map[string]grant{}
			for _, rb := range each[*rbacv1.RoleBinding](r) {
				if len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Namespace != testNamespace || rb.RoleRef.Kind != "Role" {
					t.Errorf("RoleBinding %s/%s: subjects %+v, roleRef %+v; want one ServiceAccount of %s, a Role", rb.Namespace, rb.Name, rb.Subjects, rb.RoleRef, testNamespace)
					continue
				}
				gotRoleBindings[rb.Namespace+"/"+rb.Name] = grant{rb.Subjects[0].Name, rb.RoleRef.Name}
			}
			if diff := cmp.Diff(wantRoleBindings, gotRoleBindings); diff != "" {
				t.Errorf("RoleBindings (-want +got):\n%s", diff)
			}
			var gotSAs []string
			for _, sa := range each[*corev1.ServiceAccount](r) {
				if sa.Namespace != testNamespace {
					t.Errorf("ServiceAccount %s in namespace %s", sa.Name, sa.Namespace)
				}
				gotSAs = append(gotSAs, sa.Name)
			}
			if diff := cmp.Diff(wantSAs, gotSAs, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("ServiceAccounts (-want +got):\n%s", diff)
			}
			if got := only[*appsv1.Deployment](t, r).Spec.Template.Spec.ServiceAccountName; got != testFullname {
				t.Errorf("the framework runs as %q, want %q", got, testFullname)
			}
		})
	}
}

// The ConfigMap is the framework's --config file: its keys are flag names, its values the chart's values.
func TestChartConfigFlowsIntoTheConfigMap(t *testing.T) {
	defaults := map[string]any{
		"master":                  "http://leader.mesos:5050",
		"framework-name":          "kubemesos",
		"roles":                   "kubemesos",
		"failover-timeout":        "168h",
		"offer-hold":              "500ms",
		"refuse-seconds":          5.0,
		"scheduler-name":          "kubemesos",
		"serve-default-scheduler": false,
		"state-namespace":         testNamespace,
		"leader-elect":            true,
		"http-address":            ":10260",
		"log-level":               "info",
		"executor-cpus":           0.1,
		"executor-mem":            96.0,
		"pod-overhead-cpus":       0.0,
		"pod-overhead-mem":        0.0,
		"pod-network":             "host",
		"pod-cidr-attribute":      "pod_cidr",
		"mesos-user":              "root",
	}
	with := func(changes map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range defaults {
			out[k] = v
		}
		for k, v := range changes {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name              string
		values            string
		want              map[string]any
		wantArgs          []string
		wantAdvertiseEnv  bool
		wantSecretVolume  string // Secret name mounted for --secret-file, "" for none
		wantCreatedSecret map[string]string
	}{
		{name: "defaults", want: defaults, wantAdvertiseEnv: true},
		{
			name:   "created secret",
			values: overrideSets[1].values,
			want: with(map[string]any{
				"master":    "https://mesos.example.com:5050/mesos",
				"roles":     "kubemesos,eng/batch",
				"principal": "kubemesos",
			}),
			wantArgs:          []string{"--secret-file=/etc/kubemesos/mesos/secret"},
			wantAdvertiseEnv:  true,
			wantSecretVolume:  testFullname + "-mesos",
			wantCreatedSecret: map[string]string{"secret": "s3cr3t"},
		},
		{
			name:   "existing secret and every framework option",
			values: overrideSets[2].values,
			want: with(map[string]any{
				"master":                  "http://10.0.0.5:5050",
				"principal":               "kubemesos",
				"scheduler-name":          "mesos",
				"serve-default-scheduler": true,
				"state-namespace":         "kube-system",
				"leader-elect":            false,
				"advertise-url":           "http://kubemesos.example.com:10260",
				"log-level":               "debug",
				"executor-uri":            "https://artifacts.example.com/kubemesos",
				"executor-kubeconfig":     "/etc/kubemesos/executor.kubeconfig",
				"executor-cpus":           0.25,
				"executor-mem":            128.0,
				"executor-env":            []any{"KUBEMESOS_KUBELET_ADDRESS=:10250", "KUBEMESOS_SHUTDOWN_MARGIN=2s"},
				"pod-overhead-cpus":       0.05,
				"pod-overhead-mem":        16.0,
			}),
			wantArgs:         []string{"--secret-file=/etc/kubemesos/mesos/secret"},
			wantSecretVolume: "mesos-credentials",
		},
		{
			name:   "pod network and cluster DNS (executor settings merged)",
			values: podNetworkValues,
			want: with(map[string]any{
				"scheduler-name":     "mesos",
				"pod-network":        "kubemesos",
				"pod-cidr-attribute": "pod_subnet",
				"executor-env": []any{"KUBEMESOS_CLUSTER_DNS=10.0.0.10", "KUBEMESOS_CLUSTER_DOMAIN=k8s.example",
					"KUBEMESOS_KUBELET_ADDRESS=:10250"},
			}),
			wantAdvertiseEnv: true,
		},
		{
			name:             "http port",
			values:           "framework:\n  httpPort: 8080\nmesos:\n  failoverTimeout: 1h30m\n  offerHold: 2s\n  refuseSeconds: 0.5\n",
			want:             with(map[string]any{"http-address": ":8080", "failover-timeout": "1h30m", "offer-hold": "2s", "refuse-seconds": 0.5}),
			wantAdvertiseEnv: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, valuesYAML(t, tc.values))
			cm := named[*corev1.ConfigMap](t, r, testFullname+"-config")
			if cm.Name != testFullname+"-config" {
				t.Errorf("ConfigMap name %q", cm.Name)
			}
			got := map[string]any{}
			if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &got); err != nil {
				t.Fatalf("config.yaml: %v\n%s", err, cm.Data["config.yaml"])
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config.yaml (-want +got):\n%s", diff)
			}
			documented := frameworkFlags(t)
			for key := range got {
				if !documented[key] {
					t.Errorf("config.yaml key %q is not a `kubemesos framework` flag in docs/design.md", key)
				}
			}

			c := named[*appsv1.Deployment](t, r, testFullname).Spec.Template.Spec.Containers[0]
			wantArgs := append([]string{"framework", "--config=/etc/kubemesos/config/config.yaml"}, tc.wantArgs...)
			if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			if got := envValue(c, "KUBEMESOS_ADVERTISE_URL") != ""; got != tc.wantAdvertiseEnv {
				t.Errorf("KUBEMESOS_ADVERTISE_URL set: %v, want %v", got, tc.wantAdvertiseEnv)
			}
			d := named[*appsv1.Deployment](t, r, testFullname)
			var secretVolume string
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					secretVolume = v.Secret.SecretName
				}
				if v.ConfigMap != nil && v.ConfigMap.Name != cm.Name {
					t.Errorf("config volume mounts ConfigMap %q, the chart renders %q", v.ConfigMap.Name, cm.Name)
				}
			}
			if secretVolume != tc.wantSecretVolume {
				t.Errorf("mounted Secret %q, want %q", secretVolume, tc.wantSecretVolume)
			}
			secrets := each[*corev1.Secret](r)
			switch {
			case tc.wantCreatedSecret == nil && len(secrets) > 0:
				t.Errorf("chart created Secret %s, want none", secrets[0].Name)
			case tc.wantCreatedSecret != nil:
				if len(secrets) != 1 {
					t.Fatalf("chart created %d Secrets, want 1", len(secrets))
				}
				got := map[string]string{}
				for k, v := range secrets[0].Data {
					got[k] = string(v)
				}
				if diff := cmp.Diff(tc.wantCreatedSecret, got); diff != "" {
					t.Errorf("Secret data (-want +got):\n%s", diff)
				}
				if secrets[0].Name != tc.wantSecretVolume {
					t.Errorf("created Secret %q, mounted %q", secrets[0].Name, tc.wantSecretVolume)
				}
			}
		})
	}
}

func TestChartServiceMonitorIsOptional(t *testing.T) {
	off := mustRender(t, nil)
	if n := len(each[*unstructured.Unstructured](off)); n != 0 {
		t.Errorf("defaults render %d ServiceMonitors, want 0", n)
	}
	on := mustRender(t, valuesYAML(t, overrideSets[3].values))
	sm := only[*unstructured.Unstructured](t, on)
	if sm.GetKind() != "ServiceMonitor" || sm.GetAPIVersion() != "monitoring.coreos.com/v1" {
		t.Fatalf("got %s %s", sm.GetAPIVersion(), sm.GetKind())
	}
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("labels %v lack serviceMonitor.labels", sm.GetLabels())
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	want := []any{map[string]any{"port": "http-metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}}
	if diff := cmp.Diff(want, endpoints); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	svc := only[*corev1.Service](t, on)
	matchLabels, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if !selectorMatches(matchLabels, svc.Labels) {
		t.Errorf("ServiceMonitor selector %v does not select the Service %v", matchLabels, svc.Labels)
	}
	if len(each[*rbacv1.ClusterRole](on)) != 0 || len(each[*corev1.ServiceAccount](on)) != 0 {
		t.Error("rbac.create=false / serviceAccount.create=false still render RBAC or a ServiceAccount")
	}
	if sa := only[*appsv1.Deployment](t, on).Spec.Template.Spec.ServiceAccountName; sa != "kubemesos" {
		t.Errorf("serviceAccountName %q, want the named one", sa)
	}
}

// values.schema.json must reject what the framework would not accept, naming the field and the rule.
func TestChartSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values string
		want   []string // substrings of the error
	}{
		{"master without scheme", "mesos:\n  master: leader.mesos:5050\n", []string{"/mesos/master", "does not match pattern"}},
		{"master zk url", "mesos:\n  master: zk://zk1:2181/mesos\n", []string{"/mesos/master", "zk://zk1:2181/mesos"}},
		{"no roles", "mesos:\n  roles: []\n", []string{"/mesos/roles", "minItems"}},
		{"role with comma", "mesos:\n  roles: [\"a,b\"]\n", []string{"/mesos/roles/0", "does not match pattern"}},
		{"role star (the framework refuses it)", "mesos:\n  roles: [\"*\"]\n", []string{"/mesos/roles/0"}},
		{"role starting with dash", "mesos:\n  roles: [-x]\n", []string{"/mesos/roles/0"}},
		{"default role with a space", "mesos:\n  defaultRole: a b\n", []string{"/mesos/defaultRole"}},
		{"roles as a string", "mesos:\n  roles: kubemesos\n", []string{"/mesos/roles", "want array"}},
		{"zero replicas", "replicaCount: 0\n", []string{"/replicaCount", "minimum"}},
		{"fractional replicas", "replicaCount: 1.5\n", []string{"/replicaCount", "want integer"}},
		{"bad cpu quantity", "resources:\n  requests:\n    cpu: lots\n", []string{"/resources/requests/cpu"}},
		{"unknown resources key", "resources:\n  request:\n    cpu: 1\n", []string{"/resources", "request"}},
		{"secret without principal", "mesos:\n  secret:\n    value: s3cr3t\n", []string{"/mesos", "principal"}},
		{"client certificate without its key", "mesos:\n  tls:\n    secretName: t\n    certKey: tls.crt\n", []string{"/mesos/tls", "keyKey"}},
		{"client key without its certificate", "mesos:\n  tls:\n    secretName: t\n    keyKey: tls.key\n", []string{"/mesos/tls", "certKey"}},
		{"TLS secret naming no key", "mesos:\n  tls:\n    secretName: t\n    caKey: \"\"\n", []string{"/mesos/tls", "caKey"}},
		{"TLS secret not a Secret name", "mesos:\n  tls:\n    secretName: My_TLS\n", []string{"/mesos/tls/secretName"}},
		{"bad duration", "mesos:\n  failoverTimeout: 7d\n", []string{"/mesos/failoverTimeout"}},
		{"bad log level", "framework:\n  logLevel: verbose\n", []string{"/framework/logLevel"}},
		{"zero executor cpus", "executor:\n  cpus: 0\n", []string{"/executor/cpus"}},
		{"executor setting not a KUBEMESOS_ variable", "executor:\n  env:\n    LOG_LEVEL: debug\n", []string{"/executor/env"}},
		{"executor kubeconfig through env", "executor:\n  env:\n    KUBEMESOS_KUBECONFIG: /k\n", []string{"/executor/env"}},
		{"executor setting as a list", "executor:\n  env: [KUBEMESOS_LOG_LEVEL=debug]\n", []string{"/executor/env", "want object"}},
		{"http port out of range", "framework:\n  httpPort: 70000\n", []string{"/framework/httpPort", "maximum"}},
		{"misspelt top-level key", "replicas: 3\n", []string{"replicas"}},
		{"bad pull policy", "image:\n  pullPolicy: Sometimes\n", []string{"/image/pullPolicy"}},
		{"bad update strategy", "updateStrategy:\n  type: BlueGreen\n", []string{"/updateStrategy/type"}},
		{"pod network not a CNI name", "podNetwork:\n  name: my net\n", []string{"/podNetwork/name", "does not match pattern"}},
		{"cluster DNS not an IP", "podNetwork:\n  clusterDNS: 10.0.0\n", []string{"/podNetwork/clusterDNS"}},
		{"two cluster DNS IPs (one executor-env item each)", "podNetwork:\n  clusterDNS: 10.0.0.10,10.0.0.11\n", []string{"/podNetwork/clusterDNS"}},
		{"bad cluster domain", "podNetwork:\n  clusterDomain: Cluster_Local\n", []string{"/podNetwork/clusterDomain"}},
		{"cluster DNS through executor env", "executor:\n  env:\n    KUBEMESOS_CLUSTER_DNS: 10.0.0.10\n", []string{"/executor/env"}},
		{"kube-proxy without API server", "kubeProxy:\n  enabled: true\n", []string{"/kubeProxy", "apiServer"}},
		{"kube-proxy with a relative API server", "kubeProxy:\n  enabled: true\n  apiServer: 192.0.2.2:6443\n", []string{"/kubeProxy/apiServer"}},
		{"kube-proxy cluster CIDR not a CIDR", "kubeProxy:\n  clusterCIDR: 10.244.0.0\n", []string{"/kubeProxy/clusterCIDR"}},
		{"CoreDNS without cluster DNS", "podNetwork:\n  name: kubemesos\ncoreDNS:\n  enabled: true\n", []string{"/podNetwork/clusterDNS"}},
		{"CoreDNS on the agents' network", "podNetwork:\n  clusterDNS: 10.0.0.10\ncoreDNS:\n  enabled: true\n", []string{"/podNetwork/name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(t, valuesYAML(t, tc.values), testNamespace)
			if err == nil {
				t.Fatal("values accepted, want a schema error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q:\n%v", want, err)
				}
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Errorf("not a schema error: %v", err)
			}
		})
	}
}

// frameworkFlags are the `kubemesos framework` flags documented in docs/design.md's configuration table.
func frameworkFlags(t testing.TB) map[string]bool {
	t.Helper()
	design := readFile(t, filepath.Join(repoRoot(t), "docs", "design.md"))
	_, table, ok := strings.Cut(design, "`kubemesos framework`:")
	if !ok {
		t.Fatal("docs/design.md has no `kubemesos framework` table")
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, f := range strings.Split(first, " / ") {
			flags[strings.Trim(f, "`-")] = true
		}
	}
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in docs/design.md", len(flags))
	}
	return flags
}

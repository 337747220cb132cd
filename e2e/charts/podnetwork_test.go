package charts

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	kubeproxyconfig "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// named returns the object of type T with that name, failing unless there is exactly one.
func named[T interface {
	runtime.Object
	GetName() string
}](t testing.TB, r *rendered, name string) T {
	t.Helper()
	var found []T
	for _, o := range each[T](r) {
		if o.GetName() == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T named %s, got %d", zero, name, len(found))
	}
	return found[0]
}

// runnable: kubemesos itself schedules the pod (its scheduler name) and can run every field of it.
func runnable(t *testing.T, what string, spec corev1.PodSpec, podNetwork string) {
	t.Helper()
	if spec.SchedulerName != "mesos" {
		t.Errorf("%s: schedulerName %q, want the framework's (scheduler.name) so that kubemesos runs it", what, spec.SchedulerName)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: what, UID: "u"}, Spec: spec}
	if bad := (podtranslate.Options{PodNetwork: podNetwork}).Check(pod); len(bad) > 0 {
		t.Errorf("%s: kubemesos refuses its pods: %v", what, bad)
	}
	if spec.NodeSelector[corev1.LabelOSStable] != "linux" {
		t.Errorf("%s: nodeSelector %v, want kubernetes.io/os: linux (the framework's Nodes carry it)", what, spec.NodeSelector)
	}
}

func TestChartPodNetworkAddonsAreOffByDefault(t *testing.T) {
	r := mustRender(t, nil)
	if n := len(each[*appsv1.DaemonSet](r)); n != 0 {
		t.Errorf("defaults render %d DaemonSets, want none", n)
	}
	for _, d := range each[*appsv1.Deployment](r) {
		if d.Name != testFullname {
			t.Errorf("defaults render Deployment %s", d.Name)
		}
	}
}

func TestChartKubeProxyDaemonSet(t *testing.T) {
	r := mustRender(t, valuesYAML(t, podNetworkValues))
	ds := named[*appsv1.DaemonSet](t, r, "kube-proxy")
	if ds.Namespace != "kube-system" {
		t.Errorf("DaemonSet namespace %q, want kube-system (as kubeadm)", ds.Namespace)
	}
	if !selectorMatches(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
		t.Errorf("selector %v does not select %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
	}
	spec := ds.Spec.Template.Spec
	runnable(t, "kube-proxy", spec, "kubemesos")
	if !spec.HostNetwork || spec.PriorityClassName != "system-node-critical" || spec.ServiceAccountName != "kube-proxy" {
		t.Errorf("hostNetwork %v, priorityClassName %q, serviceAccountName %q; want true, system-node-critical, kube-proxy",
			spec.HostNetwork, spec.PriorityClassName, spec.ServiceAccountName)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool { return tl.Operator == corev1.TolerationOpExists && tl.Key == "" }) {
		t.Errorf("tolerations %v: want every taint tolerated (a kube-proxy per agent)", spec.Tolerations)
	}
	c := spec.Containers[0]
	if c.Image != "registry.k8s.io/kube-proxy:v1.37.2" {
		t.Errorf("image %q", c.Image)
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("securityContext %+v, want privileged", c.SecurityContext)
	}
	wantCmd := []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"}
	if diff := cmp.Diff(wantCmd, c.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("env %+v, want NODE_NAME from spec.nodeName", c.Env)
	}

	// The files kube-proxy reads are the ConfigMap's, where it reads them.
	cm := named[*corev1.ConfigMap](t, r, "kube-proxy")
	if len(spec.Volumes) != 1 || spec.Volumes[0].ConfigMap == nil || spec.Volumes[0].ConfigMap.Name != cm.Name ||
		len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != spec.Volumes[0].Name || c.VolumeMounts[0].MountPath != "/var/lib/kube-proxy" {
		t.Fatalf("volumes %+v, mounts %+v: want the kube-proxy ConfigMap at /var/lib/kube-proxy", spec.Volumes, c.VolumeMounts)
	}
	var cfg kubeproxyconfig.KubeProxyConfiguration
	if err := yaml.UnmarshalStrict([]byte(cm.Data["config.conf"]), &cfg); err != nil {
		t.Fatalf("config.conf is no KubeProxyConfiguration: %v\n%s", err, cm.Data["config.conf"])
	}
	if cfg.APIVersion != "kubeproxy.config.k8s.io/v1alpha1" || cfg.Kind != "KubeProxyConfiguration" {
		t.Errorf("config.conf is %s %s", cfg.APIVersion, cfg.Kind)
	}
	if cfg.Mode != "nftables" || cfg.ClusterCIDR != "10.244.0.0/16" || cfg.ClientConnection.Kubeconfig != "/var/lib/kube-proxy/kubeconfig.conf" {
		t.Errorf("mode %q, clusterCIDR %q, kubeconfig %q; want nftables, 10.244.0.0/16, /var/lib/kube-proxy/kubeconfig.conf",
			cfg.Mode, cfg.ClusterCIDR, cfg.ClientConnection.Kubeconfig)
	}
	kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig.conf"]))
	if err != nil {
		t.Fatalf("kubeconfig.conf: %v", err)
	}
	cluster, user := kc.Clusters[kc.Contexts[kc.CurrentContext].Cluster], kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
	if cluster.Server != "https://192.0.2.2:6443" || cluster.CertificateAuthority != "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" ||
		user.TokenFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("kubeconfig server %q, CA %q, token file %q: want kubeProxy.apiServer and the pod's service account",
			cluster.Server, cluster.CertificateAuthority, user.TokenFile)
	}

	// RBAC as kubeadm: the built-in system:node-proxier for the kube-proxy ServiceAccount.
	sa := named[*corev1.ServiceAccount](t, r, "kube-proxy")
	crb := named[*rbacv1.ClusterRoleBinding](t, r, testFullname+":node-proxier")
	want := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:node-proxier"}
	if crb.RoleRef != want || len(crb.Subjects) != 1 || crb.Subjects[0].Name != sa.Name || crb.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("ClusterRoleBinding %+v, want system:node-proxier for %s/%s", crb, sa.Namespace, sa.Name)
	}
}

func TestChartCoreDNS(t *testing.T) {
	r := mustRender(t, valuesYAML(t, podNetworkValues))
	d := named[*appsv1.Deployment](t, r, "coredns")
	svc := named[*corev1.Service](t, r, "kube-dns")
	if d.Namespace != "kube-system" || svc.Namespace != "kube-system" {
		t.Errorf("Deployment in %q, Service in %q; want kube-system", d.Namespace, svc.Namespace)
	}
	if svc.Spec.ClusterIP != "10.0.0.10" {
		t.Errorf("kube-dns ClusterIP %q, want podNetwork.clusterDNS", svc.Spec.ClusterIP)
	}
	if !selectorMatches(svc.Spec.Selector, d.Spec.Template.Labels) || !selectorMatches(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("selectors %v / %v do not select the pods %v", svc.Spec.Selector, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", d.Spec.Replicas)
	}
	spec := d.Spec.Template.Spec
	runnable(t, "coredns", spec, "kubemesos")
	if spec.DNSPolicy != corev1.DNSDefault {
		t.Errorf("dnsPolicy %q, want Default (CoreDNS forwards to the agent's resolvers)", spec.DNSPolicy)
	}
	if c := spec.Containers[0]; c.Image != "registry.k8s.io/coredns/coredns:v1.14.7" {
		t.Errorf("image %q", c.Image)
	}
	corefile := named[*corev1.ConfigMap](t, r, "coredns").Data["Corefile"]
	if !strings.Contains(corefile, "kubernetes k8s.example in-addr.arpa ip6.arpa {") {
		t.Errorf("Corefile does not serve podNetwork.clusterDomain:\n%s", corefile)
	}
	if spec.ServiceAccountName != "coredns" {
		t.Errorf("serviceAccountName %q", spec.ServiceAccountName)
	}
	role := named[*rbacv1.ClusterRole](t, r, testFullname+":coredns")
	var resources []string
	for _, rule := range role.Rules {
		resources = append(resources, rule.Resources...)
	}
	if diff := cmp.Diff([]string{"endpoints", "services", "pods", "namespaces", "endpointslices"}, resources); diff != "" {
		t.Errorf("CoreDNS ClusterRole resources (-want +got):\n%s", diff)
	}
	crb := named[*rbacv1.ClusterRoleBinding](t, r, testFullname+":coredns")
	if crb.RoleRef.Name != role.Name || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "coredns" || crb.Subjects[0].Namespace != "kube-system" {
		t.Errorf("ClusterRoleBinding %+v", crb)
	}
}

package cluster

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// DeployCoreDNS applies upstream's objects with the cluster's DNS IP, scheduled by kubemesos; a
// second call (an update) succeeds; outside kube-system the binding is the namespace's own.
func TestDeployCoreDNS(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{"", "e2e-x"} {
		client := fake.NewClientset()
		opts := DNSOptions{Namespace: ns, Image: "coredns:v1.14.7"}
		for i := 0; i < 2; i++ {
			if err := DeployCoreDNS(ctx, client, opts); err != nil {
				t.Fatalf("namespace %q, call %d: %v", ns, i, err)
			}
		}
		want := ns
		if want == "" {
			want = "kube-system"
		}
		svc, err := client.CoreV1().Services(want).Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.ClusterIP != "10.0.0.10" || svc.Spec.Selector["k8s-app"] != "kube-dns" || len(svc.Spec.Ports) != 3 {
			t.Errorf("%s: service %+v", want, svc.Spec)
		}
		dep, err := client.AppsV1().Deployments(want).Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod := dep.Spec.Template.Spec
		if pod.SchedulerName != "kubemesos" || pod.DNSPolicy != corev1.DNSDefault || pod.ServiceAccountName != "coredns" ||
			pod.Containers[0].Image != "coredns:v1.14.7" || pod.Volumes[0].ConfigMap.Name != "coredns" {
			t.Errorf("%s: pod spec %+v", want, pod)
		}
		if (pod.PriorityClassName == "system-cluster-critical") != (want == "kube-system") {
			t.Errorf("%s: priority class %q", want, pod.PriorityClassName)
		}
		b, err := client.RbacV1().ClusterRoleBindings().Get(ctx, DNSBindingName(want), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("coredns/"+want+"->system:coredns", b.Subjects[0].Name+"/"+b.Subjects[0].Namespace+"->"+b.RoleRef.Name); diff != "" {
			t.Errorf("binding (-want +got):\n%s", diff)
		}
		cm, err := client.CoreV1().ConfigMaps(want).Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(cm.Data["Corefile"], "kubernetes cluster.local in-addr.arpa ip6.arpa") ||
			!strings.Contains(cm.Data["Corefile"], "forward . /etc/resolv.conf") {
			t.Errorf("Corefile:\n%s", cm.Data["Corefile"])
		}
		if err := DeleteCoreDNS(ctx, client, want); err != nil {
			t.Fatal(err)
		}
		if _, err := client.RbacV1().ClusterRoleBindings().Get(ctx, DNSBindingName(want), metav1.GetOptions{}); err == nil {
			t.Errorf("%s: binding survived DeleteCoreDNS", want)
		}
	}
	if err := DeployCoreDNS(ctx, fake.NewClientset(), DNSOptions{}); err == nil {
		t.Error("no image: no error")
	}
}

// With a pod network the API server listens on every address and advertises its own (the lease
// endpoint reconciler keeps the kubernetes Service's endpoint there); its certificate names it.
func TestAPIServerArgsWithPodNetwork(t *testing.T) {
	flags := func(cp *ControlPlane) map[string]string {
		m := map[string]string{}
		for _, a := range cp.apiServerArgs(6443) {
			name, value, _ := strings.Cut(a, "=")
			m[name] = value
		}
		return m
	}
	plain := flags(&ControlPlane{Dir: "/cp"})
	if plain["--bind-address"] != "127.0.0.1" || plain["--advertise-address"] != "127.0.0.1" || plain["--endpoint-reconciler-type"] != "none" {
		t.Errorf("without pod network: %v", plain)
	}
	cp := &ControlPlane{Dir: "/cp", AdvertiseIP: net.ParseIP("10.250.255.3")}
	got := flags(cp)
	if got["--bind-address"] != "0.0.0.0" || got["--advertise-address"] != "10.250.255.3" {
		t.Errorf("with pod network: %v", got)
	}
	if _, ok := got["--endpoint-reconciler-type"]; ok {
		t.Errorf("endpoint reconciler turned off: %v", got)
	}
	var ips []string
	for _, ip := range cp.servingIPs() {
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"127.0.0.1", "10.0.0.1", "10.250.255.3"}, ips); diff != "" {
		t.Errorf("serving IPs (-want +got):\n%s", diff)
	}
	kp := strings.Join(cp.kubeProxyArgs("/k", "n1"), " ")
	for _, want := range []string{"--hostname-override=n1", "--proxy-mode=nftables", "--cluster-cidr=10.244.0.0/16", "--nodeport-addresses=10.250.0.0/16",
		"--healthz-bind-address=10.250.255.3:10256", "--metrics-bind-address=10.250.255.3:10249"} {
		if !strings.Contains(kp, want) {
			t.Errorf("kube-proxy args %q lack %s", kp, want)
		}
	}
}

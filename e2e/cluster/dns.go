package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Cluster DNS as every kubemesos cluster of this repository runs it (issue 10).
const (
	// ClusterDNSIP is the kube-dns Service's ClusterIP, the executors' --cluster-dns.
	ClusterDNSIP = "10.0.0.10"
	// ClusterDomain is the executors' --cluster-domain and CoreDNS' zone.
	ClusterDomain = "cluster.local"
	// DNSServiceName is the Service CoreDNS answers behind, as kubeadm names it.
	DNSServiceName = "kube-dns"
)

// DNSOptions say where and how DeployCoreDNS runs CoreDNS.
type DNSOptions struct {
	// Namespace of the ServiceAccount, ConfigMap, Deployment and Service; empty means kube-system.
	Namespace string
	// Image is the coredns image (e2e/imagestore's CoreDNSImage on the simulated agents).
	Image string
	// ClusterIP of the Service; empty means ClusterDNSIP.
	ClusterIP string
	// SchedulerName of the pods; empty means "kubemesos" (the framework's default).
	SchedulerName string
	// Replicas of the Deployment; 0 means 1.
	Replicas int32
}

func (o DNSOptions) withDefaults() DNSOptions {
	if o.Namespace == "" {
		o.Namespace = metav1.NamespaceSystem
	}
	if o.ClusterIP == "" {
		o.ClusterIP = ClusterDNSIP
	}
	if o.SchedulerName == "" {
		o.SchedulerName = "kubemesos"
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	return o
}

// corednsClusterRole is upstream's system:coredns (coredns/deployment kubernetes/coredns.yaml.sed):
// what the kubernetes plugin watches.
const corednsClusterRole = "system:coredns"

// DNSBindingName is the ClusterRoleBinding that lets namespace's coredns ServiceAccount read the
// cluster: upstream's system:coredns in kube-system, one per namespace elsewhere (DeleteCoreDNS
// removes it; the namespace's deletion removes the rest).
func DNSBindingName(namespace string) string {
	if namespace == metav1.NamespaceSystem {
		return corednsClusterRole
	}
	return corednsClusterRole + ":" + namespace
}

// Corefile is upstream's default for kubeadm clusters, without `loop`: pods with dnsPolicy Default
// get the host's resolv.conf, and a loopback resolver there (systemd-resolved's 127.0.0.53) is the
// pod's own loopback, where loop would see its own query and stop CoreDNS instead of forwarding.
func Corefile() string {
	return `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes ` + ClusterDomain + ` in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    reload
    loadbalance
}
`
}

// DeployCoreDNS applies CoreDNS as upstream's manifests run it (ServiceAccount, ClusterRole and
// ClusterRoleBinding, ConfigMap with the Corefile, Deployment, Service kube-dns with its fixed
// ClusterIP) for kubemesos to schedule like any Deployment. Objects that exist are updated. A
// ClusterIP still held by a Service being deleted (an earlier namespace's) is retried until ctx ends.
func DeployCoreDNS(ctx context.Context, client kubernetes.Interface, opts DNSOptions) error {
	o := opts.withDefaults()
	if o.Image == "" {
		return errors.New("DeployCoreDNS: no image")
	}
	labels := map[string]string{"k8s-app": "kube-dns"}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: meta("coredns")}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: corednsClusterRole, Labels: map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: DNSBindingName(o.Namespace), Labels: map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: corednsClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "coredns", Namespace: o.Namespace}},
	}
	cm := &corev1.ConfigMap{ObjectMeta: meta("coredns"), Data: map[string]string{"Corefile": Corefile()}}
	dep := corednsDeployment(o, labels)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: DNSServiceName, Namespace: o.Namespace,
			Labels:      map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
			Annotations: map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
		Spec: corev1.ServiceSpec{
			Selector:  labels,
			ClusterIP: o.ClusterIP,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
				{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
			},
		},
	}

	core, rbac := client.CoreV1(), client.RbacV1()
	steps := []struct {
		what  string
		apply func() error
	}{
		{"serviceaccount", func() error {
			_, err := core.ServiceAccounts(o.Namespace).Create(ctx, sa, metav1.CreateOptions{})
			return ignoreExists(err)
		}},
		{"clusterrole", func() error {
			return upsert(func() error { _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); return err },
				func() error { _, err := rbac.ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); return err })
		}},
		{"clusterrolebinding", func() error {
			_, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
			return ignoreExists(err)
		}},
		{"configmap", func() error {
			return upsert(func() error {
				_, err := core.ConfigMaps(o.Namespace).Create(ctx, cm, metav1.CreateOptions{})
				return err
			},
				func() error {
					_, err := core.ConfigMaps(o.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
					return err
				})
		}},
		{"deployment", func() error {
			deps := client.AppsV1().Deployments(o.Namespace)
			return upsert(func() error { _, err := deps.Create(ctx, dep, metav1.CreateOptions{}); return err },
				func() error { _, err := deps.Update(ctx, dep, metav1.UpdateOptions{}); return err })
		}},
		{"service", func() error { return createService(ctx, client, svc) }},
	}
	for _, s := range steps {
		if err := s.apply(); err != nil {
			return fmt.Errorf("coredns %s in %s: %w", s.what, o.Namespace, err)
		}
	}
	return nil
}

func corednsDeployment(o DNSOptions, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: o.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(o.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SchedulerName:      o.SchedulerName,
					ServiceAccountName: "coredns",
					PriorityClassName:  priorityClass(o.Namespace),
					// CoreDNS resolves names outside the cluster with the host's resolvers.
					DNSPolicy: corev1.DNSDefault,
					Containers: []corev1.Container{{
						Name:  "coredns",
						Image: o.Image,
						Args:  []string{"-conf", "/etc/coredns/Corefile"},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: mustQuantity("100m"), corev1.ResourceMemory: mustQuantity("70Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: mustQuantity("170Mi")},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns", ReadOnly: true}},
						Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8181), Scheme: corev1.URISchemeHTTP}},
							PeriodSeconds: 2,
						},
					}},
					Volumes: []corev1.Volume{{Name: "config-volume", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"},
						Items:                []corev1.KeyToPath{{Key: "Corefile", Path: "Corefile"}},
					}}}},
				},
			},
		},
	}
}

// priorityClass is upstream's system-cluster-critical, which the API server admits in kube-system
// only.
func priorityClass(namespace string) string {
	if namespace == metav1.NamespaceSystem {
		return "system-cluster-critical"
	}
	return ""
}

// createService creates svc, retrying while its ClusterIP is still allocated to a Service being
// deleted; an existing Service of that name is left as it is.
func createService(ctx context.Context, client kubernetes.Interface, svc *corev1.Service) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
		switch {
		case err == nil, apierrors.IsAlreadyExists(err):
			return true, nil
		case apierrors.IsInvalid(err) && strings.Contains(err.Error(), "already allocated"):
			last = err
			return false, nil
		default:
			return false, err
		}
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (%v)", err, last)
	}
	return err
}

// DeleteCoreDNS removes the cluster-scoped binding of a namespace's CoreDNS (the namespaced objects
// go with their namespace).
func DeleteCoreDNS(ctx context.Context, client kubernetes.Interface, namespace string) error {
	err := client.RbacV1().ClusterRoleBindings().Delete(ctx, DNSBindingName(namespace), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// WaitCoreDNS waits until the kube-dns Service of namespace has a ready endpoint (CoreDNS answers).
func WaitCoreDNS(ctx context.Context, client kubernetes.Interface, namespace string) error {
	if namespace == "" {
		namespace = metav1.NamespaceSystem
	}
	var last string
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(namespace).Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d/%d replicas ready", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 1))
		return d.Status.ReadyReplicas > 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for coredns in %s: %w (%s)", namespace, err, last)
	}
	return nil
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// upsert creates, or updates what exists.
func upsert(create, update func() error) error {
	err := create()
	if apierrors.IsAlreadyExists(err) {
		return update()
	}
	return err
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }

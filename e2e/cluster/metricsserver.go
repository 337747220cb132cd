package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// metrics-server as upstream's manifests (sigs.k8s.io/metrics-server v0.8.0 manifests/base) run it,
// so that `kubectl top` works (issue 12). It scrapes every Node's "kubelet", the executor's
// /metrics/resource, at the Node's InternalIP and status port.

// MetricsAPIService is the APIService metrics-server serves.
const MetricsAPIService = "v1beta1.metrics.k8s.io"

// MetricsServerOptions say where and how DeployMetricsServer runs metrics-server.
type MetricsServerOptions struct {
	// Namespace of the ServiceAccount, Deployment and Service; empty means kube-system.
	Namespace string
	// Image is the metrics-server image (e2e/imagestore's MetricsServerImage on the simulated agents).
	Image string
	// SchedulerName of the pod; empty means "kubemesos" (the framework's default).
	SchedulerName string
	// MetricResolution is the scrape interval (--metric-resolution); 0 means upstream's 15 s.
	// metrics-server refuses one not above its --kubelet-request-timeout (10 s).
	MetricResolution time.Duration
	// APIServices is the REST client the APIService is written with; nil means the client's
	// (tests of a fake clientset, which has none, set one).
	APIServices rest.Interface
}

func (o MetricsServerOptions) withDefaults() MetricsServerOptions {
	if o.Namespace == "" {
		o.Namespace = metav1.NamespaceSystem
	}
	if o.SchedulerName == "" {
		o.SchedulerName = "kubemesos"
	}
	if o.MetricResolution == 0 {
		o.MetricResolution = 15 * time.Second
	}
	return o
}

// metricsServerName names cluster-scoped objects of namespace's metrics-server: upstream's names in
// kube-system, suffixed with the namespace elsewhere (DeleteMetricsServer removes them).
func metricsServerName(name, namespace string) string {
	if namespace == metav1.NamespaceSystem {
		return name
	}
	return name + ":" + namespace
}

// MetricsServerArgs are the container's arguments: upstream's, with the executors' self-signed
// serving certificates accepted (--kubelet-insecure-tls, as the API server reaches them without
// --kubelet-certificate-authority) and the Nodes reached at their InternalIP only (simulated agents'
// hostnames do not resolve; they have no ExternalIP).
func MetricsServerArgs(o MetricsServerOptions) []string {
	o = o.withDefaults()
	return []string{
		"--cert-dir=/tmp",
		"--secure-port=10250",
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-use-node-status-port",
		"--kubelet-insecure-tls",
		"--metric-resolution=" + o.MetricResolution.String(),
	}
}

// DeployMetricsServer applies upstream's manifests (ServiceAccount, ClusterRoles
// system:aggregated-metrics-reader and system:metrics-server with their bindings, the RoleBinding to
// extension-apiserver-authentication-reader in kube-system, Service, Deployment, APIService
// v1beta1.metrics.k8s.io) for kubemesos to schedule like any Deployment. Objects that exist are
// updated (the APIService then points at this namespace's Service).
func DeployMetricsServer(ctx context.Context, client kubernetes.Interface, opts MetricsServerOptions) error {
	o := opts.withDefaults()
	if o.Image == "" {
		return errors.New("DeployMetricsServer: no image")
	}
	labels := map[string]string{"k8s-app": "metrics-server"}
	const name = "metrics-server"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels}}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: o.Namespace}}
	reader := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "system:aggregated-metrics-reader", Labels: map[string]string{
			"k8s-app": "metrics-server", "rbac.authorization.k8s.io/aggregate-to-view": "true",
			"rbac.authorization.k8s.io/aggregate-to-edit": "true", "rbac.authorization.k8s.io/aggregate-to-admin": "true",
		}},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"metrics.k8s.io"}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list", "watch"}}},
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "system:metrics-server", Labels: labels},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes/metrics"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	bindings := []*rbacv1.ClusterRoleBinding{
		{ObjectMeta: metav1.ObjectMeta{Name: metricsServerName("metrics-server:system:auth-delegator", o.Namespace), Labels: labels},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
			Subjects: subjects},
		{ObjectMeta: metav1.ObjectMeta{Name: metricsServerName("system:metrics-server", o.Namespace), Labels: labels},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:metrics-server"},
			Subjects: subjects},
	}
	authReader := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: metricsServerName("metrics-server-auth-reader", o.Namespace), Namespace: metav1.NamespaceSystem, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "extension-apiserver-authentication-reader"},
		Subjects:   subjects,
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromString("https"), AppProtocol: ptr.To("https")}},
		},
	}
	dep := metricsServerDeployment(o, labels)
	apiService := map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": MetricsAPIService, "labels": labels},
		"spec": map[string]any{
			"service":               map[string]any{"name": name, "namespace": o.Namespace},
			"group":                 "metrics.k8s.io",
			"version":               "v1beta1",
			"insecureSkipTLSVerify": true,
			"groupPriorityMinimum":  100,
			"versionPriority":       100,
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
		{"clusterroles", func() error {
			for _, r := range []*rbacv1.ClusterRole{reader, role} {
				err := upsert(func() error { _, err := rbac.ClusterRoles().Create(ctx, r, metav1.CreateOptions{}); return err },
					func() error { _, err := rbac.ClusterRoles().Update(ctx, r, metav1.UpdateOptions{}); return err })
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"clusterrolebindings", func() error {
			for _, b := range bindings {
				if _, err := rbac.ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); ignoreExists(err) != nil {
					return err
				}
			}
			return nil
		}},
		{"rolebinding", func() error {
			_, err := rbac.RoleBindings(metav1.NamespaceSystem).Create(ctx, authReader, metav1.CreateOptions{})
			return ignoreExists(err)
		}},
		{"service", func() error { return createService(ctx, client, svc) }},
		{"deployment", func() error {
			deps := client.AppsV1().Deployments(o.Namespace)
			return upsert(func() error { _, err := deps.Create(ctx, dep, metav1.CreateOptions{}); return err },
				func() error { _, err := deps.Update(ctx, dep, metav1.UpdateOptions{}); return err })
		}},
		{"apiservice", func() error { return applyAPIService(ctx, apiServicesClient(client, o.APIServices), apiService) }},
	}
	for _, s := range steps {
		if err := s.apply(); err != nil {
			return fmt.Errorf("metrics-server %s in %s: %w", s.what, o.Namespace, err)
		}
	}
	return nil
}

func metricsServerDeployment(o MetricsServerOptions, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: o.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SchedulerName:      o.SchedulerName,
					ServiceAccountName: "metrics-server",
					PriorityClassName:  priorityClass(o.Namespace),
					NodeSelector:       map[string]string{corev1.LabelOSStable: "linux"},
					Volumes:            []corev1.Volume{{Name: "tmp-dir", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
					Containers: []corev1.Container{{
						Name:            "metrics-server",
						Image:           o.Image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            MetricsServerArgs(o),
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: mustQuantity("100m"), corev1.ResourceMemory: mustQuantity("200Mi")},
						},
						Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 10250, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("https"),
								Scheme: corev1.URISchemeHTTPS}},
							PeriodSeconds: 10, FailureThreshold: 3, InitialDelaySeconds: 20,
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/livez", Port: intstr.FromString("https"),
								Scheme: corev1.URISchemeHTTPS}},
							PeriodSeconds: 10, FailureThreshold: 3,
						},
						// Upstream's, but as the image's user 65534 (nobody) rather than 1000: Mesos
						// runs a container as the agent host's user of that uid, and hosts have nobody.
						SecurityContext: &corev1.SecurityContext{
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
							RunAsUser:                ptr.To[int64](65534),
							AllowPrivilegeEscalation: ptr.To(false),
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp-dir", MountPath: "/tmp"}},
					}},
				},
			},
		},
	}
}

const apiServicesPath = "/apis/apiregistration.k8s.io/v1/apiservices"

func apiServicesClient(client kubernetes.Interface, rc rest.Interface) rest.Interface {
	if rc != nil {
		return rc
	}
	return client.Discovery().RESTClient()
}

// applyAPIService creates the APIService, or replaces the spec of the one that exists.
func applyAPIService(ctx context.Context, rc rest.Interface, obj map[string]any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	err = rc.Post().AbsPath(apiServicesPath).SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Error()
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	patch, err := json.Marshal(map[string]any{"spec": obj["spec"]})
	if err != nil {
		return err
	}
	return rc.Patch("application/merge-patch+json").AbsPath(apiServicesPath, MetricsAPIService).Body(patch).Do(ctx).Error()
}

// apiServiceStatus is what WaitMetricsServer reads of the APIService.
type apiServiceStatus struct {
	Spec struct {
		Service struct {
			Namespace string `json:"namespace"`
		} `json:"service"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
	} `json:"status"`
}

// WaitMetricsServer waits until the APIService is Available (the API server reaches metrics-server,
// which answers once it has scraped the Nodes).
func WaitMetricsServer(ctx context.Context, client kubernetes.Interface) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		b, err := client.Discovery().RESTClient().Get().AbsPath(apiServicesPath, MetricsAPIService).DoRaw(ctx)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var st apiServiceStatus
		if err := json.Unmarshal(b, &st); err != nil {
			return false, err
		}
		last = "no Available condition"
		for _, c := range st.Status.Conditions {
			if c.Type == "Available" {
				last = fmt.Sprintf("Available=%s %s: %s", c.Status, c.Reason, c.Message)
				return c.Status == "True", nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for APIService %s: %w (%s)", MetricsAPIService, err, last)
	}
	return nil
}

// DeleteMetricsServer removes the cluster-scoped objects of namespace's metrics-server, the
// RoleBinding in kube-system and the APIService if it points at namespace (the namespaced objects go
// with their namespace).
func DeleteMetricsServer(ctx context.Context, client kubernetes.Interface, namespace string) error {
	var errs []error
	keep := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	rc := client.Discovery().RESTClient()
	if b, err := rc.Get().AbsPath(apiServicesPath, MetricsAPIService).DoRaw(ctx); err == nil {
		var st apiServiceStatus
		if json.Unmarshal(b, &st) == nil && st.Spec.Service.Namespace == namespace {
			keep(rc.Delete().AbsPath(apiServicesPath, MetricsAPIService).Do(ctx).Error())
		}
	} else {
		keep(err)
	}
	if namespace != metav1.NamespaceSystem {
		for _, n := range []string{"metrics-server:system:auth-delegator", "system:metrics-server"} {
			keep(client.RbacV1().ClusterRoleBindings().Delete(ctx, metricsServerName(n, namespace), metav1.DeleteOptions{}))
		}
		keep(client.RbacV1().RoleBindings(metav1.NamespaceSystem).Delete(ctx, metricsServerName("metrics-server-auth-reader", namespace), metav1.DeleteOptions{}))
	}
	return errors.Join(errs...)
}

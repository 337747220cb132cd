package nested

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The kubelet's service environment of "Pods should contain environment variables for services":
// fooservice on 8765 gives FOOSERVICE_SERVICE_HOST … FOOSERVICE_PORT_8765_TCP_ADDR; headless Services,
// other namespaces' and the default namespace's kubernetes Service (PodEnv.Base's) give none;
// envFrom and env override them; enableServiceLinks: false drops them.
func TestServiceLinks(t *testing.T) {
	svc := func(ns, name, ip string, ports ...corev1.ServicePort) corev1.Service {
		return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}
	}
	services := []corev1.Service{
		svc("ns", "fooservice", "10.0.0.11", corev1.ServicePort{Port: 8765, Protocol: corev1.ProtocolTCP}),
		svc("ns", "dns-svc", "10.0.0.12", corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, corev1.ServicePort{Name: "metrics", Port: 9153}),
		svc("ns", "headless", corev1.ClusterIPNone, corev1.ServicePort{Port: 80}),
		svc("other", "elsewhere", "10.0.0.13", corev1.ServicePort{Port: 80}),
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}}
	want := map[string]string{
		"FOOSERVICE_SERVICE_HOST":        "10.0.0.11",
		"FOOSERVICE_SERVICE_PORT":        "8765",
		"FOOSERVICE_PORT":                "tcp://10.0.0.11:8765",
		"FOOSERVICE_PORT_8765_TCP":       "tcp://10.0.0.11:8765",
		"FOOSERVICE_PORT_8765_TCP_PROTO": "tcp",
		"FOOSERVICE_PORT_8765_TCP_PORT":  "8765",
		"FOOSERVICE_PORT_8765_TCP_ADDR":  "10.0.0.11",
		"DNS_SVC_SERVICE_HOST":           "10.0.0.12",
		"DNS_SVC_SERVICE_PORT":           "53",
		"DNS_SVC_SERVICE_PORT_DNS":       "53",
		"DNS_SVC_SERVICE_PORT_METRICS":   "9153",
		"DNS_SVC_PORT":                   "udp://10.0.0.12:53",
		"DNS_SVC_PORT_53_UDP":            "udp://10.0.0.12:53",
		"DNS_SVC_PORT_53_UDP_PROTO":      "udp",
		"DNS_SVC_PORT_53_UDP_PORT":       "53",
		"DNS_SVC_PORT_53_UDP_ADDR":       "10.0.0.12",
		"DNS_SVC_PORT_9153_TCP":          "tcp://10.0.0.12:9153",
		"DNS_SVC_PORT_9153_TCP_PROTO":    "tcp",
		"DNS_SVC_PORT_9153_TCP_PORT":     "9153",
		"DNS_SVC_PORT_9153_TCP_ADDR":     "10.0.0.12",
	}
	if diff := cmp.Diff(want, ServiceLinks(pod, services)); diff != "" {
		t.Errorf("service links (-want +got):\n%s", diff)
	}
	def := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"}}
	if got := ServiceLinks(def, []corev1.Service{svc("default", "kubernetes", "10.0.0.1", corev1.ServicePort{Name: "https", Port: 443})}); len(got) != 0 {
		t.Errorf("the kubernetes Service gave %v; PodEnv.Base stands for it", got)
	}

	var asked []string
	pe := PodEnv{Base: map[string]string{"KUBERNETES_SERVICE_HOST": "10.250.255.1"}, Services: func(_ context.Context, ns string) ([]corev1.Service, error) {
		asked = append(asked, ns)
		return services, nil
	}}
	c := &corev1.Container{Name: "c", Env: []corev1.EnvVar{
		{Name: "FOOSERVICE_SERVICE_PORT", Value: "1"},
		{Name: "URL", Value: "http://$(FOOSERVICE_SERVICE_HOST):$(FOOSERVICE_SERVICE_PORT)"},
	}}
	env, err := Environment(context.Background(), pod, c, pe)
	if err != nil {
		t.Fatal(err)
	}
	got := envMap(env)
	if got["FOOSERVICE_SERVICE_PORT"] != "1" || got["URL"] != "http://10.0.0.11:1" || got["FOOSERVICE_PORT"] != "tcp://10.0.0.11:8765" || got["KUBERNETES_SERVICE_HOST"] != "10.250.255.1" {
		t.Errorf("env %v: env overrides and expands the service variables, Base stays", got)
	}
	if len(asked) != 1 || asked[0] != "ns" {
		t.Errorf("services listed in %v, want the pod's namespace", asked)
	}
	no := false
	pod.Spec.EnableServiceLinks = &no
	env, err = Environment(context.Background(), pod, &corev1.Container{Name: "c"}, pe)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := envMap(env)["FOOSERVICE_SERVICE_HOST"]; ok || len(asked) != 1 {
		t.Errorf("enableServiceLinks false: env %v, listed %v times", envMap(env), len(asked))
	}
	pod.Spec.EnableServiceLinks = nil
	pe.Services = func(context.Context, string) ([]corev1.Service, error) { return nil, errors.New("forbidden") }
	if _, err := Environment(context.Background(), pod, &corev1.Container{Name: "c"}, pe); err == nil {
		t.Error("a failed Service list gave no error")
	}
}

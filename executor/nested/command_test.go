package nested

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type fakeLookup struct {
	cms     map[string]map[string]string
	secrets map[string]map[string][]byte
}

func (f fakeLookup) ConfigMap(_ context.Context, ns, name string) (map[string]string, error) {
	if d, ok := f.cms[ns+"/"+name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, ErrNotFound)
}

func (f fakeLookup) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	if d, ok := f.secrets[ns+"/"+name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("secret %s/%s: %w", ns, name, ErrNotFound)
}

func envMap(vars []mesos.Environment_Variable) map[string]string {
	out := map[string]string{}
	for _, v := range vars {
		out[v.Name] = v.GetValue()
	}
	return out
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "y"}
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)-$(B)", "x-y"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$A", "$A"},
		{"$(A", "$(A"},
		{"cost $", "cost $"},
		{"$()", "$()"},
	}
	for _, tt := range tests {
		if got := Expand(tt.in, vars); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEnvironment(t *testing.T) {
	optional := true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "agent1", ServiceAccountName: "sa"},
	}
	lookup := fakeLookup{
		cms:     map[string]map[string]string{"ns/cfg": {"MODE": "fast", "LEVEL": "3"}},
		secrets: map[string]map[string][]byte{"ns/creds": {"token": []byte("s3cr3t")}},
	}
	tests := []struct {
		name    string
		c       corev1.Container
		base    map[string]string
		want    map[string]string
		wantErr bool
	}{
		{
			name: "values, expansion and downward API",
			base: map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.100", "KUBERNETES_SERVICE_PORT": "6443"},
			c: corev1.Container{Name: "c", Env: []corev1.EnvVar{
				{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "HOST", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
				{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
				{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
				{Name: "URL", Value: "http://$(IP):80/$(POD)"},
			}},
			want: map[string]string{"POD": "web-1", "NS": "ns", "IP": "10.0.0.9", "HOST": "10.0.0.1", "NODE": "agent1", "APP": "web", "URL": "http://10.0.0.9:80/web-1",
				"KUBERNETES_SERVICE_HOST": "10.0.0.100", "KUBERNETES_SERVICE_PORT": "6443"},
		},
		{
			name: "envFrom with prefix, env overrides, key refs",
			base: map[string]string{"CFG_LEVEL": "overridden by envFrom"},
			c: corev1.Container{Name: "c",
				EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				Env: []corev1.EnvVar{
					{Name: "CFG_MODE", Value: "slow"},
					{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
					{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: &optional}}},
				}},
			want: map[string]string{"CFG_MODE": "slow", "CFG_LEVEL": "3", "TOKEN": "s3cr3t"},
		},
		{
			name: "resource limits",
			c: corev1.Container{Name: "c",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("250m")}},
				Env: []corev1.EnvVar{
					{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
					{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
				}},
			want: map[string]string{"MEM": "64", "CPU": "1"},
		},
		{
			name: "missing required key",
			c: corev1.Container{Name: "c", Env: []corev1.EnvVar{
				{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "absent"}}},
			}},
			wantErr: true,
		},
		{
			name:    "unsupported field",
			c:       corev1.Container{Name: "c", Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.priority"}}}}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Environment(context.Background(), pod, &tt.c, PodEnv{HostIP: "10.0.0.1", PodIP: "10.0.0.9", Lookup: lookup, Base: tt.base})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, envMap(got)); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}

// The kubelet's defaultPodLimitsForDownwardAPI: an unset (or zero) limit reads as the pod-level
// limit, else as the Node's allocatable, in env and in downwardAPI volumes alike.
func TestResourceFieldRefDefaultsToNodeAllocatable(t *testing.T) {
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("3900m"),
		corev1.ResourceMemory:           resource.MustParse("8096Mi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("64Gi"),
	}
	var asked []string
	pe := PodEnv{Allocatable: func(_ context.Context, node string) (corev1.ResourceList, error) {
		asked = append(asked, node)
		return alloc, nil
	}}
	ref := func(name, res, div string) corev1.EnvVar {
		s := &corev1.ResourceFieldSelector{Resource: res}
		if div != "" {
			s.Divisor = resource.MustParse(div)
		}
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: s}}
	}
	c := corev1.Container{Name: "c",
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0")},
		},
		Env: []corev1.EnvVar{
			ref("MEM_LIMIT", "limits.memory", "1Mi"),
			ref("CPU_LIMIT", "limits.cpu", ""),
			ref("CPU_LIMIT_M", "limits.cpu", "1m"),
			ref("EPH_LIMIT", "limits.ephemeral-storage", "1Gi"),
			ref("MEM_REQUEST", "requests.memory", "1Mi"),
			ref("CPU_REQUEST", "requests.cpu", "1m"),
		}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: corev1.PodSpec{NodeName: "agent-2", Containers: []corev1.Container{c}}}
	got, err := Environment(context.Background(), pod, &pod.Spec.Containers[0], pe)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"MEM_LIMIT": "8096", "CPU_LIMIT": "4", "CPU_LIMIT_M": "3900", "EPH_LIMIT": "64", "MEM_REQUEST": "32", "CPU_REQUEST": "0"}
	if diff := cmp.Diff(want, envMap(got)); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if len(asked) == 0 || asked[0] != "agent-2" {
		t.Errorf("allocatable asked of nodes %v, want the pod's agent-2", asked)
	}

	// A pod-level limit comes before the Node's allocatable.
	withPod := pod.DeepCopy()
	withPod.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}
	got, err = Environment(context.Background(), withPod, &withPod.Spec.Containers[0], pe)
	if err != nil {
		t.Fatal(err)
	}
	if g := envMap(got)["MEM_LIMIT"]; g != "256" {
		t.Errorf("MEM_LIMIT with a pod-level limit = %s, want 256", g)
	}

	// The same default in a downwardAPI volume.
	dir := t.TempDir()
	volPod := pod.DeepCopy()
	volPod.Spec.Volumes = []corev1.Volume{{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
		{Path: "memory_limit", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
	}}}}}
	if err := PrepareVolumes(context.Background(), dir, volPod, pe); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "volumes", "podinfo", "memory_limit"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "8096" {
		t.Errorf("downwardAPI memory_limit = %q, want 8096", b)
	}

	// A Node that cannot be read fails the container's config, as the kubelet's does.
	pe.Allocatable = func(context.Context, string) (corev1.ResourceList, error) {
		return nil, errors.New("nodes \"agent-2\" not found")
	}
	if _, err := Environment(context.Background(), pod, &pod.Spec.Containers[0], pe); err == nil {
		t.Error("no error when the Node's allocatable cannot be read")
	}
}

package podtranslate

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The kubelet's default sysctl admission: safe sysctls (either separator) pass, the first unsafe
// one is named in its text.
func TestForbiddenSysctl(t *testing.T) {
	pod := func(names ...string) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{}}}
		for _, n := range names {
			p.Spec.SecurityContext.Sysctls = append(p.Spec.SecurityContext.Sysctls, corev1.Sysctl{Name: n, Value: "1"})
		}
		return p
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{&corev1.Pod{}, ""},
		{pod("kernel.shm_rmid_forced", "net/ipv4/ip_local_port_range"), ""},
		{pod("kernel.shm_rmid_forced", "kernel.msgmax", "kernel.sem"), `forbidden sysctl: "kernel.msgmax" not allowlisted`},
		{pod("net/core/somaxconn"), `forbidden sysctl: "net.core.somaxconn" not allowlisted`},
	} {
		if got := ForbiddenSysctl(tc.pod); got != tc.want {
			t.Errorf("ForbiddenSysctl(%v) = %q, want %q", tc.pod.Spec.SecurityContext, got, tc.want)
		}
	}
}

func TestAdmitOS(t *testing.T) {
	for os, want := range map[corev1.OSName]string{
		"": "", corev1.Linux: "", corev1.Windows: "Failed to admit pod as the OS field doesn't match node OS",
	} {
		p := &corev1.Pod{}
		if os != "" {
			p.Spec.OS = &corev1.PodOS{Name: os}
		}
		if got := AdmitOS(p); got != want {
			t.Errorf("AdmitOS(%q) = %q, want %q", os, got, want)
		}
	}
}

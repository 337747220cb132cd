package podtranslate

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
)

// SafeSysctls is the kubelet's safe sysctl allowlist (pkg/kubelet/sysctl/safe_sysctls.go), which a
// kubelet allows without --allowed-unsafe-sysctls; the kernel-version gates of its later entries are
// not applied.
var SafeSysctls = []string{
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
	"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat",
}

// ReasonSysctlForbidden is the kubelet's admission reason for a sysctl outside its allowlist.
const ReasonSysctlForbidden = "SysctlForbidden"

// ForbiddenSysctl is the kubelet's sysctl admission (patternAllowlist.Admit) with the default
// allowlist: for the first of the pod's sysctls that is not safe, the rejection's message ("forbidden
// sysctl: \"kernel.msgmax\" not allowlisted"); "" when every one is safe. A pod with such a sysctl
// is placed and then rejected by the executor, as by a kubelet; one with safe sysctls only is
// refused by Check (ReasonSysctls): Mesos has no field to set them.
func ForbiddenSysctl(pod *corev1.Pod) string {
	if pod.Spec.SecurityContext == nil {
		return ""
	}
	for _, s := range pod.Spec.SecurityContext.Sysctls {
		name := utilsysctl.NormalizeName(s.Name)
		if !slices.Contains(SafeSysctls, name) {
			return fmt.Sprintf("forbidden sysctl: %q not allowlisted", name)
		}
	}
	return ""
}

// ReasonPodOSNotSupported is the kubelet's admission reason for a pod whose spec.os is not the node's.
const ReasonPodOSNotSupported = "PodOSNotSupported"

// AdmitOS is the kubelet's rejectPodAdmissionBasedOnOSField for a Linux node: the rejection's message
// when the pod names another OS, "" otherwise (ReasonOS is why: Mesos' nested containers are Linux).
func AdmitOS(pod *corev1.Pod) string {
	if pod.Spec.OS == nil || pod.Spec.OS.Name == corev1.Linux {
		return ""
	}
	return "Failed to admit pod as the OS field doesn't match node OS"
}

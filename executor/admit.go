package executor

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// admitPod is the part of the kubelet's pod admission that placement does not already do: a pod for
// another OS (PodOSNotSupported), and a sysctl outside the kubelet's default allowlist
// (SysctlForbidden; this executor allows no unsafe sysctl, as a kubelet without
// --allowed-unsafe-sysctls).
func admitPod(pod *corev1.Pod) (reason, message string) {
	// In the kubelet's order: the OS first (lifecycle/predicate.go), then the sysctls.
	if msg := podtranslate.AdmitOS(pod); msg != "" {
		return podtranslate.ReasonPodOSNotSupported, msg
	}
	if msg := podtranslate.ForbiddenSysctl(pod); msg != "" {
		return podtranslate.ReasonSysctlForbidden, msg
	}
	return "", ""
}

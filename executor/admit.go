package executor

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// admitPod is the part of the kubelet's pod admission that placement does not already do: a sysctl
// outside the kubelet's default allowlist rejects the pod (SysctlForbidden; this executor allows no
// unsafe sysctl, as a kubelet without --allowed-unsafe-sysctls).
func admitPod(pod *corev1.Pod) (reason, message string) {
	if msg := podtranslate.ForbiddenSysctl(pod); msg != "" {
		return podtranslate.ReasonSysctlForbidden, msg
	}
	return "", ""
}

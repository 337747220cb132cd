package podworker

import (
	corev1 "k8s.io/api/core/v1"
)

// addEphemeral takes the pod's spec.ephemeralContainers as the API server now has them: those not
// known yet are added (after the regular containers) and started by next, as the kubelet's
// computePodActions starts every ephemeral container that has no status yet. The API only ever
// appends to the list (ValidatePodEphemeralContainersUpdate forbids changing or removing one), so
// a name seen before is never looked at again. The pod is copied with the new list, so statuses
// carry the spec the kubelet API finds the ephemeral containers in.
func (c *core) addEphemeral(ecs []corev1.EphemeralContainer) {
	known := map[string]bool{}
	for _, ct := range c.containers[c.nMain:] {
		known[ct.spec.Name] = true
	}
	added := false
	for i := range ecs {
		if known[ecs[i].Name] {
			continue
		}
		// ephemeralContainerStartSpec: the container to run is the EphemeralContainerCommon. Its
		// targetContainerName is not honoured: a Mesos nested container can share its parent's pid
		// namespace only (LinuxInfo.share_pid_namespace), not a sibling's.
		spec := corev1.Container(ecs[i].EphemeralContainerCommon)
		c.containers = append(c.containers, &container{spec: &spec, ephemeral: true})
		added = true
	}
	if !added && len(c.pod.Spec.EphemeralContainers) == len(ecs) {
		return
	}
	p := *c.pod
	p.Spec.EphemeralContainers = append([]corev1.EphemeralContainer(nil), ecs...)
	c.pod = &p
}

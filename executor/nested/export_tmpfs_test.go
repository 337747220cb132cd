package nested

import corev1 "k8s.io/api/core/v1"

// SetEventForTest sets the runtime's event recorder (Config.Event) after New.
func SetEventForTest(r *Runtime, f func(pod *corev1.Pod, eventType, reason, message string)) {
	r.cfg.Event = f
}

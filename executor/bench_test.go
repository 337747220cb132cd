package executor

import (
	"fmt"
	"testing"
	"time"

	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// BenchmarkLaunchToRunning measures the executor's own cost per pod: LAUNCH in, STARTING and RUNNING
// UPDATE calls out over HTTP, pod status queued for the API server (fake clientset), with a runtime
// whose containers start instantly.
func BenchmarkLaunchToRunning(b *testing.B) {
	h := startLoop(b, true)
	s := h.stream()
	s.events <- subscribed()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pod := shPod(fmt.Sprintf("p%d", i), corev1.RestartPolicyAlways, 30, "unused")
		pod.UID = types.UID(fmt.Sprintf("bench-%d-%d", b.N, i))
		launch, _ := launchEvent(b, pod)
		s.events <- launch
	}
	deadline := time.Now().Add(time.Minute)
	for {
		h.api.mu.Lock()
		n := 0
		for _, u := range h.api.updates {
			if u.GetState().String() == "TASK_RUNNING" {
				n++
			}
		}
		h.api.mu.Unlock()
		if n >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d pods RUNNING", n, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	s.events <- &mesosexec.Event{Type: mesosexec.Event_SHUTDOWN}
}

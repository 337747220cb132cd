package containerlogs

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
)

// An ephemeral container's attempt is followed from ephemeralContainerStatuses like any other, so
// `kubectl logs -c <debug container>` finds its log.
func TestManagerFollowsEphemeralContainers(t *testing.T) {
	sandbox := t.TempDir()
	m := New(Config{Sandbox: sandbox, OutputDir: func(uid types.UID, id string) string { return outputDir(sandbox, uid, id) }, Clock: testingclock.NewFakeClock(t0), PollInterval: time.Second, Log: quietLog()})
	defer m.Close()
	p := pod("uid-e")
	newOutput(t, sandbox, "uid-e", "d0").write("stdout", "polo\n")
	debugger := runningStatus("d0")
	debugger.Name = "debugger"
	m.Update(p, corev1.PodStatus{EphemeralContainerStatuses: []corev1.ContainerStatus{debugger}}, false)
	waitFor(t, "the ephemeral container's log", func() bool {
		return strings.HasSuffix(readFile(t, Path(sandbox, p.UID, "d0")), " stdout F polo\n")
	})
}

package sandboxexec_test

import (
	"fmt"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// BenchmarkSandboxExecutorLifecycle is one pod sandbox's life on the simulated agent in process mode
// (no CNI): the executor process launched, subscribed, its task RUNNING, KILLed, TASK_KILLED
// acknowledged and the process exited — what design P adds to every pod on a pod network, network
// set-up aside.
func BenchmarkSandboxExecutorLifecycle(b *testing.B) {
	m := &master{}
	a := newAgent(b, m, nil)
	for i := 0; b.Loop(); i++ {
		uid := fmt.Sprintf("b%d", i)
		a.Launch(fw, sandboxExecutor(b, uid, nil), []mesos.TaskInfo{sandboxTask(uid)}, false)
		waitFor(b, "TASK_RUNNING", func() bool { return len(m.states("sandbox-"+uid)) == 1 })
		a.Kill(*fw.ID, mesos.TaskID{Value: "sandbox-" + uid}, nil)
		waitFor(b, "the executor's exit", func() bool { return len(m.exits()) == i+1 })
		if got := strings.Join(m.states("sandbox-"+uid), ","); got != "TASK_RUNNING,TASK_KILLED" {
			b.Fatalf("states %s", got)
		}
	}
}

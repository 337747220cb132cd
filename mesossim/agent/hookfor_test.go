package agent

import (
	"context"
	"sync"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// ExecutorHookFor picks the executors the hook runs in-process; the others are launched as processes
// (the pod sandbox executors of the executor's tests, which need a container of their own).
func TestExecutorHookFor(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	var mu sync.Mutex
	var hooked []string
	a := newTestAgent(t, m, func(c *Config) {
		c.ExecutorHook = func(ctx context.Context, env map[string]string) error {
			mu.Lock()
			hooked = append(hooked, env["MESOS_EXECUTOR_ID"])
			mu.Unlock()
			return hookExecutor(ctx, env)
		}
		c.ExecutorHookFor = func(e mesos.ExecutorInfo) bool { return e.ExecutorID.Value == "kubelet" }
	})
	fw := testFramework(false)
	a.Launch(fw, processExecutor("kubelet", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	a.Launch(fw, processExecutor("pod-1", nil), []mesos.TaskInfo{dataTask("t2", "wait")}, false)
	waitFor(t, "tasks running", func() bool { return len(m.states("t1")) == 1 && len(m.states("t2")) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 1 || hooked[0] != "kubelet" {
		t.Errorf("the hook ran %v, want only kubelet", hooked)
	}
}

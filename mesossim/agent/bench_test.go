package agent

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
)

// countingMaster acknowledges every update and signals each TASK_FINISHED.
type countingMaster struct {
	once     sync.Once
	agent    *Agent
	finished chan struct{}
}

func (m *countingMaster) StatusUpdate(_ mesos.AgentID, fw mesos.FrameworkID, s mesos.TaskStatus) {
	m.agent.Acknowledge(fw, s.TaskID, s.UUID)
	if s.GetState() == mesos.TASK_FINISHED {
		m.finished <- struct{}{}
	}
}
func (m *countingMaster) ExecutorMessage(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, []byte) {
}
func (m *countingMaster) ExecutorTerminated(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, int32) {
}
func (m *countingMaster) ResourcesRecovered(mesos.AgentID, mesos.FrameworkID, mesos.Resources) {}

// BenchmarkInProcessExecutors launches b.N in-process custom executors (ExecutorHook), each running one
// task through the real executor HTTP API (SUBSCRIBE, LAUNCH, UPDATE, acknowledgements) to
// TASK_FINISHED. It reports the time per executor+task and the heap each live executor holds.
func BenchmarkInProcessExecutors(b *testing.B) {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	m := &countingMaster{finished: make(chan struct{}, 1024)}
	a, err := New(Config{
		ID: mesos.AgentID{Value: "bench"}, WorkDir: b.TempDir(), Master: m, Log: log, ExecutorHook: hookExecutor,
	})
	if err != nil {
		b.Fatal(err)
	}
	m.agent = a
	defer a.Stop()
	fw := testFramework(false)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			a.Launch(fw, hookExecutorInfo(fmt.Sprintf("e%d", i)), []mesos.TaskInfo{dataTask(fmt.Sprintf("t%d", i), "finish")}, false)
		}
	}()
	for i := 0; i < b.N; i++ {
		<-m.finished
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(b.N), "heap-B/executor")
}

// BenchmarkIdleAgents starts b.N agents (listener, HTTP server, outbox) and reports the heap and
// goroutines each idle agent costs, for simulating thousands of agents in one process.
func BenchmarkIdleAgents(b *testing.B) {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	m := &countingMaster{finished: make(chan struct{}, 1)}
	dir := b.TempDir()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	b.ResetTimer()
	agents := make([]*Agent, 0, b.N)
	for i := 0; i < b.N; i++ {
		a, err := New(Config{ID: mesos.AgentID{Value: fmt.Sprintf("S%d", i)}, WorkDir: dir, Master: m, Log: log})
		if err != nil {
			b.Fatal(err)
		}
		agents = append(agents, a)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(b.N), "heap-B/agent")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(b.N), "goroutines/agent")
	for _, a := range agents {
		a.Stop()
	}
}

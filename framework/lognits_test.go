package framework

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestStatusUpdateLogsReasonOnlyWhenSet: a status without a reason is not logged with the enum's
// zero value (REASON_COMMAND_EXECUTOR_FAILED).
func TestStatusUpdateLogsReasonOnlyWhenSet(t *testing.T) {
	f := newFixture(t, State{Executors: map[string]mesos.ExecutorInfo{}})
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	f.s.log = log
	f.subscribe("fw-1")
	f.update(status("pod-a", "agent-1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("u1")))
	f.update(status("pod-b", "agent-1", mesos.TASK_LOST, mesos.SOURCE_MASTER, mesos.REASON_AGENT_REMOVED.Enum(), []byte("u2")))
	reasons := map[string]any{}
	for _, e := range hook.AllEntries() {
		if e.Message == "task status update" {
			reasons[e.Data["taskID"].(string)] = e.Data["reason"]
		}
	}
	if r, ok := reasons["pod-a"]; !ok || r != nil {
		t.Errorf("status without a reason: logged reason %v (seen: %v)", r, ok)
	}
	if r := reasons["pod-b"]; r != "REASON_AGENT_REMOVED" {
		t.Errorf("status with a reason: logged reason %v", r)
	}
}

// TestDeletedPodLoggedOnce: a deleted pod queued again before the informer saw its deletion is not
// reported deleted a second time.
func TestDeletedPodLoggedOnce(t *testing.T) {
	p := pod("web", "uid-web")
	f := newFixture(t, State{Executors: map[string]mesos.ExecutorInfo{}}, p)
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	for range 2 {
		if err := f.s.deletePod(f.ctx, p, log); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, e := range hook.AllEntries() {
		if e.Message == "task ended: pod deleted" {
			n++
		}
	}
	if n != 1 {
		t.Errorf(`"task ended: pod deleted" logged %d times, want once`, n)
	}
}

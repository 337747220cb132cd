package kubemesos

import (
	"context"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Must show 3: deleting a running pod (as `kubectl delete pod` does: graceful, the pod's grace
// period) sends SIGTERM to its process, the task ends TASK_KILLED, the pod object goes away and the
// Deployment's replacement runs.
func TestDeletePod(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	journal := newHostSignals(t)
	// Each container reports "start" when it starts and "TERM" when it gets SIGTERM; it exits 0 then.
	script := fmt.Sprintf("trap '%[2]s >/dev/null; exit 0' TERM; %[1]s >/dev/null; while true; do sleep 5 & wait $!; done",
		journal.get("start"), journal.get("TERM"))
	e.createDeployment(deployment("victim", 1, podSpec(script)))
	sel := selector(map[string]string{"app": "victim"})
	old := e.waitRunningPods(sel, 1, 2*time.Minute)[0]
	// Running is the container's launch; its script may not have run its first line yet.
	e.eventually("the container's start report", 30*time.Second, func(context.Context) (bool, error) {
		return journal.count("start") == 1, nil
	})

	if err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting pod %s: %v", old.Name, err)
	}
	e.eventually("the deleted pod's object to be gone", time.Minute, func(ctx context.Context) (bool, error) {
		_, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, old.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	e.eventually("the deleted pod's task to end TASK_KILLED", time.Minute, func(ctx context.Context) (bool, error) {
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		for _, task := range tasksOf(st, frameworkName).Completed {
			if taskPodUID(task) == string(old.UID) {
				if task.GetState() != mesos.TASK_KILLED {
					return false, fatalf("task %s ended %v, want TASK_KILLED", task.TaskID.Value, task.GetState())
				}
				return true, nil
			}
		}
		return false, nil
	})
	if n := journal.count("TERM"); n != 1 {
		t.Errorf("%d TERM reports (%d starts), want 1 (the deleted pod's process got SIGTERM)", n, journal.count("start"))
	}
	// The replacement is a new pod (new UID) with its own task.
	repl := e.waitRunningPods(sel, 1, 2*time.Minute)[0]
	if repl.UID == old.UID {
		t.Errorf("the running pod is still the deleted one (%s)", old.UID)
	}
	e.waitDeploymentReady("victim", 1, time.Minute)
}

package kubemesos

import (
	"context"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Must show 2: a Job whose container exits 0 completes; one that exits 1 with restartPolicy Never
// fails with the exit code in its container status; with OnFailure the container is restarted in the
// same pod (here it fails once, then succeeds, so the Job completes with restartCount 1).
func TestJobs(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	attempts := newHostSignals(t)
	jobs := []*batchv1.Job{
		job("succeeds", corev1.RestartPolicyNever, 0, "exit 0"),
		job("fails", corev1.RestartPolicyNever, 0, "exit 1"),
		job("retries", corev1.RestartPolicyOnFailure, 3,
			fmt.Sprintf("if [ \"$(%s)\" != 0 ]; then exit 0; fi; exit 1", attempts.get("retries"))),
	}
	for _, j := range jobs {
		if _, err := e.kube.BatchV1().Jobs(e.ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating job %s: %v", j.Name, err)
		}
	}

	e.waitJobCondition("succeeds", batchv1.JobComplete, 2*time.Minute)
	e.waitJobCondition("fails", batchv1.JobFailed, 2*time.Minute)
	e.waitJobCondition("retries", batchv1.JobComplete, 2*time.Minute)

	type outcome struct {
		Pods         int
		Phase        corev1.PodPhase
		ExitCode     int32
		Reason       string
		RestartCount int32
		TaskState    mesos.TaskState
	}
	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tasks := map[string]mesos.Task{}
	for _, task := range tasksOf(st, frameworkName).Completed {
		tasks[taskPodUID(task)] = task
	}
	for _, tc := range []struct {
		job  string
		want outcome
	}{
		{"succeeds", outcome{Pods: 1, Phase: corev1.PodSucceeded, ExitCode: 0, Reason: "Completed", TaskState: mesos.TASK_FINISHED}},
		{"fails", outcome{Pods: 1, Phase: corev1.PodFailed, ExitCode: 1, Reason: "Error", TaskState: mesos.TASK_FAILED}},
		{"retries", outcome{Pods: 1, Phase: corev1.PodSucceeded, ExitCode: 0, Reason: "Completed", RestartCount: 1, TaskState: mesos.TASK_FINISHED}},
	} {
		t.Run(tc.job, func(t *testing.T) {
			pods, err := e.pods(ctx, selector(map[string]string{"job": tc.job}))
			if err != nil {
				t.Fatal(err)
			}
			if len(pods) != 1 {
				t.Fatalf("%d pods, want 1", len(pods))
			}
			p := pods[0]
			got := outcome{Pods: len(pods), Phase: p.Status.Phase}
			if len(p.Status.ContainerStatuses) == 1 {
				cs := p.Status.ContainerStatuses[0]
				got.RestartCount = cs.RestartCount
				if term := cs.State.Terminated; term != nil {
					got.ExitCode, got.Reason = term.ExitCode, term.Reason
				}
			} else {
				t.Errorf("%d container statuses, want 1", len(p.Status.ContainerStatuses))
			}
			if task, ok := tasks[string(p.UID)]; ok {
				got.TaskState = task.GetState()
			}
			if got != tc.want {
				t.Errorf("pod %s: got %+v, want %+v", p.Name, got, tc.want)
			}
		})
	}
}

func (e *env) waitJobCondition(name string, cond batchv1.JobConditionType, timeout time.Duration) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("job %s %s", name, cond), timeout, func(ctx context.Context) (bool, error) {
		j, err := e.kube.BatchV1().Jobs(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			if c.Type == cond {
				return true, nil
			}
			if c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed {
				return false, fatalf("job %s ended %s (%s: %s), want %s", name, c.Type, c.Reason, c.Message, cond)
			}
		}
		return false, nil
	})
}

package main

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

const fwID = "fw-0000"

func res(cpus, mem float64) []mesos.Resource {
	return []mesos.Resource{
		{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: cpus}},
		{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: mem}},
	}
}

func runningPod(name, uid, node string) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

func masterTask(uid, agentID string, s mesos.TaskState) mesos.Task {
	return mesos.Task{TaskID: mesos.TaskID{Value: taskIDPrefix + uid}, FrameworkID: mesos.FrameworkID{Value: fwID},
		AgentID: mesos.AgentID{Value: agentID}, State: s.Enum(), Resources: res(0.1, 32)}
}

func agentTask(uid string, s mesos.TaskState) agent.TaskState {
	return agent.TaskState{FrameworkID: mesos.FrameworkID{Value: fwID}, State: s,
		Task: mesos.TaskInfo{TaskID: mesos.TaskID{Value: taskIDPrefix + uid}, Resources: res(0.1, 32)}}
}

// world of two agents (h0 = a0, h1 = a1) and one pod p1 running on h0, every account agreeing.
func healthy() observed {
	st := &master.Response_GetState{
		GetFrameworks: &master.Response_GetFrameworks{Frameworks: []master.Response_GetFrameworks_Framework{
			{FrameworkInfo: mesos.FrameworkInfo{Name: "kubemesos", ID: &mesos.FrameworkID{Value: fwID}}}}},
		GetAgents: &master.Response_GetAgents{Agents: []master.Response_GetAgents_Agent{
			{AgentInfo: mesos.AgentInfo{Hostname: "h0", ID: &mesos.AgentID{Value: "a0"}}},
			{AgentInfo: mesos.AgentInfo{Hostname: "h1", ID: &mesos.AgentID{Value: "a1"}}}}},
		GetTasks: &master.Response_GetTasks{Tasks: []mesos.Task{masterTask("u1", "a0", mesos.TASK_RUNNING)}},
	}
	return observed{
		pods:        []corev1.Pod{runningPod("p1", "u1", "h0")},
		deployments: []appsv1.Deployment{{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)}, Status: appsv1.DeploymentStatus{ReadyReplicas: 1}}},
		jobs:        []batchv1.Job{{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: batchv1.JobSpec{Completions: ptr.To[int32](3)}, Status: batchv1.JobStatus{Succeeded: 3, CompletionTime: &metav1.Time{}}}},
		state:       st,
		agents: []agentView{
			{id: "a0", total: res(1, 256), tasks: []agent.TaskState{agentTask("u1", mesos.TASK_RUNNING)},
				executors: []agent.ExecutorState{{Info: mesos.ExecutorInfo{Resources: res(0.1, 64)}}}},
			{id: "a1", total: res(1, 256)},
		},
		bindings: map[string][]int{"p1": {201}},
	}
}

func counts(l *ledgerResult) [4]int {
	return [4]int{len(l.lost), len(l.duplicated), len(l.orphaned), len(l.overCommitted)}
}

// Each fault the ledger must catch, one at a time, lands in its class and only there.
func TestLedgerClassifies(t *testing.T) {
	if got := compare(healthy()); got.clean() == false || got.bindings != 1 {
		t.Fatalf("healthy world: %+v", got)
	}
	for _, tt := range []struct {
		name    string
		breakIt func(o *observed)
		want    [4]int // lost, duplicated, orphaned, over-committed
		says    string
	}{
		{"pod without a task", func(o *observed) {
			o.state.GetTasks.Tasks = nil
			o.agents[0].tasks = nil
		}, [4]int{1, 0, 0, 0}, "no RUNNING task"},
		{"task the agent no longer runs", func(o *observed) { o.agents[0].tasks = nil }, [4]int{1, 0, 0, 0}, "its agent does not run its task"},
		{"pod never placed", func(o *observed) {
			o.pods = append(o.pods, corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p2", UID: "u2"}, Status: corev1.PodStatus{Phase: corev1.PodPending}})
		}, [4]int{1, 0, 0, 0}, "never placed"},
		{"terminal status lost", func(o *observed) {
			o.state.GetTasks.Tasks = nil
			o.state.GetTasks.CompletedTasks = []mesos.Task{masterTask("u1", "a0", mesos.TASK_FINISHED)}
			o.agents[0].tasks = nil
		}, [4]int{1, 0, 0, 0}, "terminal status lost"},
		{"deployment short", func(o *observed) { o.deployments[0].Status.ReadyReplicas = 0 }, [4]int{1, 0, 0, 0}, "0 of 1 replicas ready"},
		{"deployment short says why", func(o *observed) {
			o.deployments[0].Status.ReadyReplicas = 0
			o.deployments[0].Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
			o.pods[0].Labels = map[string]string{"app": "web"}
			o.pods[0].Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}}
			o.pods[0].Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
		}, [4]int{1, 0, 0, 0}, `its pods: p1 Running node="h0" Ready=False(ContainersNotReady ) [c ready=false restarts=0 waiting CrashLoopBackOff ]`},
		{"job unfinished", func(o *observed) { o.jobs[0].Status.CompletionTime = nil }, [4]int{1, 0, 0, 0}, "job j"},
		{"pod live on two agents", func(o *observed) {
			o.state.GetTasks.Tasks = append(o.state.GetTasks.Tasks, masterTask("u1", "a1", mesos.TASK_RUNNING))
			o.agents[1].tasks = []agent.TaskState{agentTask("u1", mesos.TASK_RUNNING)}
		}, [4]int{0, 1, 0, 0}, "live on 2 agents"},
		{"bound twice", func(o *observed) { o.bindings["p1"] = []int{201, 409, 201} }, [4]int{0, 1, 0, 0}, "2 successful Bindings"},
		{"task of a deleted pod", func(o *observed) {
			o.state.GetTasks.Tasks = append(o.state.GetTasks.Tasks, masterTask("gone", "a1", mesos.TASK_RUNNING))
			o.agents[1].tasks = []agent.TaskState{agentTask("gone", mesos.TASK_RUNNING)}
		}, [4]int{0, 0, 1, 0}, "without a pod that should run"},
		{"task of a finished pod", func(o *observed) { o.pods[0].Status.Phase = corev1.PodSucceeded }, [4]int{0, 0, 1, 0}, "without a pod that should run"},
		{"agent runs what the master does not list", func(o *observed) {
			o.agents[1].tasks = []agent.TaskState{agentTask("u1", mesos.TASK_RUNNING)}
		}, [4]int{0, 1, 1, 0}, "the master does not list there"},
		{"agent over-committed", func(o *observed) {
			big := agentTask("u1", mesos.TASK_RUNNING)
			big.Task.Resources = res(0.95, 32) // + the executor's 0.1 > 1 cpu
			o.agents[0].tasks = []agent.TaskState{big}
		}, [4]int{0, 0, 0, 1}, "uses 1.05 cpus"},
		{"ended tasks use nothing", func(o *observed) {
			o.agents[0].tasks = append(o.agents[0].tasks, agent.TaskState{FrameworkID: mesos.FrameworkID{Value: "other"}, State: mesos.TASK_FINISHED,
				Task: mesos.TaskInfo{TaskID: mesos.TaskID{Value: "x"}, Resources: res(4, 4096)}})
		}, [4]int{0, 0, 0, 0}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := healthy()
			tt.breakIt(&o)
			got := compare(o)
			if counts(got) != tt.want {
				t.Errorf("lost/duplicated/orphaned/over-committed = %v, want %v: %+v", counts(got), tt.want, got)
			}
			all := strings.Join(append(append(append(got.lost, got.duplicated...), got.orphaned...), got.overCommitted...), "; ")
			if !strings.Contains(all, tt.says) {
				t.Errorf("findings %q do not say %q", all, tt.says)
			}
		})
	}
}

// The seed fixes the fault schedule: same seed, same faults at the same times; every planned fault is
// inside the first 90% of the phase.
func TestFaultScheduleFollowsTheSeed(t *testing.T) {
	o := options{duration: 10 * time.Minute, frameworkKills: 100, leaderPauses: 5, executorKills: 20, agentPartitions: 10,
		masterFailovers: 5, apiOutage: 30 * time.Second}
	a := planFaults(o, rand.New(rand.NewPCG(7, 7)))
	b := planFaults(o, rand.New(rand.NewPCG(7, 7)))
	c := planFaults(o, rand.New(rand.NewPCG(8, 8)))
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed planned different faults")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("another seed planned the same faults")
	}
	want := map[string]int{faultFrameworkKill: 100, faultLeaderPause: 5, faultExecutorKill: 20, faultAgentPartition: 10,
		faultMasterFailover: 5, faultAPIServerOutage: 1}
	for k, n := range want {
		if got := countKind(a, k); got != n {
			t.Errorf("%s planned %d times, want %d", k, got, n)
		}
	}
	for i, f := range a {
		if f.at < 0 || f.at >= 9*time.Minute || (i > 0 && f.at < a[i-1].at) {
			t.Errorf("fault %d at %v: outside the first 90%% or out of order", i, f.at)
		}
	}
}

// Agent restarts are planned after every other kind: adding them leaves a seed's schedule of the
// other kinds as it was.
func TestAgentRestartsKeepTheOtherFaultsOfASeed(t *testing.T) {
	o := options{duration: 10 * time.Minute, frameworkKills: 100, leaderPauses: 5, executorKills: 20, agentPartitions: 10,
		masterFailovers: 5, apiOutage: 30 * time.Second}
	without := planFaults(o, rand.New(rand.NewPCG(7, 7)))
	o.agentRestarts = 4
	with := planFaults(o, rand.New(rand.NewPCG(7, 7)))
	if got := countKind(with, faultAgentRestart); got != 4 {
		t.Errorf("agent restarts planned %d times, want 4", got)
	}
	var others []fault
	for _, f := range with {
		if f.kind != faultAgentRestart {
			others = append(others, f)
		}
	}
	if !reflect.DeepEqual(others, without) {
		t.Error("planning agent restarts changed the schedule of the other faults")
	}
}

package kubemesos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names fixed by docs/design.md.
const (
	// taskIDPrefix + pod UID is a pod's TaskID.
	taskIDPrefix = "pod-"
	// executorID is the ExecutorID of the one kubemesos executor per agent.
	executorID = "kubemesos-executor"
)

// mesosState asks the simulated master's operator API for GET_STATE (protobuf), as an operator would.
func (e *env) mesosState(ctx context.Context) (*master.Response_GetState, error) {
	resp, err := operatorCall(ctx, e.sim.URL, master.Call{Type: master.Call_GET_STATE})
	if err != nil {
		return nil, err
	}
	if resp.GetState == nil {
		return nil, fmt.Errorf("GET_STATE answered %v without state", resp.Type)
	}
	return resp.GetState, nil
}

func operatorCall(ctx context.Context, masterURL string, call master.Call) (*master.Response, error) {
	body, err := call.Marshal()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, masterURL+"/api/v1", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Accept", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("operator API %v: %w", call.Type, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("operator API %v: %w", call.Type, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("operator API %v: HTTP %d: %s", call.Type, resp.StatusCode, b)
	}
	var out master.Response
	if err := out.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("decoding %v response: %w", call.Type, err)
	}
	return &out, nil
}

// frameworkIDs returns the IDs of the frameworks (active or completed) with the given name.
func frameworkIDs(st *master.Response_GetState, name string) map[string]bool {
	ids := map[string]bool{}
	fws := st.GetGetFrameworks()
	for _, list := range [][]master.Response_GetFrameworks_Framework{fws.GetFrameworks(), fws.GetCompletedFrameworks()} {
		for _, f := range list {
			if f.FrameworkInfo.Name == name && f.FrameworkInfo.ID != nil {
				ids[f.FrameworkInfo.ID.Value] = true
			}
		}
	}
	return ids
}

// tasksOf splits the tasks of the frameworks named name: active (non-terminal, what Mesos counts as
// running or about to), unreachable and completed.
type taskSets struct {
	Active, Unreachable, Completed []mesos.Task
}

func tasksOf(st *master.Response_GetState, name string) taskSets {
	ids := frameworkIDs(st, name)
	var out taskSets
	pick := func(in []mesos.Task) []mesos.Task {
		var sel []mesos.Task
		for _, t := range in {
			if ids[t.FrameworkID.Value] {
				sel = append(sel, t)
			}
		}
		sort.Slice(sel, func(i, j int) bool { return sel[i].TaskID.Value < sel[j].TaskID.Value })
		return sel
	}
	out.Active = pick(st.GetTasks.Tasks)
	out.Unreachable = pick(st.GetTasks.UnreachableTasks)
	out.Completed = pick(st.GetTasks.CompletedTasks)
	return out
}

// agentHostnames maps agent IDs to hostnames (registered agents only).
func agentHostnames(st *master.Response_GetState) map[string]string {
	out := map[string]string{}
	for _, a := range st.GetAgents.GetAgents() {
		out[a.AgentInfo.ID.Value] = a.AgentInfo.Hostname
	}
	return out
}

// taskPodUID is the pod UID a kubemesos task stands for.
func taskPodUID(t mesos.Task) string { return strings.TrimPrefix(t.TaskID.Value, taskIDPrefix) }

// checkTasksMatchPods compares the framework's active Mesos tasks with the pods that should be
// running: one RUNNING task per pod (TaskID pod-<uid>), on the agent whose hostname is the pod's
// Node, and no other active task. It returns "" when they match, else what differs.
func checkTasksMatchPods(st *master.Response_GetState, pods []corev1.Pod) string {
	ts := tasksOf(st, frameworkName)
	hosts := agentHostnames(st)
	want := map[string]corev1.Pod{}
	for _, p := range pods {
		want[string(p.UID)] = p
	}
	var problems []string
	seen := map[string]int{}
	for _, t := range ts.Active {
		uid := taskPodUID(t)
		seen[uid]++
		p, ok := want[uid]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("task %s (%s, %v) has no running pod", t.TaskID.Value, t.Name, t.GetState()))
		case t.GetState() != mesos.TASK_RUNNING:
			problems = append(problems, fmt.Sprintf("task %s of pod %s is %v", t.TaskID.Value, p.Name, t.GetState()))
		case hosts[t.AgentID.Value] != p.Spec.NodeName:
			problems = append(problems, fmt.Sprintf("task %s runs on agent %s (%s) but pod %s is bound to %q",
				t.TaskID.Value, t.AgentID.Value, hosts[t.AgentID.Value], p.Name, p.Spec.NodeName))
		}
	}
	for uid, p := range want {
		switch seen[uid] {
		case 0:
			problems = append(problems, fmt.Sprintf("pod %s has no active task", p.Name))
		case 1:
		default:
			problems = append(problems, fmt.Sprintf("pod %s has %d active tasks", p.Name, seen[uid]))
		}
	}
	sort.Strings(problems)
	return strings.Join(problems, "; ")
}

// scalarOf sums a scalar resource.
func scalarOf(rs []mesos.Resource, name string) float64 {
	var v float64
	for _, r := range rs {
		if r.Name == name && r.GetType() == mesos.SCALAR {
			v += r.GetScalar().GetValue()
		}
	}
	return v
}

// portsOf lists the ports of a resource list.
func portsOf(rs []mesos.Resource) []uint64 {
	var out []uint64
	for _, r := range rs {
		if r.Name != "ports" || r.GetType() != mesos.RANGES {
			continue
		}
		for _, rg := range r.GetRanges().GetRange() {
			for p := rg.Begin; p <= rg.End; p++ {
				out = append(out, p)
			}
		}
	}
	return out
}

// checkAgentsAgree compares what the agents themselves run for the framework (tasks not in a
// terminal state) with the master's active tasks: a task an agent runs that the master does not list
// as active would be an orphan. It returns "" when they agree.
func (e *env) checkAgentsAgree(st *master.Response_GetState) string {
	ids := frameworkIDs(st, frameworkName)
	master := map[string]string{} // task → agent
	for _, t := range tasksOf(st, frameworkName).Active {
		master[t.TaskID.Value] = t.AgentID.Value
	}
	var problems []string
	onAgents := map[string]bool{}
	for _, a := range e.sim.Agents() {
		for _, ts := range a.Tasks() {
			if !ids[ts.FrameworkID.Value] || isTerminal(ts.State) {
				continue
			}
			id := ts.Task.TaskID.Value
			onAgents[id] = true
			if agent, ok := master[id]; !ok || agent != a.ID().Value {
				problems = append(problems, fmt.Sprintf("agent %s runs task %s (%v) that the master does not list there", a.ID().Value, id, ts.State))
			}
		}
	}
	for id, agent := range master {
		if !onAgents[id] {
			problems = append(problems, fmt.Sprintf("the master lists task %s on agent %s, which does not run it", id, agent))
		}
	}
	sort.Strings(problems)
	return strings.Join(problems, "; ")
}

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR, mesos.TASK_LOST,
		mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// podStory is one line on why a pod is where it is, for a failure message: its containers, its
// Events, and its Mesos tasks (pod-<uid>, sandbox-<uid>) with their statuses' states, reasons and
// messages as the master reports them.
func (e *env) podStory(ctx context.Context, p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s uid %s phase %s: %s", p.Name, p.UID, p.Status.Phase, containerSummary(p))
	if p.Status.Message != "" {
		fmt.Fprintf(&b, " message=%q", p.Status.Message)
	}
	if evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name}); err == nil {
		for _, ev := range evs.Items {
			fmt.Fprintf(&b, "; event %s %s: %s (x%d)", ev.Source.Component, ev.Reason, ev.Message, ev.Count)
		}
	}
	if st, err := e.mesosState(ctx); err == nil {
		for _, group := range [][]mesos.Task{st.GetTasks.Tasks, st.GetTasks.UnreachableTasks, st.GetTasks.CompletedTasks} {
			for _, task := range group {
				if !strings.HasSuffix(task.TaskID.Value, "-"+string(p.UID)) {
					continue
				}
				fmt.Fprintf(&b, "; task %s on %s:", task.TaskID.Value, task.AgentID.Value)
				for _, s := range task.Statuses {
					fmt.Fprintf(&b, " %s", s.GetState())
					if s.Reason != nil {
						fmt.Fprintf(&b, "(%s)", s.GetReason())
					}
					if s.GetMessage() != "" {
						fmt.Fprintf(&b, " %q", s.GetMessage())
					}
				}
			}
		}
	}
	return b.String() + "]"
}

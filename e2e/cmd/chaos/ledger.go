package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubemesos/kubemesos/e2e/replicas"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// taskIDPrefix + pod UID is a pod's Mesos TaskID (docs/design.md).
const taskIDPrefix = "pod-"

// ledgerResult lists what the ledger found wrong, by class.
type ledgerResult struct {
	lost, duplicated, orphaned, overCommitted []string
	bindings                                  int // successful Binding creates
}

func (l *ledgerResult) clean() bool {
	return len(l.lost)+len(l.duplicated)+len(l.orphaned)+len(l.overCommitted) == 0
}

// settle waits up to bound for the cluster to converge: the ledger clean, every Deployment ready,
// every Job finished, no pod pending or being deleted.
func (w *world) settle(ctx context.Context, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	for {
		l, err := w.ledger(ctx)
		quiet, why := w.quiescent(ctx)
		if err == nil && l.clean() && quiet {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			w.log.WithField("why", why).WithError(err).Warn("not converged within the bound")
			return false
		}
		time.Sleep(2 * time.Second)
	}
}

// quiescent: Deployments ready, Jobs finished, no pod pending or terminating.
func (w *world) quiescent(ctx context.Context) (bool, string) {
	ds, err := w.kube.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err.Error()
	}
	for _, d := range ds.Items {
		if d.Status.ObservedGeneration < d.Generation || d.Status.ReadyReplicas != *d.Spec.Replicas || d.Status.Replicas != *d.Spec.Replicas {
			return false, fmt.Sprintf("deployment %s: %d/%d ready", d.Name, d.Status.ReadyReplicas, *d.Spec.Replicas)
		}
	}
	js, err := w.kube.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err.Error()
	}
	for _, j := range js.Items {
		if j.Status.CompletionTime == nil && j.Status.Failed <= *j.Spec.BackoffLimit {
			return false, fmt.Sprintf("job %s: %d succeeded", j.Name, j.Status.Succeeded)
		}
	}
	pods, err := w.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err.Error()
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodPending {
			return false, fmt.Sprintf("pod %s: %s, deleting %v", p.Name, p.Status.Phase, p.DeletionTimestamp != nil)
		}
	}
	return true, ""
}

func shouldRun(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func terminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR, mesos.TASK_LOST,
		mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// observed is what the ledger compares, read from the API server, the master and each agent.
type observed struct {
	pods        []corev1.Pod
	deployments []appsv1.Deployment
	jobs        []batchv1.Job
	state       *master.Response_GetState
	agents      []agentView
	// bindings are the API server's answers to each pod's Binding creates (audit log), by pod name.
	bindings map[string][]int
}

// agentView is one agent's own account: its resources, tasks and executors.
type agentView struct {
	id        string
	total     []mesos.Resource
	tasks     []agent.TaskState
	executors []agent.ExecutorState
}

// ledger reads the API server's pods, Jobs, Deployments and Binding audit log, the master's state
// and every agent's own tasks and executors, and compares them.
func (w *world) ledger(ctx context.Context) (*ledgerResult, error) {
	var o observed
	pods, err := w.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ds, err := w.kube.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	js, err := w.kube.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	o.pods, o.deployments, o.jobs = pods.Items, ds.Items, js.Items
	if o.state, err = w.mesosState(ctx); err != nil {
		return nil, err
	}
	for _, a := range w.sim.Agents() {
		o.agents = append(o.agents, agentView{id: a.ID().Value, total: a.Info().Resources, tasks: a.Tasks(), executors: a.Executors()})
	}
	if o.bindings, err = w.bindingCodes(); err != nil {
		return nil, err
	}
	return compare(o), nil
}

// compare is the ledger proper, independent of the framework:
//   - lost: a pod that should run without a RUNNING task on its Node's agent (master and agent), never
//     placed, or whose task ended while the pod still shows it running (a terminal status lost); a
//     Deployment short of ready replicas; a Job not finished;
//   - duplicated: a pod live on more than one agent, or bound by more than one successful Binding;
//   - orphaned: a live task without a pod that should run, or one an agent runs that the master does
//     not list there;
//   - over-committed: an agent whose live tasks and executors use more cpus or mem than it has.
func compare(o observed) *ledgerResult {
	l := &ledgerResult{}
	st := o.state
	fws := map[string]bool{}
	for _, list := range [][]master.Response_GetFrameworks_Framework{st.GetGetFrameworks().GetFrameworks(), st.GetGetFrameworks().GetCompletedFrameworks()} {
		for _, f := range list {
			if f.FrameworkInfo.Name == "kubemesos" && f.FrameworkInfo.ID != nil {
				fws[f.FrameworkInfo.ID.Value] = true
			}
		}
	}
	hostAgent := map[string]string{}
	for _, a := range st.GetGetAgents().GetAgents() {
		hostAgent[a.AgentInfo.Hostname] = a.AgentInfo.ID.Value
	}
	byUID := map[string]*corev1.Pod{}
	for i := range o.pods {
		byUID[string(o.pods[i].UID)] = &o.pods[i]
	}

	// Live tasks: uid → agent → state, from the master and from the agents.
	masterLive := map[string]map[string]mesos.TaskState{}
	masterCount := map[string]int{}
	for _, group := range [][]mesos.Task{st.GetGetTasks().GetTasks(), st.GetGetTasks().GetUnreachableTasks()} {
		for _, t := range group {
			uid, ok := strings.CutPrefix(t.TaskID.Value, taskIDPrefix)
			if !ok || !fws[t.FrameworkID.Value] {
				continue
			}
			if masterLive[uid] == nil {
				masterLive[uid] = map[string]mesos.TaskState{}
			}
			masterLive[uid][t.AgentID.Value] = t.GetState()
			masterCount[uid]++
		}
	}
	agentLive := map[string]map[string]mesos.TaskState{}
	for _, a := range o.agents {
		var cpus, mem float64
		for _, ts := range a.tasks {
			if terminal(ts.State) {
				continue
			}
			cpus += scalar(ts.Task.Resources, "cpus")
			mem += scalar(ts.Task.Resources, "mem")
			uid, ok := strings.CutPrefix(ts.Task.TaskID.Value, taskIDPrefix)
			if !ok || !fws[ts.FrameworkID.Value] {
				continue
			}
			if agentLive[uid] == nil {
				agentLive[uid] = map[string]mesos.TaskState{}
			}
			agentLive[uid][a.id] = ts.State
			if _, listed := masterLive[uid][a.id]; !listed {
				l.orphaned = append(l.orphaned, fmt.Sprintf("agent %s runs task %s (%v), which the master does not list there", a.id, ts.Task.TaskID.Value, ts.State))
			}
		}
		for _, e := range a.executors {
			cpus += scalar(e.Info.Resources, "cpus")
			mem += scalar(e.Info.Resources, "mem")
		}
		if cpus > scalar(a.total, "cpus")+1e-9 || mem > scalar(a.total, "mem")+1e-9 {
			l.overCommitted = append(l.overCommitted, fmt.Sprintf("agent %s uses %.2f cpus / %.0f MB of %.2f / %.0f",
				a.id, cpus, mem, scalar(a.total, "cpus"), scalar(a.total, "mem")))
		}
	}

	lost := map[string]string{}
	for uid, p := range byUID {
		if !shouldRun(p) {
			continue
		}
		if p.Spec.NodeName == "" {
			lost[uid] = fmt.Sprintf("pod %s was never placed", p.Name)
			continue
		}
		agent := hostAgent[p.Spec.NodeName]
		if s, ok := masterLive[uid][agent]; !ok || s != mesos.TASK_RUNNING {
			lost[uid] = fmt.Sprintf("pod %s (%s on %s) has no RUNNING task there in the master (%v)", p.Name, p.Status.Phase, p.Spec.NodeName, s)
		} else if s, ok := agentLive[uid][agent]; !ok || s != mesos.TASK_RUNNING {
			lost[uid] = fmt.Sprintf("pod %s (%s on %s): its agent does not run its task (%v)", p.Name, p.Status.Phase, p.Spec.NodeName, s)
		}
	}
	for _, t := range st.GetGetTasks().GetCompletedTasks() {
		uid, ok := strings.CutPrefix(t.TaskID.Value, taskIDPrefix)
		if !ok || !fws[t.FrameworkID.Value] || len(masterLive[uid]) > 0 {
			continue
		}
		if p := byUID[uid]; p != nil && shouldRun(p) && p.Status.Phase == corev1.PodRunning {
			lost[uid] = fmt.Sprintf("pod %s is Running but its task ended %v: terminal status lost", p.Name, t.GetState())
		}
	}
	for _, msg := range lost {
		l.lost = append(l.lost, msg)
	}
	l.lost = append(l.lost, workloadsShort(o.deployments, o.jobs, o.pods)...)

	for uid := range union(masterLive, agentLive) {
		agents := map[string]bool{}
		for a := range masterLive[uid] {
			agents[a] = true
		}
		for a := range agentLive[uid] {
			agents[a] = true
		}
		name := uid
		if p := byUID[uid]; p != nil {
			name = p.Name
		}
		if len(agents) > 1 || masterCount[uid] > 1 {
			l.duplicated = append(l.duplicated, fmt.Sprintf("pod %s live on %d agents (%d tasks in the master)", name, len(agents), masterCount[uid]))
		}
		if p := byUID[uid]; p == nil || !shouldRun(p) {
			l.orphaned = append(l.orphaned, fmt.Sprintf("task %s%s live without a pod that should run (pod %s)", taskIDPrefix, uid, name))
		}
	}

	for name, cs := range o.bindings {
		ok := 0
		for _, c := range cs {
			if c == http.StatusCreated || c == http.StatusOK {
				ok++
			}
		}
		l.bindings += ok
		if ok > 1 {
			l.duplicated = append(l.duplicated, fmt.Sprintf("pod %s bound by %d successful Bindings (answers %v)", name, ok, cs))
		}
	}
	return l
}

// workloadsShort lists Deployments short of ready replicas and Jobs not finished. A short
// Deployment comes with its pods as the API server has them, so the ledger says whether pods are
// missing (the controllers) or unready (kubemesos).
func workloadsShort(ds []appsv1.Deployment, js []batchv1.Job, pods []corev1.Pod) []string {
	var out []string
	for _, d := range ds {
		if d.Status.ReadyReplicas < *d.Spec.Replicas {
			out = append(out, fmt.Sprintf("deployment %s: %d of %d replicas ready (status generation %d of %d); its pods: %s",
				d.Name, d.Status.ReadyReplicas, *d.Spec.Replicas, d.Status.ObservedGeneration, d.Generation, describePods(d, pods)))
		}
	}
	for _, j := range js {
		if j.Status.CompletionTime == nil {
			out = append(out, fmt.Sprintf("job %s: %d of %d completions, %d failed pods", j.Name, j.Status.Succeeded, *j.Spec.Completions, j.Status.Failed))
		}
	}
	return out
}

func union(a, b map[string]map[string]mesos.TaskState) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func scalar(rs []mesos.Resource, name string) float64 {
	var v float64
	for _, r := range rs {
		if r.Name == name && r.GetType() == mesos.SCALAR {
			v += r.GetScalar().GetValue()
		}
	}
	return v
}

// bindingCodes reads the audit log: per pod of the namespace, the API server's answers to its
// Binding creates. The API server may be writing while it is read: a half-written last line is
// dropped, and a log not written yet is empty.
func (w *world) bindingCodes() (map[string][]int, error) {
	return replicas.ReadBindingCodes(w.auditLog, namespace, replicas.ReadOptions{TolerateCutLastLine: true, MissingIsEmpty: true})
}

// mesosState asks the master's operator API for GET_STATE, as an operator would.
func (w *world) mesosState(ctx context.Context) (*master.Response_GetState, error) {
	body, err := (&master.Call{Type: master.Call_GET_STATE}).Marshal()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.sim.URL+"/api/v1", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Accept", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET_STATE: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET_STATE: HTTP %d: %s", resp.StatusCode, b)
	}
	var out master.Response
	if err := out.Unmarshal(b); err != nil {
		return nil, err
	}
	if out.GetState == nil {
		return nil, fmt.Errorf("GET_STATE answered without state")
	}
	return out.GetState, nil
}

// describePods summarizes the pods d's selector matches: each one's phase, readiness and, for the
// unready, what its conditions and containers say.
func describePods(d appsv1.Deployment, pods []corev1.Pod) string {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return err.Error()
	}
	var parts []string
	for i := range pods {
		p := &pods[i]
		if !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		desc := fmt.Sprintf("%s %s node=%q", p.Name, p.Status.Phase, p.Spec.NodeName)
		if p.DeletionTimestamp != nil {
			desc += " deleting"
		}
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = c.Status == corev1.ConditionTrue
				if !ready {
					desc += fmt.Sprintf(" Ready=%s(%s %s)", c.Status, c.Reason, c.Message)
				}
			}
		}
		if ready {
			desc += " ready"
		} else {
			for _, cs := range p.Status.ContainerStatuses {
				desc += fmt.Sprintf(" [%s ready=%v restarts=%d %s]", cs.Name, cs.Ready, cs.RestartCount, containerState(cs.State))
			}
		}
		parts = append(parts, desc)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running since " + s.Running.StartedAt.UTC().Format(time.RFC3339)
	case s.Waiting != nil:
		return "waiting " + s.Waiting.Reason + " " + s.Waiting.Message
	case s.Terminated != nil:
		return fmt.Sprintf("terminated %s exit %d", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "no state"
}

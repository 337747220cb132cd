package mesossim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

func timeInfo(t time.Time) *mesos.TimeInfo { return &mesos.TimeInfo{Nanoseconds: t.UnixNano()} }

func sortTasks(ts []*task) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].task.TaskID.Value < ts[j].task.TaskID.Value })
}

func (m *Master) versionInfo() mesos.VersionInfo {
	bt := float64(m.startTime.Unix())
	return mesos.VersionInfo{Version: Version, BuildUser: strPtr("mesossim"), BuildTime: &bt, GitSHA: strPtr("kubemesos-mesossim")}
}

// serveOperator is the master's operator API POST /api/v1 (GET_HEALTH, GET_VERSION, GET_STATE,
// GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, GET_ROLES, GET_MASTER), JSON or protobuf.
func (m *Master) serveOperator(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r)
		return
	}
	principal, ok := m.authenticateOperator(w, r)
	if !ok {
		return
	}
	var call master.Call
	hasType, status, msg := decodeBody(r, &call, 1)
	if status != 0 {
		httpError(w, status, msg)
		return
	}
	if !hasType {
		httpError(w, http.StatusBadRequest, "Failed to validate master::Call: Expecting 'type' to be present")
		return
	}
	var accept string
	switch {
	case accepts(r, "Accept", mediaJSON):
		accept = mediaJSON
	case accepts(r, "Accept", mediaProtobuf):
		accept = mediaProtobuf
	default:
		httpError(w, http.StatusNotAcceptable, "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'")
		return
	}
	resp := master.Response{}
	switch call.Type {
	case master.Call_GET_HEALTH:
		resp.Type, resp.GetHealth = master.Response_GET_HEALTH, &master.Response_GetHealth{Healthy: true}
	case master.Call_GET_VERSION:
		resp.Type, resp.GetVersion = master.Response_GET_VERSION, &master.Response_GetVersion{VersionInfo: m.versionInfo()}
	case master.Call_GET_STATE:
		resp.Type, resp.GetState = master.Response_GET_STATE, m.getState()
	case master.Call_GET_AGENTS:
		resp.Type, resp.GetAgents = master.Response_GET_AGENTS, m.getAgents()
	case master.Call_GET_FRAMEWORKS:
		resp.Type, resp.GetFrameworks = master.Response_GET_FRAMEWORKS, m.getFrameworks()
	case master.Call_GET_TASKS:
		resp.Type, resp.GetTasks = master.Response_GET_TASKS, m.getTasks()
	case master.Call_GET_EXECUTORS:
		resp.Type, resp.GetExecutors = master.Response_GET_EXECUTORS, m.getExecutors()
	case master.Call_GET_ROLES:
		resp.Type, resp.GetRoles = master.Response_GET_ROLES, m.getRoles()
	case master.Call_GET_MASTER:
		info := m.Info()
		resp.Type, resp.GetMaster = master.Response_GET_MASTER, &master.Response_GetMaster{MasterInfo: &info,
			StartTime: float64Ptr(float64(m.startTime.UnixNano()) / 1e9), ElectedTime: float64Ptr(float64(m.elected.UnixNano()) / 1e9)}
	case master.Call_GET_MAINTENANCE_STATUS, master.Call_GET_MAINTENANCE_SCHEDULE, master.Call_UPDATE_MAINTENANCE_SCHEDULE,
		master.Call_START_MAINTENANCE, master.Call_STOP_MAINTENANCE:
		r, status, msg := m.maintenanceCall(&call)
		if r == nil {
			if status != http.StatusOK {
				httpError(w, status, msg)
			} else {
				w.WriteHeader(http.StatusOK)
			}
			return
		}
		resp = *r
	case master.Call_GET_QUOTA, master.Call_UPDATE_QUOTA:
		r, status, msg := m.quotaCall(&call, principal)
		if r == nil {
			if status != http.StatusOK {
				httpError(w, status, msg)
			} else {
				w.WriteHeader(http.StatusOK)
			}
			return
		}
		resp = *r
	case master.Call_UNKNOWN:
		httpError(w, http.StatusNotImplemented, "501 Not Implemented.")
		return
	default:
		httpError(w, http.StatusNotImplemented, fmt.Sprintf("Call %s is not supported by the simulator", call.Type))
		return
	}
	b, err := encodeAs(accept, &resp)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", accept)
	// An explicit length: mesos-go's client treats a response of unknown length as a RecordIO stream.
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func float64Ptr(f float64) *float64 { return &f }

// getRoles is ReadOnlyHandler::getRoles: every known role with its weight, its frameworks and what it
// holds (allocated plus offered) of cpus, mem, disk and gpus, in ResourceQuantities' name order.
func (m *Master) getRoles() *master.Response_GetRoles {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &master.Response_GetRoles{}
	for _, r := range m.alloc.Roles() {
		role := mesos.Role{Name: r.Name, Weight: m.alloc.Weight(r.Name)}
		for _, name := range []string{"cpus", "disk", "gpus", "mem"} {
			if v, ok := r.Allocated[name]; ok {
				role.Resources = append(role.Resources, mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}})
			}
		}
		for _, id := range r.Frameworks {
			role.Frameworks = append(role.Frameworks, mesos.FrameworkID{Value: id})
		}
		out.Roles = append(out.Roles, role)
	}
	return out
}

func (m *Master) getState() *master.Response_GetState {
	return &master.Response_GetState{GetTasks: m.getTasks(), GetExecutors: m.getExecutors(), GetFrameworks: m.getFrameworks(), GetAgents: m.getAgents()}
}

func (m *Master) getAgents() *master.Response_GetAgents {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &master.Response_GetAgents{}
	usages := m.usageByAgent()
	for _, id := range m.agentIDs() {
		ag := m.agents[id]
		if ag.unreachable {
			continue
		}
		total, used, offered := ag.info.Resources, mesos.Resources(nil), mesos.Resources(nil)
		if u := usages[id]; u != nil {
			used, offered = u.used, u.offered
		}
		pid := ag.pid()
		a := master.Response_GetAgents_Agent{
			AgentInfo: ag.info, Active: true, Version: Version, PID: &pid, RegisteredTime: timeInfo(ag.registered),
			TotalResources: total, AllocatedResources: used, OfferedResources: offered,
		}
		if ag.reregistered != nil {
			a.ReregisteredTime = timeInfo(*ag.reregistered)
		}
		out.Agents = append(out.Agents, a)
	}
	return out
}

func (m *Master) agentIDs() []string {
	ids := make([]string, 0, len(m.agents))
	for id := range m.agents {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

type usage struct{ used, offered mesos.Resources }

// usageByAgent sums, in one pass, what tasks and executors use and what is offered on each agent.
func (m *Master) usageByAgent() map[string]*usage {
	out := make(map[string]*usage, len(m.agents))
	get := func(id string) *usage {
		u, ok := out[id]
		if !ok {
			u = &usage{}
			out[id] = u
		}
		return u
	}
	for _, f := range m.frameworks {
		for _, t := range f.tasks {
			if !t.terminal {
				u := get(t.task.AgentID.Value)
				u.used = append(u.used, t.task.Resources...)
			}
		}
		for aid, execs := range f.executors {
			u := get(aid)
			for _, e := range execs {
				u.used = append(u.used, e.Resources...)
			}
		}
	}
	for _, o := range m.offers {
		u := get(o.offer.AgentID.Value)
		u.offered = append(u.offered, o.offer.Resources...)
	}
	for _, u := range out {
		u.used = mesos.Resources(nil).Plus(u.used...)
		u.offered = mesos.Resources(nil).Plus(u.offered...)
	}
	return out
}

func (m *Master) sortedFrameworks() []*framework {
	out := make([]*framework, 0, len(m.frameworks))
	for _, f := range m.frameworks {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (m *Master) frameworkMsg(f *framework) master.Response_GetFrameworks_Framework {
	fw := master.Response_GetFrameworks_Framework{
		FrameworkInfo: f.info, Active: f.active, Connected: f.stream != nil, Recovered: false,
		RegisteredTime: timeInfo(f.registered),
	}
	if f.reregTime != nil {
		fw.ReregisteredTime = timeInfo(*f.reregTime)
	}
	if f.unregTime != nil {
		fw.UnregisteredTime = timeInfo(*f.unregTime)
	}
	var ids []string
	for id := range f.offers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fw.Offers = append(fw.Offers, m.offers[id].offer)
		fw.OfferedResources = append(fw.OfferedResources, m.offers[id].offer.Resources...)
	}
	for _, t := range sortedTasks(f.tasks) {
		if !t.terminal {
			fw.AllocatedResources = append(fw.AllocatedResources, t.task.Resources...)
		}
	}
	return fw
}

func (m *Master) getFrameworks() *master.Response_GetFrameworks {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &master.Response_GetFrameworks{}
	for _, f := range m.sortedFrameworks() {
		out.Frameworks = append(out.Frameworks, m.frameworkMsg(f))
	}
	for _, f := range m.completed {
		out.CompletedFrameworks = append(out.CompletedFrameworks, m.frameworkMsg(f))
	}
	return out
}

func (m *Master) getExecutors() *master.Response_GetExecutors {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &master.Response_GetExecutors{}
	for _, f := range m.sortedFrameworks() {
		for _, aid := range sortedKeys(f.executors) {
			execs := f.executors[aid]
			for _, eid := range sortedKeys(execs) {
				out.Executors = append(out.Executors, master.Response_GetExecutors_Executor{ExecutorInfo: execs[eid], AgentID: mesos.AgentID{Value: aid}})
			}
		}
	}
	return out
}

func sortedKeys[V any](mp map[string]V) []string {
	out := make([]string, 0, len(mp))
	for k := range mp {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (m *Master) getTasks() *master.Response_GetTasks {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &master.Response_GetTasks{}
	for _, f := range m.sortedFrameworks() {
		for _, t := range sortedTasks(f.tasks) {
			out.Tasks = append(out.Tasks, t.task)
		}
		for _, t := range sortedTasks(f.unreachable) {
			out.UnreachableTasks = append(out.UnreachableTasks, t.task)
		}
		for _, t := range f.completed {
			out.CompletedTasks = append(out.CompletedTasks, t.task)
		}
	}
	for _, f := range m.completed {
		for _, t := range f.completed {
			out.CompletedTasks = append(out.CompletedTasks, t.task)
		}
	}
	return out
}

func (m *Master) serveVersion(w http.ResponseWriter, r *http.Request) {
	v := m.versionInfo()
	writeJSON(w, map[string]any{"version": v.Version, "build_user": v.GetBuildUser(), "build_time": v.GetBuildTime(), "git_sha": v.GetGitSHA()})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", mediaJSON)
	_ = json.NewEncoder(w).Encode(v)
}

// resourcesModel renders resources like Mesos' JSON model: scalars as numbers, ranges "[a-b, c-d]",
// sets "{a, b}"; cpus, gpus, mem and disk always present.
func resourcesModel(rs mesos.Resources) map[string]any {
	out := map[string]any{"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
	for _, r := range rs {
		switch r.GetType() {
		case mesos.SCALAR:
			v, _ := out[r.Name].(float64)
			out[r.Name] = v + r.GetScalar().GetValue()
		case mesos.RANGES:
			var parts []string
			for _, rg := range r.GetRanges().GetRange() {
				parts = append(parts, fmt.Sprintf("%d-%d", rg.Begin, rg.End))
			}
			prev, _ := out[r.Name].(string)
			if prev != "" {
				parts = append([]string{strings.Trim(prev, "[]")}, parts...)
			}
			out[r.Name] = "[" + strings.Join(parts, ", ") + "]"
		case mesos.SET:
			out[r.Name] = "{" + strings.Join(r.GetSet().GetItem(), ", ") + "}"
		}
	}
	return out
}

func attributesModel(as []mesos.Attribute) map[string]any {
	out := map[string]any{}
	for _, a := range as {
		switch a.Type {
		case mesos.SCALAR:
			out[a.Name] = a.GetScalar().GetValue()
		case mesos.TEXT:
			out[a.Name] = a.GetText().GetValue()
		case mesos.RANGES:
			var parts []string
			for _, rg := range a.GetRanges().GetRange() {
				parts = append(parts, fmt.Sprintf("%d-%d", rg.Begin, rg.End))
			}
			out[a.Name] = "[" + strings.Join(parts, ", ") + "]"
		case mesos.SET:
			out[a.Name] = "{" + strings.Join(a.GetSet().GetItem(), ", ") + "}"
		}
	}
	return out
}

func taskModel(t *task) map[string]any {
	statuses := []map[string]any{}
	for _, s := range t.task.Statuses {
		statuses = append(statuses, map[string]any{"state": s.GetState().String(), "timestamp": s.GetTimestamp()})
	}
	out := map[string]any{
		"id": t.task.TaskID.Value, "name": t.task.Name, "framework_id": t.task.FrameworkID.Value,
		"executor_id": t.task.GetExecutorID().GetValue(), "slave_id": t.task.AgentID.Value,
		"state": t.task.GetState().String(), "resources": resourcesModel(t.task.Resources), "role": t.role,
		"statuses": statuses,
	}
	if t.task.Labels != nil {
		var labels []map[string]string
		for _, l := range t.task.Labels.Labels {
			labels = append(labels, map[string]string{"key": l.Key, "value": l.GetValue()})
		}
		out["labels"] = labels
	}
	return out
}

// serveState is GET /master/state: the JSON the real master's state endpoint returns (the fields
// tooling reads: frameworks with tasks, slaves with resources/used_resources/attributes...).
func (m *Master) serveState(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, m.stateModel()) // encoded without holding the master's lock
}

func (m *Master) stateModel() map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	secs := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	var slaves []map[string]any
	activated := 0
	usages := m.usageByAgent()
	for _, id := range m.agentIDs() {
		ag := m.agents[id]
		if ag.unreachable {
			continue
		}
		activated++
		total, used, offered := ag.info.Resources, mesos.Resources(nil), mesos.Resources(nil)
		if u := usages[id]; u != nil {
			used, offered = u.used, u.offered
		}
		s := map[string]any{
			"id": id, "pid": ag.pid(), "hostname": ag.info.Hostname,
			"port": ag.info.GetPort(), "registered_time": secs(ag.registered),
			"resources": resourcesModel(total), "used_resources": resourcesModel(used),
			"offered_resources": resourcesModel(offered), "unreserved_resources": resourcesModel(total),
			"reserved_resources": map[string]any{}, "attributes": attributesModel(ag.info.Attributes),
			"active": true, "version": Version,
		}
		slaves = append(slaves, s)
	}
	fwModel := func(f *framework) map[string]any {
		tasks, completed := []map[string]any{}, []map[string]any{}
		var used mesos.Resources
		for _, t := range sortedTasks(f.tasks) {
			tasks = append(tasks, taskModel(t))
			if !t.terminal {
				used = used.Plus(t.task.Resources...)
			}
		}
		for _, t := range sortedTasks(f.unreachable) {
			tasks = append(tasks, taskModel(t))
		}
		for _, t := range f.completed {
			completed = append(completed, taskModel(t))
		}
		var offered mesos.Resources
		offers := []map[string]any{}
		for _, id := range sortedKeys(f.offers) {
			o := m.offers[id]
			offered = offered.Plus(o.offer.Resources...)
			offers = append(offers, map[string]any{"id": id, "framework_id": f.id, "slave_id": o.offer.AgentID.Value, "resources": resourcesModel(o.offer.Resources)})
		}
		var caps []string
		for _, c := range f.info.Capabilities {
			caps = append(caps, c.Type.String())
		}
		executors := []map[string]any{}
		for _, aid := range sortedKeys(f.executors) {
			for _, eid := range sortedKeys(f.executors[aid]) {
				e := f.executors[aid][eid]
				executors = append(executors, map[string]any{"executor_id": eid, "name": e.GetName(), "framework_id": f.id, "slave_id": aid, "resources": resourcesModel(e.Resources)})
			}
		}
		out := map[string]any{
			"id": f.id, "name": f.info.Name, "user": f.info.User, "role": f.info.GetRole(), "roles": f.roles,
			"failover_timeout": f.info.GetFailoverTimeout(), "checkpoint": f.info.GetCheckpoint(),
			"hostname": f.info.GetHostname(), "webui_url": f.info.GetWebUiURL(), "capabilities": caps,
			"active": f.active, "connected": f.stream != nil, "registered_time": secs(f.registered),
			"used_resources": resourcesModel(used), "offered_resources": resourcesModel(offered),
			"resources": resourcesModel(used.Plus(offered...)), "tasks": tasks, "completed_tasks": completed,
			"offers": offers, "executors": executors, "unregistered_time": 0.0,
		}
		if f.unregTime != nil {
			out["unregistered_time"] = secs(*f.unregTime)
		}
		if f.reregTime != nil {
			out["reregistered_time"] = secs(*f.reregTime)
		}
		return out
	}
	frameworks, completed := []map[string]any{}, []map[string]any{}
	for _, f := range m.sortedFrameworks() {
		frameworks = append(frameworks, fwModel(f))
	}
	for _, f := range m.completed {
		completed = append(completed, fwModel(f))
	}
	if slaves == nil {
		slaves = []map[string]any{}
	}
	return map[string]any{
		"version": Version, "git_sha": "kubemesos-mesossim", "build_user": "mesossim",
		"start_time": secs(m.startTime), "elected_time": secs(m.elected), "id": m.info.ID,
		"pid": m.info.GetPID(), "hostname": m.info.GetHostname(), "leader": m.info.GetPID(),
		"leader_info":      map[string]any{"id": m.info.ID, "pid": m.info.GetPID(), "port": m.info.GetPort(), "hostname": m.info.GetHostname()},
		"activated_slaves": activated, "deactivated_slaves": 0, "unreachable_slaves": len(m.agents) - activated,
		"slaves": slaves, "frameworks": frameworks, "completed_frameworks": completed,
		"orphan_tasks": []any{}, "unregistered_frameworks": []any{},
		"flags": map[string]any{
			"allocation_interval": m.cfg.AllocationInterval.String(), "offer_timeout": m.cfg.OfferTimeout.String(),
			"weights":                              weightsFlag(m.cfg.Weights),
			"fair_sharing_excluded_resource_names": strings.Join(m.cfg.FairSharingExcludedResourceNames, ","),
		},
	}
}

func weightsFlag(ws map[string]float64) string {
	var parts []string
	for _, r := range sortedKeys(ws) {
		parts = append(parts, fmt.Sprintf("%s=%g", r, ws[r]))
	}
	return strings.Join(parts, ",")
}

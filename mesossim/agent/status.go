package agent

import (
	"bufio"
	"context"
	"math"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
)

// containerStatusLocked is MesosContainerizer::status of a live container: its ContainerID (with its
// parents), the pid of its init as executor_pid, and the isolators' parts (network/cni's network_infos
// with the container's addresses; a nested container without networks of its own reports its
// parent's). ok is false for a container the agent does not know or that has terminated ("Unknown
// container" in Mesos, whose callers then leave the status out).
func (a *Agent) containerStatusLocked(key string) (mesos.ContainerStatus, bool) {
	c := a.containers[key]
	if c == nil || !c.live() {
		return mesos.ContainerStatus{}, false
	}
	if a.cz != nil && c.cz != nil {
		if cs, err := a.cz.Status(context.Background(), key); err == nil {
			return cs, true
		}
	}
	id := c.id
	cs := mesos.ContainerStatus{ContainerID: &id}
	if pid := c.pidLocked(); pid > 0 {
		p := uint32(pid)
		cs.ExecutorPID = &p
	}
	return cs, true
}

// addContainerStatusLocked is what Slave::statusUpdate and _statusUpdate add to a task's status before
// forwarding it: for a task that reached its executor (not an agent's TASK_LOST/TASK_DROPPED of it), the
// status of the container the executor names in container_status.container_id (a nested container),
// else of the executor's container, merged into the status; with no network_infos then, one with the
// agent's IP.
func (a *Agent) addContainerStatusLocked(t *task, status *mesos.TaskStatus) {
	if t == nil || !t.launched {
		return
	}
	state := status.GetState()
	if status.GetSource() == mesos.SOURCE_AGENT && (state == mesos.TASK_LOST || state == mesos.TASK_DROPPED) {
		return
	}
	key := t.executor.containerID.Value
	if id := status.GetContainerStatus().GetContainerID(); id != nil {
		key = containerKey(id)
	}
	cs, ok := a.containerStatusLocked(key)
	if !ok {
		return
	}
	merged := mesos.ContainerStatus{}
	if status.ContainerStatus != nil {
		merged = *status.ContainerStatus
		merged.NetworkInfos = append([]mesos.NetworkInfo(nil), merged.NetworkInfos...)
	}
	// ContainerStatus::MergeFrom: set fields replace, repeated ones append.
	merged.ContainerID = cs.ContainerID
	if cs.ExecutorPID != nil {
		merged.ExecutorPID = cs.ExecutorPID
	}
	if cs.CgroupInfo != nil {
		merged.CgroupInfo = cs.CgroupInfo
	}
	merged.NetworkInfos = append(merged.NetworkInfos, cs.NetworkInfos...)
	if len(merged.NetworkInfos) == 0 {
		// The protocol is left unset (IPv4 by default), as Mesos leaves it.
		ip := a.agentIP()
		merged.NetworkInfos = []mesos.NetworkInfo{{IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: &ip}}}}
	}
	status.ContainerStatus = &merged
}

// agentIP is the IP of the agent's libprocess address: its endpoint's, or, bound to every address,
// its hostname's.
func (a *Agent) agentIP() string {
	host, _, _ := net.SplitHostPort(a.endpoint)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	if ips, err := net.LookupIP(a.cfg.Hostname); err == nil {
		for _, ip := range ips {
			if ip.To4() != nil {
				return ip.String()
			}
		}
	}
	return host
}

// getContainers answers GET_CONTAINERS as Http::__containers does: every executor's container that has
// not terminated (framework_id, executor_id, executor_name), then, with show_nested, the live containers
// nested in them, and with show_standalone the standalone ones (and their nested ones with show_nested);
// each with its container_status and resource_statistics. Mesos' container_id is the container's own
// value (its parents are in container_status.container_id).
func (a *Agent) getContainers(call *agentapi.Call_GetContainers) *agentapi.Response {
	showNested, showStandalone := call.GetShowNested(), call.GetShowStandalone()
	a.mu.Lock()
	defer a.mu.Unlock()
	type entry struct {
		sort string
		c    agentapi.Response_GetContainers_Container
	}
	var executors, others []entry
	roots := map[string]bool{}
	for fid, f := range a.frameworks {
		for _, e := range f.executors {
			if e.state == executorTerminated {
				continue
			}
			key := e.containerID.Value
			roots[key] = true
			fwID, exID := mesos.FrameworkID{Value: fid}, e.info.ExecutorID
			name := e.info.GetName()
			c := agentapi.Response_GetContainers_Container{
				FrameworkID: &fwID, ExecutorID: &exID, ExecutorName: &name, ContainerID: mesos.ContainerID{Value: key},
			}
			a.fillContainerLocked(&c, key)
			executors = append(executors, entry{fid + "\x00" + exID.Value, c})
		}
	}
	for key, c := range a.containers {
		if c.executor != nil || !c.live() {
			continue
		}
		root := strings.SplitN(key, "/", 2)[0]
		rc := a.containers[root]
		standaloneRoot := rc != nil && rc.executor == nil
		if c.id.Parent != nil && !showNested {
			continue
		}
		if c.id.Parent == nil && !showStandalone {
			continue
		}
		if !standaloneRoot && !roots[root] {
			continue
		}
		entryC := agentapi.Response_GetContainers_Container{ContainerID: mesos.ContainerID{Value: c.id.Value}}
		a.fillContainerLocked(&entryC, key)
		others = append(others, entry{key, entryC})
	}
	sort.Slice(executors, func(i, j int) bool { return executors[i].sort < executors[j].sort })
	sort.Slice(others, func(i, j int) bool { return others[i].sort < others[j].sort })
	resp := &agentapi.Response{Type: agentapi.Response_GET_CONTAINERS, GetContainers: &agentapi.Response_GetContainers{
		Containers: []agentapi.Response_GetContainers_Container{},
	}}
	for _, e := range append(executors, others...) {
		resp.GetContainers.Containers = append(resp.GetContainers.Containers, e.c)
	}
	return resp
}

// fillContainerLocked adds a GET_CONTAINERS entry's container_status and resource_statistics.
func (a *Agent) fillContainerLocked(out *agentapi.Response_GetContainers_Container, key string) {
	if cs, ok := a.containerStatusLocked(key); ok {
		out.ContainerStatus = &cs
	}
	if st, ok := a.usageLocked(key); ok {
		out.ResourceStatistics = &st
	}
}

// usageLocked is MesosContainerizerProcess::usage and _usage: the isolators' statistics with the time
// taken, and the container's requests and limits (an executor's: its allocation; a nested container's:
// its LAUNCH_CONTAINER resources and limits) as soft and hard limits.
func (a *Agent) usageLocked(key string) (mesos.ResourceStatistics, bool) {
	c := a.containers[key]
	if c == nil || !c.live() {
		return mesos.ResourceStatistics{}, false
	}
	var st mesos.ResourceStatistics
	if a.cz != nil && c.cz != nil {
		if u, err := a.cz.Usage(context.Background(), key); err == nil {
			st = u
		}
	}
	st.Timestamp = float64(a.clock.Now().UnixNano()) / 1e9
	var res []mesos.Resource
	var limits map[string]mesos.Value_Scalar
	if c.executor != nil {
		res, limits = a.executorAllocationLocked(c.executor)
	} else {
		res, limits = c.resources, c.limits
	}
	cpuRequest, hasCPU := scalarOf(res, "cpus")
	memRequest, hasMem := scalarOf(res, "mem")
	if hasCPU {
		st.CPUsSoftLimit = &cpuRequest
	}
	if l, ok := limits["cpus"]; ok {
		v := l.Value
		if math.IsInf(v, 1) {
			v = float64(runtime.NumCPU())
		}
		st.CPUsLimit = &v
	} else if a.cfg.CgroupsEnableCFS && hasCPU {
		st.CPUsLimit = &cpuRequest
	}
	if hasMem {
		b := megabytes(memRequest)
		st.MemSoftLimitBytes = &b
	}
	if l, ok := limits["mem"]; ok {
		var b uint64
		if math.IsInf(l.Value, 1) {
			b = totalMemory()
		} else {
			b = megabytes(l.Value)
		}
		st.MemLimitBytes = &b
	} else if hasMem {
		b := megabytes(memRequest)
		st.MemLimitBytes = &b
	}
	return st, true
}

// megabytes is Megabytes(uint64(v)).bytes().
func megabytes(v float64) uint64 { return uint64(v) << 20 }

// scalarOf is Resources::cpus()/mem(): the sum of the named scalar, absent without one.
func scalarOf(res []mesos.Resource, name string) (float64, bool) {
	var v float64
	found := false
	for _, r := range res {
		if r.Name == name && r.Scalar != nil {
			v += r.Scalar.Value
			found = true
		}
	}
	return v, found
}

// totalMemory is os::memory().total: MemTotal of /proc/meminfo in bytes.
func totalMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

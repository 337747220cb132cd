package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"syscall"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
)

// mediaTypes is the result of content negotiation for one agent API request.
type mediaTypes struct {
	content        string // json, protobuf or recordio
	messageContent string // for recordio requests
	accept         string // json, protobuf or recordio
	messageAccept  string // for recordio responses
}

// serveOperatorAPI is POST /api/v1 on the agent: the calls an executor uses to run nested containers,
// plus GET_HEALTH, GET_VERSION and GET_FLAGS. Content negotiation and status codes follow the Mesos agent.
func (a *Agent) serveOperatorAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r.Method)
		return
	}
	mt, code, msg := negotiate(r.Header)
	if code != 0 {
		respondError(w, code, msg)
		return
	}
	var reader *recordReader
	var body []byte
	messageType := mt.content
	if mt.content == mediaRecordIO {
		reader = &recordReader{r: io.LimitReader(r.Body, 1<<40)}
		rec, err := reader.next()
		if errors.Is(err, io.EOF) {
			respondError(w, http.StatusBadRequest, "Received EOF while reading request body")
			return
		}
		if err != nil {
			respondError(w, http.StatusBadRequest, "Failed to parse streaming request: "+err.Error())
			return
		}
		body, messageType = rec, mt.messageContent
	} else {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxBodyBytes)); err != nil {
			respondError(w, http.StatusBadRequest, "Failed to read body: "+err.Error())
			return
		}
	}
	call, hasType, msg := parseAgentCall(messageType, body)
	if msg != "" {
		respondError(w, http.StatusBadRequest, msg)
		return
	}
	if msg := validateAgentCall(call, hasType); msg != "" {
		respondError(w, http.StatusBadRequest, "Failed to validate agent::Call: "+msg)
		return
	}
	if mt.content == mediaRecordIO && call.Type != agentapi.Call_ATTACH_CONTAINER_INPUT {
		respondError(w, http.StatusUnsupportedMediaType, "Streaming 'Content-Type' application/recordio is not supported for "+call.Type.String()+" call")
		return
	}
	if mt.content != mediaRecordIO && call.Type == agentapi.Call_ATTACH_CONTAINER_INPUT {
		respondError(w, http.StatusUnsupportedMediaType, "Expecting 'Content-Type' to be application/recordio for ATTACH_CONTAINER_INPUT call")
		return
	}
	if mt.accept == mediaRecordIO && call.Type != agentapi.Call_ATTACH_CONTAINER_OUTPUT && call.Type != agentapi.Call_LAUNCH_NESTED_CONTAINER_SESSION {
		respondError(w, http.StatusNotAcceptable, "Streaming response is not supported for "+call.Type.String()+" call")
		return
	}

	switch call.Type {
	case agentapi.Call_GET_HEALTH:
		respondMessage(w, mt.accept, &agentapi.Response{Type: agentapi.Response_GET_HEALTH, GetHealth: &agentapi.Response_GetHealth{Healthy: true}})
	case agentapi.Call_GET_VERSION:
		respondMessage(w, mt.accept, &agentapi.Response{Type: agentapi.Response_GET_VERSION,
			GetVersion: &agentapi.Response_GetVersion{VersionInfo: mesos.VersionInfo{Version: MesosVersion}}})
	case agentapi.Call_GET_FLAGS:
		respondMessage(w, mt.accept, &agentapi.Response{Type: agentapi.Response_GET_FLAGS, GetFlags: &agentapi.Response_GetFlags{Flags: a.flags()}})
	case agentapi.Call_GET_CONTAINERS:
		respondMessage(w, mt.accept, a.getContainers(call.GetContainers))
	case agentapi.Call_LAUNCH_NESTED_CONTAINER:
		l := call.LaunchNestedContainer
		a.handleLaunch(w, l.ContainerID, l.Command, l.Container, nil, nil)
	case agentapi.Call_LAUNCH_CONTAINER:
		l := call.LaunchContainer
		a.handleLaunch(w, l.ContainerID, l.Command, l.Container, l.Resources, l.Limits)
	case agentapi.Call_WAIT_NESTED_CONTAINER:
		a.handleWait(w, r, mt, call.WaitNestedContainer.ContainerID, true)
	case agentapi.Call_WAIT_CONTAINER:
		a.handleWait(w, r, mt, call.WaitContainer.ContainerID, false)
	case agentapi.Call_KILL_NESTED_CONTAINER:
		k := call.KillNestedContainer
		a.handleKill(w, k.ContainerID, k.Signal)
	case agentapi.Call_KILL_CONTAINER:
		k := call.KillContainer
		a.handleKill(w, k.ContainerID, k.Signal)
	case agentapi.Call_REMOVE_NESTED_CONTAINER:
		a.handleRemove(w, call.RemoveNestedContainer.ContainerID)
	case agentapi.Call_REMOVE_CONTAINER:
		a.handleRemove(w, call.RemoveContainer.ContainerID)
	case agentapi.Call_LAUNCH_NESTED_CONTAINER_SESSION:
		a.handleSession(w, r, mt, call.LaunchNestedContainerSession)
	case agentapi.Call_ATTACH_CONTAINER_OUTPUT:
		a.handleAttachOutput(w, r, mt, call.AttachContainerOutput.ContainerID)
	case agentapi.Call_ATTACH_CONTAINER_INPUT:
		a.handleAttachInput(w, mt, call.AttachContainerInput.ContainerID, reader)
	case agentapi.Call_UNKNOWN:
		notImplemented(w)
	default:
		respondError(w, http.StatusNotImplemented, call.Type.String()+" is not implemented by the simulated agent")
	}
}

// MesosVersion is the Mesos version the simulated agent reports.
const MesosVersion = "1.12.0"

func negotiate(h http.Header) (mediaTypes, int, string) {
	var mt mediaTypes
	// Http::api compares whole headers: parameters such as a charset make a type unsupported.
	ct, ok := lastHeader(h, "Content-Type")
	if !ok {
		return mt, http.StatusBadRequest, "Expecting 'Content-Type' to be present"
	}
	mt.content = ct
	switch mt.content {
	case mediaJSON, mediaProtobuf, mediaRecordIO:
	default:
		return mt, http.StatusUnsupportedMediaType, "Expecting 'Content-Type' of application/json or application/x-protobuf or application/recordio"
	}
	msgCT, msgCTSet := lastHeader(h, headerMessageContentType)
	if mt.content == mediaRecordIO {
		if !msgCTSet {
			return mt, http.StatusBadRequest, "Expecting 'Message-Content-Type' to be set for streaming requests"
		}
		switch msgCT {
		case mediaJSON, mediaProtobuf:
			mt.messageContent = msgCT
		default:
			return mt, http.StatusUnsupportedMediaType, "Expecting 'Message-Content-Type' of application/json or application/x-protobuf"
		}
	} else if msgCTSet {
		return mt, http.StatusUnsupportedMediaType, "Expecting 'Message-Content-Type' to be not set for non-streaming requests"
	}
	switch {
	case accepts(h, "Accept", mediaJSON):
		mt.accept = mediaJSON
	case accepts(h, "Accept", mediaProtobuf):
		mt.accept = mediaProtobuf
	case accepts(h, "Accept", mediaRecordIO):
		mt.accept = mediaRecordIO
	default:
		return mt, http.StatusNotAcceptable, "Expecting 'Accept' to allow application/json or application/x-protobuf or application/recordio"
	}
	if mt.accept == mediaRecordIO {
		switch {
		case accepts(h, headerMessageAccept, mediaJSON):
			mt.messageAccept = mediaJSON
		case accepts(h, headerMessageAccept, mediaProtobuf):
			mt.messageAccept = mediaProtobuf
		default:
			return mt, http.StatusNotAcceptable, "Expecting 'Message-Accept' to allow application/json or application/x-protobuf"
		}
	} else if _, set := lastHeader(h, headerMessageAccept); set {
		return mt, http.StatusNotAcceptable, "Expecting 'Message-Accept' to be not set for non-streaming responses"
	}
	return mt, 0, ""
}

// validateAgentCall mirrors the parts of Mesos' agent call validation that matter here
// (validation::agent::call::validate). A call of type UNKNOWN is valid: Http::_api answers it.
func validateAgentCall(c *agentapi.Call, hasType bool) string {
	if !hasType {
		return "Expecting 'type' to be present"
	}
	validID := func(field string, id mesos.ContainerID) string {
		if msg := validateContainerID(&id); msg != "" {
			return "'" + field + ".container_id' is invalid: " + msg
		}
		return ""
	}
	needParent := func(field string, id mesos.ContainerID) string {
		if msg := validID(field, id); msg != "" {
			return msg
		}
		if id.Parent == nil {
			return "Expecting '" + field + ".container_id.parent' to be present"
		}
		return ""
	}
	present := func(ok bool, field string) string {
		if !ok {
			return "Expecting '" + field + "' to be present"
		}
		return ""
	}
	switch c.Type {
	case agentapi.Call_LAUNCH_NESTED_CONTAINER:
		if m := present(c.LaunchNestedContainer != nil, "launch_nested_container"); m != "" {
			return m
		}
		l := c.LaunchNestedContainer
		if m := needParent("launch_nested_container", l.ContainerID); m != "" {
			return m
		}
		if li := l.Container.GetLinuxInfo(); li != nil && li.ShareCgroups != nil && !*li.ShareCgroups && l.ContainerID.Parent.Parent != nil {
			return "'launch_nested_container' is invalid: containers nested at the second level or greater cannot set 'share_cgroups' to 'false'"
		}
		return ""
	case agentapi.Call_WAIT_NESTED_CONTAINER:
		if m := present(c.WaitNestedContainer != nil, "wait_nested_container"); m != "" {
			return m
		}
		return needParent("wait_nested_container", c.WaitNestedContainer.ContainerID)
	case agentapi.Call_KILL_NESTED_CONTAINER:
		if m := present(c.KillNestedContainer != nil, "kill_nested_container"); m != "" {
			return m
		}
		return needParent("kill_nested_container", c.KillNestedContainer.ContainerID)
	case agentapi.Call_REMOVE_NESTED_CONTAINER:
		if m := present(c.RemoveNestedContainer != nil, "remove_nested_container"); m != "" {
			return m
		}
		return needParent("remove_nested_container", c.RemoveNestedContainer.ContainerID)
	case agentapi.Call_LAUNCH_NESTED_CONTAINER_SESSION:
		if m := present(c.LaunchNestedContainerSession != nil, "launch_nested_container_session"); m != "" {
			return m
		}
		l := c.LaunchNestedContainerSession
		if m := needParent("launch_nested_container_session", l.ContainerID); m != "" {
			return m
		}
		if li := l.Container.GetLinuxInfo(); li != nil && !li.GetShareCgroups() {
			return "'launch_nested_container_session.container.linux_info' is invalid: 'share_cgroups' cannot be set to 'false' for nested container sessions"
		}
		return ""
	case agentapi.Call_LAUNCH_CONTAINER:
		if m := present(c.LaunchContainer != nil, "launch_container"); m != "" {
			return m
		}
		return validateLaunchContainer(c.LaunchContainer, validID)
	case agentapi.Call_WAIT_CONTAINER:
		if m := present(c.WaitContainer != nil, "wait_container"); m != "" {
			return m
		}
		return validID("wait_container", c.WaitContainer.ContainerID)
	case agentapi.Call_KILL_CONTAINER:
		if m := present(c.KillContainer != nil, "kill_container"); m != "" {
			return m
		}
		return validID("kill_container", c.KillContainer.ContainerID)
	case agentapi.Call_REMOVE_CONTAINER:
		if m := present(c.RemoveContainer != nil, "remove_container"); m != "" {
			return m
		}
		return validID("remove_container", c.RemoveContainer.ContainerID)
	case agentapi.Call_ATTACH_CONTAINER_OUTPUT:
		if m := present(c.AttachContainerOutput != nil, "attach_container_output"); m != "" {
			return m
		}
		return validID("attach_container_output", c.AttachContainerOutput.ContainerID)
	case agentapi.Call_ATTACH_CONTAINER_INPUT:
		if m := present(c.AttachContainerInput != nil, "attach_container_input"); m != "" {
			return m
		}
		in := c.AttachContainerInput
		if in.Type == agentapi.Call_AttachContainerInput_CONTAINER_ID {
			if in.ContainerID == nil {
				return "Expecting 'attach_container_input.container_id' to be present"
			}
			return validID("attach_container_input", *in.ContainerID)
		}
		if in.Type != agentapi.Call_AttachContainerInput_PROCESS_IO {
			return "Expecting 'attach_container_input.type' to be present"
		}
	}
	return ""
}

// validateLaunchContainer is the LAUNCH_CONTAINER case of validation::agent::call::validate after the
// presence check: a standalone container's resources are unreserved, not persistent volumes and not
// revocable; a container nested at the second level or deeper may not have resources, limits or
// cgroups of its own; a standalone container, which has no parent, may not ask to share its cgroups.
func validateLaunchContainer(l *agentapi.Call_LaunchContainer, validID func(string, mesos.ContainerID) string) string {
	if m := validID("launch_container", l.ContainerID); m != "" {
		return m
	}
	standalone := l.ContainerID.Parent == nil
	if standalone {
		for _, r := range l.Resources {
			if len(r.Reservations) > 0 || r.Reservation != nil || (r.Role != nil && *r.Role != "*") {
				return "'launch_container.resources' must be unreserved"
			}
			if r.Disk.GetPersistence() != nil {
				return "'launch_container.resources' may not use persistent volumes"
			}
			if r.Revocable != nil {
				return "'launch_container.resources' must be non-revocable"
			}
		}
	}
	li := l.Container.GetLinuxInfo()
	twiceNested := !standalone && l.ContainerID.Parent.Parent != nil
	switch {
	case twiceNested && len(l.Resources) > 0:
		return "'launch_container' is invalid: containers nested at the second level or greater cannot specify resources"
	case twiceNested && len(l.Limits) > 0:
		return "'launch_container' is invalid: containers nested at the second level or greater cannot specify resource limits"
	case twiceNested && !li.GetShareCgroups():
		return "'launch_container' is invalid: containers nested at the second level or greater cannot set 'share_cgroups' to 'false'"
	case standalone && li != nil && li.ShareCgroups != nil && *li.ShareCgroups:
		return "'launch_container' is invalid: containers without a parent cannot set 'share_cgroups' to 'true'"
	}
	return ""
}

func (a *Agent) handleLaunch(w http.ResponseWriter, id mesos.ContainerID, cmd *mesos.CommandInfo, ci *mesos.ContainerInfo,
	res []mesos.Resource, limits map[string]mesos.Value_Scalar) {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		respondError(w, http.StatusServiceUnavailable, "Agent is shutting down")
		return
	}
	_, code, msg := a.launchContainerWithLocked(id, cmd, ci, false, res, limits)
	a.mu.Unlock()
	if code >= 300 {
		respondError(w, code, msg)
		return
	}
	w.WriteHeader(code)
}

func (a *Agent) handleWait(w http.ResponseWriter, r *http.Request, mt mediaTypes, id mesos.ContainerID, nested bool) {
	key := containerKey(&id)
	a.mu.Lock()
	c := a.containers[key]
	a.mu.Unlock()
	if c == nil {
		respondError(w, http.StatusNotFound, "Container "+idString(key)+" cannot be found")
		return
	}
	select {
	case <-c.done:
	case <-r.Context().Done():
		return
	}
	a.mu.Lock()
	status, lim := c.status, c.limitation
	a.mu.Unlock()
	// A limitation's termination (MesosContainerizerProcess::limited): TASK_FAILED, its reason, message
	// and resources, which _waitContainer copies into the answer.
	var (
		state      *mesos.TaskState
		reason     *mesos.TaskStatus_Reason
		message    *string
		limitation *mesos.TaskResourceLimitation
	)
	if lim != nil {
		state, reason, message = mesos.TASK_FAILED.Enum(), lim.Reason.Enum(), &lim.Message
		if len(lim.Resources) > 0 {
			limitation = &mesos.TaskResourceLimitation{Resources: lim.Resources}
		}
	}
	resp := &agentapi.Response{}
	if nested {
		resp.Type = agentapi.Response_WAIT_NESTED_CONTAINER
		resp.WaitNestedContainer = &agentapi.Response_WaitNestedContainer{State: state, Reason: reason, Message: message, Limitation: limitation}
		if status >= 0 {
			resp.WaitNestedContainer.ExitStatus = &status
		}
	} else {
		resp.Type = agentapi.Response_WAIT_CONTAINER
		resp.WaitContainer = &agentapi.Response_WaitContainer{State: state, Reason: reason, Message: message, Limitation: limitation}
		if status >= 0 {
			resp.WaitContainer.ExitStatus = &status
		}
	}
	respondMessage(w, mt.accept, resp)
}

func (a *Agent) handleKill(w http.ResponseWriter, id mesos.ContainerID, signal *int32) {
	key := containerKey(&id)
	sig := syscall.SIGKILL
	if signal != nil {
		sig = syscall.Signal(*signal)
	}
	a.mu.Lock()
	c := a.containers[key]
	ok := c != nil && c.live()
	if ok {
		c.killLocked(sig)
	}
	a.mu.Unlock()
	if !ok {
		respondError(w, http.StatusNotFound, "Container '"+idString(key)+"' cannot be found (or is already killed)")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *Agent) handleRemove(w http.ResponseWriter, id mesos.ContainerID) {
	key := containerKey(&id)
	a.mu.Lock()
	c := a.containers[key]
	if id.Parent == nil && (c == nil || c.executor == nil) {
		// MesosContainerizerProcess::remove starts with CHECK(containerId.has_parent()): a real agent
		// (one containerizer) aborts on this call. The simulator refuses it instead.
		a.mu.Unlock()
		respondError(w, http.StatusInternalServerError, "The simulated agent refuses REMOVE_CONTAINER of a container without parent: "+
			"a Mesos agent aborts on it (MesosContainerizerProcess::remove: CHECK(containerId.has_parent()))")
		return
	}
	if c != nil && c.live() {
		a.mu.Unlock()
		respondError(w, http.StatusInternalServerError, "Nested container has not terminated yet")
		return
	}
	if c != nil {
		delete(a.containers, key)
	}
	a.mu.Unlock()
	if c != nil && c.executor == nil {
		if err := removeAll(c.dir); err != nil {
			respondError(w, http.StatusInternalServerError, "Failed to remove sandbox: "+err.Error())
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (a *Agent) handleAttachOutput(w http.ResponseWriter, r *http.Request, mt mediaTypes, id mesos.ContainerID) {
	a.mu.Lock()
	c, code, msg := a.attachableLocked(id)
	a.mu.Unlock()
	if code != 0 {
		respondError(w, code, msg)
		return
	}
	q, ok := c.out.subscribe()
	if !ok {
		respondError(w, http.StatusInternalServerError, "Container "+c.key+" has terminated")
		return
	}
	defer c.out.unsubscribe(q)
	streamProcessIO(w, r, mt, q)
}

// streamProcessIO writes ProcessIO records until the output ends or the client goes away. It reports
// whether the output ended (rather than the client).
func streamProcessIO(w http.ResponseWriter, r *http.Request, mt mediaTypes, q *queue[agentapi.ProcessIO]) bool {
	msgType := mt.accept
	if mt.accept == mediaRecordIO {
		msgType = mt.messageAccept
		w.Header().Set("Content-Type", mediaRecordIO)
		w.Header().Set(headerMessageContentType, msgType)
	} else {
		w.Header().Set("Content-Type", msgType)
	}
	w.WriteHeader(http.StatusOK)
	rw := newRecordWriter(w, msgType)
	rw.flush()
	for {
		select {
		case <-q.ready():
			items, closed := q.drain()
			for i := range items {
				if err := rw.write(&items[i]); err != nil {
					return false
				}
			}
			if closed {
				return true
			}
		case <-r.Context().Done():
			return false
		}
	}
}

func (a *Agent) handleSession(w http.ResponseWriter, r *http.Request, mt mediaTypes, l *agentapi.Call_LaunchNestedContainerSession) {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		respondError(w, http.StatusServiceUnavailable, "Agent is shutting down")
		return
	}
	c, code, msg := a.launchContainerLocked(l.ContainerID, l.Command, l.Container, true)
	var q *queue[agentapi.ProcessIO]
	if code == http.StatusOK {
		q = c.sessionOut // subscribed before the process started
	}
	a.mu.Unlock()
	if code != http.StatusOK {
		if code >= 300 {
			respondError(w, code, msg)
		} else {
			w.WriteHeader(code)
		}
		return
	}
	defer c.out.unsubscribe(q)
	streamProcessIO(w, r, mt, q)
	// The session's container lives only as long as its connection.
	a.mu.Lock()
	c.killLocked(sigkill)
	a.mu.Unlock()
}

// serveState is GET /state: a subset of the real agent's state endpoint.
func (a *Agent) serveState(w http.ResponseWriter, r *http.Request) {
	type taskJSON struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		FrameworkID string `json:"framework_id"`
		ExecutorID  string `json:"executor_id"`
		State       string `json:"state"`
	}
	type executorJSON struct {
		ID        string     `json:"id"`
		Name      string     `json:"name"`
		Container string     `json:"container"`
		Directory string     `json:"directory"`
		Tasks     []taskJSON `json:"tasks"`
	}
	type frameworkJSON struct {
		ID        string         `json:"id"`
		Name      string         `json:"name"`
		Executors []executorJSON `json:"executors"`
	}
	tasks := a.Tasks()
	execs := a.Executors()
	byFramework := map[string]*frameworkJSON{}
	var order []string
	for _, e := range execs {
		fid := e.FrameworkID.Value
		if byFramework[fid] == nil {
			byFramework[fid] = &frameworkJSON{ID: fid, Executors: []executorJSON{}}
			order = append(order, fid)
		}
		ej := executorJSON{ID: e.Info.ExecutorID.Value, Name: e.Info.GetName(), Container: e.ContainerID.Value, Directory: e.Directory, Tasks: []taskJSON{}}
		for _, t := range tasks {
			if t.FrameworkID.Value == fid && t.ExecutorID.Value == e.Info.ExecutorID.Value {
				ej.Tasks = append(ej.Tasks, taskJSON{ID: t.Task.TaskID.Value, Name: t.Task.Name, FrameworkID: fid, ExecutorID: ej.ID, State: t.State.String()})
			}
		}
		byFramework[fid].Executors = append(byFramework[fid].Executors, ej)
	}
	frameworks := []frameworkJSON{}
	for _, fid := range order {
		frameworks = append(frameworks, *byFramework[fid])
	}
	type containerJSON struct {
		ID     string `json:"container_id"`
		Image  string `json:"image,omitempty"`
		Exited bool   `json:"exited"`
		Status *int32 `json:"exit_status,omitempty"`
	}
	containers := []containerJSON{}
	a.mu.Lock()
	for key, c := range a.containers {
		if c.executor != nil {
			continue
		}
		cj := containerJSON{ID: key, Image: c.image, Exited: c.exited}
		if c.exited {
			st := c.status
			cj.Status = &st
		}
		containers = append(containers, cj)
	}
	a.mu.Unlock()
	sort.Slice(containers, func(i, j int) bool { return containers[i].ID < containers[j].ID })
	state := map[string]any{
		"nested_containers": containers,
		"version":           MesosVersion,
		"id":                a.cfg.ID.Value,
		"pid":               a.PID(),
		"hostname":          a.cfg.Hostname,
		"start_time":        float64(a.start.UnixNano()) / 1e9,
		"resources":         a.cfg.Resources,
		"attributes":        a.cfg.Attributes,
		"frameworks":        frameworks,
		"flags":             flagMap(a.flags()),
	}
	w.Header().Set("Content-Type", mediaJSON)
	_ = json.NewEncoder(w).Encode(state)
}

// flags are the agent's flags as Mesos reports them (GET_FLAGS, /state): the ones the simulator
// has, sorted by name, and an optional flag only when set.
func (a *Agent) flags() []mesos.Flag {
	vals := map[string]string{
		"docker_registry":                a.cfg.DockerRegistry,
		"executor_registration_timeout":  formatDuration(a.cfg.ExecutorRegistrationTimeout),
		"executor_shutdown_grace_period": formatDuration(a.cfg.ExecutorShutdownGracePeriod),
		"fetcher_cache_dir":              a.cfg.FetcherCacheDir,
		"fetcher_cache_size":             formatBytes(a.cfg.FetcherCacheSize),
		"gc_delay":                       formatDuration(a.cfg.GCDelay),
		"gc_disk_headroom":               formatHeadroom(*a.cfg.GCDiskHeadroom),
		"disk_watch_interval":            formatDuration(a.cfg.DiskWatchInterval),
		"isolation":                      a.cfg.Isolation,
		"recovery_timeout":               formatDuration(a.cfg.RecoveryTimeout),
		"runtime_dir":                    a.cfg.RuntimeDir,
		"work_dir":                       a.cfg.WorkDir,
	}
	if a.cfg.ImageProviders != "" {
		vals["image_providers"] = a.cfg.ImageProviders
	}
	if len(a.cfg.ExecutorEnvironmentVariables) > 0 {
		var b strings.Builder
		writeJSONObject(&b, a.cfg.ExecutorEnvironmentVariables)
		vals["executor_environment_variables"] = b.String()
	}
	vals["authenticate_http_executors"] = strconv.FormatBool(a.cfg.AuthenticateHTTPExecutors)
	vals["authenticate_http_readonly"] = strconv.FormatBool(a.cfg.AuthenticateHTTPReadonly)
	vals["authenticate_http_readwrite"] = strconv.FormatBool(a.cfg.AuthenticateHTTPReadwrite)
	for name, v := range map[string]string{"jwt_secret_key": a.cfg.JWTSecretKey, "http_authenticators": a.cfg.HTTPAuthenticators, "http_credentials": a.cfg.HTTPCredentials} {
		if v != "" {
			vals[name] = v
		}
	}
	if a.cfg.NetworkCNIConfigDir != "" {
		vals["network_cni_config_dir"] = a.cfg.NetworkCNIConfigDir
	}
	if a.cfg.NetworkCNIPluginsDir != "" {
		vals["network_cni_plugins_dir"] = a.cfg.NetworkCNIPluginsDir
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	flags := make([]mesos.Flag, 0, len(names))
	for _, n := range names {
		v := vals[n]
		flags = append(flags, mesos.Flag{Name: n, Value: &v})
	}
	return flags
}

// formatBytes is stout's Bytes output: the largest unit that loses nothing ("2GB", "1536MB", "100B").
func formatBytes(b int64) string {
	if b == 0 {
		return "0B"
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
		if b%u.size == 0 {
			return strconv.FormatInt(b/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(b, 10) + "B"
}

func flagMap(flags []mesos.Flag) map[string]string {
	m := make(map[string]string, len(flags))
	for _, f := range flags {
		m[f.Name] = f.GetValue()
	}
	return m
}

package agent

import (
	"io"
	"net/http"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// serveExecutorAPI is POST /api/v1/executor with the status codes and messages of a Mesos 1.x agent.
func (a *Agent) serveExecutorAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		respondError(w, http.StatusMethodNotAllowed, "Expecting one of { 'POST' }, but received '"+r.Method+"'")
		return
	}
	ct := mediaType(r.Header.Get("Content-Type"))
	if ct == "" {
		respondError(w, http.StatusBadRequest, "Expecting 'Content-Type' to be present")
		return
	}
	if ct != mediaJSON && ct != mediaProtobuf {
		respondError(w, http.StatusUnsupportedMediaType, "Expecting 'Content-Type' of application/json or application/x-protobuf")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		respondError(w, http.StatusBadRequest, "Failed to read body: "+err.Error())
		return
	}
	var call executor.Call
	if err := decodeMessage(ct, body, &call); err != nil {
		if ct == mediaProtobuf {
			respondError(w, http.StatusBadRequest, "Failed to parse body into Call protobuf")
		} else {
			respondError(w, http.StatusBadRequest, "Failed to convert JSON into Call protobuf: "+err.Error())
		}
		return
	}
	if msg := validateExecutorCall(&call); msg != "" {
		respondError(w, http.StatusBadRequest, "Failed to validate Executor::Call: "+msg)
		return
	}
	fid, eid := call.FrameworkID.Value, call.ExecutorID.Value

	if call.Type == executor.Call_SUBSCRIBE {
		var accept string
		switch {
		case accepts(r.Header, "Accept", mediaJSON):
			accept = mediaJSON
		case accepts(r.Header, "Accept", mediaProtobuf):
			accept = mediaProtobuf
		default:
			respondError(w, http.StatusNotAcceptable, "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'")
			return
		}
		a.serveSubscription(w, r, fid, eid, *call.Subscribe, accept)
		return
	}

	a.mu.Lock()
	code, msg := a.executorCallLocked(&call)
	a.mu.Unlock()
	if code != http.StatusAccepted {
		respondError(w, code, msg)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// executorCallLocked handles UPDATE, MESSAGE and HEARTBEAT.
func (a *Agent) executorCallLocked(call *executor.Call) (int, string) {
	if a.stopped {
		return http.StatusServiceUnavailable, "Agent is shutting down"
	}
	f := a.frameworks[call.FrameworkID.Value]
	if f == nil {
		return http.StatusBadRequest, "Framework cannot be found"
	}
	e := f.executors[call.ExecutorID.Value]
	if e == nil {
		return http.StatusBadRequest, "Executor cannot be found"
	}
	if e.state == executorRegistering {
		return http.StatusForbidden, "Executor is not subscribed"
	}
	switch call.Type {
	case executor.Call_UPDATE:
		st := call.Update.Status
		eid := e.info.ExecutorID
		st.ExecutorID = &eid
		a.statusUpdateLocked(f, st, true)
	case executor.Call_MESSAGE:
		if !a.partitioned {
			agentID, fwID, execID, data := a.cfg.ID, call.FrameworkID, call.ExecutorID, call.Message.Data
			a.toMasterLocked(func() { a.cfg.Master.ExecutorMessage(agentID, fwID, execID, data) })
		}
	case executor.Call_HEARTBEAT:
	default:
		return http.StatusNotImplemented, ""
	}
	return http.StatusAccepted, ""
}

// validateExecutorCall mirrors Mesos' common::validation::validateExecutorCall.
func validateExecutorCall(c *executor.Call) string {
	if c.ExecutorID.Value == "" {
		return "Expecting 'executor_id' to be present"
	}
	if c.FrameworkID.Value == "" {
		return "Expecting 'framework_id' to be present"
	}
	switch c.Type {
	case executor.Call_SUBSCRIBE:
		if c.Subscribe == nil {
			return "Expecting 'subscribe' to be present"
		}
	case executor.Call_UPDATE:
		if c.Update == nil {
			return "Expecting 'update' to be present"
		}
		st := c.Update.Status
		if st.TaskID.Value == "" {
			return "Expecting 'update.status.task_id' to be present"
		}
		if len(st.UUID) == 0 {
			return "Expecting 'uuid' to be present"
		}
		if len(st.UUID) != 16 {
			return "Invalid UUID"
		}
		if st.GetState() == mesos.TASK_STAGING {
			return "Received TASK_STAGING from executor which is not allowed"
		}
		if st.Source != nil && st.GetSource() != mesos.SOURCE_EXECUTOR {
			return "Received Call from executor with invalid source"
		}
		if st.State == nil {
			return "Expecting 'update.status.state' to be present"
		}
	case executor.Call_MESSAGE:
		if c.Message == nil {
			return "Expecting 'message' to be present"
		}
	case executor.Call_HEARTBEAT:
	default:
		return "Expecting 'type' to be present"
	}
	return ""
}

// serveSubscription answers SUBSCRIBE with a RecordIO stream of events in the accepted media type.
func (a *Agent) serveSubscription(w http.ResponseWriter, r *http.Request, fid, eid string, sub executor.Call_Subscribe, accept string) {
	sink := newQueue[executor.Event]()
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		respondError(w, http.StatusServiceUnavailable, "Agent is shutting down")
		return
	}
	code, msg := a.subscribeLocked(fid, eid, sub, sink)
	var e *executorRun
	if f := a.frameworks[fid]; f != nil {
		e = f.executors[eid]
	}
	a.mu.Unlock()
	if code != http.StatusOK {
		respondError(w, code, msg)
		return
	}
	defer func() {
		a.mu.Lock()
		if e != nil {
			a.unsubscribeLocked(e, sink)
		}
		a.mu.Unlock()
	}()

	w.Header().Set("Content-Type", accept)
	w.WriteHeader(http.StatusOK)
	rw := newRecordWriter(w, accept)
	rw.flush()

	var heartbeat <-chan time.Time
	if d := a.cfg.ExecutorHeartbeatInterval; d > 0 {
		t := a.clock.NewTicker(d)
		defer t.Stop()
		heartbeat = t.C()
	}
	for {
		select {
		case <-sink.ready():
			events, closed := sink.drain()
			for i := range events {
				if err := rw.write(&events[i]); err != nil {
					return
				}
			}
			if closed {
				return
			}
		case <-heartbeat:
			if err := rw.write(&executor.Event{Type: executor.Event_HEARTBEAT}); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

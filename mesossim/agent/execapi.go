package agent

import (
	"io"
	"net/http"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// serveExecutorAPI is POST /api/v1/executor with the status codes and messages of a Mesos 1.x agent.
func (a *Agent) serveExecutorAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r.Method)
		return
	}
	// Http::executor compares the whole header: parameters such as a charset make it unsupported.
	ct, ok := lastHeader(r.Header, "Content-Type")
	if !ok {
		respondError(w, http.StatusBadRequest, "Expecting 'Content-Type' to be present")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		respondError(w, http.StatusBadRequest, "Failed to read body: "+err.Error())
		return
	}
	call, hasType, code, msg := parseExecutorCall(ct, body)
	if code != 0 {
		respondError(w, code, msg)
		return
	}
	if msg := validateExecutorCall(call, hasType); msg != "" {
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
		if a.claimsRefused(w, r, fid, eid) {
			return
		}
		a.serveSubscription(w, r, fid, eid, *call.Subscribe, accept)
		return
	}
	if call.Type == executor.Call_HEARTBEAT {
		// Mesos answers heartbeats before looking the framework and executor up.
		w.WriteHeader(http.StatusAccepted)
		return
	}

	if a.claimsRefused(w, r, fid, eid) {
		return
	}
	a.mu.Lock()
	code, msg = a.executorCallLocked(call)
	a.mu.Unlock()
	switch code {
	case http.StatusAccepted:
		w.WriteHeader(http.StatusAccepted)
	case http.StatusNotImplemented:
		notImplemented(w)
	default:
		respondError(w, code, msg)
	}
}

// executorCallLocked handles UPDATE and MESSAGE (UNKNOWN is not implemented, as in Mesos).
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
	default:
		return http.StatusNotImplemented, ""
	}
	return http.StatusAccepted, ""
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

// claimsRefused answers 403 when the request's principal (an authenticating agent's) may not call for
// executor eid of framework fid (verifyExecutorClaims). As in Http::executor it comes after the Accept
// negotiation and the heartbeat's early answer, and an unknown framework or executor (400) or a
// stopped agent (503) is left to the handler.
func (a *Agent) claimsRefused(w http.ResponseWriter, r *http.Request, fid, eid string) bool {
	p := requestPrincipal(r)
	if p == nil {
		return false
	}
	a.mu.Lock()
	var msg string
	if f := a.frameworks[fid]; f != nil && !a.stopped {
		if e := f.executors[eid]; e != nil {
			msg = verifyExecutorClaims(p, fid, eid, e.containerID.Value)
		}
	}
	a.mu.Unlock()
	if msg == "" {
		return false
	}
	respondError(w, http.StatusForbidden, msg)
	return true
}

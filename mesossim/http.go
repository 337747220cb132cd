package mesossim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gogo/protobuf/proto"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim/internal/mesosjson"
	"github.com/kubemesos/kubemesos/mesossim/internal/recordio"
)

const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/x-protobuf"
	mediaRecordIO = "application/recordio"
	// maxBody bounds request bodies (Mesos has no fixed limit; this keeps a bad client from exhausting memory).
	maxBody = 64 << 20
)

// message is a gogo-generated Mesos message: proto and (ff)json codable.
type message interface {
	proto.Message
}

func encodeAs(mediaType string, m message) ([]byte, error) {
	if mediaType == mediaProtobuf {
		return proto.Marshal(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return omitNulls(b)
}

// omitNulls drops null members from JSON objects. The generated marshalers write unset repeated and
// message fields as null, where Mesos omits them; hand-written clients iterate such fields. Numbers are
// kept verbatim (json.Number), so 64-bit values lose no precision.
func omitNulls(b []byte) ([]byte, error) {
	if !bytes.Contains(b, []byte("null")) {
		return b, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(stripNull(v))
}

func stripNull(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = stripNull(e)
		}
	case []any:
		for i := range x {
			x[i] = stripNull(x[i])
		}
	}
	return v
}

// decodeBody decodes a request body into m as Mesos' Master::Http::scheduler and Master::Http::api
// do, answering their status and message on failure. Content-Type is compared as a whole string
// (parameters make it unsupported) and the body is one message: the master's endpoints take no
// streaming (RecordIO) requests. hasType reports whether the call carries its optional type (field
// number typeField), which mesos-go's Call cannot tell apart from UNKNOWN: an unknown enum value
// leaves it unset, as proto2 discards it.
func decodeBody(r *http.Request, m message, typeField uint64) (hasType bool, status int, msg string) {
	cts := r.Header.Values("Content-Type")
	if len(cts) == 0 {
		return false, http.StatusBadRequest, "Expecting 'Content-Type' to be present"
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return false, http.StatusBadRequest, "Failed to read request body: " + err.Error()
	}
	// libprocess keeps the last of repeated headers.
	switch cts[len(cts)-1] {
	case mediaProtobuf:
		// Like protobuf's ParseFromString this fails on missing required fields (gogo checks them).
		if err := proto.Unmarshal(body, m); err != nil {
			return false, http.StatusBadRequest, "Failed to parse body into Call protobuf"
		}
		return mesosjson.ProtobufHasField(body, typeField) && knownType(m), 0, ""
	case mediaJSON:
		value, err := mesosjson.Parse(body)
		if err != nil {
			return false, http.StatusBadRequest, "Failed to parse body into JSON: " + err.Error()
		}
		set, err := mesosjson.Convert(value, m)
		if err != nil {
			return false, http.StatusBadRequest, "Failed to convert JSON into Call protobuf: " + err.Error()
		}
		return set["type"], 0, ""
	}
	return false, http.StatusUnsupportedMediaType, "Expecting 'Content-Type' of application/json or application/x-protobuf"
}

// knownType reports whether a decoded call's type is a value of its enum (protobuf keeps an unknown
// one among the unknown fields, leaving the type unset).
func knownType(m message) bool {
	switch c := m.(type) {
	case *scheduler.Call:
		_, ok := scheduler.Call_Type_name[int32(c.Type)]
		return ok
	case *master.Call:
		_, ok := master.Call_Type_name[int32(c.Type)]
		return ok
	}
	return true
}

// accepts reports whether the request's Accept header allows media type mt (no header: anything).
func accepts(r *http.Request, header, mt string) bool {
	vals := r.Header.Values(header)
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		for _, part := range strings.Split(v, ",") {
			t, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					continue
				}
			}
			major, _, _ := strings.Cut(mt, "/")
			if t == mt || t == "*/*" || t == major+"/*" {
				return true
			}
		}
	}
	return false
}

// methodNotAllowed is libprocess' MethodNotAllowed({"POST"}, request.method).
func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "POST")
	httpError(w, http.StatusMethodNotAllowed, fmt.Sprintf("405 Method Not Allowed. Expecting one of { 'POST' }, but received '%s'.", r.Method))
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

// stream is one SUBSCRIBE connection: an unbounded queue of encoded events drained by its HTTP handler.
type stream struct {
	id          string
	frameworkID string
	mediaType   string

	mu    sync.Mutex
	queue [][]byte
	wake  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newStream(mediaType string) *stream {
	return &stream{id: newUUID(), mediaType: mediaType, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (s *stream) send(e *scheduler.Event) {
	b, err := encodeAs(s.mediaType, e)
	if err != nil {
		logrus.WithError(err).WithField("event", e.Type.String()).Error("encoding event")
		return
	}
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *stream) close() { s.once.Do(func() { close(s.done) }) }

func (s *stream) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *stream) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// serveScheduler is POST /api/v1/scheduler, answering exactly as Mesos' Master::Http::scheduler does.
func (m *Master) serveScheduler(w http.ResponseWriter, r *http.Request) {
	principal, ok := m.authenticateFramework(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r)
		return
	}
	var call scheduler.Call
	hasType, status, msg := decodeBody(r, &call, 2)
	if status != 0 {
		httpError(w, status, msg)
		return
	}
	if !hasType {
		httpError(w, http.StatusBadRequest, "Failed to validate scheduler::Call: Expecting 'type' to be present")
		return
	}
	if err := validateCall(&call, principal); err != nil {
		httpError(w, http.StatusBadRequest, "Failed to validate scheduler::Call: "+err.Error())
		return
	}
	if call.Type != scheduler.Call_SUBSCRIBE {
		status, msg := m.handleCall(r.Header.Get("Mesos-Stream-Id"), principal, &call)
		if status == http.StatusAccepted || status == http.StatusOK {
			w.WriteHeader(status)
			return
		}
		httpError(w, status, msg)
		return
	}

	// SUBSCRIBE: pick the response encoding from Accept (and Message-Accept for RecordIO).
	var contentType, messageType string
	switch {
	case r.Header.Get("Accept") != "" && accepts(r, "Accept", mediaRecordIO) && !accepts(r, "Accept", mediaJSON) && !accepts(r, "Accept", mediaProtobuf):
		contentType = mediaRecordIO
		switch {
		case accepts(r, "Message-Accept", mediaJSON):
			messageType = mediaJSON
		case accepts(r, "Message-Accept", mediaProtobuf):
			messageType = mediaProtobuf
		default:
			httpError(w, http.StatusNotAcceptable, "Expecting 'Message-Accept' to allow 'application/x-protobuf' or 'application/json'")
			return
		}
	case accepts(r, "Accept", mediaJSON):
		contentType, messageType = mediaJSON, mediaJSON
	case accepts(r, "Accept", mediaProtobuf):
		contentType, messageType = mediaProtobuf, mediaProtobuf
	default:
		httpError(w, http.StatusNotAcceptable, "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'")
		return
	}
	if r.Header.Get("Mesos-Stream-Id") != "" {
		httpError(w, http.StatusBadRequest, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	s := newStream(messageType)
	h := w.Header()
	h.Set("Content-Type", contentType)
	if contentType == mediaRecordIO {
		h.Set("Message-Content-Type", messageType)
	}
	h.Set("Mesos-Stream-Id", s.id)
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	m.subscribe(s, call.Subscribe)
	m.pump(w, flusher, r, s)
}

// pump writes a stream's events as RecordIO records, with HEARTBEATs, until the master closes the
// stream or the client goes away (which disconnects the framework).
func (m *Master) pump(w io.Writer, flusher http.Flusher, r *http.Request, s *stream) {
	ticker := m.clock.NewTicker(m.cfg.HeartbeatInterval)
	defer ticker.Stop()
	heartbeat := &scheduler.Event{Type: scheduler.Event_HEARTBEAT}
	write := func() bool {
		for _, b := range s.take() {
			if err := recordio.WriteChunk(w, flusher.Flush, b); err != nil {
				return false
			}
		}
		return true
	}
	for {
		if !write() {
			m.streamClosed(s)
			return
		}
		select {
		case <-s.wake:
		case <-s.done:
			write()
			return
		case <-r.Context().Done():
			m.streamClosed(s)
			return
		case <-ticker.C():
			s.send(heartbeat)
		}
	}
}

// Handler serves the master's endpoints: the scheduler API, the operator API, /health, /version,
// /master/state (and /state), and the simulator's own /admin/... fault endpoints.
func (m *Master) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/scheduler", m.serveScheduler)
	mux.HandleFunc("/api/v1", m.serveOperator)
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/master/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/version", m.serveVersion)
	mux.HandleFunc("/master/version", m.serveVersion)
	mux.HandleFunc("/master/state", m.serveState)
	mux.HandleFunc("/state", m.serveState)
	mux.HandleFunc("/master/state.json", m.serveState)
	mux.HandleFunc("/admin/", m.serveAdmin)
	for _, p := range []string{"", "/master"} {
		mux.HandleFunc(p+"/maintenance/schedule", m.serveMaintenanceSchedule)
		mux.HandleFunc(p+"/maintenance/status", m.serveMaintenanceStatus)
		mux.HandleFunc(p+"/machine/down", m.serveMachines(false))
		mux.HandleFunc(p+"/machine/up", m.serveMachines(true))
		mux.HandleFunc(p+"/quota", m.serveQuota)
		mux.HandleFunc(p+"/roles", m.serveRoles)
	}
	return recoverer(m.log, mux)
}

// recoverer turns a handler panic into a 500 so that bad input never takes the simulator down.
func recoverer(log logrus.FieldLogger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.WithFields(logrus.Fields{"path": r.URL.Path, "panic": v}).Error("handler panic")
				httpError(w, http.StatusInternalServerError, fmt.Sprint(v))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzAgent is shared by the fuzz targets: one agent with no executors.
func fuzzAgent(f *testing.F) *Agent {
	m := &fakeMaster{}
	a, err := New(Config{ID: mustID("fuzz"), WorkDir: f.TempDir(), Master: m, Log: quietLog()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(a.Stop)
	return a
}

// FuzzExecutorAPI: no body or content type crashes the executor endpoint; every answer is an HTTP
// status Mesos uses there.
func FuzzExecutorAPI(f *testing.F) {
	a := fuzzAgent(f)
	f.Add("application/json", []byte(`{"type":"SUBSCRIBE","framework_id":{"value":"f"},"executor_id":{"value":"e"},"subscribe":{}}`))
	f.Add("application/json", []byte(`{"type":"UPDATE","framework_id":{"value":"f"},"executor_id":{"value":"e"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"AAAAAAAAAAAAAAAAAAAAAA=="}}}`))
	f.Add("application/x-protobuf", []byte{0x0a, 0x03, 0x0a, 0x01, 0x65, 0x18, 0x01})
	f.Add("text/plain", []byte("hello"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/executor", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		a.serveExecutorAPI(w, req)
		switch w.Code {
		case 202, 400, 403, 406, 415, 501, 503: // 202: a valid HEARTBEAT is answered before any lookup
		default:
			t.Fatalf("status %d for %q %q", w.Code, contentType, body)
		}
	})
}

// FuzzOperatorAPI: the same for the agent's operator endpoint, including RecordIO bodies.
func FuzzOperatorAPI(f *testing.F) {
	a := fuzzAgent(f)
	f.Add("application/json", "", []byte(`{"type":"GET_HEALTH"}`))
	f.Add("application/json", "", []byte(`{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"c","parent":{"value":"p"}}}}`))
	f.Add("application/recordio", "application/json", []byte("22\n{\"type\":\"GET_HEALTH\"}"))
	f.Add("application/recordio", "application/x-protobuf", []byte("99999999999\nx"))
	f.Add("application/x-protobuf", "", []byte{0x08, 0x1d})
	f.Fuzz(func(t *testing.T, contentType, messageType string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", contentType)
		if messageType != "" {
			req.Header.Set("Message-Content-Type", messageType)
		}
		w := httptest.NewRecorder()
		a.serveOperatorAPI(w, req)
		if w.Code < 200 || w.Code >= 600 || w.Code == 500 && !strings.Contains(w.Body.String(), "container") {
			t.Fatalf("status %d (%s) for %q %q %q", w.Code, w.Body.String(), contentType, messageType, body)
		}
	})
}

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"google.golang.org/grpc/test/bufconn"
)

type rawRequest struct {
	name        string
	path        string
	method      string
	headers     map[string]string
	body        string
	wantCode    int
	wantInBody  string
	wantBody    string // the exact body, when set
	wantCTypeIs string
	wantAllow   string
}

func doRaw(t *testing.T, base string, rr rawRequest) (*http.Response, string) {
	t.Helper()
	method := rr.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+rr.path, strings.NewReader(rr.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range rr.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestBadCallsGetMesosStatusCodes(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.ExecutorHook = hookExecutor })
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "executor running", func() bool { return len(m.states("t1")) == 1 })
	parent := a.Executors()[0].ContainerID.Value
	// A second executor that never subscribes (its hook waits for cancellation).
	a.mu.Lock()
	a.cfg.ExecutorHook = nil
	a.mu.Unlock()
	never := "sleep 1000"
	a.Launch(testFramework(false), &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "mute"}, Command: &mesos.CommandInfo{Value: &never}},
		[]mesos.TaskInfo{dataTask("t2", "finish")}, false)

	jsonCT := map[string]string{"Content-Type": "application/json"}
	exec := "/api/v1/executor"
	uuid := `"MDEyMzQ1Njc4OWFiY2RlZg=="`
	update := func(fw, ex, status string) string {
		return `{"type":"UPDATE","framework_id":{"value":"` + fw + `"},"executor_id":{"value":"` + ex + `"},"update":{"status":` + status + `}}`
	}
	launchNested := func(id, parentID string) string {
		return `{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"` + id + `","parent":{"value":"` + parentID + `"}},"command":{"value":"sleep 1000"}}}`
	}
	tests := []rawRequest{
		// Executor API.
		{name: "executor GET", path: exec, method: http.MethodGet, wantCode: 405,
			wantBody: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'.", wantAllow: "POST"},
		{name: "executor PUT", path: exec, method: http.MethodPut, headers: jsonCT, body: "{}", wantCode: 405,
			wantBody: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'PUT'.", wantAllow: "POST"},
		{name: "executor without Content-Type", path: exec, body: "{}", wantCode: 400, wantInBody: "Content-Type"},
		{name: "executor text/plain", path: exec, headers: map[string]string{"Content-Type": "text/plain"}, body: "x", wantCode: 415},
		{name: "executor malformed JSON", path: exec, headers: jsonCT, body: "{", wantCode: 400},
		{name: "executor malformed protobuf", path: exec, headers: map[string]string{"Content-Type": "application/x-protobuf"}, body: "\xff\xff\xff", wantCode: 400},
		{name: "executor call without ids", path: exec, headers: jsonCT, body: `{"type":"HEARTBEAT"}`, wantCode: 400},
		{name: "executor unknown framework", path: exec, headers: jsonCT,
			body: update("nope", "e", `{"task_id":{"value":"t1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":`+uuid+`}`), wantCode: 400, wantInBody: "Framework cannot be found"},
		{name: "executor unknown executor", path: exec, headers: jsonCT,
			body: update("fw-1", "nope", `{"task_id":{"value":"t1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":`+uuid+`}`), wantCode: 400, wantInBody: "Executor cannot be found"},
		{name: "update without uuid", path: exec, headers: jsonCT,
			body: update("fw-1", "e", `{"task_id":{"value":"t1"},"state":"TASK_RUNNING"}`), wantCode: 400, wantInBody: "uuid"},
		{name: "update with TASK_STAGING", path: exec, headers: jsonCT,
			body: update("fw-1", "e", `{"task_id":{"value":"t1"},"state":"TASK_STAGING","source":"SOURCE_EXECUTOR","uuid":`+uuid+`}`), wantCode: 400, wantInBody: "TASK_STAGING"},
		{name: "update from an executor that has not subscribed", path: exec, headers: jsonCT,
			body: update("fw-1", "mute", `{"task_id":{"value":"t2"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":`+uuid+`}`), wantCode: 403},
		{name: "heartbeat", path: exec, headers: jsonCT, body: `{"type":"HEARTBEAT","framework_id":{"value":"fw-1"},"executor_id":{"value":"e"}}`, wantCode: 202},
		{name: "subscribe not accepting JSON or protobuf", path: exec, headers: map[string]string{"Content-Type": "application/json", "Accept": "text/html"},
			body: `{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"e"},"subscribe":{}}`, wantCode: 406},

		// Agent operator API.
		// Http::api, with libprocess' bodies and deserialize's texts (a conversion error goes out bare).
		{name: "agent GET", path: "/api/v1", method: http.MethodGet, wantCode: 405,
			wantBody: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'.", wantAllow: "POST"},
		{name: "agent DELETE", path: "/api/v1", method: http.MethodDelete, wantCode: 405,
			wantBody: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'DELETE'.", wantAllow: "POST"},
		{name: "agent without Content-Type", path: "/api/v1", body: "{}", wantCode: 400, wantBody: "Expecting 'Content-Type' to be present"},
		{name: "agent text/plain", path: "/api/v1", headers: map[string]string{"Content-Type": "text/plain"}, body: "x", wantCode: 415,
			wantBody: "Expecting 'Content-Type' of application/json or application/x-protobuf or application/recordio"},
		{name: "agent Content-Type with a charset", path: "/api/v1", headers: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: `{"type":"GET_HEALTH"}`,
			wantCode: 415, wantBody: "Expecting 'Content-Type' of application/json or application/x-protobuf or application/recordio"},
		{name: "agent Message-Content-Type with a charset", path: "/api/v1", headers: map[string]string{"Content-Type": "application/recordio", "Message-Content-Type": "application/json; charset=utf-8"},
			body: "2\n{}", wantCode: 415, wantBody: "Expecting 'Message-Content-Type' of application/json or application/x-protobuf"},
		{name: "agent Accept text/html", path: "/api/v1", headers: map[string]string{"Content-Type": "application/json", "Accept": "text/html"}, body: `{"type":"GET_HEALTH"}`, wantCode: 406},
		{name: "agent malformed JSON", path: "/api/v1", headers: jsonCT, body: `{"type":`, wantCode: 400, wantBody: "Failed to parse body into JSON: syntax error at line 1 near: "},
		{name: "agent malformed protobuf", path: "/api/v1", headers: map[string]string{"Content-Type": "application/x-protobuf"}, body: "\xff\xff\xff", wantCode: 400,
			wantBody: "Failed to parse body into a protobuf object"},
		{name: "agent JSON that is not an object", path: "/api/v1", headers: jsonCT, body: `["GET_HEALTH"]`, wantCode: 400, wantBody: "Expecting a JSON object"},
		{name: "agent type as a number", path: "/api/v1", headers: jsonCT, body: `{"type":1}`, wantCode: 400, wantBody: "Not expecting a JSON number for field 'type'"},
		{name: "agent call missing a required field", path: "/api/v1", headers: jsonCT,
			body: `{"type":"KILL_NESTED_CONTAINER","kill_nested_container":{"container_id":{}}}`, wantCode: 400, wantBody: "Missing required fields: kill_nested_container.container_id.value"},
		{name: "agent unknown call type", path: "/api/v1", headers: jsonCT, body: `{"type":"FROBNICATE"}`, wantCode: 400,
			wantBody: "Failed to validate agent::Call: Expecting 'type' to be present"},
		{name: "agent protobuf call of an unknown type", path: "/api/v1", headers: map[string]string{"Content-Type": "application/x-protobuf"}, body: "\x08\x63", wantCode: 400,
			wantBody: "Failed to validate agent::Call: Expecting 'type' to be present"},
		{name: "agent call without type", path: "/api/v1", headers: jsonCT, body: `{}`, wantCode: 400, wantBody: "Failed to validate agent::Call: Expecting 'type' to be present"},
		{name: "agent call of type UNKNOWN", path: "/api/v1", headers: jsonCT, body: `{"type":"UNKNOWN"}`, wantCode: 501, wantBody: "501 Not Implemented."},
		{name: "agent protobuf call of type UNKNOWN", path: "/api/v1", headers: map[string]string{"Content-Type": "application/x-protobuf"}, body: "\x08\x00", wantCode: 501,
			wantBody: "501 Not Implemented."},
		{name: "agent streamed call of type UNKNOWN", path: "/api/v1", headers: map[string]string{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"},
			body: "18\n{\"type\":\"UNKNOWN\"}", wantCode: 415, wantBody: "Streaming 'Content-Type' application/recordio is not supported for UNKNOWN call"},
		{name: "agent streamed call of an unknown type", path: "/api/v1", headers: map[string]string{"Content-Type": "application/recordio", "Message-Content-Type": "application/json"},
			body: "21\n{\"type\":\"FROBNICATE\"}", wantCode: 400, wantBody: "Failed to validate agent::Call: Expecting 'type' to be present"},
		{name: "GET_HEALTH as JSON", path: "/api/v1", headers: jsonCT, body: `{"type":"GET_HEALTH"}`, wantCode: 200, wantInBody: `"healthy":true`, wantCTypeIs: "application/json"},
		{name: "unimplemented call", path: "/api/v1", headers: jsonCT, body: `{"type":"GET_STATE"}`, wantCode: 501},
		{name: "streaming request without Message-Content-Type", path: "/api/v1", headers: map[string]string{"Content-Type": "application/recordio"}, body: "2\n{}", wantCode: 400},
		{name: "ATTACH_CONTAINER_INPUT not streamed", path: "/api/v1", headers: jsonCT,
			body: `{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"CONTAINER_ID","container_id":{"value":"x","parent":{"value":"` + parent + `"}}}}`, wantCode: 415},
		{name: "streaming response for a non-streaming call", path: "/api/v1", headers: map[string]string{"Content-Type": "application/json", "Accept": "application/recordio"},
			body: launchNested("s", parent), wantCode: 406},
		{name: "nested launch without parent", path: "/api/v1", headers: jsonCT,
			body: `{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"x"},"command":{"value":"true"}}}`, wantCode: 400, wantInBody: "parent"},
		{name: "nested launch with a bad container ID", path: "/api/v1", headers: jsonCT, body: launchNested("a/b", parent), wantCode: 400},
		{name: "nested launch under an unknown parent", path: "/api/v1", headers: jsonCT, body: launchNested("x", "ghost"), wantCode: 400},
		{name: "nested launch as JSON", path: "/api/v1", headers: jsonCT, body: launchNested("j1", parent), wantCode: 200},
		{name: "nested launch of a running container again", path: "/api/v1", headers: jsonCT, body: launchNested("j1", parent), wantCode: 202},
		{name: "kill of an unknown container", path: "/api/v1", headers: jsonCT,
			body: `{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"nope","parent":{"value":"` + parent + `"}}}}`, wantCode: 404},
		{name: "remove of a running container", path: "/api/v1", headers: jsonCT,
			body: `{"type":"REMOVE_NESTED_CONTAINER","remove_nested_container":{"container_id":{"value":"j1","parent":{"value":"` + parent + `"}}}}`, wantCode: 500},
		{name: "remove of an unknown container", path: "/api/v1", headers: jsonCT,
			body: `{"type":"REMOVE_CONTAINER","remove_container":{"container_id":{"value":"nope","parent":{"value":"` + parent + `"}}}}`, wantCode: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := doRaw(t, "http://"+a.Endpoint(), tc)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, tc.wantCode)
			}
			if tc.wantInBody != "" && !strings.Contains(body, tc.wantInBody) {
				t.Errorf("body %q does not mention %q", body, tc.wantInBody)
			}
			if tc.wantBody != "" && body != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
			if got := resp.Header.Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tc.wantAllow)
			}
			if tc.wantCTypeIs != "" && resp.Header.Get("Content-Type") != tc.wantCTypeIs {
				t.Errorf("Content-Type = %q, want %q", resp.Header.Get("Content-Type"), tc.wantCTypeIs)
			}
		})
	}
	// The agent is still serving.
	resp, _ := doRaw(t, "http://"+a.Endpoint(), rawRequest{path: "/api/v1", headers: jsonCT, body: `{"type":"GET_VERSION"}`})
	if resp.StatusCode != 200 {
		t.Errorf("GET_VERSION after bad calls: %d", resp.StatusCode)
	}
}

// readRecord reads one RecordIO record.
func readRecord(t *testing.T, r *bufio.Reader) []byte {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading record length: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("record length %q: %v", line, err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPlainJSONExecutor speaks the executor API as documented, without mesos-go.
func TestPlainJSONExecutor(t *testing.T) {
	m := &fakeMaster{}
	a := newTestAgent(t, m, nil)
	never := "sleep 1000" // the process never subscribes; this test subscribes in its place
	a.Launch(testFramework(true), &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "plain"}, Command: &mesos.CommandInfo{Value: &never}},
		[]mesos.TaskInfo{dataTask("t1", "x")}, false)
	waitFor(t, "executor registered on the agent", func() bool { return len(a.Executors()) == 1 })

	body := `{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"plain"},"subscribe":{}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Endpoint()+"/api/v1/executor", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("SUBSCRIBE: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	var subscribed, launch map[string]any
	if err := json.Unmarshal(readRecord(t, r), &subscribed); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readRecord(t, r), &launch); err != nil {
		t.Fatal(err)
	}
	cid, _ := subscribed["subscribed"].(map[string]any)["container_id"].(map[string]any)["value"].(string)
	if subscribed["type"] != "SUBSCRIBED" || cid != a.Executors()[0].ContainerID.Value {
		t.Errorf("first event = %v, want SUBSCRIBED with container_id %s", subscribed, a.Executors()[0].ContainerID.Value)
	}
	if launch["type"] != "LAUNCH" {
		t.Errorf("second event = %v, want LAUNCH", launch)
	}

	upd := `{"type":"UPDATE","framework_id":{"value":"fw-1"},"executor_id":{"value":"plain"},"update":{"status":{"task_id":{"value":"t1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"MDEyMzQ1Njc4OWFiY2RlZg=="}}}`
	ur, _ := doRaw(t, "http://"+a.Endpoint(), rawRequest{path: "/api/v1/executor", headers: map[string]string{"Content-Type": "application/json"}, body: upd})
	if ur.StatusCode != 202 {
		t.Fatalf("UPDATE: %d", ur.StatusCode)
	}
	waitFor(t, "update forwarded", func() bool { return len(m.updates("t1")) == 1 })
	a.Acknowledge(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "t1"}, []byte("0123456789abcdef"))
	var ack map[string]any
	if err := json.Unmarshal(readRecord(t, r), &ack); err != nil {
		t.Fatal(err)
	}
	if ack["type"] != "ACKNOWLEDGED" {
		t.Errorf("event after the acknowledgement = %v, want ACKNOWLEDGED", ack)
	}

	// The framework checkpoints, so the executor survives a broken connection and resubscribes with
	// what it has not seen acknowledged: the task (not launched again) and a TASK_FINISHED update the
	// agent never received.
	resp.Body.Close()
	resub := `{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"plain"},"subscribe":{` +
		`"unacknowledged_tasks":[{"name":"t1","task_id":{"value":"t1"},"agent_id":{"value":"agent-S0"}}],` +
		`"unacknowledged_updates":[{"status":{"task_id":{"value":"t1"},"state":"TASK_FINISHED","source":"SOURCE_EXECUTOR","uuid":"ZmVkY2JhOTg3NjU0MzIxMA=="}}]}}`
	req2, _ := http.NewRequest(http.MethodPost, "http://"+a.Endpoint()+"/api/v1/executor", strings.NewReader(resub))
	req2.Header.Set("Content-Type", "application/json")
	resp2, err := http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	r2 := bufio.NewReader(resp2.Body)
	var again map[string]any
	if err := json.Unmarshal(readRecord(t, r2), &again); err != nil || again["type"] != "SUBSCRIBED" {
		t.Fatalf("resubscription: %v %v", again, err)
	}
	waitFor(t, "unacknowledged update forwarded", func() bool { return len(m.updates("t1")) == 2 })
	if got := m.updates("t1")[1]; got.GetState() != mesos.TASK_FINISHED || string(got.UUID) != "fedcba9876543210" {
		t.Errorf("forwarded after resubscription: %v", got)
	}
	a.Acknowledge(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "t1"}, []byte("fedcba9876543210"))
	var next map[string]any
	if err := json.Unmarshal(readRecord(t, r2), &next); err != nil || next["type"] != "ACKNOWLEDGED" {
		t.Errorf("event after resubscription = %v (%v), want ACKNOWLEDGED and no second LAUNCH", next, err)
	}
	waitFor(t, "task completed", func() bool { return len(a.Tasks()) == 0 })
}

func TestStopKillsEverything(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	a.Launch(testFramework(false), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	a.Launch(testFramework(false), nil, []mesos.TaskInfo{commandTask("c1", "sleep 1000 & sleep 1000")}, false)
	waitFor(t, "both running", func() bool { return len(m.states("t1")) == 1 && len(m.states("c1")) == 2 })
	f := &nestedFixture{a: a}
	ex := a.Executors()
	for _, e := range ex {
		if !e.Command {
			f.parent = e.ContainerID
		}
	}
	resp, body := doRaw(t, "http://"+a.Endpoint(), rawRequest{path: "/api/v1", headers: map[string]string{"Content-Type": "application/json"},
		body: `{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"n","parent":{"value":"` + f.parent.Value + `"}},"command":{"value":"sleep 1000"}}}`})
	if resp.StatusCode != 200 {
		t.Fatalf("nested launch: %d %s", resp.StatusCode, body)
	}
	if n := len(processesIn(a.cfg.WorkDir)); n < 4 {
		t.Fatalf("expected at least 4 processes before Stop, found %d", n)
	}
	before := len(m.all("update"))
	a.Stop()
	if left := processesIn(a.cfg.WorkDir); len(left) > 0 {
		waitFor(t, "processes gone after Stop", func() bool { return len(processesIn(a.cfg.WorkDir)) == 0 })
	}
	if after := len(m.all("update")); after != before {
		t.Errorf("master received %d updates after Stop", after-before)
	}
}

// Serve answers the same API on another listener (an in-memory one for in-process executors), until
// the agent stops.
func TestServeOnAnotherListener(t *testing.T) {
	a := newTestAgent(t, &fakeMaster{autoAck: true}, nil)
	l := bufconn.Listen(64 << 10)
	a.Serve(l)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return l.DialContext(ctx) }}}
	resp, err := c.Get("http://" + a.Endpoint() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health in memory: %d", resp.StatusCode)
	}
	c.CloseIdleConnections()
	a.Stop()
	if conn, err := l.DialContext(context.Background()); err == nil {
		conn.Close()
		t.Error("the agent's in-memory listener still accepts after Stop")
	}
}

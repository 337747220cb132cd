package agent

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// pbMessage encodes length-delimited and varint fields by hand, so that a test can leave out fields
// that mesos-go's marshaller always writes (required ones, non-nullable enums).
type pbField struct {
	num    uint64
	varint *uint64
	bytes  []byte
}

func pbMessage(fields ...pbField) []byte {
	b := proto.NewBuffer(nil)
	for _, f := range fields {
		if f.varint != nil {
			_ = b.EncodeVarint(f.num << 3)
			_ = b.EncodeVarint(*f.varint)
			continue
		}
		_ = b.EncodeVarint(f.num<<3 | 2)
		_ = b.EncodeRawBytes(f.bytes)
	}
	return b.Bytes()
}

func pbVarint(num, v uint64) pbField { return pbField{num: num, varint: &v} }

// TestExecutorCallValidation: one row per rule of Mesos' validateExecutorCall and of the parsing in
// Http::executor before it, with Mesos' status code and exact body; valid calls are still accepted.
func TestExecutorCallValidation(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.ExecutorHook = hookExecutor })
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "executor running", func() bool { return len(m.states("t1")) == 1 })

	v4 := base64.StdEncoding.EncodeToString(newUUID())
	ids := `"framework_id":{"value":"fw-1"},"executor_id":{"value":"e"}`
	call := func(typ, rest string) string {
		s := `{"type":"` + typ + `",` + ids
		if rest != "" {
			s += "," + rest
		}
		return s + "}"
	}
	update := func(status string) string { return call("UPDATE", `"update":{"status":{`+status+`}}`) }
	running := `"task_id":{"value":"t1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR"`
	withUUID := func(status, uuid string) string { return update(status + `,"uuid":"` + uuid + `"`) }
	const invalid = "Failed to validate Executor::Call: "
	const noJSON = "Failed to convert JSON into Call protobuf: "

	fw := pbMessage(pbField{num: 1, bytes: []byte("fw-1")})
	ex := pbMessage(pbField{num: 1, bytes: []byte("e")})
	heartbeatPB, _ := (&executor.Call{Type: executor.Call_HEARTBEAT, FrameworkID: mesos.FrameworkID{Value: "fw-1"}, ExecutorID: mesos.ExecutorID{Value: "e"}}).Marshal()

	for _, tc := range []struct {
		name, contentType, body string
		code                    int
		want                    string
	}{
		// Parsing (Http::executor): required fields are checked by the protobuf parsers.
		{"protobuf without executor_id", mediaProtobuf, string(pbMessage(pbField{num: 2, bytes: fw}, pbVarint(3, 4))), 400, "Failed to parse body into Call protobuf"},
		{"protobuf without framework_id", mediaProtobuf, string(pbMessage(pbField{num: 1, bytes: ex}, pbVarint(3, 4))), 400, "Failed to parse body into Call protobuf"},
		{"JSON without ids", mediaJSON, `{"type":"HEARTBEAT"}`, 400, noJSON + "Missing required fields: executor_id, framework_id"},
		{"JSON with an empty executor_id", mediaJSON, `{"type":"HEARTBEAT","framework_id":{"value":"fw-1"},"executor_id":{}}`, 400, noJSON + "Missing required fields: executor_id.value"},
		{"JSON update without state or task_id", mediaJSON, withUUID(`"source":"SOURCE_EXECUTOR"`, v4), 400, noJSON + "Missing required fields: update.status.task_id, update.status.state"},
		{"JSON update with a status without task_id value", mediaJSON, withUUID(`"task_id":{},"state":"TASK_RUNNING"`, v4), 400, noJSON + "Missing required fields: update.status.task_id.value"},
		{"JSON update without status", mediaJSON, call("UPDATE", `"update":{}`), 400, noJSON + "Missing required fields: update.status"},
		{"JSON message without data", mediaJSON, call("MESSAGE", `"message":{}`), 400, noJSON + "Missing required fields: message.data"},
		{"JSON syntax error", mediaJSON, `{"type":}`, 400, "Failed to parse body into JSON: syntax error at line 1 near: }"},
		{"truncated JSON", mediaJSON, `{"type":"HEARTBEAT",`, 400, "Failed to parse body into JSON: syntax error at line 1 near: "},
		{"JSON with trailing characters", mediaJSON, call("HEARTBEAT", "") + " x", 400, "Failed to parse body into JSON: Parsed JSON included non-whitespace trailing characters:  x"},
		{"JSON that is not an object", mediaJSON, `[1]`, 400, noJSON + "Expecting a JSON object"},
		{"JSON syntax error on a later line", mediaJSON, "{\n\"type\": \"HEARTBEAT\",\n\t\"framework_id\" {}}", 400, "Failed to parse body into JSON: syntax error at line 3 near: {}}"},
		{"Content-Type with a charset", mediaJSON + "; charset=utf-8", call("HEARTBEAT", ""), 415, "Expecting 'Content-Type' of application/json or application/x-protobuf"},
		{"empty Content-Type", "", call("HEARTBEAT", ""), 415, "Expecting 'Content-Type' of application/json or application/x-protobuf"},

		// validateExecutorCall.
		{"JSON without type", mediaJSON, `{` + ids + `}`, 400, invalid + "Expecting 'type' to be present"},
		{"protobuf without type", mediaProtobuf, string(pbMessage(pbField{num: 1, bytes: ex}, pbField{num: 2, bytes: fw})), 400, invalid + "Expecting 'type' to be present"},
		{"subscribe without subscribe", mediaJSON, call("SUBSCRIBE", ""), 400, invalid + "Expecting 'subscribe' to be present"},
		{"update without update", mediaJSON, call("UPDATE", ""), 400, invalid + "Expecting 'update' to be present"},
		{"update without uuid", mediaJSON, update(running), 400, invalid + "Expecting 'uuid' to be present"},
		{"update with a uuid that is no UUID", mediaJSON, withUUID(running, base64.StdEncoding.EncodeToString([]byte("not-a-uuid"))), 400, invalid + "Not a valid UUID"},
		{"update with an empty uuid", mediaJSON, withUUID(running, ""), 400, invalid + "Not a valid UUID"},
		{"update with 16 bytes of unknown UUID version", mediaJSON, withUUID(running, base64.StdEncoding.EncodeToString(make([]byte, 16))), 400, invalid + "Not a valid UUID"},
		{"update for another executor", mediaJSON, withUUID(running+`,"executor_id":{"value":"other"}`, v4), 400,
			invalid + "ExecutorID in Call: e does not match ExecutorID in TaskStatus: other"},
		{"update without source", mediaJSON, withUUID(`"task_id":{"value":"t1"},"state":"TASK_RUNNING"`, v4), 400,
			invalid + "Received Call from executor e of framework fw-1 with invalid source, expecting 'SOURCE_EXECUTOR'"},
		{"update from the agent's source", mediaJSON, withUUID(`"task_id":{"value":"t1"},"state":"TASK_RUNNING","source":"SOURCE_AGENT"`, v4), 400,
			invalid + "Received Call from executor e of framework fw-1 with invalid source, expecting 'SOURCE_EXECUTOR'"},
		{"update with TASK_STAGING", mediaJSON, withUUID(`"task_id":{"value":"t1"},"state":"TASK_STAGING","source":"SOURCE_EXECUTOR"`, v4), 400,
			invalid + "Received TASK_STAGING from executor e of framework fw-1 which is not allowed"},
		{"check status without type", mediaJSON, withUUID(running+`,"check_status":{}`, v4), 400, invalid + "CheckStatusInfo must specify 'type'"},
		{"COMMAND check status without command", mediaJSON, withUUID(running+`,"check_status":{"type":"COMMAND"}`, v4), 400, invalid + "Expecting 'command' to be set for COMMAND check's status"},
		{"HTTP check status without http", mediaJSON, withUUID(running+`,"check_status":{"type":"HTTP"}`, v4), 400, invalid + "Expecting 'http' to be set for HTTP check's status"},
		{"TCP check status without tcp", mediaJSON, withUUID(running+`,"check_status":{"type":"TCP"}`, v4), 400, invalid + "Expecting 'tcp' to be set for TCP check's status"},
		{"UNKNOWN check status", mediaJSON, withUUID(running+`,"check_status":{"type":"UNKNOWN"}`, v4), 400, invalid + "'UNKNOWN' is not a valid check's status type"},
		{"message without message", mediaJSON, call("MESSAGE", ""), 400, invalid + "Expecting 'message' to be present"},

		// Valid calls.
		{"update", mediaJSON, withUUID(running, v4), 202, ""},
		{"update with the call's executor_id and a check status", mediaJSON,
			withUUID(running+`,"executor_id":{"value":"e"},"check_status":{"type":"COMMAND","command":{"exit_code":0}}`, v4), 202, ""},
		{"update with a version 3 UUID", mediaJSON, withUUID(running, base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))), 202, ""},
		{"message", mediaJSON, call("MESSAGE", `"message":{"data":"aGk="}`), 202, ""},
		{"protobuf heartbeat", mediaProtobuf, string(heartbeatPB), 202, ""},
		// Mesos answers a heartbeat before looking the framework and executor up.
		{"heartbeat of an unknown executor", mediaJSON, `{"type":"HEARTBEAT","framework_id":{"value":"nope"},"executor_id":{"value":"nope"}}`, 202, ""},
		// Http::executor answers a call of type UNKNOWN after looking up its executor; an unknown type
		// is dropped by the conversion (JSON) or by proto2 (protobuf) and so is missing.
		{"call of type UNKNOWN", mediaJSON, call("UNKNOWN", ""), 501, "501 Not Implemented."},
		{"protobuf call of type UNKNOWN", mediaProtobuf, string(pbMessage(pbField{num: 1, bytes: ex}, pbField{num: 2, bytes: fw}, pbVarint(3, 0))), 501, "501 Not Implemented."},
		{"call of type UNKNOWN of an unknown executor", mediaJSON, `{"type":"UNKNOWN","framework_id":{"value":"fw-1"},"executor_id":{"value":"nope"}}`, 400, "Executor cannot be found"},
		{"JSON call of an unknown type", mediaJSON, call("FROBNICATE", ""), 400, invalid + "Expecting 'type' to be present"},
		{"protobuf call of an unknown type", mediaProtobuf, string(pbMessage(pbField{num: 1, bytes: ex}, pbField{num: 2, bytes: fw}, pbVarint(3, 99))), 400, invalid + "Expecting 'type' to be present"},
		{"JSON type as a number", mediaJSON, `{"type":4,` + ids + `}`, 400, noJSON + "Not expecting a JSON number for field 'type'"},
		{"JSON type null", mediaJSON, `{"type":null,` + ids + `}`, 400, invalid + "Expecting 'type' to be present"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post("http://"+a.Endpoint()+"/api/v1/executor", tc.contentType, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || string(body) != tc.want {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, body, tc.code, tc.want)
			}
		})
	}
}

func TestValidUUID(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{newUUID(), true},
		{[]byte("0123456789abcdef"), true}, // version 3
		{make([]byte, 16), false},
		{append(make([]byte, 6), append([]byte{0x60}, make([]byte, 9)...)...), false}, // version 6: unknown to boost 1.81
		{make([]byte, 15), false},
		{make([]byte, 17), false},
	} {
		if got := validUUID(tc.b); got != tc.want {
			t.Errorf("validUUID(%x) = %v, want %v", tc.b, got, tc.want)
		}
	}
}

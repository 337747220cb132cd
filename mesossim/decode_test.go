package mesossim

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// pbField is one hand-encoded protobuf field, so that a test can leave out what mesos-go's
// marshaller always writes (required fields, non-nullable enums) or write an unknown enum value.
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

type decodeCase struct {
	name    string
	method  string
	headers map[string]string
	body    string
	code    int
	want    string
}

// runDecodeCases posts each case to path and requires Mesos' exact status and body.
func runDecodeCases(t *testing.T, url string, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, url, bytes.NewReader([]byte(tc.body)))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusOK && (tc.code != http.StatusOK || tc.want == "") {
				// A subscription, whose body does not end: its status tells.
				if tc.code != http.StatusOK {
					t.Errorf("200 (a subscription), want %d %q", tc.code, tc.want)
				}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || string(b) != tc.want {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, b, tc.code, tc.want)
			}
			if tc.code == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow: %q, want POST", resp.Header.Get("Allow"))
			}
		})
	}
}

const (
	notJSONorPB  = "Expecting 'Content-Type' of application/json or application/x-protobuf"
	noConversion = "Failed to convert JSON into Call protobuf: "
	badProtobuf  = "Failed to parse body into Call protobuf"
)

// TestSchedulerCallDecoding: POST /api/v1/scheduler reads its body as Master::Http::scheduler does
// (src/master/http.cpp): the whole Content-Type string, stout's JSON parse and JSON-to-protobuf
// conversion with their texts, protobuf's required-field check, and an unknown call type left unset.
func TestSchedulerCallDecoding(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	c := h.jsonSubscribe(fwInfo("ok", nil))
	fid := `"framework_id":{"value":"` + c.fwID + `"}`
	js := map[string]string{"Content-Type": mediaJSON}
	withStream := map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": c.streamID}
	pb := map[string]string{"Content-Type": mediaProtobuf}
	pbStream := map[string]string{"Content-Type": mediaProtobuf, "Mesos-Stream-Id": c.streamID}
	const invalid = "Failed to validate scheduler::Call: "

	fwIDpb := pbMessage(pbField{num: 1, bytes: []byte(c.fwID)})
	revive, _ := proto.Marshal(&scheduler.Call{Type: scheduler.Call_REVIVE, FrameworkID: &mesos.FrameworkID{Value: c.fwID}})
	subscribeNoUser := pbMessage(pbVarint(2, uint64(scheduler.Call_SUBSCRIBE)),
		pbField{num: 3, bytes: pbMessage(pbField{num: 1, bytes: pbMessage(pbField{num: 2, bytes: []byte("n")})})})

	runDecodeCases(t, h.url+"/api/v1/scheduler", []decodeCase{
		// libprocess' MethodNotAllowed.
		{name: "GET", method: http.MethodGet, code: 405, want: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'."},
		{name: "PUT", method: http.MethodPut, headers: js, body: `{}`, code: 405, want: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'PUT'."},

		// Content-Type, compared as a whole string.
		{name: "no Content-Type", body: `{"type":"REVIVE"}`, code: 400, want: "Expecting 'Content-Type' to be present"},
		{name: "JSON with a charset", headers: map[string]string{"Content-Type": mediaJSON + "; charset=utf-8"}, body: `{"type":"REVIVE",` + fid + `}`, code: 415, want: notJSONorPB},
		{name: "JSON in capitals", headers: map[string]string{"Content-Type": "Application/JSON"}, body: `{"type":"REVIVE",` + fid + `}`, code: 415, want: notJSONorPB},
		{name: "protobuf with a parameter", headers: map[string]string{"Content-Type": mediaProtobuf + ";proto=mesos.v1.scheduler.Call"}, body: string(revive), code: 415, want: notJSONorPB},
		{name: "text/plain", headers: map[string]string{"Content-Type": "text/plain"}, body: "x", code: 415, want: notJSONorPB},
		{name: "empty Content-Type", headers: map[string]string{"Content-Type": ""}, body: `{}`, code: 415, want: notJSONorPB},
		// The master's endpoints take no streaming requests: RecordIO is just another media type.
		{name: "RecordIO request", headers: map[string]string{"Content-Type": mediaRecordIO, "Message-Content-Type": mediaJSON},
			body: "16\n{\"type\":\"REVIVE\"}", code: 415, want: notJSONorPB},

		// stout's JSON::parse.
		{name: "truncated JSON", headers: js, body: `{"type":`, code: 400, want: "Failed to parse body into JSON: syntax error at line 1 near: "},
		{name: "JSON syntax error", headers: js, body: `{"type":}`, code: 400, want: "Failed to parse body into JSON: syntax error at line 1 near: }"},
		{name: "JSON syntax error on a later line", headers: js, body: "{\n\"type\": \"REVIVE\",\n\t\"framework_id\" {}}", code: 400, want: "Failed to parse body into JSON: syntax error at line 3 near: {}}"},
		{name: "JSON with trailing characters", headers: js, body: `{"type":"REVIVE"} x`, code: 400, want: "Failed to parse body into JSON: Parsed JSON included non-whitespace trailing characters:  x"},
		{name: "number out of range", headers: js, body: `{"type":"REVIVE","x":1e999}`, code: 400, want: "Failed to parse body into JSON: Value out of range"},

		// stout's protobuf::parse<v1::scheduler::Call>.
		{name: "JSON array", headers: js, body: `[]`, code: 400, want: noConversion + "Expecting a JSON object"},
		{name: "JSON null", headers: js, body: `null`, code: 400, want: noConversion + "Expecting a JSON object"},
		{name: "SUBSCRIBE without framework_info", headers: js, body: `{"type":"SUBSCRIBE","subscribe":{}}`, code: 400,
			want: noConversion + "Missing required fields: subscribe.framework_info"},
		{name: "SUBSCRIBE without user and name", headers: js, body: `{"type":"SUBSCRIBE","subscribe":{"framework_info":{}}}`, code: 400,
			want: noConversion + "Missing required fields: subscribe.framework_info.user, subscribe.framework_info.name"},
		{name: "SUBSCRIBE with null user", headers: js, body: `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":null,"name":"n"}}}`, code: 400,
			want: noConversion + "Missing required fields: subscribe.framework_info.user"},
		{name: "SUBSCRIBE with a role without name", headers: js, body: `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","capabilities":[{"type":"MULTI_ROLE"}],"roles":["a"],"labels":{"labels":[{"value":"v"}]}}}}`, code: 400,
			want: noConversion + "Missing required fields: subscribe.framework_info.labels.labels[0].key"},
		{name: "ACCEPT with offer ids without value", headers: withStream, body: `{"type":"ACCEPT",` + fid + `,"accept":{"offer_ids":[{"value":"o"},null,{}]}}`, code: 400,
			want: noConversion + "Missing required fields: accept.offer_ids[1].value"},
		{name: "type as a number", headers: js, body: `{"type":3}`, code: 400, want: noConversion + "Not expecting a JSON number for field 'type'"},
		{name: "members in key order", headers: js, body: `{"type":3,"framework_id":"x"}`, code: 400, want: noConversion + "Not expecting a JSON string for field 'framework_id'"},
		{name: "object for a string", headers: js, body: `{"type":"REVIVE","framework_id":{"value":{}}}`, code: 400, want: noConversion + "Not expecting a JSON object for field 'value'"},
		{name: "array for a singular field", headers: js, body: `{"type":["REVIVE"]}`, code: 400, want: noConversion + "Not expecting a JSON array for field 'type'"},
		{name: "boolean for a message", headers: js, body: `{"type":"REVIVE","revive":true}`, code: 400, want: noConversion + "Not expecting a JSON boolean for field 'revive'"},
		{name: "uuid that is not base64", headers: withStream, body: `{"type":"ACKNOWLEDGE",` + fid + `,"acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"!!"}}`, code: 400,
			want: noConversion + "Failed to base64 decode bytes field 'uuid': Invalid character '!'"},
		{name: "number string that is no number", headers: withStream, body: `{"type":"DECLINE",` + fid + `,"decline":{"offer_ids":[],"filters":{"refuse_seconds":"soon"}}}`, code: 400,
			want: noConversion + "Failed to parse 'soon' as a JSON number for field 'refuse_seconds': syntax error at line 1 near: soon"},

		// An unknown (or no) type leaves the call without one, which validation refuses.
		{name: "unknown call type", headers: withStream, body: `{"type":"FLY",` + fid + `}`, code: 400, want: invalid + "Expecting 'type' to be present"},
		{name: "no call type", headers: withStream, body: `{` + fid + `}`, code: 400, want: invalid + "Expecting 'type' to be present"},
		{name: "null call type", headers: withStream, body: `{"type":null,` + fid + `}`, code: 400, want: invalid + "Expecting 'type' to be present"},
		{name: "call type UNKNOWN", headers: withStream, body: `{"type":"UNKNOWN",` + fid + `}`, code: 501, want: "501 Not Implemented."},
		{name: "SUBSCRIBE with framework_info.id but no framework_id", headers: js,
			body: `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","id":{"value":"x"}}}}`, code: 400,
			want: invalid + "'framework_id' differs from 'subscribe.framework_info.id'"},
		{name: "UPDATE_FRAMEWORK for another framework id", headers: withStream,
			body: `{"type":"UPDATE_FRAMEWORK",` + fid + `,"update_framework":{"framework_info":{"user":"u","name":"n","id":{"value":"x"}}}}`, code: 400,
			want: invalid + "'framework_id' differs from 'update_framework.framework_info.id'"},

		// Protobuf: ParseFromString refuses garbage and missing required fields.
		{name: "protobuf garbage", headers: pb, body: "\xff\xff\xff", code: 400, want: badProtobuf},
		{name: "protobuf SUBSCRIBE without user", headers: pb, body: string(subscribeNoUser), code: 400, want: badProtobuf},
		{name: "protobuf of an unknown call type", headers: pbStream, body: string(pbMessage(pbField{num: 1, bytes: fwIDpb}, pbVarint(2, 99))), code: 400, want: invalid + "Expecting 'type' to be present"},
		{name: "protobuf without call type", headers: pbStream, body: string(pbMessage(pbField{num: 1, bytes: fwIDpb})), code: 400, want: invalid + "Expecting 'type' to be present"},

		// Accepted: stout's conversion is lenient where Go's JSON decoding is not.
		{name: "protobuf REVIVE", headers: pbStream, body: string(revive), code: 202},
		{name: "REVIVE with a lone role for a repeated field", headers: withStream, body: `{"type":"REVIVE",` + fid + `,"revive":{"roles":"*"}}`, code: 202},
		{name: "DECLINE with a number as a string and unknown members", headers: withStream,
			body: `{"type":"DECLINE",` + fid + `,"decline":{"offer_ids":{"value":"gone"},"filters":{"refuse_seconds":"5"}},"x":[1,{}]}`, code: 202},
		{name: "SUBSCRIBE with empty user and name", headers: map[string]string{"Content-Type": mediaJSON, "Accept": mediaJSON},
			body: `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"","name":""}}}`, code: 200},
	})
}

// TestOperatorCallDecoding: POST /api/v1 (Master::Http::api) reads its body the same way, with
// master::Call's validation message.
func TestOperatorCallDecoding(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	js := map[string]string{"Content-Type": mediaJSON}
	pb := map[string]string{"Content-Type": mediaProtobuf}
	health := pbMessage(pbVarint(1, 1)) // GET_HEALTH
	runDecodeCases(t, h.url+"/api/v1", []decodeCase{
		{name: "GET", method: http.MethodGet, code: 405, want: "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'."},
		{name: "no Content-Type", body: `{"type":"GET_HEALTH"}`, code: 400, want: "Expecting 'Content-Type' to be present"},
		{name: "JSON with a charset", headers: map[string]string{"Content-Type": mediaJSON + "; charset=utf-8"}, body: `{"type":"GET_HEALTH"}`, code: 415, want: notJSONorPB},
		{name: "RecordIO request", headers: map[string]string{"Content-Type": mediaRecordIO, "Message-Content-Type": mediaJSON},
			body: "21\n{\"type\":\"GET_HEALTH\"}", code: 415, want: notJSONorPB},
		{name: "malformed JSON", headers: js, body: `{"type":`, code: 400, want: "Failed to parse body into JSON: syntax error at line 1 near: "},
		{name: "JSON string", headers: js, body: `"GET_HEALTH"`, code: 400, want: noConversion + "Expecting a JSON object"},
		{name: "missing required field", headers: js, body: `{"type":"GET_METRICS","get_metrics":{"timeout":{}}}`, code: 400,
			want: noConversion + "Missing required fields: get_metrics.timeout.nanoseconds"},
		{name: "nanoseconds as a fraction", headers: js, body: `{"type":"GET_METRICS","get_metrics":{"timeout":{"nanoseconds":true}}}`, code: 400,
			want: noConversion + "Not expecting a JSON boolean for field 'nanoseconds'"},
		{name: "unknown call type", headers: js, body: `{"type":"GET_EVERYTHING"}`, code: 400, want: "Failed to validate master::Call: Expecting 'type' to be present"},
		{name: "no call type", headers: js, body: `{}`, code: 400, want: "Failed to validate master::Call: Expecting 'type' to be present"},
		{name: "call type UNKNOWN", headers: js, body: `{"type":"UNKNOWN"}`, code: 501, want: "501 Not Implemented."},
		{name: "protobuf garbage", headers: pb, body: "\xff\xff\xff", code: 400, want: badProtobuf},
		{name: "protobuf without call type", headers: pb, body: "", code: 400, want: "Failed to validate master::Call: Expecting 'type' to be present"},
		{name: "protobuf of an unknown call type", headers: pb, body: string(pbMessage(pbVarint(1, 999))), code: 400, want: "Failed to validate master::Call: Expecting 'type' to be present"},
		{name: "protobuf GET_HEALTH", headers: map[string]string{"Content-Type": mediaProtobuf, "Accept": mediaJSON}, body: string(health), code: 200, want: `{"type":"GET_HEALTH","get_health":{"healthy":true}}`},
		{name: "JSON GET_HEALTH", headers: map[string]string{"Content-Type": mediaJSON, "Accept": mediaJSON}, body: `{"type":"GET_HEALTH"}`, code: 200, want: `{"type":"GET_HEALTH","get_health":{"healthy":true}}`},
	})
}

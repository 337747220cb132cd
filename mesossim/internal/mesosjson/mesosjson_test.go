package mesosjson

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{`{"a":1}`, ""},
		{" [1, 2] \n", ""},
		{`{"a":}`, "syntax error at line 1 near: }"},
		{`{"a":`, "syntax error at line 1 near: "},
		{"{\n\"a\": 1,\n\t\"b\" {}}", "syntax error at line 3 near: {}}"},
		{`{"a":1} x`, "Parsed JSON included non-whitespace trailing characters:  x"},
		{`{"a":[1e999]}`, "Value out of range"},
		{`-1e999`, "Value out of range"},
		{`1e-999`, ""}, // underflow is 0, not an error
		{strings.Repeat("[", 200) + strings.Repeat("]", 200), ""},
		{strings.Repeat("[", 199) + `{"a\"[":1}` + strings.Repeat("]", 199), ""},
		{`{"a":` + strings.Repeat("[", 200) + "1" + strings.Repeat("]", 200) + "}", "syntax error at line 1 near: 1" + strings.Repeat("]", 200) + "}"},
		{"[\n" + strings.Repeat("[", 200) + "x", "syntax error at line 2 near: x"},
		{"[1] " + strings.Repeat("[", 201), "Parsed JSON included non-whitespace trailing characters:  " + strings.Repeat("[", 201)},
	} {
		_, err := Parse([]byte(tc.in))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err {
			t.Errorf("Parse(%q) = %q, want %q", tc.in, got, tc.err)
		}
	}
}

func convert(t *testing.T, in string, m proto.Message) (map[string]bool, error) {
	t.Helper()
	v, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	return Convert(v, m)
}

// TestConvertErrors: stout's protobuf::parse texts, the first member in key order that does not fit.
func TestConvertErrors(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{`[]`, "Expecting a JSON object"},
		{`"x"`, "Expecting a JSON object"},
		{`{"task_id":{"value":"t"},"state":"TASK_FLYING"}`, "Failed to find enum for 'TASK_FLYING'"},
		{`{"task_id":{"value":"t"},"state":1}`, "Not expecting a JSON number for field 'state'"},
		{`{"task_id":"t","state":1}`, "Not expecting a JSON number for field 'state'"}, // "state" < "task_id"
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","data":"a!"}`, "Failed to base64 decode bytes field 'data': Invalid character '!'"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","data":"\u00e9"}`, "Failed to base64 decode bytes field 'data': Invalid character '\xc3'"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","timestamp":"1.5x"}`, "Failed to parse '1.5x' as a JSON number for field 'timestamp': Parsed JSON included non-whitespace trailing characters: x"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","timestamp":"[1]"}`, "Failed to parse '[1]' as a JSON number for field 'timestamp': Unexpected JSON type parsed"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","healthy":"yes"}`, "Failed to parse 'yes' as a JSON boolean for field 'healthy': syntax error at line 1 near: yes"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","healthy":1}`, "Not expecting a JSON number for field 'healthy'"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","message":true}`, "Not expecting a JSON boolean for field 'message'"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","message":["a"]}`, "Not expecting a JSON array for field 'message'"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","agent_id":"a"}`, "Not expecting a JSON string for field 'agent_id'"},
		{`{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":{}}`, "Not expecting a JSON object for field 'uuid'"},
		{`{"state":"TASK_RUNNING"}`, "Missing required fields: task_id"},
		{`{"task_id":{},"state":null}`, "Missing required fields: state, task_id.value"},
	} {
		_, err := convert(t, tc.in, &mesos.TaskStatus{})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err {
			t.Errorf("Convert(%s) = %q, want %q", tc.in, got, tc.err)
		}
	}
}

// TestConvertValues: what stout's parse accepts and how it sets it.
func TestConvertValues(t *testing.T) {
	var st mesos.TaskStatus
	set, err := convert(t, `{"task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_NOWHERE","reason":null,
		"data":"aG k\ngd29y=bGQ","timestamp":"-Infinity","healthy":"true","unknown":{"deep":[1]}}`, &st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{"task_id": true, "state": true, "data": true, "timestamp": true, "healthy": true}, set); diff != "" {
		t.Errorf("set fields (-want +got):\n%s", diff)
	}
	if st.Source != nil || st.Reason != nil {
		t.Errorf("an unknown optional enum and null leave fields unset: source %v reason %v", st.Source, st.Reason)
	}
	// base64 as stout decodes it: white space skipped, decoding stops at '='.
	if string(st.Data) != "hi wor" || st.GetState() != mesos.TASK_RUNNING || !math.IsInf(st.GetTimestamp(), -1) || !st.GetHealthy() {
		t.Errorf("decoded %+v", st)
	}

	// Numbers are cast as C++ casts them; a lone value of a repeated field is one element.
	var r mesos.Value_Ranges
	if _, err := convert(t, `{"range":{"begin":-1,"end":"31000.9"}}`, &r); err != nil {
		t.Fatal(err)
	}
	if want := []mesos.Value_Range{{Begin: math.MaxUint64, End: 31000}}; !reflect.DeepEqual(r.Range, want) {
		t.Errorf("ranges %+v, want %+v", r.Range, want)
	}
	var d mesos.DurationInfo
	if _, err := convert(t, `{"nanoseconds":1.9e3}`, &d); err != nil || d.Nanoseconds != 1900 {
		t.Errorf("nanoseconds %d (%v), want 1900", d.Nanoseconds, err)
	}

	// Repeated fields: arrays flatten, nulls add nothing; maps take objects.
	var fi mesos.FrameworkInfo
	if _, err := convert(t, `{"user":"u","name":"n","roles":[["a",null],"b"],"capabilities":{"type":"MULTI_ROLE"},
		"offer_filters":{"r":{"min_allocatable_resources":{"quantities":[]}}},"failover_timeout":"7"}`, &fi); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fi.Roles, []string{"a", "b"}) || len(fi.Capabilities) != 1 || fi.Capabilities[0].GetType() != mesos.FrameworkInfo_Capability_MULTI_ROLE ||
		fi.GetFailoverTimeout() != 7 || len(fi.OfferFilters) != 1 || fi.OfferFilters["r"].MinAllocatableResources == nil {
		t.Errorf("decoded %+v", fi)
	}

	// A call's type counts as set only when it names a value.
	for in, want := range map[string]bool{`{"type":"REVIVE"}`: true, `{"type":"NOPE"}`: false, `{"type":null}`: false, `{}`: false} {
		var c scheduler.Call
		set, err := convert(t, in, &c)
		if err != nil || set["type"] != want {
			t.Errorf("%s: type set %v (%v), want %v", in, set["type"], err, want)
		}
	}
}

func TestMissingRequired(t *testing.T) {
	v, _ := Parse([]byte(`{"subscribe":{"framework_info":{"labels":{"labels":[{}, null, {"key":"k"}, [{"value":"v"}]]},"capabilities":[]}}}`))
	got := strings.Join(MissingRequired(reflect.TypeOf(scheduler.Call{}), v.(map[string]any)), ", ")
	want := "subscribe.framework_info.user, subscribe.framework_info.name, subscribe.framework_info.labels.labels[0].key, subscribe.framework_info.labels.labels[2].key"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestProtobufHasField(t *testing.T) {
	b, _ := (&scheduler.Call{Type: scheduler.Call_REVIVE, FrameworkID: &mesos.FrameworkID{Value: "f"}}).Marshal()
	if !ProtobufHasField(b, 1) || !ProtobufHasField(b, 2) || ProtobufHasField(b, 3) || ProtobufHasField([]byte{0xff}, 1) {
		t.Error("wrong presence")
	}
}

func TestBase64Decode(t *testing.T) {
	for in, want := range map[string]string{"": "", "aGk=": "hi", "aGk": "hi", "aA": "h", "a": "", "aGVsbG8=trailing": "hello", " aG\tk ": "hi"} {
		got, err := base64Decode(in)
		if err != nil || string(got) != want {
			t.Errorf("base64Decode(%q) = %q, %v; want %q", in, got, err, want)
		}
		if got == nil {
			t.Errorf("base64Decode(%q) is nil: the field would read as unset", in)
		}
	}
}

// acceptCall is an ACCEPT with one LAUNCH of two command tasks, as kubemesos sends them.
var acceptCall = []byte(`{"type":"ACCEPT","framework_id":{"value":"fw-0001"},"accept":{"offer_ids":[{"value":"o-1"}],
"operations":[{"type":"LAUNCH","launch":{"task_infos":[` + task("t1") + `,` + task("t2") + `]}}],"filters":{"refuse_seconds":5}}}`)

func task(id string) string {
	return `{"name":"` + id + `","task_id":{"value":"` + id + `"},"agent_id":{"value":"agent-0"},
"command":{"value":"sleep 3600","shell":true,"environment":{"variables":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}},
"labels":{"labels":[{"key":"kubemesos.io/pod","value":"default/web-1"}]},
"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1},"allocation_info":{"role":"kubemesos"}},
{"name":"mem","type":"SCALAR","scalar":{"value":32},"allocation_info":{"role":"kubemesos"}},
{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31001}]},"allocation_info":{"role":"kubemesos"}}]}`
}

// BenchmarkParseConvertAccept: stout-faithful decoding of a typical ACCEPT (what the master does per call).
func BenchmarkParseConvertAccept(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		v, err := Parse(acceptCall)
		if err != nil {
			b.Fatal(err)
		}
		var c scheduler.Call
		if _, err := Convert(v, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalAccept: mesos-go's generated JSON decoding of the same call, for comparison.
func BenchmarkUnmarshalAccept(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var c scheduler.Call
		if err := json.Unmarshal(acceptCall, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConvertMatchesUnmarshal: for a well-formed call, the conversion gives what mesos-go's decoding gives.
func TestConvertMatchesUnmarshal(t *testing.T) {
	var want, got scheduler.Call
	if err := json.Unmarshal(acceptCall, &want); err != nil {
		t.Fatal(err)
	}
	if _, err := convert(t, string(acceptCall), &got); err != nil {
		t.Fatal(err)
	}
	if !want.Equal(&got) {
		t.Errorf("got %v\nwant %v", &got, &want)
	}
}

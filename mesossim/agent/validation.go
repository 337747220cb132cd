package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// parseExecutorCall decodes the body of POST /api/v1/executor as Mesos' Http::executor does, answering
// its status and message on failure. hasType reports whether the call carries its (optional) type,
// which mesos-go's Call cannot tell apart from UNKNOWN.
func parseExecutorCall(contentType string, body []byte) (call *executor.Call, hasType bool, code int, msg string) {
	call = &executor.Call{}
	switch contentType {
	case mediaProtobuf:
		// Like protobuf's ParseFromString this fails on missing required fields (gogo checks them).
		if err := call.Unmarshal(body); err != nil {
			return nil, false, http.StatusBadRequest, "Failed to parse body into Call protobuf"
		}
		return call, protobufHasField(body, 3), 0, ""
	case mediaJSON:
		value, err := parseJSONLikeStout(body)
		if err != nil {
			return nil, false, http.StatusBadRequest, "Failed to parse body into JSON: " + err.Error()
		}
		obj, ok := value.(map[string]any)
		if !ok {
			return nil, false, http.StatusBadRequest, "Failed to convert JSON into Call protobuf: Expecting a JSON object"
		}
		if err := json.Unmarshal(body, call); err != nil {
			return nil, false, http.StatusBadRequest, "Failed to convert JSON into Call protobuf: " + err.Error()
		}
		var missing []string
		missingRequired(reflect.TypeOf(*call), obj, "", &missing)
		if len(missing) > 0 {
			return nil, false, http.StatusBadRequest, "Failed to convert JSON into Call protobuf: Missing required fields: " + strings.Join(missing, ", ")
		}
		t, present := obj["type"]
		return call, present && t != nil, 0, ""
	}
	return nil, false, http.StatusUnsupportedMediaType, "Expecting 'Content-Type' of application/json or application/x-protobuf"
}

// validateExecutorCall is Mesos' common::validation::validateExecutorCall (src/common/validation.cpp),
// with its messages. Missing required fields (executor_id, framework_id, update.status.state, ...) are
// refused earlier, by parsing.
func validateExecutorCall(c *executor.Call, hasType bool) string {
	if !hasType {
		return "Expecting 'type' to be present"
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
		st := &c.Update.Status
		if st.UUID == nil {
			return "Expecting 'uuid' to be present"
		}
		if !validUUID(st.UUID) {
			return "Not a valid UUID"
		}
		if st.ExecutorID != nil && st.ExecutorID.Value != c.ExecutorID.Value {
			return "ExecutorID in Call: " + c.ExecutorID.Value + " does not match ExecutorID in TaskStatus: " + st.ExecutorID.Value
		}
		// An unset source reads as SOURCE_MASTER, the enum's first value, so it is refused too.
		if st.GetSource() != mesos.SOURCE_EXECUTOR {
			return "Received Call from executor " + c.ExecutorID.Value + " of framework " + c.FrameworkID.Value + " with invalid source, expecting 'SOURCE_EXECUTOR'"
		}
		if st.GetState() == mesos.TASK_STAGING {
			return "Received TASK_STAGING from executor " + c.ExecutorID.Value + " of framework " + c.FrameworkID.Value + " which is not allowed"
		}
		if st.CheckStatus != nil {
			if msg := validateCheckStatusInfo(st.CheckStatus); msg != "" {
				return msg
			}
		}
	case executor.Call_MESSAGE:
		if c.Message == nil {
			return "Expecting 'message' to be present"
		}
	}
	return ""
}

// validUUID is stout's id::UUID::fromBytes: 16 bytes whose version (boost 1.81 knows 1 to 5) is known.
func validUUID(b []byte) bool {
	if len(b) != 16 {
		return false
	}
	v := b[6] >> 4
	return v >= 1 && v <= 5
}

// validateCheckStatusInfo is common::validation::validateCheckStatusInfo.
func validateCheckStatusInfo(c *mesos.CheckStatusInfo) string {
	if c.Type == nil {
		return "CheckStatusInfo must specify 'type'"
	}
	switch *c.Type {
	case mesos.CheckInfo_COMMAND:
		if c.Command == nil {
			return "Expecting 'command' to be set for COMMAND check's status"
		}
	case mesos.CheckInfo_HTTP:
		if c.HTTP == nil {
			return "Expecting 'http' to be set for HTTP check's status"
		}
	case mesos.CheckInfo_TCP:
		if c.TCP == nil {
			return "Expecting 'tcp' to be set for TCP check's status"
		}
	case mesos.CheckInfo_UNKNOWN:
		return "'UNKNOWN' is not a valid check's status type"
	}
	return ""
}

// protobufHasField reports whether a valid top-level protobuf message carries field number n.
func protobufHasField(b []byte, n uint64) bool {
	buf := proto.NewBuffer(b)
	for {
		key, err := buf.DecodeVarint()
		if err != nil {
			return false
		}
		if key>>3 == n {
			return true
		}
		switch key & 7 {
		case 0:
			_, err = buf.DecodeVarint()
		case 1:
			_, err = buf.DecodeFixed64()
		case 2:
			_, err = buf.DecodeRawBytes(false)
		case 5:
			_, err = buf.DecodeFixed32()
		default:
			return false
		}
		if err != nil {
			return false
		}
	}
}

// missingRequired appends to out the required fields of message type t absent from the JSON object
// obj, named and ordered as protobuf's InitializationErrorString names them: first this message's own
// missing fields in declaration order, then those of the sub-messages present, by field number
// ("update.status.task_id.value", "subscribe.unacknowledged_tasks[0].name").
func missingRequired(t reflect.Type, obj map[string]any, prefix string, out *[]string) {
	props := proto.GetProperties(t)
	type sub struct {
		tag  int
		name string
		typ  reflect.Type
		val  any
	}
	var subs []sub
	for i, p := range props.Prop {
		if p.OrigName == "" || i >= t.NumField() {
			continue
		}
		v, present := obj[p.OrigName]
		present = present && v != nil
		if p.Required && !present {
			*out = append(*out, prefix+p.OrigName)
		}
		if present {
			if mt := messageType(t.Field(i).Type); mt != nil {
				subs = append(subs, sub{p.Tag, p.OrigName, mt, v})
			}
		}
	}
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].tag < subs[j].tag })
	for _, s := range subs {
		switch v := s.val.(type) {
		case map[string]any:
			missingRequired(s.typ, v, prefix+s.name+".", out)
		case []any:
			for j, e := range v {
				if m, ok := e.(map[string]any); ok {
					missingRequired(s.typ, m, prefix+s.name+"["+strconv.Itoa(j)+"].", out)
				}
			}
		}
	}
}

// messageType is the struct type of a (possibly repeated, possibly pointer) message field, or nil.
func messageType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	if _, ok := reflect.New(t).Interface().(proto.Message); !ok {
		return nil
	}
	return t
}

// parseJSONLikeStout parses a JSON document as stout's JSON::parse does (picojson underneath), with
// its error texts: "syntax error at line N near: <rest of that line from the offending character>" and
// the refusal of trailing characters. Where Go's parser and picojson stop at different characters the
// "near" text can differ; the prefix and the line are the same.
func parseJSONLikeStout(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		offset := int64(len(b))
		var se *json.SyntaxError
		if errors.As(err, &se) && se.Error() != "unexpected end of JSON input" {
			offset = se.Offset - 1 // picojson reports from the offending character on
		}
		line := 1 + bytes.Count(b[:offset], []byte("\n"))
		rest := b[offset:]
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			rest = rest[:i]
		}
		near := make([]byte, 0, len(rest))
		for _, c := range rest {
			if c >= ' ' {
				near = append(near, c)
			}
		}
		return nil, fmt.Errorf("syntax error at line %d near: %s", line, near)
	}
	end := dec.InputOffset()
	last := bytes.TrimRight(b, " \t\n\r")
	if int64(len(last)) > end {
		return nil, fmt.Errorf("Parsed JSON included non-whitespace trailing characters: %s", b[end:len(last)])
	}
	return v, nil
}

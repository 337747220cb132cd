package agent

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/kubemesos/kubemesos/mesossim/internal/mesosjson"
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
		return call, mesosjson.ProtobufHasField(body, 3), 0, ""
	case mediaJSON:
		value, err := mesosjson.Parse(body)
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
		if missing := mesosjson.MissingRequired(reflect.TypeOf(*call), obj); len(missing) > 0 {
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

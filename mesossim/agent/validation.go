package agent

import (
	"net/http"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
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
		_, known := executor.Call_Type_name[int32(call.Type)]
		return call, known && mesosjson.ProtobufHasField(body, 3), 0, ""
	case mediaJSON:
		value, err := mesosjson.Parse(body)
		if err != nil {
			return nil, false, http.StatusBadRequest, "Failed to parse body into JSON: " + err.Error()
		}
		set, err := mesosjson.Convert(value, call)
		if err != nil {
			return nil, false, http.StatusBadRequest, "Failed to convert JSON into Call protobuf: " + err.Error()
		}
		return call, set["type"], 0, ""
	}
	return nil, false, http.StatusUnsupportedMediaType, "Expecting 'Content-Type' of application/json or application/x-protobuf"
}

// parseAgentCall is common/http.hpp's deserialize<v1::agent::Call>, which Http::api applies to a body
// and to each record of a streaming request, with its texts (a conversion error goes out bare).
// hasType is as for parseExecutorCall: proto2 leaves an unknown enum value unset, stout's conversion
// an unknown name.
func parseAgentCall(contentType string, body []byte) (call *agentapi.Call, hasType bool, msg string) {
	call = &agentapi.Call{}
	if contentType == mediaProtobuf {
		if err := call.Unmarshal(body); err != nil {
			return nil, false, "Failed to parse body into a protobuf object"
		}
		_, known := agentapi.Call_Type_name[int32(call.Type)]
		return call, known && mesosjson.ProtobufHasField(body, 1), ""
	}
	value, err := mesosjson.Parse(body)
	if err != nil {
		return nil, false, "Failed to parse body into JSON: " + err.Error()
	}
	set, err := mesosjson.Convert(value, call)
	if err != nil {
		return nil, false, err.Error()
	}
	return call, set["type"], ""
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

package agent

import (
	"net/http"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/kubemesos/kubemesos/mesossim/internal/mesosjson"
)

// parseExecutorCall decodes the body of POST /api/v1/executor as Mesos' Http::executor does, answering
// its status and message on failure. hasType reports whether the call carries its (optional) type,
// which mesos-go's Call cannot tell apart from UNKNOWN.
func parseExecutorCall(contentType string, body []byte) (call *executor.Call, hasType bool, code int, msg string) {
	if contentType != mediaProtobuf && contentType != mediaJSON {
		return nil, false, http.StatusUnsupportedMediaType, "Expecting 'Content-Type' of application/json or application/x-protobuf"
	}
	call = &executor.Call{}
	hasType, msg = decodeCall(contentType, body, call, 3, func() bool {
		_, ok := executor.Call_Type_name[int32(call.Type)]
		return ok
	}, "Failed to parse body into Call protobuf", "Failed to convert JSON into Call protobuf: ")
	if msg != "" {
		return nil, false, http.StatusBadRequest, msg
	}
	return call, hasType, 0, ""
}

// parseAgentCall is common/http.hpp's deserialize<v1::agent::Call>, which Http::api applies to a body
// and to each record of a streaming request, with its texts (a conversion error goes out bare).
func parseAgentCall(contentType string, body []byte) (call *agentapi.Call, hasType bool, msg string) {
	call = &agentapi.Call{}
	hasType, msg = decodeCall(contentType, body, call, 1, func() bool {
		_, ok := agentapi.Call_Type_name[int32(call.Type)]
		return ok
	}, "Failed to parse body into a protobuf object", "")
	if msg != "" {
		return nil, false, msg
	}
	return call, hasType, ""
}

// decodeCall reads a protobuf (ParseFromString, which like gogo fails on missing required fields) or
// JSON (stout's parse and conversion) call into m, answering whether it carries its type (field
// typeField, whose value knownType checks: proto2 leaves an unknown enum value unset, as stout's
// conversion leaves an unknown name) or the failure's text: pbFailed, "Failed to parse body into
// JSON: " and the parse error, or convertPrefix and the conversion error.
func decodeCall(contentType string, body []byte, m proto.Message, typeField uint64, knownType func() bool, pbFailed, convertPrefix string) (hasType bool, msg string) {
	if contentType == mediaProtobuf {
		if err := proto.Unmarshal(body, m); err != nil {
			return false, pbFailed
		}
		return knownType() && mesosjson.ProtobufHasField(body, typeField), ""
	}
	value, err := mesosjson.Parse(body)
	if err != nil {
		return false, "Failed to parse body into JSON: " + err.Error()
	}
	set, err := mesosjson.Convert(value, m)
	if err != nil {
		return false, convertPrefix + err.Error()
	}
	return set["type"], ""
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

// Package diffcheck plays one fixed, harmless scenario against a Mesos master through its HTTP
// APIs and records what it sees as normalized observations, so that two runs (the simulator and
// a real Mesos master, or two files) can be compared key by key.
//
// # The scenario
//
// Each numbered step records observations {step, key, value}:
//
//   - 01–05: GET /version and /health; operator API GET_VERSION, GET_FLAGS (field presence only)
//     and GET_AGENTS (shape; the first agent's pid gives the agent endpoint for 50–57).
//   - 10–19: scheduler API requests Mesos must refuse, each with its status, Content-Type and
//     body: no Content-Type, an Accept it cannot serve, SUBSCRIBE with Mesos-Stream-Id, a call
//     without framework_id, an unknown call type, malformed JSON and protobuf, an unknown
//     framework, GET, a Content-Type with parameters (Mesos compares the whole header).
//   - 20–34: a framework with MULTI_ROLE (and PARTITION_AWARE, TASK_KILLING_STATE, GPU_RESOURCES,
//     as kubemesos subscribes) on a raw connection: status and headers, the events up to the first
//     OFFERS, heartbeat_interval_seconds, the offers' allocation_info and resources; calls without
//     and with a wrong Mesos-Stream-Id; DECLINE of every offer with a one-hour filter (nothing
//     offered within the filter window), REVIVE (offered again); a command task `echo hi` (0.1 cpus,
//     32 MB) followed to TASK_FINISHED with acknowledgements (per state: source, reason, message,
//     uuid length, fields); a LAUNCH asking for more cpus than offered; `sleep 300`; implicit
//     reconciliation while it runs, explicit reconciliation of the finished task and of a task that
//     never existed; KILL; TEARDOWN and whether the stream ends; how RecordIO records sat in HTTP
//     chunks (Mesos writes one record per chunk).
//   - 40–43: a framework without MULTI_ROLE (FrameworkInfo.role "*"): the same subscription and
//     offer observations, TEARDOWN, chunking.
//   - 50–57: the agent's executor API with invalid calls: no Content-Type, malformed JSON and
//     protobuf, no framework_id, an unknown call type, a uuid that is not 16 bytes, no uuid, an
//     unknown framework.
//
// Both frameworks are named kubemesos-diffcheck, use FrameworkInfo.user "nobody" unless told
// otherwise, and are torn down at the end; every wait is bounded (Options). A master that is not
// the leader is recognized by its 307 to the scheduler API and the leader it names is used instead;
// Options.Principal adds HTTP basic authentication.
//
// # Normalization
//
// IDs (framework, agent, offer, master), stream IDs, UUIDs, hostnames, addresses and ports are
// replaced by placeholders such as <framework_id> or <ip>:<port>; a uuid field is recorded as its
// length; timestamps and values of documents are never recorded, only their field paths and JSON
// types ("shape:" keys); the resource amounts in TASK_ERROR/TASK_DROPPED messages are masked as N.
// Observations are sorted by step and key.
package diffcheck

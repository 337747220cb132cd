// Package mesossim is a protocol-faithful, in-process simulation of an Apache Mesos 1.x master (scheduler,
// operator and admin HTTP APIs, allocation, failover, faults) driving simulated agents, so that the
// framework and executor can be developed and tested where no real Mesos can be installed.
//
// # Use
//
//	c, err := mesossim.StartCluster(mesossim.ClusterConfig{Agents: 3, WorkDir: dir,
//		AgentAttributes: "rack:r%d", Master: mesossim.Config{AllocationInterval: time.Second}})
//	defer c.Close()
//	// c.URL + "/api/v1/scheduler" is the scheduler API, c.URL + "/api/v1" the operator API.
//
// The master (Master) serves, as Mesos does: POST /api/v1/scheduler (JSON or protobuf, RecordIO
// SUBSCRIBE streams with Mesos-Stream-Id), POST /api/v1 (GET_HEALTH, GET_VERSION, GET_STATE,
// GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, GET_ROLES, GET_MASTER, and the maintenance calls
// GET_MAINTENANCE_STATUS, GET_MAINTENANCE_SCHEDULE, UPDATE_MAINTENANCE_SCHEDULE, START_MAINTENANCE,
// STOP_MAINTENANCE), GET /health, GET /version, GET /master/state, and /maintenance/schedule,
// /maintenance/status, /machine/down and /machine/up (maintenance.go: unavailabilities on offers,
// inverse offers, DOWN machines). Call bodies are read as Mesos reads them: Content-Type compared as a whole
// string, no streaming requests, JSON converted field by field as stout does, with Mesos' texts for
// every refusal (package mesossim/internal/mesosjson). Agents (package mesossim/agent) serve the executor API and the agent operator API
// on their own listeners and run executors as real processes (or an in-process hook). What the master
// sends an agent (launches, kills, acknowledgements, framework messages, shutdowns) reaches it
// asynchronously and in order, as over a libprocess link: an ACCEPT is answered once validated, not
// when its agent has taken the launch.
//
// # Determinism
//
// Config.Clock drives heartbeats, offer timeouts, failover timeouts and filters (a fake clock steps
// them). With Config.AllocationInterval <= 0 offers are made only by Master.Allocate (or POST
// /admin/allocate), and Config.Seed fixes the allocator's agent order.
//
// # Faults
//
// Go verbs on Master and Cluster, and the same under POST /admin/... (never part of the Mesos API):
// RemoveAgent, PartitionAgent, HealAgent, KillExecutor, Failover, SetStatusUpdateFaults.
// Cluster.RestartAgent (Go only) restarts an agent as an operator upgrading mesos-agent does: the master
// sees it disconnect (DisconnectAgent) and re-register (ReregisterAgent) with what it recovered from its
// checkpoint (package agent); executors of checkpointing frameworks and their containers keep running.
//
// # Deliberate differences from Mesos
//
// No authentication/authorization, no operations other than LAUNCH
// and LAUNCH_GROUP (RESERVE, CREATE... are logged and ignored), no quota (UPDATE_QUOTA); frameworks are kept across a
// simulated master failover (as agents' re-registration would restore them) and wait for their
// schedulers without a failover timer.
package mesossim

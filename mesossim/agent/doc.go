// Package agent is one simulated Apache Mesos 1.x agent.
//
// It exists because no real Mesos can be installed where kubemesos is developed and tested: the
// simulator's master (package mesossim) drives any number of these agents in one process. An agent
// launches executors as real processes (or, for benchmarks, as an in-process Go hook) with the sandbox
// and environment a real agent gives them, fetches CommandInfo.uris, runs command tasks through an
// in-process command executor and DEFAULT executors through an in-process stand-in for
// mesos-default-executor, serves the executor HTTP API (POST /api/v1/executor) and the agent operator
// API calls an executor uses to run nested containers (POST /api/v1), and owns the task status update
// manager that resends every update until the framework acknowledges it.
//
// Isolating mode: when --isolation names Mesos' Linux isolators (filesystem/linux, namespaces/pid,
// linux/capabilities, linux/nnp, docker/runtime, cgroups/..., see mesossim/containerizer) and the agent
// runs as root in a binary that calls containerizer.MaybeRunHelper, nested containers, sessions
// (DEBUG containers in their parent's namespaces) and custom executors' containers run through the
// containerizer's launch helper: own mount and pid namespaces, volumes at their container paths, a
// rootfs when one is provisioned, the CommandInfo's user (else the parent's), capabilities, Mesos'
// launch errors; with the docker provider the provisioner makes each image's root filesystem; an
// executor's container gets its resources plus its tasks' (Mesos' computeExecutorLimits), updated as
// tasks come and go, and LAUNCH_CONTAINER's resources and limits reach cgroups/cpu and cgroups/mem.
// Otherwise (the default posix/cpu,posix/mem, no root, no helper, or the simulator's ProcessMode knob)
// containers are host processes in their own process group ("process mode"); the agent logs why when
// --isolation asked for more. Command tasks and DEFAULT executors stay in-process either way.
//
// The master talks to an agent through the Master interface (link.go) and the exported methods of
// *Agent; everything an executor sees goes over HTTP exactly as against a real agent.
//
// Restart and recovery (recover.go, checkpoint.go): frameworks with FrameworkInfo.checkpoint have
// their frameworks, executors, tasks and status update streams checkpointed under
// <WorkDir>/meta/slaves/<ID> in Mesos' layout; StopForRestart leaves executor processes running and a
// new agent with the same WorkDir and ID (Config.Recover "reconnect", the default) recovers them,
// waits Config.ExecutorReregistrationTimeout for them to subscribe again, kills the others, and
// resends the unacknowledged updates once the master has it again (Reregistered; the master side is
// mesossim.Cluster.RestartAgent). Executors of frameworks without checkpointing are destroyed.
//
// Garbage collection (gc.go): the sandboxes and checkpoints of removed executors and frameworks are
// deleted Config.GCDelay (--gc_delay) after their last modification, sooner when the work dir's file
// system is fuller than --gc_disk_headroom allows (checked every --disk_watch_interval), with Mesos'
// log lines; a restarted agent schedules again what its checkpoint says is over.
//
// Known differences from a real agent: in-process executors (command, default, hooks) and sessions die
// with the agent; the nested containers of recovered executors and, in isolating mode, the
// containerizer holding them pass in memory to the next agent of the same ID instead of being read back
// from --runtime_dir (the simulator's agents share one process); agents of one simulator share a work_dir, so an agent recovers meta/slaves/<its Config.ID> rather than
// following meta/slaves/latest, and there is no boot_id check; a terminated
// executor is forgotten at once, so relaunching the same ExecutorID starts a new run even before its old
// tasks' terminal updates are acknowledged; container images are never pulled: with
// --image_providers=docker the agent reads an image's config from a local --docker_registry archive
// and applies Mesos' docker/runtime rule; in isolating mode the provisioner (its own
// --docker_store_dir, Mesos' default backend) makes the container's root filesystem from the archive,
// in process mode there is none (containers are host processes in their sandbox; the image's
// WorkingDir and User are not applied); an image it cannot provision runs its --image-command when
// configured (a simulator-only fallback, a host process tree in either mode), and command tasks with an
// image still use only that fallback; ATTACH_CONTAINER_OUTPUT streams output from the
// moment of attaching, like Mesos' I/O switchboard, while the sandbox's stdout/stderr files keep
// everything (and, as on Mesos, only a container launched with tty_info, which runs on a
// pseudo-terminal, or a session has a switchboard: attach.go); the agent never sends the executor ERROR event; an ExecutorHook must return once its
// context is cancelled, or Stop waits for it.
package agent

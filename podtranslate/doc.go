// Package podtranslate is the pure translation core between Kubernetes pods and Mesos tasks.
//
// It exists so that the framework, the placement code and the executor agree on one mapping and so that
// mapping can be tested exhaustively without a cluster: every function here is pure (no clientset, no
// HTTP, no clock; times are arguments).
//
// Pod → Mesos ([Options] carries the framework's settings: pod overhead and --pod-network):
//   - [PodDemand] is what a pod needs from an offer (Kubernetes' request arithmetic, converted to Mesos
//     units) and [Resources] turns it into mesos.Resources for containment checks.
//   - [Check] lists every pod field kubemesos cannot honour, each with a fixed reason string; PodDemand
//     refuses such pods with an error wrapping [ErrUnsupported].
//   - [TaskID], [TaskInfo], [PodRef], [PodUID] and [PodFromTaskData] implement the task conventions of
//     docs/design.md (TaskID pod-<uid>, name <namespace>/<name>, kubemesos.io/* labels, the pod as JSON
//     in TaskInfo.data), plus [LabelPodNetwork] naming the CNI network of a pod that joins one.
//   - The pod network: with --pod-network host ([PodNetworkHost], the default) every pod uses its
//     agent's network, so every containerPort (init containers' too) is a host port of the demand and
//     no two pods of an agent get the same port; with a CNI network name, pods without hostNetwork get
//     their own network namespace and only hostPorts are host ports. Such a pod is two tasks
//     ([Options.Sandboxed]): the sandbox task sandbox-<uid> ([Options.SandboxTaskInfo]) on its own
//     sandbox executor kubemesos-pod-<uid> ([Options.SandboxExecutorInfo]: the pod's network_infos,
//     port mappings and hostname) carries the pod's resources, and the pod task on the kubelet
//     executor only [PodTaskDemand], labelled [LabelSandboxExecutor].
//
// Mesos → Pod:
//   - [PodStatusForTask] maps a TaskStatus to a [TaskOutcome]: pod phase, reason, message, whether the
//     pod is over, and what the framework must do (nothing, mark not ready, write a terminal status,
//     relaunch). [ApplyOutcome] applies an outcome to a pod status the way the kubelet would.
//   - [KubeletConditions], [SetCondition] and [PodPhase] compute Initialized, ContainersReady, Ready and
//     the pod phase from container statuses exactly as the kubelet does; the container state helpers
//     ([WaitingState], [RunningState], [TerminatedState], [TerminationReason], [ExitFromWaitStatus]) give
//     the executor the kubelet's container reasons.
//
// # What is honoured, and by whom
//
// Supported pod fields (the executor must implement the runtime ones): containers and init containers
// (started in order), restartable init containers (sidecars: kept running beside the containers,
// stopped after them), command/args/env/envFrom/workingDir, terminationMessagePath and
// terminationMessagePolicy, resources (cpu, memory, ephemeral-storage,
// nvidia.com/gpu), pod overhead and pod-level cpu/memory resources, restartPolicy, probes and lifecycle
// hooks, terminationGracePeriodSeconds and activeDeadlineSeconds, readinessGates, hostNetwork, hostPorts
// (any number on a CNI pod network, where they are port mappings; equal to their containerPort on the
// agent's network), volumes of type emptyDir (default medium, and Memory: a tmpfs the executor's helper nested container
// mounts through a BIDIRECTIONAL HOST_PATH volume on the agent's shared work_dir), configMap, secret, downwardAPI
// and projected (configMap, secret, downwardAPI, serviceAccountToken sources: the default service account
// volume of every pod; their content follows the API every minute, as the kubelet's), hostPath (a Mesos
// HOST_PATH volume: the agent needs volume/host_path; the executor checks the hostPath type and creates
// what DirectoryOrCreate/FileOrCreate ask for), and the security context's runAsUser, runAsNonRoot, capabilities and privileged
// (the executor sends them as Mesos' CommandInfo.user and LinuxInfo capabilities) with runAsGroup,
// supplementalGroups and fsGroup where they agree with the groups Mesos gives (the agent host user's).
// readOnlyRootFilesystem and allowPrivilegeEscalation: false are not honoured: Mesos has no
// per-container read-only root filesystem nor no_new_privs (they are not refused either: CoreDNS,
// metrics-server and the restricted Pod Security Standard set them). Scheduling fields (nodeSelector, required node affinity, tolerations, scheduling
// gates, priority) are the placement code's business. Soft preferences (preferred affinities,
// ScheduleAnyway spreads) are best effort and not reported.
//
// Everything Check reports is refused rather than silently ignored; see the Reason* constants. Some
// fields a kubelet refuses on the node are refused there too, not here: the pod is placed and the
// executor fails it as a kubelet would: runtimeClassName (its sandbox: no such runtime handler),
// spec.os other than linux (admission: PodOSNotSupported) and sysctls outside the kubelet's safe
// allowlist (admission: SysctlForbidden, ForbiddenSysctl).
package podtranslate

// Package kubeletapi is the executor's kubelet API: the HTTPS endpoint the API server calls for
// `kubectl logs`, `exec`, `attach` and `port-forward` on pods the kubemesos executor runs on a Mesos
// agent.
//
// It exists because the executor replaces the kubelet on a Mesos agent, so nothing else answers the
// API server's /containerLogs and /exec requests for the Node. Like the kubelet's server it
// authenticates callers by client certificate (CA from the API server's
// extension-apiserver-authentication ConfigMap) or bearer token (TokenReview), authorizes them with
// SubjectAccessReviews on the Node (nodes/proxy, nodes/log, nodes/stats... with the node's name), serves
// container logs from the CRI logs package containerlogs makes of the nested containers' stdout and
// stderr files (read with the kubelet's reader, k8s.io/cri-client/pkg/logs) and serves exec with the kubelet's remotecommand streaming code (SPDY, and websocket
// channel.k8s.io up to v4), running each command as a Mesos nested container session
// (LAUNCH_NESTED_CONTAINER_SESSION under the target container, ATTACH_CONTAINER_INPUT for stdin,
// WAIT_CONTAINER for the exit code), and attach (/attach, same protocols): a container with stdin or
// tty, which package nested launches with a TTYInfo so that Mesos gives it an I/O switchboard, through
// ATTACH_CONTAINER_OUTPUT and ATTACH_CONTAINER_INPUT; any other's output from its log as it grows.
// /stats/summary and /metrics/resource (what metrics-server scrapes for `kubectl top`) are computed
// from the agent's GET_CONTAINERS resource statistics and the host's /proc (see stats.go).
// Logs of terminated containers are served until their pod is deleted, as a kubelet serves them:
// Registry keeps pods whose Mesos task ended and ForgetDeleted asks the API server which are gone.
//
// The handlers depend on two small interfaces: PodLookup (which pods and containers this executor
// hosts; Registry implements it from the pod statuses the executor computes) and Execer (MesosExecer
// implements it with the agent operator API), so they are tested without Mesos.
package kubeletapi

// Package kubemesos holds the end-to-end tests of the vertical slice (issue 5, "Must show"): ordinary
// Kubernetes workloads created through a real kube-apiserver and kube-controller-manager run as tasks
// of the kubemesos framework (a real process) on a simulated Mesos cluster (mesossim, in-process, with
// real executor and container processes).
//
// It exists because only the assembled system can show what broke the earlier Kubernetes-on-Mesos
// bridge: leaked offers, pods killed by a scheduler restart, executors made incompatible by a flag
// change, lost terminal statuses. Its tests assert on both sides: the API server (client-go) and
// Mesos' own state (the master's operator API).
//
// Run: cd e2e && go test ./kubemesos/ -v (the first run builds the control plane, ~10 minutes).
package kubemesos

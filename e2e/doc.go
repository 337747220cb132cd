// Package e2e holds kubemesos' end-to-end tests: they run against a real kube-apiserver and
// kube-controller-manager started by package cluster (and, as they land, the Mesos simulator and
// the kubemesos framework), because only the real API machinery shows that kubectl workloads run.
//
// The first run builds the Kubernetes binaries (~10 minutes on 2 cores); give `go test` a longer
// -timeout than its 10 minute default, or run `go run ./cmd/kubebins` first.
package e2e

// Package charts checks that kubemesos installs the way its users install things: the container image
// (Dockerfile), the Helm chart (charts/kubemesos) and the DC/OS Universe package (charts/dcos).
//
// It holds the pieces that the tests, and anyone scripting an install, need without a cluster: a renderer
// for Universe packages with the semantics of DC/OS' package manager (Cosmos), a structural validator for
// the Marathon app it produces, and a small Dockerfile reader. The tests lint and render the chart with
// Helm's own Go packages and, when the e2e control plane is available, send every rendered object to the
// real API server as a server-side dry run.
package charts

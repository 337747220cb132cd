package conformance

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// SuiteName names the run in the JUnit file and the summary.
const SuiteName = "Kubernetes [NodeConformance] on kubemesos"

// ExactFocus is a ginkgo --focus that selects exactly the given specs (a subset of the selection) of
// the suite with that description.
func ExactFocus(description string, specs []string) string {
	quoted := make([]string, len(specs))
	for i, s := range specs {
		quoted[i] = exact(description, s)
	}
	return strings.Join(quoted, "|")
}

// Subset returns the selected specs whose full text matches re.
func Subset(selected []string, re *regexp.Regexp) []string {
	var out []string
	for _, s := range selected {
		if re.MatchString(s) {
			out = append(out, s)
		}
	}
	return out
}

// GinkgoArgs are the ginkgo CLI's arguments to run e2eTest with focus and skip on procs processes,
// writing its JSON and JUnit reports into outDir; e2eArgs follow "--" for the suite itself.
func GinkgoArgs(e2eTest, focus, skip string, procs int, timeout time.Duration, outDir string, e2eArgs []string) []string {
	args := []string{
		"--procs=" + fmt.Sprint(procs),
		"--timeout=" + timeout.String(),
		"--focus=" + focus,
		"--skip=" + skip,
		"--output-dir=" + outDir,
		"--json-report=report.json",
		"--junit-report=junit-ginkgo.xml",
		"--no-color",
		"--silence-skips",
		// A spec still running after 5 minutes prints where it is, for the log of a stuck run.
		"--poll-progress-after=5m",
		e2eTest,
		"--",
	}
	return append(args, e2eArgs...)
}

// E2EArgs are the suite's flags against the cluster of kubeconfig: the local provider (no cloud), the
// kubectl of the same release, test data under outDir.
func E2EArgs(kubeconfig, kubectl, outDir string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--provider=local",
		"--kubectl-path=" + kubectl,
		"--e2e-output-dir=" + outDir,
		// The suite's dump of a failed spec's namespace is in ginkgo's report already; its log dump
		// of nodes would ssh to them.
		"--disable-log-dump",
	}
}

// MissingImages lists, sorted, the images the suite names that the store lacks.
func MissingImages(suite, store []string) []string {
	have := map[string]bool{}
	for _, n := range store {
		have[n] = true
	}
	var missing []string
	for _, im := range suite {
		im = strings.TrimSpace(im)
		if im != "" && !have[im] {
			missing = append(missing, im)
		}
	}
	sort.Strings(missing)
	return missing
}

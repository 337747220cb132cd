package conformance

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubemesos/kubemesos/e2e/kubebins"
)

func TestParseSkipList(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, wantErr string
		want                int
	}{
		{name: "empty", yaml: "[]", want: 0},
		{name: "entries", yaml: "- spec: a\n  reason: r\n- spec: b\n  reason: s\n", want: 2},
		{name: "no reason", yaml: "- spec: a\n", wantErr: "no reason"},
		{name: "blank reason", yaml: "- spec: a\n  reason: ' '\n", wantErr: "no reason"},
		{name: "no spec", yaml: "- reason: r\n", wantErr: "no spec"},
		{name: "twice", yaml: "- spec: a\n  reason: r\n- spec: a\n  reason: s\n", wantErr: "listed twice"},
		{name: "unknown field", yaml: "- spec: a\n  reason: r\n  why: x\n", wantErr: "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseSkipList([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(l) != tc.want {
				t.Fatalf("got %d entries, %v; want %d", len(l), err, tc.want)
			}
		})
	}
}

// The committed list parses: every entry has a spec and a reason.
func TestCommittedSkipList(t *testing.T) {
	if _, err := LoadSkipList("skip.yaml"); err != nil {
		t.Fatal(err)
	}
}

// ginkgoMatches is how ginkgo applies --focus/--skip (internal/focus.go): to the suite's description,
// a space and the spec's text.
func ginkgoMatches(re, spec string) bool {
	return regexp.MustCompile(re).MatchString(description + " " + spec)
}

const description = "Kubernetes e2e suite"

func TestFocusAndSkip(t *testing.T) {
	for spec, want := range map[string]bool{
		"[sig-node] Pods should get a host IP [NodeConformance] [Conformance]":                              true,
		"[sig-node] Probing container should be restarted with a GRPC liveness probe [NodeConformance]":     true,
		"[sig-node] Pods should have their auto-restart back-off timer reset [Slow] [NodeConformance]":      false,
		"[sig-node] Pods should cap back-off at MaxContainerBackOff [Slow] [NodeConformance]":               false,
		"[sig-node] Lease lease API should be available [Serial] [NodeConformance]":                         false,
		"[sig-node] Kubelet should restart [Disruptive] [NodeConformance]":                                  false,
		"[sig-node] Sysctls [LinuxOnly] [NodeConformance] should support sysctls [Feature:Sysctls]":         false,
		"[sig-node] Pod InPlace Resize [FeatureGate:InPlacePodVerticalScaling] [Beta] [NodeConformance] x":  false,
		"[sig-node] Something [FeatureGate:SomeAlpha] [Alpha] [NodeConformance] x":                          false,
		"[sig-node] Something of a GA gate [FeatureGate:InPlacePodVerticalScaling] [NodeConformance] works": true,
		"[sig-network] Services should serve a basic endpoint from pods [Conformance]":                      false,
	} {
		got := ginkgoMatches(Focus, spec) && !ginkgoMatches(Skip, spec)
		if got != want {
			t.Errorf("selected(%q) = %v, want %v", spec, got, want)
		}
	}
}

// The skip list's regexp skips exactly its specs: not one whose name merely starts or ends like one.
func TestSkipRegexp(t *testing.T) {
	listed := "[sig-node] Pods should support (x) [a.b]? [NodeConformance]"
	l := SkipList{{Spec: listed, Reason: "r"}}
	re := l.SkipRegexp(description)
	for spec, want := range map[string]bool{
		listed:                       true,
		listed + " more":             false,
		"[sig-apps] outer " + listed: false,
		"[sig-node] Pods should support (x) [a.b]! [NodeConformance]": false,
		"[sig-node] Pods x [Slow] [NodeConformance]":                  true, // the selection's skip stays
	} {
		if got := ginkgoMatches(re, spec); got != want {
			t.Errorf("skip(%q) = %v, want %v", spec, got, want)
		}
	}
	if err := l.Check([]string{"other", listed}); err != nil {
		t.Error(err)
	}
	if err := l.Check([]string{"other"}); err == nil || !strings.Contains(err.Error(), listed) {
		t.Errorf("stale entry not reported: %v", err)
	}
}

func TestExactFocusAndSubset(t *testing.T) {
	selected := []string{"[sig-node] A [NodeConformance]", "[sig-node] A b [NodeConformance]", "[sig-node] C (d) [NodeConformance]"}
	sub := Subset(selected, regexp.MustCompile(`A|\(d\)`))
	if len(sub) != 3 {
		t.Fatalf("subset %v", sub)
	}
	focus := ExactFocus(description, sub[:1])
	for spec, want := range map[string]bool{selected[0]: true, selected[1]: false, selected[2]: false} {
		if got := ginkgoMatches(focus, spec); got != want {
			t.Errorf("focus(%q) = %v, want %v", spec, got, want)
		}
	}
	if !ginkgoMatches(ExactFocus(description, sub), selected[2]) {
		t.Error("quoted parentheses not matched")
	}
}

func TestMissingImages(t *testing.T) {
	got := MissingImages([]string{"b", "a", "", "c "}, []string{"a", "c"})
	if diff := cmp.Diff([]string{"b"}, got); diff != "" {
		t.Error(diff)
	}
}

// testdata/report.json has the fields and enum texts of a ginkgo v2.32 JSON report (as
// types.Report and types.SpecReport marshal; testdata/dry-run.json is a real one, cut down): a passed,
// a failed, a timed-out spec, one skipped by the skip list, one the spec skipped itself (e2eskipper),
// one not reached after an interrupt, one the interrupt stopped, a spec outside the selection, and a
// suite node that failed.
func TestResults(t *testing.T) {
	reports, err := ReadReport(filepath.Join("testdata", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	selected := []string{
		"[sig-node] Pods should get a host IP [NodeConformance] [Conformance]",
		"[sig-node] Container Runtime blackbox test should report termination message [NodeConformance]",
		"[sig-node] Probing container should be restarted with a GRPC liveness probe [NodeConformance]",
		"[sig-node] Sysctls should support unsafe sysctls [NodeConformance]",
		"[sig-node] Kubelet when scheduling a read only busybox container should not write to root filesystem [LinuxOnly] [NodeConformance]",
		"[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]",
		"[sig-node] Not in the report [NodeConformance]",
		"[sig-node] Pods should be updated [Conformance] [NodeConformance]",
	}
	skip := SkipList{{Spec: selected[3], Reason: "the executor passes no sysctls"}}
	results, sum := Results(selected, skip, reports)
	got := map[string]string{}
	for _, r := range results {
		got[r.Spec] = r.Outcome
	}
	want := map[string]string{
		selected[0]: Passed, selected[1]: Failed, selected[2]: Failed, selected[3]: Skipped,
		selected[4]: Skipped, selected[5]: NotRun, selected[6]: NotRun, selected[7]: NotRun,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if !strings.Contains(results[1].Detail, "termination message") || !strings.Contains(results[1].Detail, "runtime.go:") {
		t.Errorf("failure detail %q", results[1].Detail)
	}
	if !strings.HasPrefix(results[2].Detail, "timedout: ") {
		t.Errorf("timed-out detail %q", results[2].Detail)
	}
	if results[3].Detail != "skip list: the executor passes no sysctls" || !results[3].SkipListed {
		t.Errorf("skip-listed %+v", results[3])
	}
	if !strings.HasPrefix(results[4].Detail, "skipped by the spec: ") {
		t.Errorf("spec's own skip %q", results[4].Detail)
	}
	if results[0].Duration != 1500*time.Millisecond {
		t.Errorf("duration %s", results[0].Duration)
	}
	if !strings.HasPrefix(results[7].Detail, "interrupted: Interrupted by User") {
		t.Errorf("interrupted detail %q", results[7].Detail)
	}
	wantSum := Summary{Specs: 8, Passed: 1, Failed: 2, Skipped: 2, SkipListed: 1, NotRun: 3}
	if len(sum.SuiteFailures) != 2 || sum.SuiteFailures[0] != "Interrupted by User" || !strings.Contains(sum.SuiteFailures[1], "SynchronizedAfterSuite failed: cleanup failed") {
		t.Errorf("suite failures %q", sum.SuiteFailures)
	}
	sum.SuiteFailures, sum.Wall = nil, 0
	if diff := cmp.Diff(wantSum, sum); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	line := wantSum.Line("x")
	if line != "x: 8 specs: 1 passed, 2 failed, 2 skipped (1 on the skip list, 1 by the spec), 3 not run" {
		t.Errorf("line %q", line)
	}
	if n := Matching(reports, regexp.MustCompile(Focus)); n != 7 {
		t.Errorf("Matching = %d, want the report's 7 [NodeConformance] specs", n)
	}

	var buf bytes.Buffer
	wantSum.Wall = 90 * time.Second
	if err := WriteJUnit(&buf, SuiteName, results, wantSum); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if doc.Tests != 8 || doc.Failures != 2 || doc.Errors != 3 || doc.Skipped != 2 || doc.Time != 90 || len(doc.Suites[0].Cases) != 8 {
		t.Errorf("junit totals %+v", doc)
	}
	c := doc.Suites[0].Cases
	if c[1].Failure == nil || c[3].Skipped == nil || c[5].Error == nil || c[0].Failure != nil || c[0].Skipped != nil {
		t.Errorf("junit cases %+v", c)
	}
}

func TestSelected(t *testing.T) {
	reports, err := ReadReport(filepath.Join("testdata", "dry-run.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"[sig-node] Pods should be updated [Conformance] [NodeConformance]",
		"[sig-node] Pods should get a host IP [Conformance] [NodeConformance]",
	}
	if diff := cmp.Diff(want, Selected(reports)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The skipped [NodeConformance] spec is [Slow] and [Beta]: out of the selection, but counted.
	if n := Matching(reports, regexp.MustCompile(Focus)); n != 3 {
		t.Errorf("Matching = %d, want 3", n)
	}
	if reports[0].SuiteDescription != description {
		t.Errorf("suite description %q", reports[0].SuiteDescription)
	}
}

// The build module pins the release and the staging replacements e2e/go.mod pins, so e2e.test tests
// the same Kubernetes as the control plane's binaries.
func TestBuildModuleMatchesE2EModule(t *testing.T) {
	mod := readLines(t, filepath.Join(BuildModule[len("conformance/"):], "go.mod"))
	e2e := readLines(t, filepath.Join("..", "go.mod"))
	if !contains(mod, "require k8s.io/kubernetes "+kubebins.KubernetesVersion) && !contains(mod, "\tk8s.io/kubernetes "+kubebins.KubernetesVersion) {
		t.Errorf("%s does not require k8s.io/kubernetes %s", BuildModule, kubebins.KubernetesVersion)
	}
	n := 0
	for _, l := range e2e {
		if strings.HasPrefix(l, "\tk8s.io/") && strings.Contains(l, " => ") {
			n++
			if !contains(mod, l) {
				t.Errorf("%s lacks e2e/go.mod's replacement %q", BuildModule, strings.TrimSpace(l))
			}
		}
	}
	if n == 0 {
		t.Fatal("no k8s.io replacements found in e2e/go.mod")
	}
}

func TestCacheKey(t *testing.T) {
	k := CacheKey([]byte("mod"), []byte("sum"), "go1.26", "linux", "amd64")
	if k != CacheKey([]byte("mod"), []byte("sum"), "go1.26", "linux", "amd64") {
		t.Fatal("key not stable")
	}
	for _, other := range []string{
		CacheKey([]byte("mod2"), []byte("sum"), "go1.26", "linux", "amd64"),
		CacheKey([]byte("mod"), []byte("sum2"), "go1.26", "linux", "amd64"),
		CacheKey([]byte("mod"), []byte("sum"), "go1.27", "linux", "amd64"),
		CacheKey([]byte("mod"), []byte("sum"), "go1.26", "linux", "arm64"),
	} {
		if other == k {
			t.Error("an input change kept the key")
		}
	}
}

func TestGinkgoArgs(t *testing.T) {
	args := GinkgoArgs("/c/e2e.test", "F", "S", 2, time.Hour, "/out", []string{"--kubeconfig=/k"})
	i := indexOf(args, "/c/e2e.test")
	if i < 0 || args[i+1] != "--" || args[i+2] != "--kubeconfig=/k" {
		t.Fatalf("binary and suite flags misplaced: %q", args)
	}
	for _, want := range []string{"--procs=2", "--timeout=1h0m0s", "--focus=F", "--skip=S", "--output-dir=/out", "--json-report=report.json", "--junit-report=junit-ginkgo.xml"} {
		if j := indexOf(args, want); j < 0 || j > i {
			t.Errorf("ginkgo flag %s missing or after the binary: %q", want, args)
		}
	}
}

func indexOf(l []string, s string) int {
	for i, v := range l {
		if v == s {
			return i
		}
	}
	return -1
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func contains(l []string, s string) bool { return indexOf(l, s) >= 0 }

func TestCheckRun(t *testing.T) {
	skip := SkipList{{Spec: "b", Reason: "r"}}
	if err := CheckRun([]string{"a", "b", "c"}, skip, []string{"a", "c"}); err != nil {
		t.Error(err)
	}
	for _, run := range [][]string{{"a", "b", "c"}, {"a"}, {"a", "c", "d"}} {
		if err := CheckRun([]string{"a", "b", "c"}, skip, run); err == nil {
			t.Errorf("run %v accepted", run)
		}
	}
}

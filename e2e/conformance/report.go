package conformance

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Report is the part of a ginkgo JSON report (--json-report: a list of these, one per suite) read
// here; e2e/go.sum does not carry ginkgo, so these mirror github.com/onsi/ginkgo/v2/types.
type Report struct {
	SuiteDescription           string
	SuiteSucceeded             bool
	SpecialSuiteFailureReasons []string
	StartTime                  time.Time
	EndTime                    time.Time
	RunTime                    time.Duration
	SpecReports                []SpecReport
}

// SpecReport is one spec's (or suite node's) outcome.
type SpecReport struct {
	ContainerHierarchyTexts []string
	LeafNodeType            string // "It" for specs; suite nodes have their own types
	LeafNodeText            string
	State                   string // passed, skipped, failed, panicked, timedout, aborted, interrupted, pending
	RunTime                 time.Duration
	Failure                 *Failure `json:",omitempty"`
}

// Failure is why a spec failed or, for a skipped one, the skip's message.
type Failure struct {
	Message  string
	Location struct {
		FileName   string
		LineNumber int
	}
}

// FullText is the spec's name as ginkgo matches and prints it (types.SpecReport.FullText).
func (s SpecReport) FullText() string {
	var texts []string
	for _, t := range append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText) {
		if t != "" {
			texts = append(texts, t)
		}
	}
	return strings.Join(texts, " ")
}

// ReadReport reads a ginkgo JSON report.
func ReadReport(path string) ([]Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r []Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Selected lists, sorted, the specs a --dry-run report would run: a dry run "passes" exactly the specs
// its focus and skip select and reports the others as skipped.
func Selected(reports []Report) []string {
	var out []string
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType == "It" && s.State == "passed" {
				out = append(out, s.FullText())
			}
		}
	}
	sort.Strings(out)
	return out
}

// Outcomes of a selected spec.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
	NotRun  = "not run" // not reached: the suite was interrupted, timed out or its setup failed
)

// Result is a selected spec's outcome.
type Result struct {
	Spec    string
	Outcome string
	// Detail is the failure (with its state when not plain "failed", and where), or why it was skipped.
	Detail   string
	Duration time.Duration
	// SkipListed is set for a spec skipped because the skip list names it.
	SkipListed bool
}

// Summary counts the results.
type Summary struct {
	Specs, Passed, Failed, Skipped, SkipListed, NotRun int
	// SuiteFailures are failures outside any spec (e.g. the suite's setup), which fail the run too.
	SuiteFailures []string
	Wall          time.Duration
}

// Results gives each selected spec its outcome from the run's reports; skip names the specs skipped
// on purpose, whose reason becomes the detail.
func Results(selected []string, skip SkipList, reports []Report) ([]Result, Summary) {
	bySpec := map[string]SpecReport{}
	var sum Summary
	for _, r := range reports {
		if !r.EndTime.IsZero() && r.EndTime.Sub(r.StartTime) > sum.Wall {
			sum.Wall = r.EndTime.Sub(r.StartTime)
		}
		for _, reason := range r.SpecialSuiteFailureReasons {
			sum.SuiteFailures = append(sum.SuiteFailures, reason)
		}
		for _, s := range r.SpecReports {
			if s.LeafNodeType != "It" {
				if isFailure(s.State) {
					sum.SuiteFailures = append(sum.SuiteFailures, fmt.Sprintf("%s %s: %s", s.LeafNodeType, s.State, failureText(s)))
				}
				continue
			}
			bySpec[s.FullText()] = s
		}
	}
	reasons := skip.Reasons()
	results := make([]Result, 0, len(selected))
	for _, name := range selected {
		res := Result{Spec: name}
		s, ok := bySpec[name]
		res.Duration = s.RunTime
		switch {
		case !ok:
			res.Outcome, res.Detail = NotRun, "not in the run's report"
		case s.State == "passed":
			res.Outcome = Passed
		case s.State == "interrupted":
			// Stopped by Ctrl-C (or the suite's timeout): it did not get to pass or fail.
			res.Outcome, res.Detail = NotRun, "interrupted: "+failureText(s)
		case isFailure(s.State):
			res.Outcome, res.Detail = Failed, failureText(s)
			if s.State != "failed" {
				res.Detail = s.State + ": " + res.Detail
			}
		case reasons[name] != "":
			res.Outcome, res.Detail, res.SkipListed = Skipped, "skip list: "+reasons[name], true
		case s.State == "skipped" && s.Failure != nil && s.Failure.Message != "":
			// e2eskipper.Skipf: the spec itself decided it does not apply here.
			res.Outcome, res.Detail = Skipped, "skipped by the spec: "+s.Failure.Message
		default:
			res.Outcome, res.Detail = NotRun, s.State
		}
		results = append(results, res)
	}
	sum.Specs = len(results)
	for _, r := range results {
		switch r.Outcome {
		case Passed:
			sum.Passed++
		case Failed:
			sum.Failed++
		case Skipped:
			sum.Skipped++
			if r.SkipListed {
				sum.SkipListed++
			}
		case NotRun:
			sum.NotRun++
		}
	}
	return results, sum
}

func isFailure(state string) bool {
	switch state {
	case "failed", "panicked", "timedout", "aborted", "interrupted":
		return true
	}
	return false
}

func failureText(s SpecReport) string {
	if s.Failure == nil {
		return ""
	}
	msg := strings.TrimSpace(s.Failure.Message)
	if s.Failure.Location.FileName != "" {
		msg += fmt.Sprintf(" [%s:%d]", s.Failure.Location.FileName, s.Failure.Location.LineNumber)
	}
	return msg
}

// Line is the one-line summary.
func (s Summary) Line(what string) string {
	line := fmt.Sprintf("%s: %d specs: %d passed, %d failed, %d skipped (%d on the skip list, %d by the spec)",
		what, s.Specs, s.Passed, s.Failed, s.Skipped, s.SkipListed, s.Skipped-s.SkipListed)
	if s.NotRun > 0 {
		line += fmt.Sprintf(", %d not run", s.NotRun)
	}
	if len(s.SuiteFailures) > 0 {
		line += fmt.Sprintf(", %d suite failures", len(s.SuiteFailures))
	}
	if s.Wall > 0 {
		line += fmt.Sprintf("; wall %s", s.Wall.Round(time.Second))
	}
	return line
}

// JUnit XML, the subset CI systems read.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the selected specs' results as one JUnit test suite: failed specs as failures,
// specs that did not run as errors, skipped ones with their reason.
func WriteJUnit(w io.Writer, name string, results []Result, sum Summary) error {
	suite := junitSuite{Name: name, Tests: len(results), Failures: sum.Failed, Errors: sum.NotRun, Skipped: sum.Skipped,
		Time: sum.Wall.Seconds()}
	for _, r := range results {
		c := junitCase{Name: r.Spec, Classname: name, Time: r.Duration.Seconds()}
		first, _, _ := strings.Cut(r.Detail, "\n")
		switch r.Outcome {
		case Failed:
			c.Failure = &junitMessage{Message: first, Text: r.Detail}
		case NotRun:
			c.Error = &junitMessage{Message: "not run: " + first, Text: r.Detail}
		case Skipped:
			c.Skipped = &junitMessage{Message: r.Detail}
		}
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Skipped: suite.Skipped,
		Time: suite.Time, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// Matching counts the specs of the reports whose full text matches re, whether selected or not.
func Matching(reports []Report, re *regexp.Regexp) int {
	n := 0
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType == "It" && re.MatchString(s.FullText()) {
				n++
			}
		}
	}
	return n
}

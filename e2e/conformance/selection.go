package conformance

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Focus and Skip select the specs `make conformance` runs, as ginkgo's --focus/--skip (regular
// expressions on a spec's full text, where Kubernetes' framework writes its tags): the node
// conformance specs that need no special setup — not slow, not serial, not disruptive, and of no
// alpha, beta or optional feature. On v1.37.2 that is 236 of the 389 [NodeConformance] specs.
const (
	Focus = `\[NodeConformance\]`
	Skip  = `\[Slow\]|\[Serial\]|\[Disruptive\]|\[Alpha\]|\[Beta\]|\[Feature:`
)

// SkipEntry is one spec of the selection that is not run, and why.
type SkipEntry struct {
	// Spec is the spec's full text exactly as ginkgo reports it.
	Spec string `json:"spec"`
	// Reason names what kubemesos lacks for it.
	Reason string `json:"reason"`
}

// SkipList is the committed list (skip.yaml).
type SkipList []SkipEntry

// LoadSkipList reads and checks a skip list: every entry has a spec and a reason, and no spec is
// listed twice.
func LoadSkipList(path string) (SkipList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseSkipList(b)
}

// ParseSkipList parses and checks the YAML of a skip list.
func ParseSkipList(b []byte) (SkipList, error) {
	var l SkipList
	if err := yaml.UnmarshalStrict(b, &l); err != nil {
		return nil, fmt.Errorf("skip list: %w", err)
	}
	seen := map[string]bool{}
	for i, e := range l {
		switch {
		case strings.TrimSpace(e.Spec) == "":
			return nil, fmt.Errorf("skip list entry %d: no spec", i+1)
		case strings.TrimSpace(e.Reason) == "":
			return nil, fmt.Errorf("skip list entry %d (%s): no reason", i+1, e.Spec)
		case seen[e.Spec]:
			return nil, fmt.Errorf("skip list entry %d: %s is listed twice", i+1, e.Spec)
		}
		seen[e.Spec] = true
	}
	return l, nil
}

// Reasons maps each listed spec to its reason.
func (l SkipList) Reasons() map[string]string {
	m := make(map[string]string, len(l))
	for _, e := range l {
		m[e.Spec] = e.Reason
	}
	return m
}

// SkipRegexp is ginkgo's --skip for the selection without the listed specs: each spec's whole text,
// quoted, so that it skips exactly that spec. Ginkgo matches "<suite description> <spec text>"
// (internal/focus.go), hence the description (the dry run's report has it).
func (l SkipList) SkipRegexp(description string) string {
	parts := []string{Skip}
	for _, e := range l {
		parts = append(parts, exact(description, e.Spec))
	}
	return strings.Join(parts, "|")
}

func exact(description, spec string) string {
	return "^" + regexp.QuoteMeta(description+" "+spec) + "$"
}

// Check returns an error naming every listed spec that is not in selected (a spec renamed or
// removed upstream, or a typo): a stale entry would silently stop meaning anything.
func (l SkipList) Check(selected []string) error {
	in := make(map[string]bool, len(selected))
	for _, s := range selected {
		in[s] = true
	}
	var stale []string
	for _, e := range l {
		if !in[e.Spec] {
			stale = append(stale, e.Spec)
		}
	}
	if len(stale) > 0 {
		sort.Strings(stale)
		return fmt.Errorf("%d skip list entries are not selected specs:\n  %s", len(stale), strings.Join(stale, "\n  "))
	}
	return nil
}

// CheckRun checks that ginkgo's run (a dry run's Selected with the skip list's --skip) is exactly
// the selected specs less the listed ones.
func CheckRun(selected []string, skip SkipList, run []string) error {
	listed := skip.Reasons()
	want := map[string]bool{}
	for _, s := range selected {
		if listed[s] == "" {
			want[s] = true
		}
	}
	var extra []string
	for _, s := range run {
		if !want[s] {
			extra = append(extra, s)
		}
		delete(want, s)
	}
	if len(extra) == 0 && len(want) == 0 {
		return nil
	}
	var missing []string
	for s := range want {
		missing = append(missing, s)
	}
	sort.Strings(missing)
	return fmt.Errorf("the skip list's --skip runs %d specs it should not and leaves out %d it should run:\n  %s",
		len(extra), len(missing), strings.Join(append(extra, missing...), "\n  "))
}

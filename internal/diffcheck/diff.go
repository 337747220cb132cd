package diffcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Absent stands for an observation one run has and the other lacks.
const Absent = "<absent>"

// Difference is one (step, key) whose values differ between two runs.
type Difference struct {
	Step string `json:"step"`
	Key  string `json:"key"`
	A    string `json:"a"`
	B    string `json:"b"`
}

// Compare returns the differences between two runs, sorted by step and key.
func Compare(a, b []Observation) []Difference {
	index := func(obs []Observation) map[[2]string]string {
		m := make(map[[2]string]string, len(obs))
		for _, o := range obs {
			m[[2]string{o.Step, o.Key}] = o.Value
		}
		return m
	}
	ma, mb := index(a), index(b)
	var keys []Observation
	for k := range ma {
		keys = append(keys, Observation{Step: k[0], Key: k[1]})
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, Observation{Step: k[0], Key: k[1]})
		}
	}
	sortObservations(keys)
	var out []Difference
	for _, k := range keys {
		id := [2]string{k.Step, k.Key}
		va, oka := ma[id]
		vb, okb := mb[id]
		if !oka {
			va = Absent
		}
		if !okb {
			vb = Absent
		}
		if va != vb {
			out = append(out, Difference{Step: k.Step, Key: k.Key, A: va, B: vb})
		}
	}
	return out
}

// Steps lists the distinct steps of diffs, in order.
func Steps(diffs []Difference) []string {
	var out []string
	for _, d := range diffs {
		if len(out) == 0 || out[len(out)-1] != d.Step {
			out = append(out, d.Step)
		}
	}
	return out
}

// WriteDiff prints the differences grouped by step, each key with both values under the runs' names.
func WriteDiff(w io.Writer, nameA, nameB string, diffs []Difference) error {
	width := max(len(nameA), len(nameB))
	var b strings.Builder
	if len(diffs) == 0 {
		fmt.Fprintf(&b, "no differences between %s and %s\n", nameA, nameB)
	}
	step := ""
	for _, d := range diffs {
		if d.Step != step {
			step = d.Step
			fmt.Fprintf(&b, "%s\n", step)
		}
		fmt.Fprintf(&b, "  %s\n    %-*s  %s\n    %-*s  %s\n", d.Key, width+1, nameA+":", d.A, width+1, nameB+":", d.B)
	}
	if len(diffs) > 0 {
		fmt.Fprintf(&b, "%d differences in %d steps\n", len(diffs), len(Steps(diffs)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Report is the JSON file a run writes (--out) and a later comparison reads.
type Report struct {
	// Target names what the scenario ran against ("simulator" or the master's URL).
	Target       string        `json:"target"`
	Observations []Observation `json:"observations"`
}

// WriteReport writes r as indented JSON to path.
func WriteReport(path string, r Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadReport reads a file written by WriteReport.
func ReadReport(path string) (Report, error) {
	var r Report
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("reading %s: %w", path, err)
	}
	sortObservations(r.Observations)
	return r, nil
}

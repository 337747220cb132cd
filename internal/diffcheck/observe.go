package diffcheck

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Observation is one normalized fact the scenario saw: at Step, Key had Value.
type Observation struct {
	Step  string `json:"step"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

// recorder collects observations and normalizes every text that goes into them.
type recorder struct {
	mu   sync.Mutex
	obs  map[[2]string]string
	red  redactor
	step string
}

func newRecorder() *recorder { return &recorder{obs: map[[2]string]string{}} }

// set records key=value for the current step; strings are normalized, other values formatted.
func (r *recorder) set(key string, value any) {
	var s string
	switch v := value.(type) {
	case string:
		s = r.red.apply(v)
	case []string:
		s = r.red.apply(strings.Join(v, ","))
	default:
		s = fmt.Sprint(v)
	}
	r.setRaw(key, s)
}

// setMasked records a text with its numbers masked (after redaction, so that IDs are still found).
func (r *recorder) setMasked(key, text string) { r.setRaw(key, maskNumbers(r.red.apply(text))) }

func (r *recorder) setRaw(key, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs[[2]string{r.step, key}] = value
}

// shape records the field paths of a JSON document (types only, never values) as "shape:<path>"
// keys under prefix, so that a field one side has and the other lacks is one line of the diff.
func (r *recorder) shape(prefix string, doc any) {
	paths := map[string]string{}
	flatten(prefix, doc, paths)
	for p, t := range paths {
		r.set("shape:"+p, t)
	}
}

// flatten maps each path of v to its JSON type; array elements share the path "name[]".
func flatten(path string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			out[path] = "object"
		}
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			flatten(p, e, out)
		}
	case []any:
		if len(x) == 0 {
			out[path] = "array"
		}
		for _, e := range x {
			flatten(path+"[]", e, out)
		}
	case string:
		addType(out, path, "string")
	case json.Number, float64:
		addType(out, path, "number")
	case bool:
		addType(out, path, "bool")
	case nil:
		addType(out, path, "null")
	}
}

func addType(out map[string]string, path, t string) {
	if old, ok := out[path]; ok && old != t && !strings.Contains(old, t) {
		parts := append(strings.Split(old, "|"), t)
		sort.Strings(parts)
		t = strings.Join(parts, "|")
	}
	out[path] = t
}

// Observations returns what was recorded, sorted by step and key.
func (r *recorder) Observations() []Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Observation, 0, len(r.obs))
	for k, v := range r.obs {
		out = append(out, Observation{Step: k[0], Key: k[1], Value: v})
	}
	sortObservations(out)
	return out
}

func sortObservations(obs []Observation) {
	sort.Slice(obs, func(i, j int) bool {
		if obs[i].Step != obs[j].Step {
			return obs[i].Step < obs[j].Step
		}
		return obs[i].Key < obs[j].Key
	})
}

// redactor replaces what differs from run to run and cluster to cluster (IDs, stream IDs, UUIDs,
// hostnames, addresses and ports) by placeholders that keep the text's structure.
type redactor struct {
	mu       sync.Mutex
	literals map[string]string
}

// learn registers a dynamic value (an ID, a hostname) and its placeholder, e.g. "<framework_id>".
func (d *redactor) learn(value, placeholder string) {
	if value == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.literals == nil {
		d.literals = map[string]string{}
	}
	d.literals[value] = placeholder
}

var (
	uuidRE = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	ipRE   = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(:\d+)?\b`)
)

func (d *redactor) apply(s string) string {
	d.mu.Lock()
	lits := make([]string, 0, len(d.literals))
	for l := range d.literals {
		lits = append(lits, l)
	}
	// Longest first, so an agent ID is replaced before the master ID it contains.
	sort.Slice(lits, func(i, j int) bool {
		if len(lits[i]) != len(lits[j]) {
			return len(lits[i]) > len(lits[j])
		}
		return lits[i] < lits[j]
	})
	for _, l := range lits {
		s = strings.ReplaceAll(s, l, d.literals[l])
	}
	d.mu.Unlock()
	s = uuidRE.ReplaceAllString(s, "<uuid>")
	return ipRE.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, ":") {
			return "<ip>:<port>"
		}
		return "<ip>"
	})
}

// numbersRE matches decimal numbers, for texts that embed resource amounts.
var numbersRE = regexp.MustCompile(`\d+(\.\d+)?`)

// maskNumbers replaces numbers by N: a message listing an agent's resources keeps its wording but
// not the sizes, which differ from cluster to cluster.
func maskNumbers(s string) string { return numbersRE.ReplaceAllString(s, "N") }

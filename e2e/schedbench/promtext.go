package schedbench

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Sample is one line of a metric in Prometheus' text exposition format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// ParseSamples reads the samples of the metric called name from a Prometheus text exposition (what
// an API server's /metrics serves); comments and other metrics are skipped.
func ParseSamples(r io.Reader, name string) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // another metric sharing the prefix
		}
		s := Sample{Name: name, Labels: map[string]string{}}
		if rest[0] == '{' {
			var err error
			if rest, err = parseLabels(rest[1:], s.Labels); err != nil {
				return nil, fmt.Errorf("%q: %w", line, err)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("%q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `a="x",b="y\"z"}` into into and returns what follows the closing brace.
func parseLabels(s string, into map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return "", fmt.Errorf("bad label at %q", s)
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var b strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i])
				}
				continue
			}
			b.WriteByte(s[i])
		}
		if i == len(s) {
			return "", fmt.Errorf("unterminated value of label %s", key)
		}
		into[key] = b.String()
		s = s[i+1:]
	}
}

// RequestKey is what API requests are counted by: apiserver_request_total's verb, resource and
// subresource (e.g. create pods binding, patch pods status).
type RequestKey struct {
	Verb, Resource, Subresource string
}

func (k RequestKey) String() string {
	s := k.Verb + " " + k.Resource
	if k.Subresource != "" {
		s += "/" + k.Subresource
	}
	return s
}

// RequestCounts sums apiserver_request_total samples by RequestKey (over codes, scopes, versions
// and components). Failed requests count: a 409 on a Binding is still a request made.
func RequestCounts(samples []Sample) map[RequestKey]float64 {
	out := map[RequestKey]float64{}
	for _, s := range samples {
		k := RequestKey{Verb: kubeVerb(s.Labels["verb"]), Resource: s.Labels["resource"], Subresource: s.Labels["subresource"]}
		out[k] += s.Value
	}
	return out
}

// kubeVerb turns the metric's verb label (the API server reports the HTTP-level verbs POST, PUT,
// PATCH, GET, LIST, WATCH, DELETE, ...) into the Kubernetes verb (create, update, ...).
func kubeVerb(v string) string {
	switch v {
	case "POST":
		return "create"
	case "PUT":
		return "update"
	}
	return strings.ToLower(v)
}

// DiffCounts is after minus before for every key that grew.
func DiffCounts(before, after map[RequestKey]float64) map[RequestKey]float64 {
	out := map[RequestKey]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// PerPod divides counts by pods, as "verb resource[/subresource]" → requests per pod, dropping
// entries below 0.005 per pod (background noise such as a controller's lease renewals at small sizes
// stays visible above that).
func PerPod(counts map[RequestKey]float64, pods int) map[string]float64 {
	out := map[string]float64{}
	if pods == 0 {
		return out
	}
	for k, v := range counts {
		if p := v / float64(pods); p >= 0.005 {
			out[k.String()] = round3(p)
		}
	}
	return out
}

// Writes sums the per-pod values of mutating verbs.
func Writes(perPod map[string]float64) float64 {
	var sum float64
	keys := make([]string, 0, len(perPod))
	for k := range perPod {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		verb, _, _ := strings.Cut(k, " ")
		switch verb {
		case "create", "update", "patch", "delete", "deletecollection", "apply":
			sum += perPod[k]
		}
	}
	return round3(sum)
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

package mesossim

import (
	"fmt"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// ParseResources parses an agent resource string in Mesos' own flag syntax:
// "cpus:4;mem:8192;disk:65536;ports:[31000-32000];zones:{a,b}", each entry "name[(role)]:value" with a
// scalar, a "[b-e,...]" range list or a "{x,y}" set as value. A role other than "*" yields a static
// reservation. Whitespace around tokens is ignored.
func ParseResources(s string) (mesos.Resources, error) {
	var out mesos.Resources
	for _, entry := range splitEntries(s) {
		name, value, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("resource %q: expected name:value", entry)
		}
		name = strings.TrimSpace(name)
		role := ""
		if i := strings.IndexByte(name, '('); i >= 0 {
			if !strings.HasSuffix(name, ")") {
				return nil, fmt.Errorf("resource %q: bad role syntax, expected name(role)", entry)
			}
			role = name[i+1 : len(name)-1]
			name = strings.TrimSpace(name[:i])
		}
		if name == "" {
			return nil, fmt.Errorf("resource %q: empty name", entry)
		}
		r := mesos.Resource{Name: name}
		v, err := parseValue(strings.TrimSpace(value), false)
		if err != nil {
			return nil, fmt.Errorf("resource %q: %w", entry, err)
		}
		switch v.Type {
		case mesos.SCALAR:
			if v.Scalar.Value < 0 {
				return nil, fmt.Errorf("resource %q: negative scalar", entry)
			}
			r.Type, r.Scalar = mesos.SCALAR.Enum(), v.Scalar
		case mesos.RANGES:
			r.Type, r.Ranges = mesos.RANGES.Enum(), v.Ranges
		case mesos.SET:
			r.Type, r.Set = mesos.SET.Enum(), v.Set
		default:
			return nil, fmt.Errorf("resource %q: value must be a number, [ranges] or {set}", entry)
		}
		if role != "" && role != "*" {
			r.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: &role}}
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("resource %q: %w", entry, err)
		}
		out.Add1(r)
	}
	return out, nil
}

// ParseAttributes parses agent attributes in Mesos' syntax "rack:r1;zone:{a,b};level:3;ids:[1-4]".
// Every "%d" in the string is replaced by index first, so one flag value can give each agent its own
// attributes. Values that are neither numbers, ranges nor sets are text.
func ParseAttributes(s string, index int) ([]mesos.Attribute, error) {
	s = strings.ReplaceAll(s, "%d", strconv.Itoa(index))
	var out []mesos.Attribute
	for _, entry := range splitEntries(s) {
		name, value, ok := strings.Cut(entry, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || value == "" {
			return nil, fmt.Errorf("attribute %q: expected name:value", entry)
		}
		v, err := parseValue(value, true)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", entry, err)
		}
		a := mesos.Attribute{Name: name, Type: v.Type, Scalar: v.Scalar, Ranges: v.Ranges, Set: v.Set, Text: v.Text}
		out = append(out, a)
	}
	return out, nil
}

// ParseWeights parses the master's --weights flag: "role1=2,role2=3.5".
func ParseWeights(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		role, w, ok := strings.Cut(e, "=")
		if !ok || strings.TrimSpace(role) == "" {
			return nil, fmt.Errorf("weight %q: expected role=weight", e)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || f <= 0 {
			return nil, fmt.Errorf("weight %q: weight must be a positive number", e)
		}
		out[strings.TrimSpace(role)] = f
	}
	return out, nil
}

func splitEntries(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ";") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func parseValue(v string, textOK bool) (mesos.Value, error) {
	switch {
	case v == "":
		return mesos.Value{}, fmt.Errorf("empty value")
	case strings.HasPrefix(v, "["):
		if !strings.HasSuffix(v, "]") {
			return mesos.Value{}, fmt.Errorf("unterminated range list %q", v)
		}
		var rs mesos.Value_Ranges
		for _, part := range strings.Split(v[1:len(v)-1], ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			b, e, ok := strings.Cut(part, "-")
			bi, err1 := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
			ei, err2 := strconv.ParseUint(strings.TrimSpace(e), 10, 64)
			if !ok || err1 != nil || err2 != nil || ei < bi {
				return mesos.Value{}, fmt.Errorf("bad range %q, expected begin-end", part)
			}
			rs.Range = append(rs.Range, mesos.Value_Range{Begin: bi, End: ei})
		}
		rs.Range = mesos.Ranges(rs.Range).Sort().Squash()
		return mesos.Value{Type: mesos.RANGES, Ranges: &rs}, nil
	case strings.HasPrefix(v, "{"):
		if !strings.HasSuffix(v, "}") {
			return mesos.Value{}, fmt.Errorf("unterminated set %q", v)
		}
		var items []string
		for _, it := range strings.Split(v[1:len(v)-1], ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		return mesos.Value{Type: mesos.SET, Set: &mesos.Value_Set{Item: items}}, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return mesos.Value{Type: mesos.SCALAR, Scalar: &mesos.Value_Scalar{Value: f}}, nil
	}
	if textOK {
		return mesos.Value{Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}}, nil
	}
	return mesos.Value{}, fmt.Errorf("bad value %q", v)
}

package mesossim

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
)

// sameExecutor is Mesos' operator==(ExecutorInfo, ExecutorInfo) (src/common/type_utils.cpp), by which
// validateCompatibleExecutorInfo compares a task's executor with the running one of the same ID:
// type, executor_id, data, resources (as Resources), command (URIs and environment as sets, argv in
// order, value, user, shell), framework_id, name, source, container and discovery. Labels and
// shutdown_grace_period are not compared.
func sameExecutor(a, b mesos.ExecutorInfo) bool {
	return a.Type == b.Type &&
		a.ExecutorID.Value == b.ExecutorID.Value &&
		bytes.Equal(a.Data, b.Data) &&
		rez.Equivalent(a.Resources, b.Resources) &&
		sameCommand(a.Command, b.Command) &&
		a.GetFrameworkID().GetValue() == b.GetFrameworkID().GetValue() &&
		a.GetName() == b.GetName() &&
		a.GetSource() == b.GetSource() &&
		sameMessage(a.Container, b.Container) &&
		sameMessage(a.Discovery, b.Discovery)
}

// sameMessage compares two optional fields as Mesos compares an unset field: as its default instance.
func sameMessage[T any, P interface {
	*T
	proto.Message
}](a, b P) bool {
	if a == nil {
		a = new(T)
	}
	if b == nil {
		b = new(T)
	}
	return proto.Equal(a, b)
}

func sameCommand(a, b *mesos.CommandInfo) bool {
	uri := func(u mesos.CommandInfo_URI) string {
		// The cache field is left out: a URI from the fetcher cache is the same URI.
		return fmt.Sprintf("%q %v %v %q", u.Value, u.GetExecutable(), u.GetExtract(), u.GetOutputFile())
	}
	variable := func(v mesos.Environment_Variable) string { return fmt.Sprintf("%q %q", v.Name, v.GetValue()) }
	if len(a.GetURIs()) != len(b.GetURIs()) || !sameSet(a.GetURIs(), b.GetURIs(), uri) {
		return false
	}
	if fmt.Sprintf("%q", a.GetArguments()) != fmt.Sprintf("%q", b.GetArguments()) {
		return false
	}
	av, bv := a.GetEnvironment().GetVariables(), b.GetEnvironment().GetVariables()
	return len(av) == len(bv) && sameSet(av, bv, variable) &&
		a.GetValue() == b.GetValue() && a.GetUser() == b.GetUser() && a.GetShell() == b.GetShell()
}

// sameSet is Mesos' loop over a repeated field: every element of a is found in b.
func sameSet[T any](a, b []T, key func(T) string) bool {
	in := map[string]bool{}
	for _, x := range b {
		in[key(x)] = true
	}
	for _, x := range a {
		if !in[key(x)] {
			return false
		}
	}
	return true
}

// incompatibleExecutorError is validateCompatibleExecutorInfo's text (src/master/validation.cpp),
// with both ExecutorInfos as Mesos' stringify prints them (Message::DebugString).
func incompatibleExecutorError(existing, executor *mesos.ExecutorInfo) error {
	line := "------------------------------------------------------------\n"
	return fmt.Errorf("%s", "ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID.\n"+
		line+"Existing ExecutorInfo:\n"+debugString(existing)+"\n"+
		line+"ExecutorInfo:\n"+debugString(executor)+"\n"+line)
}

// debugString is protobuf's C++ Message::DebugString: the text format, fields in field-number order,
// nested messages as "name {" ... "}" indented by two spaces, strings C-escaped, doubles as SimpleDtoa.
func debugString(m proto.Message) string {
	var b strings.Builder
	writeFields(&b, reflect.ValueOf(m), "")
	return b.String()
}

type textField struct {
	num   int
	name  string
	enum  bool
	bytes bool
	value reflect.Value
}

func writeFields(b *strings.Builder, v reflect.Value, indent string) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	var fields []textField
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("protobuf")
		if tag == "" {
			continue
		}
		parts := strings.Split(tag, ",")
		f := textField{value: v.Field(i), enum: strings.Contains(tag, ",enum="), bytes: parts[0] == "bytes"}
		f.num, _ = strconv.Atoi(parts[1])
		for _, p := range parts {
			if n, ok := strings.CutPrefix(p, "name="); ok {
				f.name = n
			}
		}
		fields = append(fields, f)
	}
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].num < fields[j].num })
	for _, f := range fields {
		fv := f.value
		switch {
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() != reflect.Uint8:
			for i := 0; i < fv.Len(); i++ {
				writeValue(b, f, fv.Index(i), indent)
			}
		case fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice:
			if !fv.IsNil() {
				writeValue(b, f, fv, indent)
			}
		case fv.Kind() == reflect.Map:
			keys := fv.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
			for _, k := range keys {
				b.WriteString(indent + f.name + " {\n")
				writeValue(b, textField{name: "key"}, k, indent+"  ")
				writeValue(b, textField{name: "value"}, fv.MapIndex(k), indent+"  ")
				b.WriteString(indent + "}\n")
			}
		default:
			// A non-nullable field (gogoproto.nullable=false) is always set.
			writeValue(b, f, fv, indent)
		}
	}
}

func writeValue(b *strings.Builder, f textField, v reflect.Value, indent string) {
	if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() != reflect.Struct {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct || (v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct) {
		b.WriteString(indent + f.name + " {\n")
		writeFields(b, v, indent+"  ")
		b.WriteString(indent + "}\n")
		return
	}
	b.WriteString(indent + f.name + ": ")
	switch {
	case f.enum:
		b.WriteString(fmt.Sprint(v.Interface()))
	case v.Kind() == reflect.String:
		b.WriteString(`"` + cEscape([]byte(v.String())) + `"`)
	case v.Kind() == reflect.Slice:
		b.WriteString(`"` + cEscape(v.Bytes()) + `"`)
	case v.Kind() == reflect.Float64 || v.Kind() == reflect.Float32:
		b.WriteString(simpleDtoa(v.Float()))
	default:
		b.WriteString(fmt.Sprint(v.Interface()))
	}
	b.WriteString("\n")
}

// cEscape is protobuf's Utf8SafeCEscape, which DebugString applies to string and bytes fields: \n \r
// \t \" \' \\ escaped, valid UTF-8 sequences kept, other bytes outside printable ASCII in octal.
func cEscape(s []byte) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			if r, n := utf8.DecodeRune(s[i:]); r != utf8.RuneError || n > 1 {
				b.Write(s[i : i+n])
				i += n
				continue
			}
		}
		switch c {
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '"':
			b.WriteString(`\"`)
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&b, `\%03o`, c)
			} else {
				b.WriteByte(c)
			}
		}
		i++
	}
	return b.String()
}

// simpleDtoa is protobuf's SimpleDtoa: %.15g, or %.17g when that does not read back the same value.
func simpleDtoa(f float64) string {
	s := strconv.FormatFloat(f, 'g', 15, 64)
	if back, _ := strconv.ParseFloat(s, 64); back != f {
		s = strconv.FormatFloat(f, 'g', 17, 64)
	}
	// %g as C prints it: no trailing zeros, a two-digit exponent at least.
	if mant, exp, ok := strings.Cut(s, "e"); ok {
		if strings.Contains(mant, ".") {
			mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
		}
		sign := exp[:1]
		digits := strings.TrimLeft(exp[1:], "0")
		for len(digits) < 2 {
			digits = "0" + digits
		}
		return mant + "e" + sign + digits
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

package mesosjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/gogo/protobuf/proto"
)

// Convert fills m, a gogo-generated message, from a value returned by Parse as stout's
// protobuf::parse<T> does, with its error texts: a JSON object is required, its members are applied
// in key order and the first that does not fit its field fails the conversion ("Not expecting a JSON
// number for field 'type'", "Failed to find enum for 'X'", ...), unknown members are ignored, null
// leaves a field unset, an unknown enum name leaves an optional field unset, strings are accepted
// for numbers and booleans, numbers are cast as C++ casts them, bytes are base64 as stout decodes
// it, and required fields left unset fail with "Missing required fields: a, b.c". It returns the
// names of the top-level fields it set, since mesos-go's messages cannot tell an unset
// non-nullable field (a call's type) from its default.
func Convert(value any, m proto.Message) (set map[string]bool, err error) {
	obj, ok := value.(map[string]any)
	if !ok {
		return nil, errors.New("Expecting a JSON object")
	}
	rv := reflect.ValueOf(m).Elem()
	set = map[string]bool{}
	if err := decodeMessage(rv, obj, set); err != nil {
		return nil, err
	}
	if missing := MissingRequired(rv.Type(), obj); len(missing) > 0 {
		return nil, errors.New("Missing required fields: " + strings.Join(missing, ", "))
	}
	return set, nil
}

type fieldInfo struct {
	index int
	props *proto.Properties
}

var fieldsByName sync.Map // reflect.Type -> map[string]fieldInfo

// fields maps a message's protobuf field names (as descriptor's FindFieldByName knows them) to its
// struct fields.
func fields(t reflect.Type) map[string]fieldInfo {
	if f, ok := fieldsByName.Load(t); ok {
		return f.(map[string]fieldInfo)
	}
	props := proto.GetProperties(t)
	out := map[string]fieldInfo{}
	for i, p := range props.Prop {
		if p.OrigName == "" || i >= t.NumField() || strings.HasPrefix(t.Field(i).Name, "XXX_") {
			continue
		}
		out[p.OrigName] = fieldInfo{i, p}
	}
	fieldsByName.Store(t, out)
	return out
}

func decodeMessage(v reflect.Value, obj map[string]any, set map[string]bool) error {
	fs := fields(v.Type())
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // stout's JSON::Object is a std::map
	for _, k := range keys {
		f, ok := fs[k]
		if !ok {
			continue
		}
		changed, err := decodeField(v.Field(f.index), f.props, obj[k])
		if err != nil {
			return err
		}
		if changed && set != nil {
			set[k] = true
		}
	}
	return nil
}

type kind int

const (
	kMessage kind = iota
	kEnum
	kString
	kBytes
	kBool
	kInt
	kFloat
)

// fieldKind is a field's protobuf type and its element type (repeated and pointer stripped).
func fieldKind(f reflect.Value, p *proto.Properties) (kind, reflect.Type, bool) {
	t := f.Type()
	repeated := false
	if t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8 {
		t, repeated = t.Elem(), true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct:
		return kMessage, t, repeated
	case p.Enum != "":
		return kEnum, t, repeated
	case t.Kind() == reflect.String:
		return kString, t, repeated
	case t.Kind() == reflect.Slice:
		return kBytes, t, repeated
	case t.Kind() == reflect.Bool:
		return kBool, t, repeated
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return kFloat, t, repeated
	default:
		return kInt, t, repeated
	}
}

// decodeField is stout's Parser visitor for one member; it reports whether it set the field.
func decodeField(f reflect.Value, p *proto.Properties, val any) (bool, error) {
	if f.Kind() == reflect.Map {
		return decodeMap(f, p, val)
	}
	k, elem, repeated := fieldKind(f, p)
	name := p.OrigName
	switch x := val.(type) {
	case nil:
		return false, nil
	case []any:
		if !repeated {
			return false, fmt.Errorf("Not expecting a JSON array for field '%s'", name)
		}
		changed := false
		for _, e := range x {
			c, err := decodeField(f, p, e)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	case map[string]any:
		if k != kMessage {
			return false, fmt.Errorf("Not expecting a JSON object for field '%s'", name)
		}
		if repeated {
			e := reflect.New(elem)
			if err := decodeMessage(e.Elem(), x, nil); err != nil {
				return false, err
			}
			appendTo(f, e)
			return true, nil
		}
		target := f
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				f.Set(reflect.New(elem))
			}
			target = f.Elem()
		}
		return true, decodeMessage(target, x, nil)
	case string:
		switch k {
		case kString:
			return store(f, repeated, reflect.ValueOf(x).Convert(elem)), nil
		case kBytes:
			b, err := base64Decode(x)
			if err != nil {
				return false, fmt.Errorf("Failed to base64 decode bytes field '%s': %v", name, err)
			}
			return store(f, repeated, reflect.ValueOf(b).Convert(elem)), nil
		case kEnum:
			n, ok := proto.EnumValueMap(p.Enum)[x]
			if !ok {
				if p.Required {
					return false, fmt.Errorf("Failed to find enum for '%s'", x)
				}
				return false, nil // proto2 discards an unknown value of an optional enum
			}
			return store(f, repeated, reflect.ValueOf(n).Convert(elem)), nil
		case kFloat:
			switch x {
			case "Infinity":
				return decodeField(f, p, infinity(1))
			case "-Infinity":
				return decodeField(f, p, infinity(-1))
			}
			fallthrough
		case kInt:
			v, err := Parse([]byte(x))
			if err == nil {
				if _, ok := v.(json.Number); !ok {
					err = errors.New("Unexpected JSON type parsed")
				}
			}
			if err != nil {
				return false, fmt.Errorf("Failed to parse '%s' as a JSON number for field '%s': %v", x, name, err)
			}
			return decodeField(f, p, v)
		case kBool:
			v, err := Parse([]byte(x))
			if err == nil {
				if _, ok := v.(bool); !ok {
					err = errors.New("Unexpected JSON type parsed")
				}
			}
			if err != nil {
				return false, fmt.Errorf("Failed to parse '%s' as a JSON boolean for field '%s': %v", x, name, err)
			}
			return decodeField(f, p, v)
		}
		return false, fmt.Errorf("Not expecting a JSON string for field '%s'", name)
	case json.Number, infinity:
		var n number
		if inf, ok := x.(infinity); ok {
			n = number{f: float64(inf) * inf64}
		} else {
			n = toNumber(x.(json.Number))
		}
		switch k {
		case kFloat:
			f64 := n.f
			if n.isInt {
				f64 = float64(n.i)
			}
			return store(f, repeated, reflect.ValueOf(f64).Convert(elem)), nil
		case kInt:
			// static_cast: an int64 wraps into a narrower or unsigned type, a double truncates.
			if n.isInt {
				return store(f, repeated, reflect.ValueOf(n.i).Convert(elem)), nil
			}
			return store(f, repeated, castFloat(n.f, elem)), nil
		}
		return false, fmt.Errorf("Not expecting a JSON number for field '%s'", name)
	case bool:
		if k != kBool {
			return false, fmt.Errorf("Not expecting a JSON boolean for field '%s'", name)
		}
		return store(f, repeated, reflect.ValueOf(x).Convert(elem)), nil
	}
	return false, fmt.Errorf("unexpected JSON value %T for field '%s'", val, name)
}

// infinity is the number stout makes of the strings "Infinity" and "-Infinity" for a floating field.
type infinity float64

var inf64 = func() float64 { var z float64; return 1 / z }()

func castFloat(f float64, t reflect.Type) reflect.Value {
	switch t.Kind() {
	case reflect.Uint32, reflect.Uint64:
		if f < 0 {
			return reflect.ValueOf(int64(f)).Convert(t)
		}
		return reflect.ValueOf(uint64(f)).Convert(t)
	}
	return reflect.ValueOf(int64(f)).Convert(t)
}

// store sets a singular field or appends to a repeated one.
func store(f reflect.Value, repeated bool, x reflect.Value) bool {
	if repeated {
		if f.Type().Elem().Kind() == reflect.Pointer {
			p := reflect.New(x.Type())
			p.Elem().Set(x)
			x = p
		}
		f.Set(reflect.Append(f, x))
		return true
	}
	if f.Kind() == reflect.Pointer {
		p := reflect.New(x.Type())
		p.Elem().Set(x)
		f.Set(p)
		return true
	}
	f.Set(x)
	return true
}

// appendTo appends the new message ptr (a pointer) to a repeated message field.
func appendTo(f reflect.Value, ptr reflect.Value) {
	if f.Type().Elem().Kind() == reflect.Pointer {
		f.Set(reflect.Append(f, ptr))
		return
	}
	f.Set(reflect.Append(f, ptr.Elem()))
}

// decodeMap is a map field: an object's members are its entries (key and value parsed as the
// entry's fields), an array's elements are applied one by one.
func decodeMap(f reflect.Value, p *proto.Properties, val any) (bool, error) {
	switch x := val.(type) {
	case nil:
		return false, nil
	case []any:
		changed := false
		for _, e := range x {
			c, err := decodeMap(f, p, e)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	case map[string]any:
		if f.IsNil() {
			f.Set(reflect.MakeMap(f.Type()))
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			key := reflect.New(f.Type().Key()).Elem()
			if _, err := decodeField(key, p.MapKeyProp, k); err != nil {
				return false, err
			}
			value := reflect.New(f.Type().Elem()).Elem()
			if _, err := decodeField(value, p.MapValProp, x[k]); err != nil {
				return false, err
			}
			f.SetMapIndex(key, value)
		}
		return true, nil
	case string:
		return false, fmt.Errorf("Not expecting a JSON string for field '%s'", p.OrigName)
	case json.Number:
		return false, fmt.Errorf("Not expecting a JSON number for field '%s'", p.OrigName)
	case bool:
		return false, fmt.Errorf("Not expecting a JSON boolean for field '%s'", p.OrigName)
	}
	return false, fmt.Errorf("unexpected JSON value %T for field '%s'", val, p.OrigName)
}

const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// base64Decode is stout's base64::decode: it stops at the first '=', skips white space, refuses
// any other character outside the alphabet and decodes a trailing partial group.
func base64Decode(s string) ([]byte, error) {
	// Never nil: an empty string sets a bytes field (has_uuid() with an empty uuid), and gogo reads
	// a nil slice as unset.
	out := []byte{}
	var quad [4]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			break
		}
		if c == ' ' || c >= '\t' && c <= '\r' {
			continue
		}
		idx := strings.IndexByte(base64Chars, c)
		if idx < 0 {
			return nil, fmt.Errorf("Invalid character '%s'", []byte{c})
		}
		quad[n] = byte(idx)
		n++
		if n == 4 {
			out = append(out, quad[0]<<2|quad[1]>>4, quad[1]<<4|quad[2]>>2, quad[2]<<6|quad[3])
			n = 0
		}
	}
	// A partial group of n characters gives n-1 bytes, which depend on those characters alone.
	switch n {
	case 2:
		out = append(out, quad[0]<<2|quad[1]>>4)
	case 3:
		out = append(out, quad[0]<<2|quad[1]>>4, quad[1]<<4|quad[2]>>2)
	}
	return out, nil
}

package mesosjson

import (
	"reflect"
	"sort"
	"strconv"

	"github.com/gogo/protobuf/proto"
)

// MissingRequired lists the required fields of message type t absent from the JSON object obj, named
// and ordered as protobuf's InitializationErrorString names them: first this message's own missing
// fields in declaration order, then those of the sub-messages present, by field number
// ("update.status.task_id.value", "subscribe.unacknowledged_tasks[0].name"). A null member is absent,
// and the elements of a repeated field are counted as stout's parse adds them (nulls add none, nested
// arrays are flattened, a lone object is one element).
func MissingRequired(t reflect.Type, obj map[string]any) []string {
	var out []string
	missingRequired(t, obj, "", &out)
	return out
}

func missingRequired(t reflect.Type, obj map[string]any, prefix string, out *[]string) {
	props := proto.GetProperties(t)
	type sub struct {
		tag      int
		name     string
		typ      reflect.Type
		repeated bool
		val      any
	}
	var subs []sub
	for i, p := range props.Prop {
		if p.OrigName == "" || i >= t.NumField() {
			continue
		}
		v, present := obj[p.OrigName]
		present = present && v != nil
		if p.Required && !present {
			*out = append(*out, prefix+p.OrigName)
		}
		if present {
			if mt := messageType(t.Field(i).Type); mt != nil {
				subs = append(subs, sub{p.Tag, p.OrigName, mt, t.Field(i).Type.Kind() == reflect.Slice, v})
			}
		}
	}
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].tag < subs[j].tag })
	for _, s := range subs {
		if !s.repeated {
			if m, ok := s.val.(map[string]any); ok {
				missingRequired(s.typ, m, prefix+s.name+".", out)
			}
			continue
		}
		for j, m := range elements(s.val) {
			missingRequired(s.typ, m, prefix+s.name+"["+strconv.Itoa(j)+"].", out)
		}
	}
}

// elements are the messages stout's parse adds to a repeated message field from JSON value v.
func elements(v any) []map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return []map[string]any{x}
	case []any:
		var out []map[string]any
		for _, e := range x {
			out = append(out, elements(e)...)
		}
		return out
	}
	return nil
}

// messageType is the struct type of a (possibly repeated, possibly pointer) message field, or nil.
func messageType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	if _, ok := reflect.New(t).Interface().(proto.Message); !ok {
		return nil
	}
	return t
}

// ProtobufHasField reports whether a valid top-level protobuf encoding carries field number n.
func ProtobufHasField(b []byte, n uint64) bool {
	buf := proto.NewBuffer(b)
	for {
		key, err := buf.DecodeVarint()
		if err != nil {
			return false
		}
		if key>>3 == n {
			return true
		}
		switch key & 7 {
		case 0:
			_, err = buf.DecodeVarint()
		case 1:
			_, err = buf.DecodeFixed64()
		case 2:
			_, err = buf.DecodeRawBytes(false)
		case 5:
			_, err = buf.DecodeFixed32()
		default:
			return false
		}
		if err != nil {
			return false
		}
	}
}

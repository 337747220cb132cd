package mesossim

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// debugString prints as protobuf's C++ DebugString: fields by number, nested messages in braces,
// strings and bytes with Utf8SafeCEscape, doubles as SimpleDtoa, enums by name.
func TestDebugString(t *testing.T) {
	name, source, shell := "pod sandbox 'web' é", "a\x00\xff\"b\\\n", false
	info := &mesos.ExecutorInfo{
		Type:       mesos.ExecutorInfo_CUSTOM,
		ExecutorID: mesos.ExecutorID{Value: "x"},
		Data:       []byte{0x01, 'z'},
		Name:       &name,
		Source:     &source,
		Command:    &mesos.CommandInfo{Shell: &shell, Arguments: []string{"a", "b"}},
		Resources: []mesos.Resource{
			{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1.0 / 3}},
			{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1e6}},
			{Name: "disk", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1e20}},
		},
	}
	want := `executor_id {
  value: "x"
}
data: "\001z"
resources {
  name: "cpus"
  type: SCALAR
  scalar {
    value: 0.33333333333333331
  }
}
resources {
  name: "mem"
  type: SCALAR
  scalar {
    value: 1000000
  }
}
resources {
  name: "disk"
  type: SCALAR
  scalar {
    value: 1e+20
  }
}
command {
  shell: false
  arguments: "a"
  arguments: "b"
}
name: "pod sandbox \'web\' é"
source: "a\000\377\"b\\\n"
type: CUSTOM
`
	if got := debugString(info); got != want {
		t.Errorf("debugString =\n%s\nwant\n%s", got, want)
	}
}

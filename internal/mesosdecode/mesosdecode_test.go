package mesosdecode

import (
	"strings"
	"testing"

	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Found by FuzzSubscriptionStream (executor/execstream/testdata): a length-delimited field whose
// length varint overflows makes the generated Unmarshal slice out of range.
var overflowingLength = []byte("2\xff\xff\xff\xff\xff\xff\xff\xff\xff0")

func TestMalformedMessageIsAnError(t *testing.T) {
	for name, m := range map[string]encoding.Unmarshaler{"executor event": &mesosexec.Event{}, "scheduler event": &scheduler.Event{}} {
		d := encoding.DecoderFunc(func(u encoding.Unmarshaler) error { return u.Unmarshal(overflowingLength) })
		if err := Decode(d, m); err == nil || !strings.Contains(err.Error(), "malformed message") {
			t.Errorf("%s: Decode = %v, want a malformed message error", name, err)
		}
	}
}

// Package mesosdecode decodes what Mesos sends without letting a malformed message take the process
// down: mesos-go's generated Unmarshal panics on some (a length whose varint overflows gives "slice
// bounds out of range"), where a truncated message gives an error.
package mesosdecode

import (
	"fmt"

	"github.com/mesos/mesos-go/api/v1/lib/encoding"
)

// Decode is d.Decode(m), with such a panic returned as an error.
func Decode(d encoding.Decoder, m encoding.Unmarshaler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed message: %v", r)
		}
	}()
	return d.Decode(m)
}

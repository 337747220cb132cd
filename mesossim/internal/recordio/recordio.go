// Package recordio writes the simulator's streamed events as Mesos writes them.
package recordio

import (
	"io"
	"strconv"
)

// WriteChunk writes one RecordIO record ("<length>\n<bytes>") as exactly one HTTP chunk, as Mesos does:
// StreamingHttpConnection::send makes one pipe write per event and libprocess' stream() turns each
// pipe write into one chunk. The record goes out in a single Write and is flushed at once: net/http's
// response writer buffers up to 2048 bytes in front of its chunk writer, so a record that fits is
// flushed as one chunk, and a larger one meets an empty buffer (every record is flushed) and is handed
// to the chunk writer in one call, one chunk as well. (Writing the length and the data separately, as
// mesos-go's recordio writer does, lets records share or straddle chunks.)
func WriteChunk(w io.Writer, flush func(), data []byte) error {
	buf := make([]byte, 0, len(data)+11)
	buf = strconv.AppendInt(buf, int64(len(data)), 10)
	buf = append(buf, '\n')
	buf = append(buf, data...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	flush()
	return nil
}

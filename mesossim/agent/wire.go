package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/x-protobuf"
	mediaRecordIO = "application/recordio"

	headerMessageContentType = "Message-Content-Type"
	headerMessageAccept      = "Message-Accept"

	maxBodyBytes = 64 << 20
)

// wireMessage is what every generated mesos-go message implements.
type wireMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// mediaType returns the media type of a Content-Type style header without parameters.
func mediaType(v string) string {
	if v == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return strings.TrimSpace(v)
	}
	return mt
}

// accepts reports whether an Accept style header allows want, with libprocess' semantics: a missing
// header accepts everything, wildcards match, q=0 refuses, and when a header is repeated the last
// occurrence wins (libprocess' request decoder keeps one value per field). mesos-go relies on that:
// its streaming calls send "Accept: application/x-protobuf" followed by "Accept: application/recordio".
func accepts(h http.Header, name, want string) bool {
	values := h.Values(name)
	if len(values) == 0 {
		return true
	}
	for _, v := range values[len(values)-1:] {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					continue
				}
			}
			if mt == want || mt == "*/*" || (strings.HasSuffix(mt, "/*") && strings.HasPrefix(want, strings.TrimSuffix(mt, "*"))) {
				return true
			}
		}
	}
	return false
}

func decodeMessage(contentType string, body []byte, m wireMessage) error {
	switch contentType {
	case mediaProtobuf:
		return m.Unmarshal(body)
	case mediaJSON:
		return json.Unmarshal(body, m)
	default:
		return fmt.Errorf("unsupported media type %q", contentType)
	}
}

func encodeMessage(contentType string, m wireMessage) ([]byte, error) {
	if contentType == mediaJSON {
		return json.Marshal(m)
	}
	return m.Marshal()
}

// respondError writes a Mesos-style error: status code and a plain-text reason.
func respondError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// respondMessage writes a single (non-streaming) message with the negotiated content type.
func respondMessage(w http.ResponseWriter, contentType string, m wireMessage) {
	b, err := encodeMessage(contentType, m)
	if err != nil {
		respondError(w, http.StatusInternalServerError, "Failed to serialize response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// recordWriter writes each RecordIO record ("<length>\n<bytes>") as exactly one HTTP chunk, as a Mesos
// agent does: StreamingHttpConnection::send makes one pipe write per record and libprocess' stream()
// turns each pipe write into one chunk. Clients may rely on that framing.
type recordWriter struct {
	mu          sync.Mutex
	w           io.Writer
	flush       func()
	messageType string
}

func newRecordWriter(w http.ResponseWriter, messageType string) *recordWriter {
	rw := &recordWriter{w: w, messageType: messageType, flush: func() {}}
	if f, ok := w.(http.Flusher); ok {
		rw.flush = f.Flush
	}
	return rw
}

func (r *recordWriter) write(m wireMessage) error {
	b, err := encodeMessage(r.messageType, m)
	if err != nil {
		return fmt.Errorf("encoding record: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return writeRecordChunk(r.w, r.flush, b)
}

// writeRecordChunk writes one record with a single Write and flushes it. net/http's response writer
// buffers up to 2048 bytes in a bufio.Writer in front of its chunk writer: a record that fits is
// buffered and the flush emits it as one chunk; a larger one meets an empty buffer (every record is
// flushed) and bufio hands it to the chunk writer in one call, which is one chunk too. Writing the
// length and the data separately would let a record straddle two chunks.
func writeRecordChunk(w io.Writer, flush func(), data []byte) error {
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

// recordReader reads RecordIO records from a request body.
type recordReader struct {
	r   io.Reader
	buf []byte
}

var errRecordTooLarge = errors.New("record too large")

func (r *recordReader) next() ([]byte, error) {
	var n int
	var one [1]byte
	digits := 0
	for {
		if _, err := io.ReadFull(r.r, one[:]); err != nil {
			if digits > 0 && errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if one[0] == '\n' {
			break
		}
		if one[0] < '0' || one[0] > '9' || digits > 9 {
			return nil, fmt.Errorf("malformed record length")
		}
		n = n*10 + int(one[0]-'0')
		digits++
	}
	if digits == 0 {
		return nil, fmt.Errorf("malformed record length")
	}
	if n > maxBodyBytes {
		return nil, errRecordTooLarge
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, fmt.Errorf("reading record: %w", err)
	}
	return b, nil
}

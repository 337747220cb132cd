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

	"github.com/kubemesos/kubemesos/mesossim/internal/recordio"
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

func encodeMessage(contentType string, m wireMessage) ([]byte, error) {
	if contentType == mediaJSON {
		return json.Marshal(m)
	}
	return m.Marshal()
}

// lastHeader is libprocess' request.headers.get: the field's whole value (parameters included), the
// last one when it is repeated.
func lastHeader(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// methodNotAllowed is libprocess' MethodNotAllowed({"POST"}, request.method).
func methodNotAllowed(w http.ResponseWriter, method string) {
	w.Header().Set("Allow", "POST")
	respondError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed. Expecting one of { 'POST' }, but received '"+method+"'.")
}

// notImplemented is libprocess' NotImplemented(), the answer to a call of type UNKNOWN.
func notImplemented(w http.ResponseWriter) {
	respondError(w, http.StatusNotImplemented, "501 Not Implemented.")
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
	return recordio.WriteChunk(r.w, r.flush, b)
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

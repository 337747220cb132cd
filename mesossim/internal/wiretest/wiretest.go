// Package wiretest is a raw HTTP/1.1 client for the simulator's tests: it reads a chunked response
// chunk by chunk, so that tests can see the framing net/http's client hides. Mesos writes every
// streamed event as exactly one chunk holding exactly one RecordIO record; ReadRecord checks that.
package wiretest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/kubemesos/kubemesos/internal/chunked"
)

// Stream is an open HTTP/1.1 response read from the connection.
type Stream struct {
	Status int
	Header http.Header

	conn    net.Conn
	r       *bufio.Reader
	head    *chunked.Head
	timeout time.Duration
}

// Post sends a POST with body and headers to addr (host:port) and reads the status line and header
// of the response. timeout bounds every later read.
func Post(addr, path string, headers map[string]string, body []byte, timeout time.Duration) (*Stream, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(headers))
	for k, v := range headers {
		h[k] = []string{v}
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if err := chunked.WritePost(conn, addr, path, h, body); err != nil {
		conn.Close()
		return nil, err
	}
	s := &Stream{conn: conn, r: bufio.NewReader(conn), timeout: timeout}
	head, err := chunked.ReadHead(s.r)
	if err == nil && head.Proto != "HTTP/1.1" {
		err = fmt.Errorf("status line: %q is not HTTP/1.1", head.Proto)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.Status, s.Header, s.head = head.Status, head.Header, head
	return s, nil
}

// Close closes the connection.
func (s *Stream) Close() error { return s.conn.Close() }

// Chunked reports whether the response uses the chunked transfer coding.
func (s *Stream) Chunked() bool { return s.head.Chunked() }

// ReadBody reads a response body delimited by Content-Length.
func (s *Stream) ReadBody() ([]byte, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(s.timeout))
	n, err := strconv.Atoi(s.Header.Get("Content-Length"))
	if err != nil {
		return nil, fmt.Errorf("Content-Length %q: %w", s.Header.Get("Content-Length"), err)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(s.r, b)
	return b, err
}

// ReadChunk reads the next chunk's data. The last chunk (size 0) and its trailer yield io.EOF.
func (s *Stream) ReadChunk() ([]byte, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(s.timeout))
	return chunked.ReadChunk(s.r)
}

// ReadRecord reads the next chunk and returns the RecordIO record it holds, failing unless the chunk
// is exactly one whole record. The end of the stream yields io.EOF.
func (s *Stream) ReadRecord() ([]byte, error) {
	chunk, err := s.ReadChunk()
	if err != nil {
		return nil, err
	}
	return OneRecord(chunk)
}

// OneRecord returns the data of the single RecordIO record ("<length>\n<data>") that chunk must be.
func OneRecord(chunk []byte) ([]byte, error) {
	head, data, ok := bytes.Cut(chunk, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("chunk of %d bytes holds no record header: %q", len(chunk), clip(chunk))
	}
	n, err := strconv.ParseUint(string(head), 10, 63)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("chunk of %d bytes does not start with a record length: %q", len(chunk), clip(chunk))
	}
	if uint64(len(data)) != n {
		return nil, fmt.Errorf("chunk of %d bytes holds a %d-byte record with %d bytes after its header (want exactly one record per chunk): %q",
			len(chunk), n, len(data), clip(chunk))
	}
	return data, nil
}

func clip(b []byte) []byte {
	if len(b) > 120 {
		return append(append([]byte(nil), b[:120]...), "..."...)
	}
	return b
}

// Package wiretest is a raw HTTP/1.1 client for the simulator's tests: it reads a chunked response
// chunk by chunk, so that tests can see the framing net/http's client hides. Mesos writes every
// streamed event as exactly one chunk holding exactly one RecordIO record; ReadRecord checks that.
package wiretest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Stream is an open HTTP/1.1 response read from the connection.
type Stream struct {
	Status int
	Header http.Header

	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// Post sends a POST with body and headers to addr (host:port) and reads the status line and header
// of the response. timeout bounds every later read.
func Post(addr, path string, headers map[string]string, body []byte, timeout time.Duration) (*Stream, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", path, addr, len(body))
	keys := make([]string, 0, len(headers))
	for k := range headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&req, "%s: %s\r\n", k, headers[k])
	}
	req.WriteString("\r\n")
	req.Write(body)
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(req.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	s := &Stream{conn: conn, r: bufio.NewReader(conn), timeout: timeout}
	tp := textproto.NewReader(s.r)
	line, err := tp.ReadLine()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading status line: %w", err)
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	if proto != "HTTP/1.1" {
		conn.Close()
		return nil, fmt.Errorf("status line %q: not HTTP/1.1", line)
	}
	if s.Status, err = strconv.Atoi(code); err != nil {
		conn.Close()
		return nil, fmt.Errorf("status line %q: %w", line, err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading header: %w", err)
	}
	s.Header = http.Header(h)
	return s, nil
}

// Close closes the connection.
func (s *Stream) Close() error { return s.conn.Close() }

// Chunked reports whether the response uses the chunked transfer coding.
func (s *Stream) Chunked() bool {
	return strings.EqualFold(s.Header.Get("Transfer-Encoding"), "chunked")
}

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
	line, err := s.r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading chunk size: %w", err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("chunk size line %q does not end in CRLF", line)
	}
	sizeText, _, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), ";")
	size, err := strconv.ParseUint(sizeText, 16, 63)
	if err != nil {
		return nil, fmt.Errorf("chunk size %q: %w", sizeText, err)
	}
	if size == 0 {
		for {
			l, err := s.r.ReadString('\n')
			if err != nil {
				return nil, fmt.Errorf("reading trailer: %w", err)
			}
			if l == "\r\n" {
				return nil, io.EOF
			}
		}
	}
	data := make([]byte, size+2)
	if _, err := io.ReadFull(s.r, data); err != nil {
		return nil, fmt.Errorf("reading %d-byte chunk: %w", size, err)
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		return nil, errors.New("chunk data not followed by CRLF")
	}
	return data[:size], nil
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

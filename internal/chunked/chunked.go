// Package chunked is a raw HTTP/1.1 client for tests and conformance checks: it writes a POST and
// reads the response chunk by chunk, so that the framing net/http's client hides stays visible. Mesos
// writes every streamed event as exactly one chunk holding exactly one RecordIO record.
package chunked

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
)

// MaxChunk bounds the size of a chunk ReadChunk accepts, so that a bad size line cannot exhaust memory.
const MaxChunk = 64 << 20

// WritePost writes a POST of body to path, with Host and Content-Length and then header's fields in
// key order, in one Write.
func WritePost(w io.Writer, host, path string, header http.Header, body []byte) error {
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", path, host, len(body))
	keys := make([]string, 0, len(header))
	for k := range header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range header[k] {
			fmt.Fprintf(&req, "%s: %s\r\n", k, v)
		}
	}
	req.WriteString("\r\n")
	req.Write(body)
	_, err := w.Write(req.Bytes())
	return err
}

// Head is a response's status line and header.
type Head struct {
	Proto  string // "HTTP/1.1"
	Status int
	Header http.Header
}

// Chunked reports whether the response uses the chunked transfer coding.
func (h *Head) Chunked() bool {
	return strings.EqualFold(h.Header.Get("Transfer-Encoding"), "chunked")
}

// ReadHead reads a response's status line and header.
func ReadHead(br *bufio.Reader) (*Head, error) {
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("reading status line: %w", err)
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil {
		return nil, fmt.Errorf("status line %q: %w", line, err)
	}
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	return &Head{Proto: proto, Status: status, Header: http.Header(mh)}, nil
}

// ReadChunk reads the next chunk's data. The last chunk (size 0) and its trailer yield io.EOF itself;
// a connection that ends before them yields an error wrapping io.EOF.
func ReadChunk(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadString('\n')
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
	if size > MaxChunk {
		return nil, fmt.Errorf("chunk of %d bytes: more than %d", size, MaxChunk)
	}
	if size == 0 {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return nil, fmt.Errorf("reading trailer: %w", err)
			}
			if l == "\r\n" {
				return nil, io.EOF
			}
		}
	}
	data := make([]byte, size+2)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, fmt.Errorf("reading %d-byte chunk: %w", size, err)
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		return nil, errors.New("chunk data not followed by CRLF")
	}
	return data[:size], nil
}

package diffcheck

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/kubemesos/kubemesos/internal/chunked"
)

// event is one RecordIO record of a subscription, decoded twice: as a generic document (for shapes
// and field presence) and as the typed fields the scenario acts on.
type event struct {
	Type string
	Doc  map[string]any
	Raw  []byte
}

// subscription is a SUBSCRIBE response read off a raw connection, so that HTTP chunk boundaries stay
// visible: Mesos writes each RecordIO record as one chunk, and clients may rely on it.
type subscription struct {
	conn     net.Conn
	Status   int
	Header   http.Header
	Body     string // the body of a non-200 answer
	StreamID string

	events chan event

	mu       sync.Mutex
	chunked  bool
	records  int
	split    int // records whose bytes spanned more than one chunk
	crowded  int // chunks in which more than one record started
	err      error
	finished chan struct{}
}

// dialSubscribe POSTs body to u over a fresh connection and starts reading the answer.
func dialSubscribe(ctx context.Context, u *url.URL, header http.Header, body []byte) (*subscription, error) {
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h["Connection"] = []string{"close"}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := chunked.WritePost(conn, u.Host, u.RequestURI(), h, body); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	head, err := chunked.ReadHead(br)
	if err != nil {
		conn.Close()
		return nil, err
	}
	status := head.Status
	s := &subscription{conn: conn, Status: status, Header: head.Header, events: make(chan event, 64), finished: make(chan struct{})}
	s.StreamID = s.Header.Get("Mesos-Stream-Id")
	s.chunked = head.Chunked()
	if status != http.StatusOK {
		b, err := readBody(br, s.Header, s.chunked)
		conn.Close()
		s.Body = string(b)
		close(s.events)
		close(s.finished)
		return s, err
	}
	go s.read(br)
	return s, nil
}

func readBody(br *bufio.Reader, h http.Header, isChunked bool) ([]byte, error) {
	if isChunked {
		var out []byte
		for {
			c, err := chunked.ReadChunk(br)
			if err == io.EOF { // the last chunk; a connection closed early is a wrapped io.EOF
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, c...)
		}
	}
	if n, err := strconv.Atoi(h.Get("Content-Length")); err == nil {
		b := make([]byte, n)
		_, err := io.ReadFull(br, b)
		return b, err
	}
	return io.ReadAll(br)
}

// read parses the body chunk by chunk into RecordIO records, noting how records and chunks align.
func (s *subscription) read(br *bufio.Reader) {
	defer close(s.finished)
	defer close(s.events)
	var (
		buf        []byte
		chunk      int
		startChunk = -1
	)
	next := func() ([]byte, error) {
		if !s.chunked {
			b := make([]byte, 32<<10)
			n, err := br.Read(b)
			if n > 0 {
				return b[:n], nil
			}
			return nil, err
		}
		return chunked.ReadChunk(br)
	}
	for {
		data, err := next()
		if err != nil {
			s.mu.Lock()
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.err = err
			}
			s.mu.Unlock()
			return
		}
		chunk++
		started := 0
		buf = append(buf, data...)
		for {
			if len(buf) > 0 && startChunk < 0 {
				startChunk = chunk
				started++
			}
			nl := bytes.IndexByte(buf, '\n')
			if nl < 0 {
				break
			}
			n, err := strconv.Atoi(string(buf[:nl]))
			if err != nil || n <= 0 {
				s.mu.Lock()
				s.err = fmt.Errorf("bad RecordIO length %q", buf[:nl])
				s.mu.Unlock()
				return
			}
			if len(buf) < nl+1+n {
				break
			}
			rec := append([]byte(nil), buf[nl+1:nl+1+n]...)
			buf = buf[nl+1+n:]
			s.mu.Lock()
			s.records++
			if startChunk != chunk {
				s.split++
			}
			s.mu.Unlock()
			startChunk = -1
			ev := event{Raw: rec}
			d := json.NewDecoder(bytes.NewReader(rec))
			d.UseNumber()
			if err := d.Decode(&ev.Doc); err == nil {
				ev.Type, _ = ev.Doc["type"].(string)
			}
			s.events <- ev
		}
		if started > 1 {
			s.mu.Lock()
			s.crowded++
			s.mu.Unlock()
		}
	}
}

// Chunking describes how records sat in HTTP chunks so far.
func (s *subscription) Chunking() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.chunked {
		return "not chunked"
	}
	var facts []string
	if s.split > 0 {
		facts = append(facts, "records split across chunks")
	}
	if s.crowded > 0 {
		facts = append(facts, "several records in one chunk")
	}
	if len(facts) == 0 {
		return "one record per chunk"
	}
	return strings.Join(facts, "; ")
}

// Close drops the connection and waits for the reader.
func (s *subscription) Close() {
	s.conn.Close()
	go func() {
		for range s.events {
		}
	}()
	<-s.finished
}

// Err is the reading error, if the stream ended with one.
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

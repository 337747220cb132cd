package kubemesos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// offerLedger sits between the framework and the simulated master's HTTP API. It forwards everything
// and, independently of both, books every offer the master sends to the framework (OFFERS events of
// the subscription stream) and what became of it: used or declined (ACCEPT and DECLINE calls) or
// rescinded (RESCIND events). This is how the test checks the lesson of the earlier bridge that an
// offer must never leak.
type offerLedger struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	sent      map[string]bool
	accepted  map[string]bool // ACCEPT with at least one operation
	declined  map[string]bool // DECLINE, or ACCEPT without operations
	rescinded map[string]bool
	// dup lists offer IDs answered twice or answered though never sent.
	dup        []string
	subscribes int
	errs       []error
	// asked are the task IDs of explicit RECONCILE calls; implicit counts the implicit ones.
	asked    map[string]bool
	implicit int
}

func newOfferLedger(t testing.TB, masterURL string) *offerLedger {
	target, err := url.Parse(masterURL)
	if err != nil {
		t.Fatal(err)
	}
	l := &offerLedger{t: t, sent: map[string]bool{}, accepted: map[string]bool{}, declined: map[string]bool{}, rescinded: map[string]bool{},
		asked: map[string]bool{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1 // the subscription stream must flow event by event
	rp.ModifyResponse = func(resp *http.Response) error {
		// A SUBSCRIBE answer is a RecordIO stream of events: Content-Type application/recordio with
		// Message-Content-Type naming the events' encoding, or (older clients) Content-Type naming it.
		if resp.Request.URL.Path != "/api/v1/scheduler" || resp.StatusCode != http.StatusOK {
			return nil
		}
		mt := resp.Header.Get("Content-Type")
		if strings.HasPrefix(mt, "application/recordio") {
			mt = resp.Header.Get("Message-Content-Type")
		}
		if mt != "application/x-protobuf" && mt != "application/json" {
			l.fail(fmt.Errorf("subscription stream of type %q", mt))
			return nil
		}
		pr, pw := io.Pipe()
		body := resp.Body
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(body, pw), closerFunc(func() error { pw.Close(); return body.Close() })}
		go l.readStream(pr, mt)
		return nil
	}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/scheduler" && r.Method == http.MethodPost {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			l.call(r.Header.Get("Content-Type"), b)
		}
		rp.ServeHTTP(w, r)
	}))
	return l
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// URL is the address given to the framework as --master.
func (l *offerLedger) URL() string { return l.srv.URL }

func (l *offerLedger) close() {
	l.srv.CloseClientConnections()
	l.srv.Close()
}

func (l *offerLedger) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

// readStream decodes the RecordIO stream of scheduler events (it reads a copy; the framework gets the
// original bytes). It drains the pipe to the end so that the tee never blocks the framework.
func (l *offerLedger) readStream(r *io.PipeReader, mediaType string) {
	defer io.Copy(io.Discard, r)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || n <= 0 {
			l.fail(fmt.Errorf("RecordIO: bad record length %q", line))
			return
		}
		rec := make([]byte, n)
		if _, err := io.ReadFull(br, rec); err != nil {
			return
		}
		var ev scheduler.Event
		if mediaType == "application/json" {
			err = json.Unmarshal(rec, &ev)
		} else {
			err = ev.Unmarshal(rec)
		}
		if err != nil {
			l.fail(fmt.Errorf("decoding a scheduler event: %w", err))
			continue
		}
		l.mu.Lock()
		switch ev.GetType() {
		case scheduler.Event_SUBSCRIBED:
			l.subscribes++
		case scheduler.Event_OFFERS:
			for _, o := range ev.GetOffers().GetOffers() {
				l.sent[o.ID.Value] = true
			}
		case scheduler.Event_RESCIND:
			l.rescinded[ev.GetRescind().GetOfferID().Value] = true
		}
		l.mu.Unlock()
	}
}

// call books the offers a scheduler call answers.
func (l *offerLedger) call(contentType string, body []byte) {
	var c scheduler.Call
	var err error
	switch contentType {
	case "application/x-protobuf":
		err = c.Unmarshal(body)
	case "application/json":
		err = json.Unmarshal(body, &c)
	default:
		err = fmt.Errorf("unknown content type %q", contentType)
	}
	if err != nil {
		l.fail(fmt.Errorf("decoding a scheduler call: %w", err))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	book := func(into map[string]bool, id string) {
		if l.accepted[id] || l.declined[id] {
			l.dup = append(l.dup, id)
		}
		into[id] = true
	}
	switch c.GetType() {
	case scheduler.Call_ACCEPT:
		into := l.accepted
		if len(c.GetAccept().GetOperations()) == 0 {
			into = l.declined
		}
		for _, id := range c.GetAccept().GetOfferIDs() {
			book(into, id.Value)
		}
	case scheduler.Call_DECLINE:
		for _, id := range c.GetDecline().GetOfferIDs() {
			book(l.declined, id.Value)
		}
	case scheduler.Call_RECONCILE:
		if len(c.GetReconcile().GetTasks()) == 0 {
			l.implicit++
		}
		for _, task := range c.GetReconcile().GetTasks() {
			l.asked[task.TaskID.Value] = true
		}
	}
}

// ledgerSnapshot is the ledger's count at one moment.
type ledgerSnapshot struct {
	Sent, Accepted, Declined, Rescinded int
	// Unanswered are sent offers neither used, declined nor rescinded, sorted.
	Unanswered []string
	// Unknown are answered offers that were never sent; Twice are offers answered more than once.
	Unknown, Twice []string
	Subscribes     int
	Errs           []error
	// Asked are the task IDs explicit reconciliation asked about, sorted; Implicit counts implicit
	// reconciliations.
	Asked    []string
	Implicit int
}

func (l *offerLedger) snapshot() ledgerSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := ledgerSnapshot{Sent: len(l.sent), Accepted: len(l.accepted), Declined: len(l.declined), Rescinded: len(l.rescinded),
		Twice: append([]string(nil), l.dup...), Subscribes: l.subscribes, Errs: append([]error(nil), l.errs...), Implicit: l.implicit}
	for id := range l.asked {
		s.Asked = append(s.Asked, id)
	}
	sort.Strings(s.Asked)
	for id := range l.sent {
		if !l.accepted[id] && !l.declined[id] && !l.rescinded[id] {
			s.Unanswered = append(s.Unanswered, id)
		}
	}
	for _, m := range []map[string]bool{l.accepted, l.declined} {
		for id := range m {
			if !l.sent[id] {
				s.Unknown = append(s.Unknown, id)
			}
		}
	}
	sort.Strings(s.Unanswered)
	sort.Strings(s.Unknown)
	return s
}

// tcpProxy forwards TCP connections to a target (TLS passes through untouched: the API server's
// certificate names 127.0.0.1, whatever the port). Block cuts every connection and refuses new ones
// until Unblock: to the clients behind it, the API server is down.
type tcpProxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *tcpProxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.blocked {
		p.mu.Unlock()
		up.Close()
		return
	}
	p.conns[up] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, up)
		p.mu.Unlock()
		up.Close()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// Block cuts every open connection and refuses new ones.
func (p *tcpProxy) Block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for c := range p.conns {
		c.Close()
	}
}

// Unblock accepts connections again.
func (p *tcpProxy) Unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.Block()
	p.wg.Wait()
}

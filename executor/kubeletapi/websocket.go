package kubeletapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// The kubelet serves websocket v5.channel.k8s.io exec requests (sent when the Node declares
// ExtendWebSocketsToKubelet) by translating them to SPDY towards its CRI streaming server. The
// server does the same towards a loopback listener that runs only exec sessions prepared by an
// authorized request, each behind a one-time token.

// sessionTTL bounds how long a prepared session waits for its SPDY connection.
const sessionTTL = 30 * time.Second

type preparedExec struct {
	pod, uid, containerID string
	cmd                   []string
	log                   logrus.FieldLogger
	created               time.Time
	// forward: a port-forward session (the pod's ports), not an exec.
	forward bool
	// attach: an attach to the container, not an exec.
	attach *attachAdapter
}

// loopbackExec is the loopback SPDY endpoint of prepared sessions.
type loopbackExec struct {
	s *Server

	mu       sync.Mutex
	addr     string // host:port once listening
	sessions map[string]preparedExec
}

func (l *loopbackExec) listening() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

// prepare registers a session and returns its one-time token.
func (l *loopbackExec) prepare(p preparedExec) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating a session token: %w", err)
	}
	token := hex.EncodeToString(b[:])
	now := l.s.clock.Now()
	p.created = now
	l.mu.Lock()
	defer l.mu.Unlock()
	for t, old := range l.sessions {
		if now.Sub(old.created) > sessionTTL {
			delete(l.sessions, t)
		}
	}
	l.sessions[token] = p
	return token, nil
}

func (l *loopbackExec) take(token string) (preparedExec, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.sessions[token]
	delete(l.sessions, token)
	if ok && l.s.clock.Since(p.created) > sessionTTL {
		return preparedExec{}, false
	}
	return p, ok
}

// serve is POST /exec/{token} and /attach/{token} on the loopback listener: the SPDY side of a
// translated session.
func (l *loopbackExec) serve(w http.ResponseWriter, r *http.Request) {
	p, ok := l.take(r.PathValue("token"))
	if !ok || p.forward || (p.attach != nil) != (r.PathValue("kind") == "attach") {
		http.Error(w, "unknown or expired exec session", http.StatusNotFound)
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if p.attach != nil {
		remotecommand.ServeAttach(w, r, *p.attach, p.pod, p.uid, p.containerID, opts,
			l.s.cfg.StreamIdleTimeout, l.s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
		return
	}
	remotecommand.ServeExec(w, r, execAdapter{execer: l.s.cfg.Execer, log: p.log}, p.pod, p.uid, p.containerID, p.cmd, opts,
		l.s.cfg.StreamIdleTimeout, l.s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// start listens on a loopback port and serves until ctx ends; the returned func waits for the end.
func (l *loopbackExec) start(ctx context.Context) (func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for translated exec sessions: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{kind}/{token}", l.serve) // exec or attach (port-forward's is more specific)
	mux.HandleFunc("POST /portForward/{token}", l.serveForward)
	var inflight sync.WaitGroup
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inflight.Add(1)
			defer inflight.Done()
			mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	l.mu.Lock()
	l.addr = ln.Addr().String()
	l.mu.Unlock()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		_ = srv.Close()
		<-served
		inflight.Wait()
	}()
	return func() { <-stopped }, nil
}

// serveExecV5 translates an authorized websocket v5 exec or attach request to SPDY towards the
// loopback listener.
func (s *Server) serveExecV5(w http.ResponseWriter, r *http.Request, p preparedExec, opts *remotecommand.Options) {
	addr := s.loopback.listening()
	if addr == "" {
		http.Error(w, "websocket exec is not available: the server was not started", http.StatusNotImplemented)
		return
	}
	token, err := s.loopback.prepare(p)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	q := url.Values{}
	for name, on := range map[string]bool{"input": opts.Stdin, "output": opts.Stdout, "error": opts.Stderr, "tty": opts.TTY} {
		if on {
			q.Set(name, "1")
		}
	}
	kind := "exec"
	if p.attach != nil {
		kind = "attach"
	}
	location := &url.URL{Scheme: "http", Host: addr, Path: "/" + kind + "/" + token, RawQuery: q.Encode()}
	proxy.NewStreamTranslatorHandler(location, nil, 0, proxy.Options{
		Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Tty: opts.TTY,
	}).ServeHTTP(w, r)
}

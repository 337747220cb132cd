package kubeletapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/utils/clock"
)

// Config configures a Server.
type Config struct {
	// NodeName is the Node this executor serves (the agent's hostname): the resource name of every
	// authorization check. The executor learns it from SUBSCRIBED: until it is set here or with
	// SetNodeName, authenticated requests are answered 503.
	NodeName string
	// Address to listen on (default ":10250"; ":0" picks a free port, which Start returns).
	Address string
	// CertFile and KeyFile are the serving certificate; when empty a self-signed one is generated at
	// start for Hostnames and IPs, as the kubelet does without --tls-cert-file.
	CertFile, KeyFile string
	Hostnames         []string
	IPs               []net.IP
	// Authenticator and Authorizer check every request but /healthz (required; see Delegating).
	Authenticator authenticator.Request
	Authorizer    authorizer.Authorizer
	// Pods finds hosted pods' containers (required).
	Pods PodLookup
	// Execer runs exec commands; without it /exec answers 501.
	Execer Execer
	// Attacher attaches to containers with stdin or tty; without it /attach answers 501 for them.
	Attacher Attacher
	// PortForwarder carries port-forward connections; without it /portForward answers 501.
	PortForwarder PortForwarder
	// Stats computes /stats/summary and /metrics/resource; without it they answer 501.
	Stats StatsProvider
	// Clock tells the time of sinceSeconds and exec sessions' ages (clock.RealClock{} when nil).
	Clock clock.WithTicker
	// StreamIdleTimeout ends an exec session without traffic (default 4 h, the kubelet's);
	// StreamCreationTimeout bounds the client's stream setup (default 30 s).
	StreamIdleTimeout, StreamCreationTimeout time.Duration
	// Log is the logger (logrus.StandardLogger() when nil).
	Log logrus.FieldLogger
}

// Server is the executor's kubelet API server.
type Server struct {
	cfg   Config
	clock clock.WithTicker
	log   logrus.FieldLogger

	mu       sync.Mutex
	done     chan struct{} // closed when the started server has stopped
	nodeName string
	loopback *loopbackExec
}

// New validates cfg and returns a Server; Start serves it.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Authenticator == nil || cfg.Authorizer == nil:
		return nil, errors.New("kubeletapi: an Authenticator and an Authorizer are required")
	case cfg.Pods == nil:
		return nil, errors.New("kubeletapi: Pods is required")
	case (cfg.CertFile == "") != (cfg.KeyFile == ""):
		return nil, errors.New("kubeletapi: CertFile and KeyFile go together")
	}
	if cfg.Address == "" {
		cfg.Address = ":10250"
	}
	if cfg.StreamIdleTimeout <= 0 {
		cfg.StreamIdleTimeout = 4 * time.Hour
	}
	if cfg.StreamCreationTimeout <= 0 {
		cfg.StreamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
	}
	s := &Server{cfg: cfg, clock: cfg.Clock, log: cfg.Log, nodeName: cfg.NodeName}
	s.loopback = &loopbackExec{s: s, sessions: map[string]preparedExec{}}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.log == nil {
		s.log = logrus.StandardLogger()
	}
	return s, nil
}

// SetNodeName sets the Node name used in authorization checks (the agent's hostname from SUBSCRIBED).
func (s *Server) SetNodeName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodeName = name
}

func (s *Server) currentNodeName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeName
}

// Handler is the server's HTTP handler: /healthz without authentication, everything else behind
// authentication and authorization.
func (s *Server) Handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.serveLogs)
	api.HandleFunc("GET /stats/summary", s.serveStatsSummary)
	api.HandleFunc("POST /stats/summary", s.serveStatsSummary)
	api.HandleFunc("GET /metrics/resource", s.serveResourceMetrics)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		api.HandleFunc(method+" /exec/{namespace}/{pod}/{container}", s.serveExec)
		api.HandleFunc(method+" /exec/{namespace}/{pod}/{uid}/{container}", s.serveExec)
		api.HandleFunc(method+" /attach/{namespace}/{pod}/{container}", s.serveAttach)
		api.HandleFunc(method+" /attach/{namespace}/{pod}/{uid}/{container}", s.serveAttach)
		api.HandleFunc(method+" /portForward/{namespace}/{pod}", s.servePortForward)
		api.HandleFunc(method+" /portForward/{namespace}/{pod}/{uid}", s.servePortForward)
	}
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
	})
	root.Handle("/", withAuth(api, s.cfg.Authenticator, s.cfg.Authorizer, s.currentNodeName, s.log))
	return root
}

// TLSConfig returns the serving TLS configuration: the configured or a generated self-signed
// certificate, and client certificates requested (not required: bearer tokens work too) so that the
// authenticator can verify them against the API server's client CA.
func (s *Server) TLSConfig() (*tls.Config, error) {
	var certPEM, keyPEM []byte
	if s.cfg.CertFile != "" {
		var err error
		if certPEM, err = os.ReadFile(s.cfg.CertFile); err != nil {
			return nil, fmt.Errorf("reading the serving certificate: %w", err)
		}
		if keyPEM, err = os.ReadFile(s.cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("reading the serving key: %w", err)
		}
	} else {
		host := s.cfg.NodeName
		if host == "" {
			host, _ = os.Hostname()
		}
		var err error
		certPEM, keyPEM, err = certutil.GenerateSelfSignedCertKey(host, s.cfg.IPs, s.cfg.Hostnames)
		if err != nil {
			return nil, fmt.Errorf("generating a self-signed serving certificate for %s: %w", host, err)
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading the serving certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
		// SPDY upgrades need HTTP/1.1.
		NextProtos: []string{"http/1.1"},
	}, nil
}

// Start listens on Config.Address and serves HTTPS until ctx ends; it returns the address it listens
// on (host:port) for the executor to publish. Wait blocks until the server has stopped.
func (s *Server) Start(ctx context.Context) (string, error) {
	tlsCfg, err := s.TLSConfig()
	if err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return "", fmt.Errorf("listening on %s: %w", s.cfg.Address, err)
	}
	loopbackCtx, stopLoopback := context.WithCancel(ctx)
	waitLoopback, err := s.loopback.start(loopbackCtx)
	if err != nil {
		stopLoopback()
		l.Close()
		return "", err
	}
	var inflight sync.WaitGroup // includes hijacked exec streams, which Shutdown does not wait for
	handler := s.Handler()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inflight.Add(1)
			defer inflight.Done()
			handler.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.done = done
	s.mu.Unlock()
	serveErr := make(chan error, 1)
	go func() {
		serveErr <- srv.Serve(tls.NewListener(l, tlsCfg))
	}()
	go func() {
		defer close(done)
		select {
		case err := <-serveErr:
			s.log.WithError(err).Error("kubelet API server stopped")
			inflight.Wait()
			stopLoopback()
			waitLoopback()
			return
		case <-ctx.Done():
		}
		// Streams (follow, exec) end with ctx, which is their requests' base context.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-serveErr
		inflight.Wait()
		stopLoopback()
		waitLoopback()
	}()
	addr := l.Addr().String()
	s.log.WithField("address", addr).Info("kubelet API serving")
	return addr, nil
}

// Wait blocks until a started server has stopped (at once if it was never started).
func (s *Server) Wait() {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

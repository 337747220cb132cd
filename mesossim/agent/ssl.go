package agent

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
)

// SSLConfig is libprocess' SSL configuration of an agent built with SSL (a real agent reads it from
// the LIBPROCESS_SSL_* variables of its environment, see 3rdparty/libprocess/src/openssl.cpp).
type SSLConfig struct {
	// Enabled (LIBPROCESS_SSL_ENABLED) serves the agent's HTTP endpoint over TLS, with CertFile and
	// KeyFile (LIBPROCESS_SSL_CERT_FILE, LIBPROCESS_SSL_KEY_FILE), both required.
	Enabled           bool
	CertFile, KeyFile string
	// SupportDowngrade (LIBPROCESS_SSL_SUPPORT_DOWNGRADE) also accepts plain connections on the port.
	SupportDowngrade bool
	// RequireClientCert (LIBPROCESS_SSL_REQUIRE_CLIENT_CERT) refuses clients without a certificate
	// signed by CAFile (LIBPROCESS_SSL_CA_FILE).
	RequireClientCert bool
	CAFile            string
}

// tlsConfig is the agent's server side of its SSL configuration; nil when not enabled.
func (s SSLConfig) tlsConfig() (*tls.Config, error) {
	if !s.Enabled {
		return nil, nil
	}
	if s.KeyFile == "" {
		return nil, errors.New("SSL requires key! NOTE: Set path with LIBPROCESS_SSL_KEY_FILE")
	}
	if s.CertFile == "" {
		return nil, errors.New("SSL requires certificate! NOTE: Set path with LIBPROCESS_SSL_CERT_FILE")
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("Could not load SSL certificate %s with key %s: %w", s.CertFile, s.KeyFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if s.RequireClientCert {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, fmt.Errorf("Could not load CA file %s: %w", s.CAFile, err)
			}
			tc.ClientCAs = x509.NewCertPool()
			if !tc.ClientCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("Could not load CA file %s: no PEM certificate in it", s.CAFile)
			}
		}
	}
	return tc, nil
}

// Scheme is the scheme of the agent's HTTP endpoint: https when SSL is enabled.
func (a *Agent) Scheme() string {
	if a.cfg.SSL.Enabled {
		return "https"
	}
	return "http"
}

// sslListener serves TLS on l, and with downgrade also plain connections: libprocess tells them apart
// by the first byte, a TLS handshake record's 0x16.
func sslListener(l net.Listener, tc *tls.Config, downgrade bool) net.Listener {
	if !downgrade {
		return tls.NewListener(l, tc)
	}
	return &downgradeListener{Listener: l, tc: tc}
}

type downgradeListener struct {
	net.Listener
	tc *tls.Config
}

func (d *downgradeListener) Accept() (net.Conn, error) {
	c, err := d.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, tc: d.tc}, nil
}

// sniffConn decides on its first Read whether the connection is TLS (handshake record) or plain, so
// that Accept does not block on a slow client.
type sniffConn struct {
	net.Conn
	tc   *tls.Config
	once sync.Once
	conn net.Conn
	err  error
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (s *sniffConn) decide() {
	s.once.Do(func() {
		r := bufio.NewReader(s.Conn)
		first, err := r.Peek(1)
		if err != nil {
			s.err = err
			return
		}
		buffered := &bufferedConn{Conn: s.Conn, r: r}
		if first[0] == 0x16 {
			s.conn = tls.Server(buffered, s.tc)
		} else {
			s.conn = buffered
		}
	})
}

func (s *sniffConn) Read(p []byte) (int, error) {
	s.decide()
	if s.err != nil {
		return 0, s.err
	}
	return s.conn.Read(p)
}

func (s *sniffConn) Write(p []byte) (int, error) {
	s.decide()
	if s.err != nil {
		return 0, s.err
	}
	return s.conn.Write(p)
}

// SSLFromEnv reads an agent's SSL configuration as libprocess does from its environment:
// LIBPROCESS_SSL_* taking precedence over the deprecated SSL_*, stout's booleans.
func SSLFromEnv(getenv func(string) string) (SSLConfig, error) {
	get := func(name string) string {
		if v := getenv("LIBPROCESS_SSL_" + name); v != "" {
			return v
		}
		return getenv("SSL_" + name)
	}
	var errs []error
	flag := func(name string) bool {
		switch v := get(name); v {
		case "", "false", "0":
			return false
		case "true", "1":
			return true
		default:
			errs = append(errs, fmt.Errorf("Failed to load flag '%s': Failed to load value '%s': Expecting a boolean (e.g., true or false)", strings.ToLower(name), v))
			return false
		}
	}
	s := SSLConfig{
		Enabled: flag("ENABLED"), SupportDowngrade: flag("SUPPORT_DOWNGRADE"),
		RequireClientCert: flag("REQUIRE_CLIENT_CERT") || flag("REQUIRE_CERT"),
		CertFile:          get("CERT_FILE"), KeyFile: get("KEY_FILE"), CAFile: get("CA_FILE"),
	}
	if err := errors.Join(errs...); err != nil {
		return SSLConfig{}, fmt.Errorf("Failed to load flags from environment variables prefixed by LIBPROCESS_SSL_ or SSL_ (deprecated): %w", err)
	}
	if !s.Enabled {
		// The rest matters only with SSL (OpenSSL's own SSL_CERT_FILE is common in environments).
		return SSLConfig{}, nil
	}
	return s, nil
}

// Package agentclient is how an executor reaches its Mesos agent, as Mesos' own executor library
// (src/executor/executor.cpp) does: https when libprocess' SSL is enabled in the executor's environment
// (LIBPROCESS_SSL_ENABLED, or the deprecated SSL_ENABLED), http otherwise, since MESOS_AGENT_ENDPOINT
// has no scheme; and the agent's authentication token, MESOS_EXECUTOR_AUTHENTICATION_TOKEN (set by an
// agent with --jwt_secret_key), sent as "Authorization: Bearer <token>" on every call, to the executor
// API and to the operator API alike.
package agentclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
)

// TokenEnv is the variable the agent passes the executor's token in.
const TokenEnv = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"

// Options are how calls reach the agent. The zero value is plain http without a token.
type Options struct {
	// Token is sent as "Authorization: Bearer <Token>"; empty: no Authorization header.
	Token string
	// TLS, when set, makes calls use https with this configuration.
	TLS *tls.Config
	// Dial, when set, opens the connections to the agent instead of TCP (an in-process executor's
	// in-memory connection to its simulated agent).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// FromEnv reads the token and libprocess' SSL variables from getenv (os.Getenv when nil). Reading
// the process' own environment, it then erases the token from it, as Mesos' executor library does
// "so that it is not visible to other processes in the same PID namespace".
func FromEnv(getenv func(string) string) (Options, error) {
	own := getenv == nil
	if own {
		getenv = os.Getenv
	}
	o := Options{Token: getenv(TokenEnv)}
	if own {
		_ = os.Unsetenv(TokenEnv)
	}
	tc, err := sslConfig(getenv)
	if err != nil {
		return Options{}, err
	}
	o.TLS = tc
	return o, nil
}

// Scheme is "https" with TLS, else "http".
func (o Options) Scheme() string {
	if o.TLS != nil {
		return "https"
	}
	return "http"
}

// URL is the agent's endpoint path (e.g. /api/v1) at endpoint (host:port, MESOS_AGENT_ENDPOINT).
func (o Options) URL(endpoint, path string) string {
	return (&url.URL{Scheme: o.Scheme(), Host: endpoint, Path: path}).String()
}

// DefaultCallTimeout bounds an executor's wait for the agent's response to a call other than SUBSCRIBE
// (ExecutorClients' callTimeout 0).
const DefaultCallTimeout = 10 * time.Second

// ExecutorClients are an executor's two clients of the agent's executor API at endpoint: calls for its
// UPDATEs and MESSAGEs, whose response headers are awaited callTimeout (0: DefaultCallTimeout), and
// subscribe for SUBSCRIBE, whose response is awaited however long it takes, as Mesos' executor library
// does (dialing stays bounded). An executor that gave up on a slow response and subscribed again never
// saw the LAUNCH the agent had already written to the first connection, and the agent drops that task
// at the second SUBSCRIBE (Slave::subscribe) while the container it launched runs on.
func (o Options) ExecutorClients(endpoint string, callTimeout time.Duration) (calls, subscribe *httpcli.Client) {
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	url := o.URL(endpoint, "/api/v1/executor")
	unbounded := httpcli.Transport(func(t *http.Transport) { t.ResponseHeaderTimeout = 0 })
	return o.Client(url, httpcli.Timeout(callTimeout)), o.Client(url, httpcli.Timeout(callTimeout), unbounded)
}

// Client returns a client of the agent API at url with the protobuf codec, the token and the TLS
// configuration, its transport further tuned by configOpts.
func (o Options) Client(url string, configOpts ...httpcli.ConfigOpt) *httpcli.Client {
	opts := []httpcli.Opt{
		httpcli.Endpoint(url),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
	}
	if o.Token != "" {
		opts = append(opts, httpcli.DefaultHeader("Authorization", "Bearer "+o.Token))
	}
	if o.TLS != nil {
		configOpts = append([]httpcli.ConfigOpt{httpcli.TLSConfig(o.TLS.Clone())}, configOpts...)
	}
	if o.Dial != nil {
		configOpts = append([]httpcli.ConfigOpt{httpcli.Transport(func(t *http.Transport) { t.DialContext = o.Dial })}, configOpts...)
	}
	return httpcli.New(append(opts, httpcli.Do(httpcli.With(configOpts...)))...)
}

// sslConfig is libprocess' client side of its SSL flags (3rdparty/libprocess/src/openssl.cpp), nil
// when SSL is not enabled: LIBPROCESS_SSL_* taking precedence over the deprecated SSL_*; a key and a
// certificate are required (and presented to a server asking for them); the server's certificate is
// verified only with VERIFY_SERVER_CERT (or the legacy VERIFY_CERT, or REQUIRE_CLIENT_CERT, which
// implies it), against CA_FILE and CA_DIR, else the system's roots.
func sslConfig(getenv func(string) string) (*tls.Config, error) {
	get := func(name string) (string, bool) {
		if v, ok := lookup(getenv, "LIBPROCESS_SSL_"+name); ok {
			return v, true
		}
		return lookup(getenv, "SSL_"+name)
	}
	var errs []error
	flag := func(name string) bool {
		v, ok := get(name)
		if !ok {
			return false
		}
		// stout's bool flags.
		switch v {
		case "true", "1":
			return true
		case "false", "0":
			return false
		}
		errs = append(errs, fmt.Errorf("Failed to load flag '%s': Failed to load value '%s': Expecting a boolean (e.g., true or false)", strings.ToLower(name), v))
		return false
	}
	enabled := flag("ENABLED")
	verify := flag("VERIFY_SERVER_CERT") || flag("VERIFY_CERT") || flag("REQUIRE_CLIENT_CERT") || flag("REQUIRE_CERT")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("Failed to load flags from environment variables prefixed by LIBPROCESS_SSL_ or SSL_ (deprecated): %w", err)
	}
	if !enabled {
		return nil, nil
	}
	keyFile, ok := get("KEY_FILE")
	if !ok {
		return nil, errors.New("SSL requires key! NOTE: Set path with LIBPROCESS_SSL_KEY_FILE")
	}
	certFile, ok := get("CERT_FILE")
	if !ok {
		return nil, errors.New("SSL requires certificate! NOTE: Set path with LIBPROCESS_SSL_CERT_FILE")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("Could not load SSL certificate %s with key %s: %w", certFile, keyFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if !verify {
		// libprocess' default (LIBPROCESS_SSL_VERIFY_SERVER_CERT=false): encrypted, not authenticated.
		tc.InsecureSkipVerify = true
		return tc, nil
	}
	caFile, hasFile := get("CA_FILE")
	caDir, hasDir := get("CA_DIR")
	if hasFile || hasDir {
		pool := x509.NewCertPool()
		var files []string
		if hasFile {
			files = append(files, caFile)
		}
		if hasDir {
			entries, err := os.ReadDir(caDir)
			if err != nil {
				return nil, fmt.Errorf("Could not load CA directory %s: %w", caDir, err)
			}
			for _, e := range entries {
				if !e.IsDir() {
					files = append(files, filepath.Join(caDir, e.Name()))
				}
			}
		}
		for _, f := range files {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("Could not load CA file %s: %w", f, err)
			}
			if !pool.AppendCertsFromPEM(pem) && hasFile && f == caFile {
				return nil, fmt.Errorf("Could not load CA file %s: no PEM certificate in it", f)
			}
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

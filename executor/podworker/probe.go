package podworker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/clock"
)

// ProbeWarning is a probe result that counts as success but is worth a Warning event: the kubelet's
// probe.Warning (an HTTP probe whose redirects ended off the probed host).
type ProbeWarning struct{ Output string }

func (w *ProbeWarning) Error() string { return w.Output }

// maxProbeBody is how much of an HTTP probe's response body the kubelet reads (maxRespBodyLength).
const maxProbeBody = 10 << 10

// Prober runs one check of a probe handler against a running container; nil means success, a
// *ProbeWarning success with a warning.
type Prober interface {
	Probe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, h Handle, p *corev1.ProbeHandler) error
}

// Execer is implemented by runtimes that can run a command inside a running container (exec probes
// and hooks), as the CRI's ExecSync: in its filesystem, namespaces, environment and user.
type Execer interface {
	// Exec runs command and returns its exit code; its stdout and stderr go to the writers. An error
	// means the command could not be run to its end; ctx's end (a probe's timeout) kills it.
	Exec(ctx context.Context, h Handle, command []string, stdout, stderr io.Writer) (exitCode int32, err error)
}

// maxExecOutput is how much of an exec probe's output the kubelet keeps (pkg/probe/exec maxReadLength).
const maxExecOutput = 10 << 10

// ExecError is an exec probe or hook whose command exited non-zero or timed out.
type ExecError struct {
	Command  []string
	ExitCode int32
	// Stderr is the command's stderr; Output its stdout then its stderr (the kubelet's RunInContainer),
	// at most maxExecOutput bytes of it.
	Stderr, Output string
	// Timeout is the probe's timeout when the command was killed at it.
	Timeout time.Duration
}

// Error is the probe's message as the kubelet's exec prober makes it: the command's output, or the
// CRI's timeout error (cri-client ExecSync: ErrCommandTimedOut "%q timed out after %s").
func (e *ExecError) Error() string {
	if e.Timeout > 0 {
		return fmt.Sprintf("command timed out: %q timed out after %s", strings.Join(e.Command, " "), e.Timeout)
	}
	return e.Output
}

// runError is the error of the kubelet's RunInContainer: ExecSync's for a non-zero exit.
func (e *ExecError) runError() string {
	if e.Timeout > 0 {
		return e.Error()
	}
	return fmt.Sprintf("command '%s' exited with %d: %s", strings.Join(e.Command, " "), e.ExitCode, e.Stderr)
}

// probeTimeoutKey carries a probe's timeoutSeconds in its context, for the timeout's message.
type probeTimeoutKey struct{}

// limitedBuffer keeps the first max bytes written to it and drops the rest without failing the
// writer (the kubelet's ioutils.LimitWriter).
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// NetProber is the default Prober: HTTP GET and TCP checks from the executor to Host (pods share the
// host network, so that is the pod IP), exec checks through the runtime when it is an Execer.
type NetProber struct {
	Host    string
	Runtime Runtime
	// Client is used for HTTP probes; a client that does not follow redirects off-host and skips TLS
	// verification (as the kubelet) when nil.
	Client *http.Client
}

var _ Prober = (*NetProber)(nil)

// ErrProbeUnsupported is returned for probe handlers this executor cannot run (exec without an
// Execer runtime); such a probe fails.
var ErrProbeUnsupported = errors.New("probe type not supported")

// Probe runs p once.
func (n *NetProber) Probe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, h Handle, p *corev1.ProbeHandler) error {
	switch {
	case p.HTTPGet != nil:
		return n.httpGet(ctx, c, p.HTTPGet)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = n.Host
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("tcp probe: %w", err)
		}
		return conn.Close()
	case p.Exec != nil:
		ex, ok := n.Runtime.(Execer)
		if !ok {
			return fmt.Errorf("exec probe: %w", ErrProbeUnsupported)
		}
		// Each stream bounded on its own: the kubelet reads both whole from ExecSync, then keeps 10 KiB.
		stdout, stderr := &limitedBuffer{max: maxExecOutput}, &limitedBuffer{max: maxExecOutput}
		code, err := ex.Exec(ctx, h, p.Exec.Command, stdout, stderr)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				if t, ok := ctx.Value(probeTimeoutKey{}).(time.Duration); ok {
					return &ExecError{Command: p.Exec.Command, Timeout: t}
				}
			}
			return fmt.Errorf("exec probe: %w", err)
		}
		if code != 0 {
			out := append(stdout.buf.Bytes(), stderr.buf.Bytes()...)
			return &ExecError{Command: p.Exec.Command, ExitCode: code, Stderr: stderr.buf.String(),
				Output: string(out[:min(len(out), maxExecOutput)])}
		}
		return nil
	case p.GRPC != nil:
		return n.grpc(ctx, p.GRPC)
	}
	return fmt.Errorf("probe without handler: %w", ErrProbeUnsupported)
}

func (n *NetProber) httpGet(ctx context.Context, c *corev1.Container, g *corev1.HTTPGetAction) error {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return err
	}
	host := g.Host
	if host == "" {
		host = n.Host
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	u, err := url.Parse(g.Path)
	if err != nil {
		return fmt.Errorf("http probe path %q: %w", g.Path, err)
	}
	u.Scheme, u.Host = scheme, net.JoinHostPort(host, strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	req.Header.Set("User-Agent", "kube-probe/kubemesos")
	for _, hd := range g.HTTPHeaders {
		if hd.Name == "Host" {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	client := n.Client
	if client == nil {
		client = defaultProbeClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("http probe: status %d", resp.StatusCode)
	}
	if resp.StatusCode >= 300 {
		// The kubelet's DoHTTPProbe: a redirect not followed (off-host) is a success with a warning.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
		return &ProbeWarning{Output: fmt.Sprintf("Probe terminated redirects, Response body: %v", string(body))}
	}
	return nil
}

var defaultProbeClient = &http.Client{
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 || req.URL.Host != via[0].URL.Host {
			return http.ErrUseLastResponse // off-host redirects count as success, as in the kubelet
		}
		return nil
	},
}

// resolvePort turns a probe port (number or container port name) into a number.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid probe port %d", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("probe port %q: no such container port", p.StrVal)
}

// probeSettings are a probe's timings with the API defaults.
type probeSettings struct {
	initialDelay, period, timeout time.Duration
	success, failure              int32
}

func settings(p *corev1.Probe) probeSettings {
	sec := func(v, def int32) time.Duration {
		if v <= 0 {
			v = def
		}
		return time.Duration(v) * time.Second
	}
	s := probeSettings{
		initialDelay: time.Duration(max(p.InitialDelaySeconds, 0)) * time.Second,
		period:       sec(p.PeriodSeconds, 10),
		timeout:      sec(p.TimeoutSeconds, 1),
		success:      max(p.SuccessThreshold, 1),
		failure:      p.FailureThreshold,
	}
	if s.failure <= 0 {
		s.failure = 3
	}
	return s
}

// probeLoop runs one probe of one container attempt until ctx ends, reporting every change of its
// thresholded result through report. A startup probe ends at its first success; startup and liveness
// probes end at their first failure (the container is then stopped).
//
// warn, when set, gets the output of every check that succeeded with a warning (*ProbeWarning).
func probeLoop(ctx context.Context, clk clock.Clock, prober Prober, kind probeKind, pod *corev1.Pod, c *corev1.Container,
	h Handle, p *corev1.Probe, report func(ok bool, msg string), warn func(output string)) {
	s := settings(p)
	sleep := func(d time.Duration) bool {
		if d <= 0 {
			return ctx.Err() == nil
		}
		t := clk.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C():
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !sleep(s.initialDelay) {
		return
	}
	var succ, fail int32
	var result *bool
	for {
		pctx, cancel := context.WithTimeout(context.WithValue(ctx, probeTimeoutKey{}, s.timeout), s.timeout)
		err := prober.Probe(pctx, pod, c, h, &p.ProbeHandler)
		cancel()
		if pw := (*ProbeWarning)(nil); errors.As(err, &pw) {
			if warn != nil && ctx.Err() == nil {
				warn(pw.Output)
			}
			err = nil
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			succ, fail = succ+1, 0
		} else {
			succ, fail = 0, fail+1
		}
		var now *bool
		switch {
		case succ >= s.success:
			now = ptrBool(true)
		case fail >= s.failure:
			now = ptrBool(false)
		}
		if now != nil && (result == nil || *result != *now) {
			result = now
			report(*now, msg)
			if (kind == probeStartup && *now) || (kind != probeReadiness && !*now) {
				return
			}
		}
		if !sleep(s.period) {
			return
		}
	}
}

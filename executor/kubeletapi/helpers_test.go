package kubeletapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/kubemesos/kubemesos/executor/containerlogs"
)

// allowAll authenticates every request as "tester" and allows everything.
var (
	anyUser = authenticator.RequestFunc(func(*http.Request) (*authenticator.Response, bool, error) {
		return &authenticator.Response{User: &user.DefaultInfo{Name: "tester"}}, true, nil
	})
	allowAll = authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
)

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return l
}

// startServer starts a Server on a loopback port and returns its base URL; it stops with the test.
func startServer(t *testing.T, cfg Config) string {
	t.Helper()
	if cfg.NodeName == "" {
		cfg.NodeName = "agent0"
	}
	if cfg.Authenticator == nil {
		cfg.Authenticator = anyUser
	}
	if cfg.Authorizer == nil {
		cfg.Authorizer = allowAll
	}
	cfg.Address = "127.0.0.1:0"
	cfg.Log = quietLog()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := s.Start(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		s.Wait()
	})
	return "https://" + addr
}

// insecureClient trusts any serving certificate (the server's is self-signed), like the API server
// without --kubelet-certificate-authority.
func insecureClient(certs ...tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs}}}
}

// hostedPod builds a pod with containers "main" and "side" (and init container "init").
func testPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init"}},
			Containers:     []corev1.Container{{Name: "main"}, {Name: "side"}},
		},
	}
}

func running(name, id string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, ContainerID: "mesos://" + id,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

// logEntry is one line of a CRI log: its stream ("stdout"/"stderr") and its text (without newline).
type logEntry struct {
	stream, line string
}

// writeCRILog writes the CRI log of attempt id of pod uid as package containerlogs does; entry i is
// stamped t0 + i seconds.
func writeCRILog(t *testing.T, sandbox string, uid types.UID, id string, t0 time.Time, entries ...logEntry) {
	t.Helper()
	path := containerlogs.Path(sandbox, uid, id)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, e := range entries {
		fmt.Fprintf(&b, "%s %s F %s\n", t0.Add(time.Duration(i)*time.Second).UTC().Format(time.RFC3339Nano), e.stream, e.line)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeLogs writes the CRI log of attempt id of testPod("web"): the lines of stdout, then those of stderr.
func writeLogs(t *testing.T, sandbox, id, stdout, stderr string) {
	t.Helper()
	var entries []logEntry
	for _, s := range []struct{ stream, data string }{{"stdout", stdout}, {"stderr", stderr}} {
		for _, l := range strings.SplitAfter(s.data, "\n") {
			if l != "" {
				entries = append(entries, logEntry{s.stream, strings.TrimSuffix(l, "\n")})
			}
		}
	}
	writeCRILog(t, sandbox, "uid-web", id, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), entries...)
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

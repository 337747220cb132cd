package kubeletapi

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	clientexec "k8s.io/client-go/util/exec"
	testingclock "k8s.io/utils/clock/testing"
)

// TestExecWebSocketV5 is kubectl's websocket protocol (v5.channel.k8s.io, with its stdin close
// signal) as the API server forwards it to Nodes declaring ExtendWebSocketsToKubelet: translated to
// SPDY on the loopback session endpoint.
func TestExecWebSocketV5(t *testing.T) {
	reg := NewRegistry(t.TempDir())
	reg.Update(testPod("web"), corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "uid-web-main-0")}})
	fe := &fakeExecer{}
	base := startServer(t, Config{Pods: reg, Execer: fe})
	cfg := &restclient.Config{Host: base, TLSClientConfig: restclient.TLSClientConfig{Insecure: true}}
	tests := []struct {
		name       string
		cmd        []string
		stdin      string
		wantStdout string
		wantStderr string
		wantExit   int
	}{
		{"stdin round trip ends with the close signal", []string{"cat"}, "ping\npong\n", "ping\npong\n", "", 0},
		{"echo", []string{"echo", "v5"}, "", "v5\n", "", 0},
		{"exit code", []string{"fail"}, "", "", "failing\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse(execURL(base, "/exec/default/web/main", tt.cmd, tt.stdin != ""))
			ex, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			opts := remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}
			if tt.stdin != "" {
				opts.Stdin = strings.NewReader(tt.stdin)
			}
			err = ex.StreamWithContext(context.Background(), opts)
			var exitErr clientexec.CodeExitError
			switch {
			case tt.wantExit == 0 && err != nil:
				t.Fatalf("exec: %v", err)
			case tt.wantExit > 0 && (!errors.As(err, &exitErr) || exitErr.Code != tt.wantExit):
				t.Fatalf("exec error = %v, want exit code %d", err, tt.wantExit)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoopbackSessionsAreOneTime: a prepared session's token works once and expires.
func TestLoopbackSessionsAreOneTime(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	s, err := New(Config{Pods: NewRegistry(""), Authenticator: anyUser, Authorizer: allowAll, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	token, err := s.loopback.prepare(preparedExec{containerID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := s.loopback.take(token); !ok || p.containerID != "c1" {
		t.Fatalf("first take = %+v, %v", p, ok)
	}
	if _, ok := s.loopback.take(token); ok {
		t.Error("a token worked twice")
	}
	if _, ok := s.loopback.take("guess"); ok {
		t.Error("an unknown token worked")
	}
	late, err := s.loopback.prepare(preparedExec{containerID: "c2"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Step(sessionTTL + time.Second)
	if _, ok := s.loopback.take(late); ok {
		t.Error("an expired token worked")
	}
}

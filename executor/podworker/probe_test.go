package podworker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/clock"
)

func TestNetProber(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			if r.Header.Get("X-Check") != "yes" {
				w.WriteHeader(http.StatusBadRequest)
			}
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	c := &corev1.Container{Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	header := []corev1.HTTPHeader{{Name: "X-Check", Value: "yes"}}
	tests := []struct {
		name    string
		handler corev1.ProbeHandler
		wantErr bool
	}{
		{"http ok by port name", corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http"), HTTPHeaders: header}}, false},
		{"http redirect followed", corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/moved", Port: intstr.FromInt32(int32(port)), HTTPHeaders: header}}, false},
		{"http 503", corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/down", Port: intstr.FromInt32(int32(port))}}, true},
		{"http unknown port name", corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("metrics")}}, true},
		{"tcp open", corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}, false},
		{"tcp closed", corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(closedPort))}}, true},
		{"exec without Execer", corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}, true},
	}
	p := &NetProber{Host: "127.0.0.1", Runtime: newFakeRuntime()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Probe(context.Background(), nil, c, Handle{}, &tt.handler)
			if (err != nil) != tt.wantErr {
				t.Errorf("Probe = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
	if err := p.Probe(context.Background(), nil, c, Handle{}, &corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}); !errors.Is(err, ErrProbeUnsupported) {
		t.Errorf("exec without Execer: %v, want ErrProbeUnsupported", err)
	}
}

// An HTTP probe redirected off the probed host succeeds with the kubelet's warning, whose output
// is the response body; the probe loop counts it as a success and hands it to warn ("Probing
// container should *not* be restarted with a non-local redirect http liveness probe").
func TestHTTPProbeOffHostRedirectWarns(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://0.0.0.0/", http.StatusFound)
	}))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	handler := corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/redirect", Port: intstr.FromInt32(int32(port))}}
	p := &NetProber{Host: "127.0.0.1", Runtime: newFakeRuntime()}
	err := p.Probe(context.Background(), nil, &corev1.Container{}, Handle{}, &handler)
	var pw *ProbeWarning
	if !errors.As(err, &pw) || pw.Output != `Probe terminated redirects, Response body: <a href="http://0.0.0.0/">Found</a>.`+"\n\n" {
		t.Fatalf("Probe = %#v, want the kubelet's redirect warning", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports, warnings := make(chan bool, 10), make(chan string, 10)
	probe := &corev1.Probe{ProbeHandler: handler, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}
	go probeLoop(ctx, clock.RealClock{}, p, probeLiveness, nil, &corev1.Container{}, Handle{}, probe,
		func(ok bool, _ string) { reports <- ok }, func(out string) { warnings <- out })
	select {
	case w := <-warnings:
		if w != pw.Output {
			t.Errorf("warning %q", w)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no warning")
	}
	deadline := time.After(1500 * time.Millisecond)
	for {
		select {
		case ok := <-reports:
			if !ok {
				t.Fatal("the liveness probe reported a failure; a warning is a success")
			}
		case <-deadline:
			return
		}
	}
}

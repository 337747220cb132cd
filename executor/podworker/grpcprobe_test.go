package podworker

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	grpchealth "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
)

// grpcServer serves grpc.health.v1 (when withHealth) on a loopback port.
func grpcServer(t *testing.T, withHealth bool) (*health.Server, int32) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	if withHealth {
		grpchealth.RegisterHealthServer(srv, hs)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return hs, int32(lis.Addr().(*net.TCPAddr).Port)
}

func TestGRPCProbe(t *testing.T) {
	hs, port := grpcServer(t, true)
	hs.SetServingStatus("", grpchealth.HealthCheckResponse_SERVING)
	hs.SetServingStatus("api", grpchealth.HealthCheckResponse_SERVING)
	hs.SetServingStatus("db", grpchealth.HealthCheckResponse_NOT_SERVING)
	_, bare := grpcServer(t, false)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := int32(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()
	svc := func(s string) *string { return &s }

	tests := []struct {
		name    string
		action  corev1.GRPCAction
		timeout time.Duration
		want    string // "" for success; else the kubelet's probe output
	}{
		{"server health", corev1.GRPCAction{Port: port}, time.Second, ""},
		{"named service serving", corev1.GRPCAction{Port: port, Service: svc("api")}, time.Second, ""},
		{"named service not serving", corev1.GRPCAction{Port: port, Service: svc("db")}, time.Second,
			`service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", corev1.GRPCAction{Port: port, Service: svc("nope")}, time.Second,
			"error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"},
		{"no health service", corev1.GRPCAction{Port: bare}, time.Second,
			"error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"},
		{"nothing listens", corev1.GRPCAction{Port: closedPort}, time.Second,
			fmt.Sprintf("timeout: failed to connect service %q within 1s: context deadline exceeded", fmt.Sprintf("127.0.0.1:%d", closedPort))},
	}
	p := &NetProber{Host: "127.0.0.1", Runtime: newFakeRuntime()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			err := p.Probe(ctx, nil, &corev1.Container{Name: "c"}, Handle{}, &corev1.ProbeHandler{GRPC: &tt.action})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Probe = %v, want success", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("Probe = %v, want %q", err, tt.want)
			}
		})
	}

	// A server that turns NOT_SERVING fails the next check.
	hs.SetServingStatus("", grpchealth.HealthCheckResponse_NOT_SERVING)
	err := p.Probe(context.Background(), nil, &corev1.Container{}, Handle{}, &corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: port}})
	if err == nil || !strings.Contains(err.Error(), `"NOT_SERVING"`) {
		t.Errorf("after NOT_SERVING: %v", err)
	}
}

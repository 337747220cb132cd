package podworker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpchealth "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// grpcProbeTimeout bounds a gRPC check run without a deadline (probeLoop always sets the probe's
// timeoutSeconds).
const grpcProbeTimeout = time.Second

// grpc runs the kubelet's gRPC probe (k8s.io/kubernetes/pkg/probe/grpc): one grpc.health.v1.Health/Check
// of the probe's service on the pod's IP within the probe's timeout, SERVING being the only success.
// The error texts are the kubelet's probe outputs, which its Unhealthy events carry.
func (n *NetProber) grpc(ctx context.Context, g *corev1.GRPCAction) error {
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	timeout := grpcProbeTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// The kubelet prints its timeout as a time.Duration of whole seconds (the probe's timeoutSeconds).
	shown := timeout.Round(time.Second)
	creds := insecure.NewCredentials()
	if g.Mode != nil && *g.Mode == corev1.GRPCProbeModeTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) // as the kubelet (GRPCContainerProbeTLS)
	}
	addr := net.JoinHostPort(n.Host, strconv.Itoa(int(g.Port)))
	//nolint:staticcheck // DialContext with WithBlock is how the kubelet tells a failed connection from a failed RPC.
	conn, err := grpc.DialContext(ctx, addr,
		grpc.WithUserAgent("kube-probe/kubemesos"),
		grpc.WithBlock(), //nolint:staticcheck
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}),
	)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("timeout: failed to connect service %q within %v: %+v", addr, shown, err)
		}
		return fmt.Errorf("error: failed to connect service at %q: %+v", addr, err)
	}
	defer conn.Close()
	resp, err := grpchealth.NewHealthClient(conn).Check(metadata.NewOutgoingContext(ctx, metadata.MD{}),
		&grpchealth.HealthCheckRequest{Service: service})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			switch st.Code() {
			case codes.Unimplemented:
				return fmt.Errorf("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", st.Message())
			case codes.DeadlineExceeded:
				return fmt.Errorf("timeout: health rpc did not complete within %v", shown)
			}
		}
		return fmt.Errorf("error: health rpc probe failed: %+v", err)
	}
	if resp.GetStatus() != grpchealth.HealthCheckResponse_SERVING {
		return fmt.Errorf("service unhealthy (responded with %q)", resp.GetStatus().String())
	}
	return nil
}

package kubeletapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/types"
	utilproxy "k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// PortForwarder connects to ports of a hosted pod's network namespace (`kubectl port-forward`).
type PortForwarder interface {
	// DialPod connects to port on the pod's localhost; the error is the runtime's text.
	DialPod(ctx context.Context, podUID types.UID, port int32) (net.Conn, error)
}

// forwardAdapter implements the upstream portforward.PortForwarder over a PortForwarder.
type forwardAdapter struct {
	fwd PortForwarder
	log logrus.FieldLogger
}

var _ portforward.PortForwarder = forwardAdapter{}

// PortForward carries one forwarded connection: the client's bytes to the pod's port until the
// client closes its side (then the port reads end-of-file), and the port's answer until it closes.
func (f forwardAdapter) PortForward(ctx context.Context, _ string, uid string, port int32, stream io.ReadWriteCloser) error {
	conn, err := f.fwd.DialPod(ctx, types.UID(uid), port)
	if err != nil {
		return err
	}
	defer conn.Close()
	f.log.WithField("port", port).Debug("port-forward connection")
	go func() {
		// Ends when the client closes its side (the port then reads end-of-file) or when the caller
		// closes the stream after this returns.
		_, _ = io.Copy(conn, stream)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	// The connection lasts until the port closes it, as containerd's.
	_, err = io.Copy(stream, conn)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("copying from port %d: %w", port, err)
	}
	return nil
}

// servePortForward is /portForward/{namespace}/{pod}[/{uid}], as the kubelet's getPortForward: the
// SPDY protocol portforward.k8s.io (streams with headers port, requestID and streamType data or
// error), the same tunneled through a websocket, and the websocket channel protocol
// (v4.channel.k8s.io, ports in the query), served by the CRI streaming library the kubelet uses.
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	ns, pod := r.PathValue("namespace"), r.PathValue("pod")
	uid := types.UID(r.PathValue("uid"))
	// kubectl's SPDY tunneled through a websocket (SPDY/3.1+portforward.k8s.io), which the API server
	// passes on to Nodes declaring ExtendWebSocketsToKubelet.
	tunnel := wsstream.IsWebSocketRequestWithTunnelingProtocol(r)
	opts := &portforward.V4Options{}
	if !tunnel {
		var err error
		if opts, err = portforward.NewV4Options(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if s.cfg.PortForwarder == nil {
		http.Error(w, "port-forward is not available on this node", http.StatusNotImplemented)
		return
	}
	podUID, err := s.cfg.Pods.PodUID(ns, pod)
	if err != nil {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return
	}
	if uid != "" && uid != podUID {
		http.Error(w, "pod not found", http.StatusNotFound)
		return
	}
	log := s.log.WithFields(logrus.Fields{"pod": ns + "/" + pod, "tunnel": tunnel})
	log.Info("port-forward")
	if !tunnel {
		portforward.ServePortForward(w, r, forwardAdapter{fwd: s.cfg.PortForwarder, log: log}, pod, string(podUID), opts,
			s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, portforward.SupportedProtocols)
		return
	}
	// As the kubelet: the tunnel's SPDY goes to a SPDY server (here the loopback listener, behind a
	// one-time token) through an upgrade-aware proxy.
	addr := s.loopback.listening()
	if addr == "" {
		http.Error(w, "tunneled port-forward is not available: the server was not started", http.StatusNotImplemented)
		return
	}
	token, err := s.loopback.prepare(preparedExec{pod: pod, uid: string(podUID), log: log, forward: true})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	location := &url.URL{Scheme: "http", Host: addr, Path: "/portForward/" + token}
	proxy.NewTunnelingHandler(utilproxy.NewUpgradeAwareHandler(location, nil, false, true, errorResponder{log})).ServeHTTP(w, r)
}

// serveForward is POST /portForward/{token} on the loopback listener: the SPDY side of a tunneled
// port-forward.
func (l *loopbackExec) serveForward(w http.ResponseWriter, r *http.Request) {
	p, ok := l.take(r.PathValue("token"))
	if !ok || !p.forward {
		http.Error(w, "unknown or expired port-forward session", http.StatusNotFound)
		return
	}
	portforward.ServePortForward(w, r, forwardAdapter{fwd: l.s.cfg.PortForwarder, log: p.log}, p.pod, p.uid, &portforward.V4Options{},
		l.s.cfg.StreamIdleTimeout, l.s.cfg.StreamCreationTimeout, portforward.SupportedProtocols)
}

// errorResponder answers a failed proxy upgrade.
type errorResponder struct{ log logrus.FieldLogger }

func (e errorResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	e.log.WithError(err).Warn("port-forward tunnel")
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

package kubeletapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
)

// podPort is the port the fake pod serves HTTP on; any other port is closed.
const podPort = 80

// fakeForwarder connects port podPort of pod uid-web to an HTTP server and refuses every other, with
// the runtime's text.
type fakeForwarder struct{ target string }

func (f fakeForwarder) DialPod(ctx context.Context, uid types.UID, port int32) (net.Conn, error) {
	if uid != "uid-web" {
		return nil, fmt.Errorf("pod %s has no sandbox", uid)
	}
	if port != podPort {
		// A refusal as fast as a real one: upstream's handler resets the streams right after the error,
		// and an instant one overtakes the client's own stream set-up, which then sees only the reset.
		time.Sleep(10 * time.Millisecond)
		return nil, fmt.Errorf("failed to connect to localhost:%d inside namespace %q, IPv4: connection refused IPv6 connection refused ", port, "kubemesos-pod-uid-web")
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", f.target)
}

func podHTTPServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the pod: %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// PortForwardClient forwards a local port to podPort with client-go's port forwarder over dialer
// and returns the local port.
func forwardLocal(t *testing.T, dialer func(u *url.URL) (forwardDialer, error), u *url.URL) int {
	t.Helper()
	d, err := dialer(u)
	if err != nil {
		t.Fatal(err)
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(podPort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errs, done := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(done)
		errs <- fw.ForwardPorts()
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	select {
	case <-ready:
	case err := <-errs:
		t.Fatalf("port forwarding: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("port forwarding not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	return int(ports[0].Local)
}

func httpGetLocal(t *testing.T, port int, path string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatalf("GET through the port forward: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func portForwardServer(t *testing.T, cfg Config) (string, *restclient.Config) {
	t.Helper()
	reg := NewRegistry(t.TempDir())
	reg.Update(testPod("web"), corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "uid-web-main-0")}})
	cfg.Pods = reg
	base := startServer(t, cfg)
	return base, &restclient.Config{Host: base, TLSClientConfig: restclient.TLSClientConfig{Insecure: true}}
}

// HTTP through `kubectl port-forward`'s two transports: SPDY, and SPDY tunneled through a websocket
// (what kubectl 1.37 sends), with and without the pod UID in the path.
func TestPortForwardSPDY(t *testing.T) {
	target := podHTTPServer(t)
	base, cfg := portForwardServer(t, Config{PortForwarder: fakeForwarder{target: target}})
	for _, tt := range []struct {
		name   string
		path   string
		dialer func(u *url.URL) (forwardDialer, error)
	}{
		{"SPDY", "/portForward/default/web", spdyDialer(cfg)},
		{"SPDY with the UID", "/portForward/default/web/uid-web", spdyDialer(cfg)},
		{"SPDY over websocket", "/portForward/default/web", func(u *url.URL) (forwardDialer, error) {
			return portforward.NewSPDYOverWebsocketDialer(u, cfg)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse(base + tt.path)
			local := forwardLocal(t, tt.dialer, u)
			for _, p := range []string{"/one", "/two"} {
				if got, want := httpGetLocal(t, local, p), "hello from the pod: "+p; got != want {
					t.Errorf("GET %s = %q, want %q", p, got, want)
				}
			}
		})
	}
}

// A closed port gets the kubelet's text on the error stream.
func TestPortForwardClosedPortError(t *testing.T) {
	base, cfg := portForwardServer(t, Config{PortForwarder: fakeForwarder{target: podHTTPServer(t)}})
	u, _ := url.Parse(base + "/portForward/default/web")
	d, err := spdyDialer(cfg)(u)
	if err != nil {
		t.Fatal(err)
	}
	got := spdyErrorStream(t, d, 81)
	want := `error forwarding port 81 to pod web, uid uid-web: failed to connect to localhost:81 inside namespace "kubemesos-pod-uid-web", IPv4: connection refused IPv6 connection refused `
	if got != want {
		t.Errorf("error stream = %q, want %q", got, want)
	}
}

// The websocket channel protocol (v4.channel.k8s.io): ports in the query, a data and an error channel
// per port, each opened with the port number.
func TestPortForwardWebsocketChannels(t *testing.T) {
	base, _ := portForwardServer(t, Config{PortForwarder: fakeForwarder{target: podHTTPServer(t)}})
	data, errText := websocketForward(t, strings.Replace(base, "https://", "wss://", 1)+"/portForward/default/web?port=80", "GET /ws HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(data, "HTTP/1.0 200 OK\r\n") || !strings.HasSuffix(data, "hello from the pod: /ws") || errText != "" {
		t.Errorf("websocket forward: data %q, error %q", data, errText)
	}
	data, errText = websocketForward(t, strings.Replace(base, "https://", "wss://", 1)+"/portForward/default/web?port=81", "")
	if data != "" || !strings.HasPrefix(errText, "error forwarding port 81 to pod web, uid uid-web: failed to connect to localhost:81") {
		t.Errorf("websocket forward to a closed port: data %q, error %q", data, errText)
	}
}

// Port-forward is authorized as the kubelet authorizes it: nodes/proxy.
func TestPortForwardForbiddenWithoutNodesProxy(t *testing.T) {
	var asked []string
	authz := authorizer.AuthorizerFunc(func(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		asked = append(asked, a.GetVerb()+" "+a.GetResource()+"/"+a.GetSubresource()+" "+a.GetName())
		return authorizer.DecisionDeny, "", nil
	})
	authn := authenticator.RequestFunc(func(*http.Request) (*authenticator.Response, bool, error) {
		return &authenticator.Response{User: &user.DefaultInfo{Name: "viewer"}}, true, nil
	})
	base, cfg := portForwardServer(t, Config{PortForwarder: fakeForwarder{target: podHTTPServer(t)}, Authenticator: authn, Authorizer: authz})
	u, _ := url.Parse(base + "/portForward/default/web")
	d, err := spdyDialer(cfg)(u)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.Dial(portforward.PortForwardProtocolV1Name)
	if err == nil || !strings.Contains(err.Error(), "Forbidden (user=viewer, verb=create, resource=nodes, subresource(s)=[proxy])") {
		t.Errorf("Dial as a user without nodes/proxy = %v, want 403 Forbidden", err)
	}
	if len(asked) != 1 || asked[0] != "create nodes/proxy agent0" {
		t.Errorf("authorization asked %v, want create nodes/proxy agent0", asked)
	}
	// Unknown pods are 404 as on a kubelet.
	ws := strings.Replace(base, "https://", "wss://", 1)
	_, resp, err := (&gwebsocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}).Dial(ws+"/portForward/default/web?port=80", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("websocket as a user without nodes/proxy: %v", err)
	}
}

func TestPortForwardUnknownPod(t *testing.T) {
	base, _ := portForwardServer(t, Config{PortForwarder: fakeForwarder{}})
	for _, path := range []string{"/portForward/default/nope?port=80", "/portForward/default/web/other-uid?port=80"} {
		req, _ := http.NewRequest(http.MethodPost, base+path, nil)
		resp, err := insecureClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", path, resp.StatusCode)
		}
	}
}

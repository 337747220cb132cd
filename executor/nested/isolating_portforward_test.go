package nested_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/kubemesos/kubemesos/executor/kubeletapi"
)

// kubectl port-forward to a pod on a CNI network, through the kubelet API and the pod's sandbox
// process: the pod's web server listens on 127.0.0.1 of the pod's network namespace only, so only a
// connection made inside that namespace reaches it. SPDY (client-go's forwarder), SPDY tunneled
// through a websocket (kubectl 1.37), and the websocket channel protocol; a closed port is the
// kubelet's error on the error channel.
func TestIsolatedPortForward(t *testing.T) {
	name, confDir := podNetwork(t, 93)
	r := networkRuntime(t, confDir)
	pod := shPod("pf", `cd "$MESOS_SANDBOX" && echo hello-from-the-pod > index.html && exec busybox httpd -f -p 127.0.0.1:8080 -h .`,
		nil, nil, corev1.ResourceRequirements{})
	withSandbox(t, r, pod, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := r.Start(ctx, pod, &pod.Spec.Containers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Signal(context.Background(), h, 9)
		_, _ = r.Wait(context.Background(), h)
		_ = r.Remove(context.Background(), h)
	})
	for {
		c, err := r.DialPod(ctx, pod.UID, 8080)
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the pod's web server never listened: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	reg := kubeletapi.NewRegistry(t.TempDir())
	reg.Update(pod, corev1.PodStatus{})
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := kubeletapi.New(kubeletapi.Config{
		NodeName: "agent0", Address: "127.0.0.1:0", Pods: reg, PortForwarder: r, Log: log,
		Authenticator: authenticator.RequestFunc(func(*http.Request) (*authenticator.Response, bool, error) {
			return &authenticator.Response{User: &user.DefaultInfo{Name: "admin"}}, true, nil
		}),
		Authorizer: authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
			return authorizer.DecisionAllow, "", nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stop := context.WithCancel(context.Background())
	addr, err := srv.Start(srvCtx)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); srv.Wait() })
	base := "https://" + addr
	cfg := &restclient.Config{Host: base, TLSClientConfig: restclient.TLSClientConfig{Insecure: true}}
	u, _ := url.Parse(base + "/portForward/default/pf")

	tr, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tunnel, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		kind string
		fw   func(stop, ready chan struct{}) (*portforward.PortForwarder, error)
	}{
		{"SPDY", func(stop, ready chan struct{}) (*portforward.PortForwarder, error) {
			return portforward.NewOnAddresses(spdy.NewDialer(upgrader, &http.Client{Transport: tr}, http.MethodPost, u),
				[]string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
		}},
		{"SPDY over websocket", func(stop, ready chan struct{}) (*portforward.PortForwarder, error) {
			return portforward.NewOnAddresses(tunnel, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
		}},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			stop, ready := make(chan struct{}), make(chan struct{})
			fw, err := tt.fw(stop, ready)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- fw.ForwardPorts() }()
			defer func() { close(stop); <-done }()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("forwarding: %v", err)
			}
			ports, err := fw.GetPorts()
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello-from-the-pod\n" {
				t.Errorf("GET through %s = %q", tt.kind, body)
			}
		})
	}

	ws := strings.Replace(base, "https://", "wss://", 1) + "/portForward/default/pf"
	if data, errText := wsForward(t, ws+"?port=8080", "GET / HTTP/1.0\r\n\r\n"); !strings.HasSuffix(data, "\r\n\r\nhello-from-the-pod\n") || errText != "" {
		t.Errorf("websocket channels: data %q, error %q", data, errText)
	}
	// containerd names the sandbox; here it is the sandbox executor's container.
	sandbox, _ := r.SandboxExecutorContainer(pod.UID)
	want := fmt.Sprintf(`error forwarding port 8081 to pod pf, uid %s: failed to connect to localhost:8081 inside namespace %q, IPv4: dial tcp4 127.0.0.1:8081: connect: connection refused`, pod.UID, sandbox.Value)
	if data, errText := wsForward(t, ws+"?port=8081", ""); data != "" || !strings.HasPrefix(errText, want) {
		t.Errorf("websocket channels to a closed port: data %q, error %q, want it to start with %q", data, errText, want)
	}
}

// wsForward forwards one connection over v4.channel.k8s.io and returns the data and error channels'
// bytes after their port prefixes, once the server closed or sent an error.
func wsForward(t *testing.T, wsURL, send string) (string, string) {
	t.Helper()
	d := &gwebsocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Subprotocols: []string{"v4.channel.k8s.io"}}
	conn, _, err := d.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if send != "" {
		if err := conn.WriteMessage(gwebsocket.BinaryMessage, append([]byte{0}, send...)); err != nil {
			t.Fatal(err)
		}
	}
	var chans [2][]byte
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil || len(msg) == 0 || msg[0] > 1 {
			break
		}
		chans[msg[0]] = append(chans[msg[0]], msg[1:]...)
		if msg[0] == 1 && len(chans[1]) > 2 {
			break
		}
	}
	for i := range chans {
		if len(chans[i]) < 2 {
			t.Fatalf("channel %d did not start with its port: %q", i, chans[i])
		}
		chans[i] = chans[i][2:]
	}
	return string(chans[0]), string(chans[1])
}

// A pod on the host's network is forwarded to on the host's localhost, where its ports are.
func TestIsolatedPortForwardHostNetwork(t *testing.T) {
	r := isolatingRuntime(t, "filesystem/linux,namespaces/pid", nil)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pod := shPod("hostpf", fmt.Sprintf(`cd "$MESOS_SANDBOX" && echo hello-from-the-host-network > index.html && exec busybox httpd -f -p 127.0.0.1:%d -h .`, port),
		nil, nil, corev1.ResourceRequirements{})
	pod.Spec.HostNetwork = true
	withSandbox(t, r, pod, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := r.Start(ctx, pod, &pod.Spec.Containers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Signal(context.Background(), h, 9)
		_, _ = r.Wait(context.Background(), h)
		_ = r.Remove(context.Background(), h)
	})
	for {
		c, err := r.DialPod(ctx, pod.UID, int32(port))
		if err == nil {
			if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(c)
			c.Close()
			if !strings.HasSuffix(string(b), "\r\n\r\nhello-from-the-host-network\n") {
				t.Errorf("through DialPod: %q", b)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the pod's web server never listened: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package kubeletapi

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// forwardDialer is what client-go's port forwarder dials with.
type forwardDialer = httpstream.Dialer

// spdyDialer is kubectl's SPDY dialer for cfg.
func spdyDialer(cfg *restclient.Config) func(u *url.URL) (forwardDialer, error) {
	return func(u *url.URL) (forwardDialer, error) {
		tr, upgrader, err := spdy.RoundTripperFor(cfg)
		if err != nil {
			return nil, err
		}
		return spdy.NewDialer(upgrader, &http.Client{Transport: tr}, http.MethodPost, u), nil
	}
}

// spdyErrorStream opens one stream pair for port as client-go does and returns what the server
// wrote on the error stream. The server resets the streams right after writing its error (upstream's
// portForward), which now and then overtakes the message in the client: a few tries give the text.
func spdyErrorStream(t *testing.T, d forwardDialer, port int) string {
	t.Helper()
	for try := 0; ; try++ {
		if msg, err := spdyErrorStreamOnce(t, d, port); err == nil || try == 9 {
			if err != nil {
				t.Fatal(err)
			}
			return msg
		}
	}
}

func spdyErrorStreamOnce(t *testing.T, d forwardDialer, port int) (string, error) {
	t.Helper()
	conn, _, err := d.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(h)
	if err != nil {
		t.Fatal(err)
	}
	errStream.Close() // the client only reads it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	msg, err := io.ReadAll(errStream)
	if err != nil && len(msg) == 0 {
		return "", err
	}
	return string(msg), nil
}

// websocketForward forwards one connection over the v4.channel.k8s.io protocol: it sends send on
// the data channel and returns what came back on the data and error channels (without their port
// prefixes) once the server closed or sent an error.
func websocketForward(t *testing.T, wsURL, send string) (data, errText string) {
	t.Helper()
	d := &gwebsocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Subprotocols: []string{"v4.channel.k8s.io"}}
	conn, resp, err := d.Dial(wsURL, nil)
	if err != nil {
		var body []byte
		if resp != nil {
			body, _ = io.ReadAll(resp.Body)
		}
		t.Fatalf("%v: %s", err, body)
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
		if err != nil {
			break
		}
		if len(msg) == 0 || msg[0] > 1 {
			continue
		}
		chans[msg[0]] = append(chans[msg[0]], msg[1:]...)
		if msg[0] == 1 && len(chans[1]) > 2 {
			break // the error: the server keeps the connection until the client leaves
		}
	}
	for i := range chans {
		if len(chans[i]) < 2 || binary.LittleEndian.Uint16(chans[i]) == 0 {
			t.Fatalf("channel %d did not start with its port: %q", i, chans[i])
		}
		chans[i] = chans[i][2:]
	}
	return string(chans[0]), string(chans[1])
}

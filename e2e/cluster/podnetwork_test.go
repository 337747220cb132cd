package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/podnet"
)

// With a pod network the API server answers on its own address (in its certificate), the kubernetes
// Service's endpoint is that address, and kube-proxy (nftables) programs Services: the ClusterIPs are
// in its table and carry traffic from this host to the endpoints. Stopping the control plane removes
// kube-proxy's table and the address.
func TestPodNetworkControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	if os.Geteuid() != 0 {
		t.Skip("the pod network needs root (addresses, nftables)")
	}
	cp := StartT(t, Options{PodNetwork: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cp.AdvertiseIP == nil || !strings.HasPrefix(cp.AdvertiseIP.String(), "10.250.255.") {
		t.Fatalf("AdvertiseIP = %v", cp.AdvertiseIP)
	}
	u, _ := url.Parse(cp.URL)
	port := u.Port()
	client := cp.httpsClient(t, "")

	// The API server on the advertised address, verified against its serving CA.
	readyz := func(hostPort string) (string, error) {
		resp, err := client.Get("https://" + hostPort + "/readyz")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
	}
	if got, err := readyz(net.JoinHostPort(cp.AdvertiseIP.String(), port)); err != nil || got != "200 ok" {
		t.Fatalf("readyz on the advertised address: %q, %v", got, err)
	}
	// The executors' kubeconfig names that address (and is trusted there).
	adv, err := clientcmd.BuildConfigFromFlags("", cp.AdvertisedKubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://" + net.JoinHostPort(cp.AdvertiseIP.String(), port); adv.Host != want {
		t.Errorf("advertised kubeconfig's server %s, want %s", adv.Host, want)
	}
	advClient, err := kubernetes.NewForConfig(adv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := advClient.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("through the advertised kubeconfig: %v", err)
	}

	// The kubernetes Service's endpoint is the advertised address (the lease endpoint reconciler).
	eventually(t, ctx, "the kubernetes EndpointSlice names the advertised address", func() (bool, string) {
		s, err := cp.Client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, ep := range s.Endpoints {
			for _, a := range ep.Addresses {
				if a == cp.AdvertiseIP.String() && len(s.Ports) == 1 && fmt.Sprint(ptr.Deref(s.Ports[0].Port, 0)) == port {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%+v %+v", s.Endpoints, s.Ports)
	})

	// A Service of our own, its endpoint the API server: kube-proxy puts its ClusterIP in its table
	// and forwards this host's connections to it.
	// (Not cp.Namespace: its cleanup would run after this test stopped the control plane.)
	ns := "probe"
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	portNum, _ := net.LookupPort("tcp", port)
	svc, err := cp.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 8443, TargetPort: intstr.FromInt(portNum)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cp.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "probe-1", Labels: map[string]string{discoveryv1.LabelServiceName: "probe"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{cp.AdvertiseIP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(portNum)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "kube-proxy's table names the ClusterIP "+svc.Spec.ClusterIP, func() (bool, string) {
		text := podnet.TableText("ip", "kube-proxy")
		return strings.Contains(text, svc.Spec.ClusterIP+" . tcp . 8443"), text
	})
	// The certificate is the API server's: ask for its name, reach it through the ClusterIPs.
	named := cp.httpsClient(t, "kubernetes.default.svc")
	for _, hostPort := range []string{svc.Spec.ClusterIP + ":8443", "10.0.0.1:443"} {
		eventually(t, ctx, "readyz through "+hostPort, func() (bool, string) {
			resp, err := named.Get("https://" + hostPort + "/readyz")
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == 200 && string(b) == "ok", fmt.Sprintf("%d %s", resp.StatusCode, b)
		})
	}

	// On demand (LazyKubeProxy's way): stopped, its table is gone; started again as if on a Node, it
	// programs the same Services.
	cp.StopKubeProxy()
	if text := podnet.TableText("ip", "kube-proxy"); text != "" {
		t.Errorf("kube-proxy's table after StopKubeProxy:\n%s", text)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "probe-node"}}
	if _, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cp.StartKubeProxy(ctx, "probe-node"); err != nil {
		t.Fatal(err)
	}
	if err := cp.StartKubeProxy(ctx, "probe-node"); err == nil {
		t.Error("a second kube-proxy started")
	}
	eventually(t, ctx, "kube-proxy's table names the ClusterIP again", func() (bool, string) {
		text := podnet.TableText("ip", "kube-proxy")
		return strings.Contains(text, svc.Spec.ClusterIP+" . tcp . 8443"), text
	})

	cp.Stop()
	if text := podnet.TableText("ip", "kube-proxy"); text != "" {
		t.Errorf("kube-proxy's table after Stop:\n%s", text)
	}
	if addrs, _ := net.InterfaceByName(podnet.Link); addrs != nil {
		as, _ := addrs.Addrs()
		for _, a := range as {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(cp.AdvertiseIP) {
				t.Errorf("%s still on %s after Stop", cp.AdvertiseIP, podnet.Link)
			}
		}
	}
}

// httpsClient trusts the serving CA and presents the admin's client certificate; serverName, if
// set, is the name verified instead of the dialled host.
func (cp *ControlPlane) httpsClient(t *testing.T, serverName string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cp.servingCA.certPEM)
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if cp.Config != nil && len(cp.Config.CertData) > 0 {
		cert, err := tls.X509KeyPair(cp.Config.CertData, cp.Config.KeyData)
		if err != nil {
			t.Fatal(err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func eventually(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		ok, seen := cond()
		last = seen
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last seen: %s)", what, err, last)
	}
}

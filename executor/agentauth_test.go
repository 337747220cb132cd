package executor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// authenticatingAgent makes the simulated agent one started with --authenticate_http_executors,
// --authenticate_http_readwrite, --http_authenticators=jwt and a --jwt_secret_key: every call an
// executor makes, to the executor API and the operator API, must carry its token.
func authenticatingAgent(t *testing.T) func(*agent.Config) {
	key := filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(key, []byte("executor-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *agent.Config) {
		c.AuthenticateHTTPExecutors, c.AuthenticateHTTPReadwrite = true, true
		c.HTTPAuthenticators, c.JWTSecretKey = "jwt", key
	}
}

// The kubelet executor sends its MESOS_EXECUTOR_AUTHENTICATION_TOKEN: it subscribes, updates, reads
// the agent's flags and runs the pod's container (LAUNCH_CONTAINER, WAIT_CONTAINER, ...) on an agent
// that refuses calls without it.
func TestKubeletExecutorAuthenticatesToTheAgent(t *testing.T) {
	var token string
	mutate := authenticatingAgent(t)
	env := newSimEnvWith(t, func(c *agent.Config) {
		mutate(c)
		hook := c.ExecutorHook
		c.ExecutorHook = func(ctx context.Context, vars map[string]string) error {
			token = vars["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"]
			return hook(ctx, vars)
		}
	}, nil)
	task := env.launch(shPod("authed", corev1.RestartPolicyNever, 30, `echo hello`))
	env.awaitState(task, "TASK_FINISHED")
	waitFor(t, "the pod's status", func() bool { return env.pod("authed").Status.Phase == corev1.PodSucceeded })
	if token == "" {
		t.Error("the agent gave the executor no token")
	}
}

// The pods' sandbox executors (a process in its own container) send their token too.
func TestSandboxExecutorAuthenticatesToTheAgent(t *testing.T) {
	env, network := newNetworkEnv(t, 96, authenticatingAgent(t))
	pod := shPod("boxed", corev1.RestartPolicyNever, 5, `sleep 600`)
	pod.Spec.Containers[0].Image = ""
	sbTask, podTask := env.launchSandboxed(pod, network)
	env.awaitState(podTask, "TASK_RUNNING")
	waitFor(t, "the pod's IP", func() bool { return env.pod("boxed").Status.PodIP != "" })
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: podTask}, nil)
	env.awaitState(podTask, "TASK_KILLED")
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: sbTask}, nil)
	env.awaitState(sbTask, "TASK_KILLED")
}

// tlsAgent makes the agent serve https (libprocess SSL with a certificate for 127.0.0.1 and the
// host's addresses, signed by a test CA) and hands its executors, through
// --executor_environment_variables as Mesos' SSL documentation does, the LIBPROCESS_SSL_* variables
// that make them use https and verify the agent against that CA.
func tlsAgent(t *testing.T) func(*agent.Config) {
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				ips = append(ips, ipn.IP)
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "agent"}, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string]*pem.Block{caFile: {Type: "CERTIFICATE", Bytes: caDER}, certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func(c *agent.Config) {
		c.SSL = agent.SSLConfig{Enabled: true, CertFile: certFile, KeyFile: keyFile}
		c.ExecutorEnvironmentVariables = map[string]string{"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": certFile,
			"LIBPROCESS_SSL_KEY_FILE": keyFile, "LIBPROCESS_SSL_VERIFY_SERVER_CERT": "true", "LIBPROCESS_SSL_CA_FILE": caFile}
	}
}

// With an https agent (plain http refused) that authenticates executors, the kubelet executor and
// the pod's sandbox executor both reach it over TLS with their tokens: the pod runs on its sandbox's
// network and ends when killed.
func TestExecutorsReachAnHTTPSAgent(t *testing.T) {
	env, network := newNetworkEnv(t, 95, authenticatingAgent(t), tlsAgent(t))
	if env.agent.Scheme() != "https" {
		t.Fatalf("agent scheme %s", env.agent.Scheme())
	}
	pod := shPod("tls", corev1.RestartPolicyNever, 5, `sleep 600`)
	pod.Spec.Containers[0].Image = ""
	sbTask, podTask := env.launchSandboxed(pod, network)
	env.awaitState(podTask, "TASK_RUNNING")
	waitFor(t, "the pod's IP", func() bool { return env.pod("tls").Status.PodIP != "" })
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: podTask}, nil)
	env.awaitState(podTask, "TASK_KILLED")
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: sbTask}, nil)
	env.awaitState(sbTask, "TASK_KILLED")
}

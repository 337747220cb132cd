package kubemesos

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// hs256 mints a JWT as Mesos' JWTSecretGenerator does, independently of the simulator's code.
func hs256(claims map[string]string, key string) string {
	payload, _ := json.Marshal(claims) // sorted keys, as stout's JSON objects
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(payload)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(signing))
	return signing + "." + enc(m.Sum(nil))
}

// TestExecutorAuthenticatedByTheAgent (issue 14, must-show 4, the agent's half): agents started as
// Mesos agents with --authenticate_http_executors, --authenticate_http_readwrite, --jwt_secret_key and
// --http_credentials. The kubelet executor and the pod's sandbox executor send the tokens the agent
// gave them on every call (executor API, and the operator API for containers, exec sessions, flags),
// so pods run end to end with logs and exec; a call without a token, with a forged one or with
// another executor's is refused with Mesos' 401 and 403.
func TestExecutorAuthenticatedByTheAgent(t *testing.T) {
	const secret = "e2e-executor-secret"
	dir := t.TempDir()
	key, creds := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "http-credentials.json")
	if err := os.WriteFile(key, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(creds, []byte(`{"credentials":[{"principal":"ops","secret":"ops-secret"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{Agents: 1, PodNetwork: agentMode().Isolating, AgentTweak: func(_ int, c *agent.Config) {
		c.AuthenticateHTTPExecutors, c.AuthenticateHTTPReadwrite = true, true
		c.JWTSecretKey, c.HTTPCredentials = key, creds
	}})
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "authed", Labels: map[string]string{"app": "authed"}},
		Spec:       podSpec("echo started; " + sleeper),
	}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// readyPods, not waitRunningPods: a pod on the pod network has a sandbox task besides its own.
	running := e.readyPods(selector(pod.Labels), 1, 3*time.Minute)[0]
	e.eventually("kubectl logs", time.Minute, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "logs", running.Name)
		if err != nil || code != 0 || stdout != "started\n" {
			return false, fmt.Errorf("kubectl logs = %q: exit %d, %v: %s", stdout, code, err, stderr)
		}
		return true, nil
	})
	// exec: a nested container session, its output and its exit code, through the operator API.
	stdout, stderr, code, err := e.kubectl(ctx, "exec", running.Name, "--", "sh", "-c", "echo $((6*7)); exit 3")
	if err != nil || stdout != "42\n" || code != 3 {
		t.Errorf("kubectl exec = %q exit %d, %v (stderr %q), want \"42\\n\" exit 3", stdout, code, err, stderr)
	}
	stdout, stderr, code, err = e.kubectlStdin(ctx, "through stdin\n", "exec", "-i", running.Name, "--", "sh", "-c", "read l; echo got:$l")
	if err != nil || stdout != "got:through stdin\n" || code != 0 {
		t.Errorf("kubectl exec -i = %q exit %d, %v (stderr %q)", stdout, code, err, stderr)
	}

	// The agent itself: its executors and what it answers to calls without their tokens.
	ag := e.sim.Agents()[0]
	var kubelet, other *agent.ExecutorState
	for _, ex := range ag.Executors() {
		switch {
		case strings.HasPrefix(ex.Info.ExecutorID.Value, podtranslate.SandboxExecutorIDPrefix):
			other = &ex
		default:
			kubelet = &ex
		}
	}
	if kubelet == nil {
		t.Fatalf("no kubelet executor on the agent: %+v", ag.Executors())
	}
	fid, eid, cid := kubelet.FrameworkID.Value, kubelet.Info.ExecutorID.Value, kubelet.ContainerID.Value
	message := `{"type":"MESSAGE","framework_id":{"value":"` + fid + `"},"executor_id":{"value":"` + eid + `"},"message":{"data":"ZTJl"}}`
	call := func(path, auth, body string) (int, string, string) {
		req, err := http.NewRequest(http.MethodPost, "http://"+ag.Endpoint()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
	}
	type answer struct {
		Code      int
		Challenge string
		Body      string
	}
	check := func(what string, got, want answer) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %+v\nwant %+v", what, got, want)
		}
	}
	bothBodies := "\"Basic\" authenticator returned:\n401 Unauthorized.\n\n\"Bearer\" authenticator returned:\n401 Unauthorized."
	code, challenge, body := call("/api/v1/executor", "", message)
	check("an executor call without a token", answer{code, challenge, body},
		answer{401, `Basic realm="mesos-agent-executor",Bearer realm="mesos-agent-executor"`, bothBodies})
	code, challenge, body = call("/api/v1/executor", "Bearer "+hs256(map[string]string{"fid": fid, "eid": eid, "cid": cid}, "not the agent's key"), message)
	check("a forged token", answer{code, challenge, body},
		answer{401, `Basic realm="mesos-agent-executor",Bearer realm="mesos-agent-executor", error="invalid_token", error_description="Invalid JWT: Token signature does not match"`, bothBodies})
	if other != nil {
		ofid, oeid, ocid := other.FrameworkID.Value, other.Info.ExecutorID.Value, other.ContainerID.Value
		code, challenge, body = call("/api/v1/executor", "Bearer "+hs256(map[string]string{"fid": ofid, "eid": oeid, "cid": ocid}, secret), message)
		check("the sandbox executor's token for the kubelet executor", answer{code, challenge, body}, answer{403, "",
			`Authenticated principal '{"claims":{"cid":"` + ocid + `","eid":"` + oeid + `","fid":"` + ofid + `"}}' does not contain an 'eid' claim with the executor ID ` + eid + `, which is set in the call`})
	} else {
		t.Log("process mode: no sandbox executor to borrow a token from")
	}
	code, challenge, body = call("/api/v1/executor", "Bearer "+hs256(map[string]string{"fid": fid, "eid": eid, "cid": cid}, secret), message)
	check("the kubelet executor's own token", answer{code, challenge, body}, answer{202, "", ""})

	// The operator API (readwrite realm): an operator's basic credentials or an executor's token.
	getFlags := `{"type":"GET_FLAGS"}`
	code, challenge, _ = call("/api/v1", "", getFlags)
	check("the operator API without credentials", answer{code, challenge, ""},
		answer{401, `Basic realm="mesos-agent-readwrite",Bearer realm="mesos-agent-readwrite"`, ""})
	code, _, body = call("/api/v1", "Basic "+base64.StdEncoding.EncodeToString([]byte("ops:ops-secret")), getFlags)
	if code != 200 || !strings.Contains(body, `"name":"authenticate_http_executors","value":"true"`) {
		t.Errorf("GET_FLAGS as ops: %d %s", code, body)
	}
}

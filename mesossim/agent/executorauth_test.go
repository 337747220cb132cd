package agent

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
)

// authFiles writes a --jwt_secret_key file and an --http_credentials file (principal ops).
func authFiles(t *testing.T) (key, credentials string) {
	dir := t.TempDir()
	key, credentials = filepath.Join(dir, "jwt.key"), filepath.Join(dir, "credentials.json")
	if err := os.WriteFile(key, []byte("s3cr3t-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(credentials, []byte(`{"credentials":[{"principal":"ops","secret":"opsecret"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, credentials
}

// authAgent starts an agent with --authenticate_http_executors (and readwrite when asked) whose
// in-process executors record their environments and run the test executor with their token.
func authAgent(t *testing.T, readwrite bool, mutate func(*Config)) (*Agent, *fakeMaster, func(eid string) map[string]string) {
	key, creds := authFiles(t)
	m := &fakeMaster{autoAck: true}
	var mu sync.Mutex
	envs := map[string]map[string]string{}
	a := newTestAgent(t, m, func(c *Config) {
		c.AuthenticateHTTPExecutors, c.AuthenticateHTTPReadwrite = true, readwrite
		c.JWTSecretKey, c.HTTPCredentials = key, creds
		c.ExecutorHook = func(ctx context.Context, env map[string]string) error {
			mu.Lock()
			envs[env["MESOS_EXECUTOR_ID"]] = env
			mu.Unlock()
			return hookExecutor(ctx, env)
		}
		if mutate != nil {
			mutate(c)
		}
	})
	return a, m, func(eid string) map[string]string {
		mu.Lock()
		defer mu.Unlock()
		return envs[eid]
	}
}

func containerOf(t *testing.T, a *Agent, eid string) string {
	for _, e := range a.Executors() {
		if e.Info.ExecutorID.Value == eid {
			return e.ContainerID.Value
		}
	}
	t.Fatalf("no executor %s", eid)
	return ""
}

// The agent signs a token per executor (Mesos' JWTSecretGenerator: HS256, claims fid, eid, cid),
// the executor that sends it subscribes and updates (its tasks run), and /api/v1/executor answers as
// Mesos' combined basic+jwt authenticator: 401 without or with a bad token, 403 with the token of
// another executor or a basic principal, heartbeats not checked against claims.
func TestExecutorAuthentication(t *testing.T) {
	a, m, envOf := authAgent(t, false, nil)
	fw := testFramework(false)
	a.Launch(fw, hookExecutorInfo("e1"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	a.Launch(fw, hookExecutorInfo("e2"), []mesos.TaskInfo{dataTask("t2", "wait")}, false)
	waitFor(t, "both executors' tasks running", func() bool { return len(m.states("t1")) == 1 && len(m.states("t2")) == 1 })
	if s := m.states("t1"); s[0] != "TASK_RUNNING" {
		t.Fatalf("t1 states %v", s)
	}
	cid1, cid2 := containerOf(t, a, "e1"), containerOf(t, a, "e2")

	tok1, tok2 := envOf("e1")[ExecutorTokenEnv], envOf("e2")[ExecutorTokenEnv]
	want1 := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + // {"alg":"HS256","typ":"JWT"}
		base64.RawURLEncoding.EncodeToString([]byte(`{"cid":"`+cid1+`","eid":"e1","fid":"fw-1"}`))
	if !strings.HasPrefix(tok1, want1+".") {
		t.Fatalf("e1's token %q, want header and payload %q", tok1, want1)
	}
	if got, want := tok1, createJWT(map[string]string{"fid": "fw-1", "eid": "e1", "cid": cid1}, []byte("s3cr3t-key")); got != want {
		t.Errorf("e1's token %q, want %q", got, want)
	}

	base := "http://" + a.Endpoint()
	msg := func(eid string) string {
		return `{"type":"MESSAGE","framework_id":{"value":"fw-1"},"executor_id":{"value":"` + eid + `"},"message":{"data":"aGk="}}`
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:opsecret"))
	forged := createJWT(map[string]string{"fid": "fw-1", "eid": "e1", "cid": cid1}, []byte("another key"))
	staleCID := createJWT(map[string]string{"fid": "fw-1", "eid": "e1", "cid": "old-container"}, []byte("s3cr3t-key"))
	const bothChallenges = `Basic realm="mesos-agent-executor",Bearer realm="mesos-agent-executor"`
	const bothBodies = "\"Basic\" authenticator returned:\n401 Unauthorized.\n\n\"Bearer\" authenticator returned:\n401 Unauthorized."
	subscribe := `{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"e1"},"subscribe":{}}`
	for _, tc := range []struct {
		name, method, auth, body string
		code                     int
		challenge, wantBody      string
		accept                   string
	}{
		{"no token", "", "", msg("e1"), 401, bothChallenges, bothBodies, ""},
		// libprocess authenticates before the handler: not 405.
		{"no token, GET", http.MethodGet, "", "", 401, bothChallenges, bothBodies, ""},
		{"forged token", "", "Bearer " + forged, msg("e1"), 401,
			`Basic realm="mesos-agent-executor",Bearer realm="mesos-agent-executor", error="invalid_token", error_description="Invalid JWT: Token signature does not match"`, bothBodies, ""},
		{"not a JWT", "", "Bearer abc", msg("e1"), 401,
			`Basic realm="mesos-agent-executor",Bearer realm="mesos-agent-executor", error="invalid_token", error_description="Invalid JWT: Expected 3 components in token, got 1"`, bothBodies, ""},
		{"malformed header", "", "Bearer", msg("e1"), 401,
			`Basic realm="mesos-agent-executor",Bearer realm="mesos-agent-executor", error="invalid_token", error_description="Malformed 'Authorization' header"`, bothBodies, ""},
		{"another executor's token", "", "Bearer " + tok2, msg("e1"), 403, "",
			`Authenticated principal '{"claims":{"cid":"` + cid2 + `","eid":"e2","fid":"fw-1"}}' does not contain an 'eid' claim with the executor ID e1, which is set in the call`, ""},
		{"the token of a container no longer the executor's", "", "Bearer " + staleCID, msg("e1"), 403, "",
			`Authenticated principal '{"claims":{"cid":"old-container","eid":"e1","fid":"fw-1"}}' does not contain a 'cid' claim with the correct active ContainerID`, ""},
		{"an operator's basic credentials", "", basic, msg("e1"), 403, "",
			"Authenticated principal 'ops' does not contain an 'fid' claim with the framework ID fw-1, which is set in the call", ""},
		{"unknown executor: its 400 before the claims", "", "Bearer " + tok2, msg("nope"), 400, "", "Executor cannot be found", ""},
		{"heartbeat: not checked against claims", "", "Bearer " + tok2,
			`{"type":"HEARTBEAT","framework_id":{"value":"fw-1"},"executor_id":{"value":"e1"}}`, 202, "", "", ""},
		{"its own token", "", "Bearer " + tok1, msg("e1"), 202, "", "", ""},
		{"SUBSCRIBE with another executor's token", "", "Bearer " + tok2, subscribe, 403, "",
			`Authenticated principal '{"claims":{"cid":"` + cid2 + `","eid":"e2","fid":"fw-1"}}' does not contain an 'eid' claim with the executor ID e1, which is set in the call`, ""},
		{"SUBSCRIBE accepting neither media type: its 406 before the claims", "", "Bearer " + tok2, subscribe, 406, "",
			"Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'", "text/plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			if tc.accept != "" {
				h["Accept"] = tc.accept
			}
			resp, body := doRaw(t, base, rawRequest{path: "/api/v1/executor", method: tc.method, headers: h, body: tc.body})
			if resp.StatusCode != tc.code || body != tc.wantBody {
				t.Errorf("= %d %q, want %d %q", resp.StatusCode, body, tc.code, tc.wantBody)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
		})
	}
	waitFor(t, "e1's message forwarded", func() bool { return len(m.all("message")) == 1 })

	// /api/v1 is in the readwrite realm, open without --authenticate_http_readwrite.
	if code, body := postCall(t, a, &agentapi.Call{Type: agentapi.Call_GET_FLAGS}); code != http.StatusOK {
		t.Errorf("GET_FLAGS without credentials = %d %s", code, body)
	}
}

// With --authenticate_http_readwrite the operator API takes the executor's token (basic,jwt), so the
// executor's own LAUNCH_CONTAINER and WAIT_CONTAINER work, and answers 401 without credentials.
// Mesos authorizes only with an authorizer (--acls); the simulator has none, so any authenticated
// principal may call it, as on a Mesos agent without ACLs.
func TestOperatorAPIAuthentication(t *testing.T) {
	a, m, envOf := authAgent(t, true, nil)
	a.Launch(testFramework(false), hookExecutorInfo("e1"), []mesos.TaskInfo{dataTask("t1", "nested:true")}, false)
	waitFor(t, "the nested task finished", func() bool { s := m.states("t1"); return len(s) == 2 })
	if s := m.states("t1"); s[1] != "TASK_FINISHED" {
		t.Fatalf("t1 states %v (%v)", s, m.updates("t1"))
	}
	base := "http://" + a.Endpoint()
	getFlags := `{"type":"GET_FLAGS"}`
	for _, tc := range []struct {
		name, auth string
		code       int
		challenge  string
	}{
		{"no credentials", "", 401, `Basic realm="mesos-agent-readwrite",Bearer realm="mesos-agent-readwrite"`},
		{"the executor's token", "Bearer " + envOf("e1")[ExecutorTokenEnv], 200, ""},
		{"basic", "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:opsecret")), 200, ""},
		{"wrong secret", "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:nope")), 401, `Basic realm="mesos-agent-readwrite",Bearer realm="mesos-agent-readwrite", error="invalid_token", error_description="Scheme 'Basic' unsupported"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			resp, body := doRaw(t, base, rawRequest{path: "/api/v1", headers: h, body: getFlags})
			if resp.StatusCode != tc.code || resp.Header.Get("WWW-Authenticate") != tc.challenge {
				t.Errorf("= %d %q %s, want %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body, tc.code, tc.challenge)
			}
		})
	}
	// /state (readonly realm) stays open.
	if resp, body := doRaw(t, base, rawRequest{path: "/state", method: http.MethodGet}); resp.StatusCode != 200 {
		t.Errorf("/state = %d %s", resp.StatusCode, body)
	}
}

// --http_authenticators=jwt alone: a single authenticator's challenge and libprocess' plain body, and
// no --http_credentials needed.
func TestExecutorAuthenticationJWTOnly(t *testing.T) {
	a, _, _ := authAgent(t, false, func(c *Config) { c.HTTPAuthenticators, c.HTTPCredentials = "jwt", "" })
	resp, body := doRaw(t, "http://"+a.Endpoint(), rawRequest{path: "/api/v1/executor", headers: map[string]string{"Content-Type": "application/json"},
		body: `{"type":"HEARTBEAT","framework_id":{"value":"fw-1"},"executor_id":{"value":"e1"}}`})
	if resp.StatusCode != 401 || body != "401 Unauthorized." || resp.Header.Get("WWW-Authenticate") != `Bearer realm="mesos-agent-executor"` {
		t.Errorf("= %d %q %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
}

// An agent with --jwt_secret_key but without --authenticate_http_executors still gives executors
// tokens (Mesos creates the secret generator from the key alone) and takes calls without them.
func TestExecutorTokenWithoutAuthentication(t *testing.T) {
	key, _ := authFiles(t)
	m := &fakeMaster{autoAck: true}
	var mu sync.Mutex
	var token string
	a := newTestAgent(t, m, func(c *Config) {
		c.JWTSecretKey = key
		c.ExecutorHook = func(ctx context.Context, env map[string]string) error {
			mu.Lock()
			token = env[ExecutorTokenEnv]
			mu.Unlock()
			delete(env, ExecutorTokenEnv)
			return hookExecutor(ctx, env)
		}
	})
	a.Launch(testFramework(false), hookExecutorInfo("e1"), []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	waitFor(t, "the task finished", func() bool { return len(m.states("t1")) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if _, err := parseJWT(token, []byte("s3cr3t-key"), time.Now()); err != nil {
		t.Errorf("token %q: %v", token, err)
	}
	flags := flagMap(a.flags())
	if flags["jwt_secret_key"] != key || flags["authenticate_http_executors"] != "false" || flags["authenticate_http_readwrite"] != "false" {
		t.Errorf("flags %v", flags)
	}
}

// Without --jwt_secret_key executors get no token.
func TestNoExecutorTokenWithoutKey(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.ExecutorHook = hookExecutor })
	a.Launch(testFramework(false), hookExecutorInfo("e1"), []mesos.TaskInfo{dataTask("t1", "env")}, false)
	waitFor(t, "the task finished", func() bool { return len(m.states("t1")) == 2 })
	if data := string(m.updates("t1")[1].Data); strings.Contains(data, ExecutorTokenEnv) || !strings.Contains(data, "MESOS_AGENT_ENDPOINT") {
		t.Errorf("environment %s", data)
	}
}

// The agent refuses to start as mesos-agent exits, with its messages; GET_FLAGS reports the flags.
func TestAuthenticationFlags(t *testing.T) {
	key, creds := authFiles(t)
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no key", func(c *Config) { c.AuthenticateHTTPExecutors, c.HTTPCredentials = true, creds },
			"--jwt_secret_key must be specified when --authenticate_http_executors is set to true"},
		{"unreadable key", func(c *Config) { c.JWTSecretKey = key + ".missing" },
			"Failed to read the file specified by --jwt_secret_key"},
		{"basic without credentials", func(c *Config) { c.AuthenticateHTTPExecutors, c.JWTSecretKey = true, key },
			"Failed to create HTTP authenticator module 'basic': No credentials provided for the default 'basic' HTTP authenticator for realm 'mesos-agent-executor'"},
		{"readwrite without credentials", func(c *Config) { c.AuthenticateHTTPReadwrite = true },
			"Failed to create HTTP authenticator module 'basic': No credentials provided for the default 'basic' HTTP authenticator for realm 'mesos-agent-readwrite'"},
		{"jwt without key", func(c *Config) { c.AuthenticateHTTPReadonly, c.HTTPAuthenticators = true, "jwt" },
			"Failed to create HTTP authenticator module 'jwt': No secret key provided for the default 'jwt' HTTP authenticator for realm 'mesos-agent-readonly'"},
		{"unknown authenticator", func(c *Config) { c.AuthenticateHTTPReadonly, c.HTTPAuthenticators = true, "ldap" },
			"Failed to create HTTP authenticator module 'ldap': HTTP authenticator 'ldap' not found. Check the spelling (compare to 'basic') or verify that the authenticator was loaded successfully (see --modules)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{ID: mustID("S0"), WorkDir: t.TempDir(), Master: &fakeMaster{}, Log: quietLog()}
			tc.mutate(&cfg)
			a, err := New(cfg)
			if err == nil {
				a.Stop()
				t.Fatal("New succeeded")
			}
			if want := "agent S0: " + tc.want; err.Error() != want {
				t.Errorf("error %q\nwant  %q", err, want)
			}
		})
	}

	a := newTestAgent(t, &fakeMaster{}, func(c *Config) {
		c.AuthenticateHTTPExecutors, c.AuthenticateHTTPReadonly, c.JWTSecretKey, c.HTTPCredentials = true, true, key, creds
	})
	flags := flagMap(a.flags())
	for k, v := range map[string]string{"authenticate_http_executors": "true", "authenticate_http_readonly": "true",
		"authenticate_http_readwrite": "false", "jwt_secret_key": key, "http_credentials": creds} {
		if flags[k] != v {
			t.Errorf("flag %s = %q, want %q", k, flags[k], v)
		}
	}
	if _, ok := flags["http_authenticators"]; ok {
		t.Errorf("unset http_authenticators reported: %v", flags)
	}
	// /state is in the readonly realm.
	if resp, _ := doRaw(t, "http://"+a.Endpoint(), rawRequest{path: "/state", method: http.MethodGet}); resp.StatusCode != 401 ||
		resp.Header.Get("WWW-Authenticate") != `Basic realm="mesos-agent-readonly",Bearer realm="mesos-agent-readonly"` {
		t.Errorf("/state = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// libprocess' JWT parsing: the checks before the signature, and an expired token.
func TestParseJWT(t *testing.T) {
	key := []byte("k")
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	good := createJWT(map[string]string{"fid": "f"}, key)
	parts := strings.Split(good, ".")
	sign := func(h, p string) string {
		return enc(h) + "." + enc(p) + "." + base64.RawURLEncoding.EncodeToString(hmacSHA256(enc(h)+"."+enc(p), key))
	}
	now := time.Unix(1000, 0)
	for _, tc := range []struct{ token, want string }{
		{good, ""},
		{parts[0] + "." + parts[1], "Expected 3 components in token, got 2"},
		{enc(`{"alg":"none"}`) + "." + parts[1] + ".", `Token 'alg' value "none" does not match, expected "HS256"`},
		{enc(`{"typ":"JWT"}`) + "." + parts[1] + "." + parts[2], "Failed to locate 'alg' in token JSON header"},
		{enc(`{"alg":"ES256"}`) + "." + parts[1] + "." + parts[2], "Unsupported token algorithm: ES256"},
		{enc(`{"alg":"HS256","crit":["x"]}`) + "." + parts[1] + "." + parts[2], "Token 'crit' field is unsupported"},
		{sign(`{"alg":"HS256"}`, `{"exp":999}`), "Token has expired: exp(999) < now(1000)"},
		{sign(`{"alg":"HS256"}`, `{"exp":1000,"n":1}`), ""},
		{parts[0] + "." + parts[1] + ".a*b", "Failed to base64url-decode token signature: Invalid character '*'"},
	} {
		_, err := parseJWT(tc.token, key, now)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("parseJWT(%q) = %q, want %q", tc.token, got, tc.want)
		}
	}
	// Claims that are not strings keep their JSON text.
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+sign(`{"alg":"HS256"}`, `{"n":1,"s":"x<&"}`))
	p, challenge := jwtAuthenticator{realm: "r", secret: key, now: func() time.Time { return now }}.authenticate(r)
	if p == nil || p.claims["n"] != "1" || p.claims["s"] != "x<&" || p.String() != `{"claims":{"n":"1","s":"x<&"}}` {
		t.Errorf("principal %v (%s)", p, challenge)
	}
}

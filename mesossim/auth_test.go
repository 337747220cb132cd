package mesossim

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func basic(principal, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(principal+":"+secret))
}

// With --authenticate_http_frameworks (basic), /api/v1/scheduler answers libprocess' 401 with the
// realm's challenge to a request without valid credentials, before looking at the request (a GET gets
// 401, not 405); an authenticated SUBSCRIBE naming another principal, or a call from a principal that
// is not the framework's, is Mesos' 400.
func TestSchedulerAPIRequiresAuthentication(t *testing.T) {
	h := newHarness(t, Config{AuthenticateHTTPFrameworks: true, Credentials: map[string]string{"kubemesos": "s3cret", "other": "x"}}, 1, agentRes)
	post := func(method, auth, body string, headers map[string]string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, h.url+"/api/v1/scheduler", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", mediaJSON)
		req.Header.Set("Accept", mediaJSON)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return 200, "", resp.Header // a subscription: its body does not end
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	subscribe := func(principal string) string {
		p := ""
		if principal != "" {
			p = `,"principal":"` + principal + `"`
		}
		return `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"fw"` + p + `}}}`
	}
	const challenge = `Basic realm="mesos-master-scheduler"`
	for _, tc := range []struct {
		name, method, auth string
	}{
		{"no credentials", http.MethodPost, ""},
		{"wrong secret", http.MethodPost, basic("kubemesos", "guess")},
		{"unknown principal", http.MethodPost, basic("nobody", "s3cret")},
		{"another scheme", http.MethodPost, "Bearer abc"},
		{"not base64", http.MethodPost, "Basic ***"},
		{"a colon in the secret", http.MethodPost, basic("kubemesos", "s3:cret")},
		{"GET without credentials", http.MethodGet, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, hdr := post(tc.method, tc.auth, subscribe("kubemesos"), nil)
			if code != 401 || body != "401 Unauthorized." || hdr.Get("WWW-Authenticate") != challenge {
				t.Errorf("%d %q WWW-Authenticate %q, want 401 %q %q", code, body, hdr.Get("WWW-Authenticate"), "401 Unauthorized.", challenge)
			}
		})
	}
	if code, body, _ := post(http.MethodPost, basic("other", "x"), subscribe("kubemesos"), nil); code != 400 ||
		body != "Failed to validate scheduler::Call: Authenticated principal 'other' does not match principal 'kubemesos' set in `FrameworkInfo`" {
		t.Errorf("SUBSCRIBE as another principal: %d %q", code, body)
	}

	// The right credentials subscribe, through mesos-go's client as the framework uses it.
	caller := httpsched.NewCaller(httpcli.New(httpcli.Endpoint(h.url+"/api/v1/scheduler"),
		httpcli.Do(httpcli.With(httpcli.BasicAuth("kubemesos", "s3cret")))))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	principal := "kubemesos"
	resp, err := caller.Call(ctx, calls.Subscribe(&mesos.FrameworkInfo{User: "root", Name: "fw", Principal: &principal}))
	if err != nil {
		t.Fatalf("SUBSCRIBE with the right credentials: %v", err)
	}
	defer resp.Close()
	var ev scheduler.Event
	if err := resp.Decode(&ev); err != nil || ev.GetType() != scheduler.Event_SUBSCRIBED {
		t.Fatalf("first event %v %v, want SUBSCRIBED", ev.GetType(), err)
	}
	fid := ev.GetSubscribed().FrameworkID.Value
	if r, err := caller.Call(ctx, calls.Revive().With(calls.Framework(fid))); err != nil {
		t.Errorf("REVIVE as the framework's principal: %v", err)
	} else if r != nil {
		r.Close()
	}
	// Another principal's call for this framework: Mesos' implicit scheduler authorization.
	code, body, _ := post(http.MethodPost, basic("other", "x"), `{"type":"REVIVE","framework_id":{"value":"`+fid+`"}}`, nil)
	if code != 400 || body != "Authenticated principal 'other' does not match principal 'kubemesos' set in `FrameworkInfo`" {
		t.Errorf("REVIVE as another principal: %d %q", code, body)
	}
}

func TestReadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	js := write("c.json", `{"credentials":[{"principal":"a","secret":"1"},{"principal":"b","secret":"2"}]}`)
	txt := write("c.txt", "a 1\n\nb 2\n")
	for _, p := range []string{js, "file://" + js, txt} {
		got, err := ReadCredentials(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if diff := cmp.Diff(map[string]string{"a": "1", "b": "2"}, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p, diff)
		}
	}
	if _, err := ReadCredentials(write("bad", "a b c\n")); err == nil {
		t.Error("a line of three fields was accepted")
	}
}

package diffcheck

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testOptions keep a run short against a simulator allocating every 200ms.
var testOptions = Options{Timeout: 2 * time.Minute, Wait: 20 * time.Second, FilterWindow: time.Second}

func startSim(t *testing.T) *Simulator {
	t.Helper()
	sim, err := StartSimulator(200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func runAgainst(t *testing.T, url string) []Observation {
	t.Helper()
	obs, err := Run(context.Background(), url, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

var (
	baselineOnce sync.Once
	baseline     []Observation
)

// baselineRun is one run against a fresh simulator, shared by the tests that compare with it.
func baselineRun(t *testing.T) []Observation {
	baselineOnce.Do(func() { baseline = runAgainst(t, startSim(t).URL) })
	if baseline == nil {
		t.Fatal("baseline run failed")
	}
	return baseline
}

func TestSimulatorAgreesWithItself(t *testing.T) {
	a := baselineRun(t)
	b := runAgainst(t, startSim(t).URL)
	for _, o := range append(a, b...) {
		if o.Key == "error" || o.Key == "skipped" {
			t.Errorf("step %s: %s %s", o.Step, o.Key, o.Value)
		}
	}
	// The scenario got through every part: these steps only exist when it did.
	steps := map[string]bool{}
	for _, o := range a {
		steps[o.Step] = true
	}
	for _, s := range []string{"01-http-version", "21-multi-role-offers", "25-multi-role-revive", "26-multi-role-launch-echo",
		"32-multi-role-kill", "34-multi-role-chunking", "43-single-role-chunking", "57-executor-unknown-framework"} {
		if !steps[s] {
			t.Errorf("no observation of step %s", s)
		}
	}
	if diffs := Compare(a, b); len(diffs) > 0 {
		var buf bytes.Buffer
		_ = WriteDiff(&buf, "first", "second", diffs)
		t.Errorf("two simulators differ:\n%s", buf.String())
	}
	// Nothing run-specific survives normalization.
	for _, o := range a {
		for _, leak := range []string{"127.0.0.1", "mesos-agent-"} {
			if strings.Contains(o.Value, leak) || strings.Contains(o.Key, leak) {
				t.Errorf("%s %s = %q contains %q", o.Step, o.Key, o.Value, leak)
			}
		}
	}
	// And a report survives the file round trip.
	path := filepath.Join(t.TempDir(), "obs.json")
	if err := WriteReport(path, Report{Target: "simulator", Observations: a}); err != nil {
		t.Fatal(err)
	}
	r, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, r.Observations); diff != "" {
		t.Errorf("report round trip (-want +got):\n%s", diff)
	}
}

// distortingProxy forwards to target but answers the scheduler API's missing-Content-Type error
// with 415 instead of its status, and re-chunks every response body into pieces of at most 64
// bytes, so that a RecordIO record spans several HTTP chunks.
func distortingProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.FlushInterval = -1
	p.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		if req.URL.Path == "/api/v1/scheduler" && req.Header.Get("Content-Type") == "" && resp.StatusCode == http.StatusBadRequest {
			resp.StatusCode = http.StatusUnsupportedMediaType
		}
		resp.Body = &smallReads{rc: resp.Body, n: 64}
		return nil
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// smallReads returns at most n bytes per Read; with FlushInterval -1 each becomes one chunk.
type smallReads struct {
	rc io.ReadCloser
	n  int
}

func (s *smallReads) Read(p []byte) (int, error) { return s.rc.Read(p[:min(len(p), s.n)]) }
func (s *smallReads) Close() error               { return s.rc.Close() }

func TestDistortionsAreReportedByStep(t *testing.T) {
	a := baselineRun(t)
	b := runAgainst(t, distortingProxy(t, startSim(t).URL))
	diffs := Compare(a, b)
	want := []string{"10-scheduler-no-content-type", "34-multi-role-chunking", "43-single-role-chunking"}
	if diff := cmp.Diff(want, Steps(diffs)); diff != "" {
		var buf bytes.Buffer
		_ = WriteDiff(&buf, "simulator", "proxy", diffs)
		t.Errorf("steps that differ (-want +got):\n%s\n%s", diff, buf.String())
	}
	for _, d := range diffs {
		switch {
		case d.Step == "10-scheduler-no-content-type" && (d.Key != "status" || d.B != "415"):
			t.Errorf("status difference %+v, want status 415", d)
		case strings.HasSuffix(d.Step, "-chunking") && !strings.Contains(d.B, "records split across chunks"):
			t.Errorf("chunking difference %+v, want records split", d)
		}
	}
}

// With a principal, every request the scenario sends to the master carries its credentials.
func TestPrincipalAuthenticatesEveryRequest(t *testing.T) {
	u, err := url.Parse(startSim(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var total, unauthenticated int
	p := httputil.NewSingleHostReverseProxy(u)
	p.FlushInterval = -1
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		mu.Lock()
		total++
		if !ok || user != "diffcheck" || pass != "s3cret" {
			unauthenticated++
		}
		mu.Unlock()
		p.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	opts := testOptions
	opts.Principal, opts.Secret = "diffcheck", "s3cret"
	obs, err := Run(context.Background(), "http://"+ln.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		if o.Key == "error" {
			t.Errorf("step %s: %s", o.Step, o.Value)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if total < 20 || unauthenticated != 0 {
		t.Errorf("%d requests, %d without the credentials", total, unauthenticated)
	}
}

// Given a master that is not the leader, the scenario runs against the leader it redirects to.
func TestFollowsTheLeader(t *testing.T) {
	a := baselineRun(t)
	leaderURL, err := url.Parse(startSim(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	requests := 0
	standby := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		// What a master that is not elected answers: Master::Http::redirect.
		w.Header().Set("Location", "//"+leaderURL.Host+r.URL.Path)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go standby.Serve(ln)
	defer standby.Close()
	b := runAgainst(t, "http://"+ln.Addr().String())
	if diffs := Compare(a, b); len(diffs) > 0 {
		var buf bytes.Buffer
		_ = WriteDiff(&buf, "leader", "via standby", diffs)
		t.Errorf("differences:\n%s", buf.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 1 {
		t.Errorf("the standby got %d requests, want 1 (the leader lookup)", requests)
	}
}

package diffcheck

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// FrameworkName is the name both of the scenario's frameworks register with.
const FrameworkName = "kubemesos-diffcheck"

// Options bound a run. Zero values take the defaults below.
type Options struct {
	// User is FrameworkInfo.user, the user tasks run as on agents (default "nobody").
	User string
	// Principal and Secret, when set, authenticate every request (HTTP basic, as Mesos'
	// --authenticate_frameworks and --authenticate_http_* expect) and set FrameworkInfo.principal.
	Principal, Secret string
	// Timeout bounds the whole scenario (default 3m).
	Timeout time.Duration
	// Wait bounds each wait for an event: an offer, a task's next update (default 30s).
	Wait time.Duration
	// FilterWindow is how long the scenario watches for an offer that a DECLINE filter should hold
	// back (default 3s: three of Mesos' default 1s allocation intervals).
	FilterWindow time.Duration
}

func (o *Options) defaults() {
	if o.User == "" {
		o.User = "nobody"
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.FilterWindow <= 0 {
		o.FilterWindow = 3 * time.Second
	}
}

// Run plays the scenario (see the package documentation) against the master at masterURL and
// returns its normalized observations. A step that fails is recorded as an "error" observation
// and the steps that need it are skipped; only an unusable URL is an error.
func Run(ctx context.Context, masterURL string, opts Options) ([]Observation, error) {
	opts.defaults()
	u, err := url.Parse(masterURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("master URL %q: want http(s)://host:port", masterURL)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	s := &scenario{opts: opts, rec: newRecorder()}
	first := newClient(u, opts.Principal, opts.Secret, opts.Wait)
	s.c = newClient(leader(ctx, first), opts.Principal, opts.Secret, opts.Wait)
	s.rec.red.learn(u.Host, "<master>")
	s.rec.red.learn(s.c.base.Host, "<master>")
	s.run(ctx)
	return s.rec.Observations(), nil
}

// leader follows a non-leading master's redirect: Mesos answers the scheduler API of a master that
// is not elected with 307 and Location: //leader:port/api/v1/scheduler (before looking at the
// request), and the leader itself with 400 to this empty request.
func leader(ctx context.Context, c *client) *url.URL {
	a, err := c.do(ctx, http.MethodPost, c.url("/api/v1/scheduler"), nil, nil)
	if err != nil || a.Status != http.StatusTemporaryRedirect {
		return c.base
	}
	loc, err := c.base.Parse(a.Header.Get("Location"))
	if err != nil || loc.Host == "" {
		return c.base
	}
	return &url.URL{Scheme: c.base.Scheme, Host: loc.Host, Path: c.base.Path}
}

type scenario struct {
	opts     Options
	c        *client
	rec      *recorder
	agentURL *url.URL // an agent's HTTP endpoint, from GET_AGENTS

	echoAgent, sleepAgent *mesos.AgentID // where the scenario's tasks were launched
}

func (s *scenario) step(name string) { s.rec.step = name }

// fail records a step's error (normalized like every other text).
func (s *scenario) fail(err error) { s.rec.set("error", err.Error()) }

func (s *scenario) run(ctx context.Context) {
	s.endpoints(ctx)
	s.schedulerErrors(ctx)
	s.multiRole(ctx)
	s.singleRole(ctx)
	s.executorErrors(ctx)
}

// recordAnswer records the status, Content-Type and body of a plain answer.
func (s *scenario) recordAnswer(a answer) {
	s.rec.set("status", strconv.Itoa(a.Status))
	s.rec.set("content-type", a.ContentType)
	s.rec.set("body", string(a.Body))
}

func (s *scenario) endpoints(ctx context.Context) {
	s.step("01-http-version")
	if a, err := s.c.do(ctx, http.MethodGet, s.c.url("/version"), nil, nil); err != nil {
		s.fail(err)
	} else {
		s.rec.set("status", strconv.Itoa(a.Status))
		s.rec.set("content-type", a.ContentType)
		if doc, err := a.doc(); err != nil {
			s.rec.set("body", "not a JSON object")
		} else {
			s.rec.shape("", doc)
			s.rec.set("version", fmt.Sprint(doc["version"]))
		}
	}

	s.step("02-http-health")
	if a, err := s.c.do(ctx, http.MethodGet, s.c.url("/health"), nil, nil); err != nil {
		s.fail(err)
	} else {
		s.recordAnswer(a)
	}

	for _, call := range []struct{ step, typ string }{
		{"03-operator-get-version", "GET_VERSION"},
		{"04-operator-get-flags", "GET_FLAGS"},
		{"05-operator-get-agents", "GET_AGENTS"},
	} {
		s.step(call.step)
		a, err := s.c.do(ctx, http.MethodPost, s.c.url("/api/v1"),
			map[string]string{"Content-Type": mediaJSON, "Accept": mediaJSON}, []byte(`{"type":"`+call.typ+`"}`))
		if err != nil {
			s.fail(err)
			continue
		}
		s.rec.set("status", strconv.Itoa(a.Status))
		s.rec.set("content-type", a.ContentType)
		doc, err := a.doc()
		if err != nil {
			s.rec.set("body", string(a.Body))
			continue
		}
		s.rec.set("type", fmt.Sprint(doc["type"]))
		switch call.typ {
		case "GET_FLAGS":
			// Presence only: flag names and values are the cluster's own.
			flags, _ := dig(doc, "get_flags", "flags").([]any)
			s.rec.set("flags present", strconv.FormatBool(len(flags) > 0))
			for _, f := range flags {
				if m, ok := f.(map[string]any); ok {
					s.rec.shape("get_flags.flags[]", stripValues(m))
					break
				}
			}
		case "GET_AGENTS":
			agents, _ := dig(doc, "get_agents", "agents").([]any)
			s.rec.set("agents present", strconv.FormatBool(len(agents) > 0))
			s.rec.shape("", doc)
			s.learnAgents(agents)
		default:
			s.rec.shape("", doc)
		}
	}
}

// stripValues keeps only an object's keys, for shapes where even types are the cluster's own.
func stripValues(m map[string]any) map[string]any {
	out := map[string]any{}
	for k := range m {
		out[k] = true
	}
	return out
}

// learnAgents remembers the agents' IDs, hostnames and addresses for redaction, and the first
// agent's HTTP endpoint from its pid ("slave(1)@10.0.0.5:5051").
func (s *scenario) learnAgents(agents []any) {
	for i, a := range agents {
		m, _ := a.(map[string]any)
		id, _ := dig(m, "agent_info", "id", "value").(string)
		host, _ := dig(m, "agent_info", "hostname").(string)
		pid, _ := m["pid"].(string)
		s.rec.red.learn(id, "<agent_id>")
		s.rec.red.learn(host, "<agent_host>")
		if _, addr, ok := strings.Cut(pid, "@"); ok {
			s.rec.red.learn(pid, "<agent_pid>")
			if i == 0 {
				s.agentURL = &url.URL{Scheme: s.c.base.Scheme, Host: addr}
			}
		}
	}
}

// dig walks nested objects.
func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// subscribeBody is a valid SUBSCRIBE for the scenario's framework.
func (s *scenario) subscribeBody(multiRole bool) []byte {
	fi := &mesos.FrameworkInfo{User: s.opts.User, Name: FrameworkName}
	if s.opts.Principal != "" {
		fi.Principal = &s.opts.Principal
	}
	if multiRole {
		fi.Roles = []string{"*"}
		for _, c := range []mesos.FrameworkInfo_Capability_Type{
			mesos.FrameworkInfo_Capability_MULTI_ROLE, mesos.FrameworkInfo_Capability_PARTITION_AWARE,
			mesos.FrameworkInfo_Capability_TASK_KILLING_STATE, mesos.FrameworkInfo_Capability_GPU_RESOURCES,
		} {
			fi.Capabilities = append(fi.Capabilities, mesos.FrameworkInfo_Capability{Type: c})
		}
	} else {
		role := "*"
		fi.Role = &role
	}
	return marshal(&scheduler.Call{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: fi}})
}

func (s *scenario) schedulerErrors(ctx context.Context) {
	sub := s.subscribeBody(true)
	cases := []struct {
		step, method string
		header       map[string]string
		body         []byte
	}{
		{"10-scheduler-no-content-type", http.MethodPost, map[string]string{"Accept": mediaJSON}, sub},
		{"11-scheduler-wrong-accept", http.MethodPost, map[string]string{"Content-Type": mediaJSON, "Accept": "text/html"}, sub},
		{"12-scheduler-subscribe-with-stream-id", http.MethodPost, map[string]string{"Content-Type": mediaJSON, "Accept": mediaJSON, "Mesos-Stream-Id": "0b2a6f52-3bd8-4d0e-9d35-6a1c1d5b7e10"}, sub},
		{"13-scheduler-no-framework-id", http.MethodPost, map[string]string{"Content-Type": mediaJSON}, []byte(`{"type":"REVIVE"}`)},
		{"14-scheduler-unknown-call-type", http.MethodPost, map[string]string{"Content-Type": mediaJSON}, []byte(`{"type":"NO_SUCH_CALL","framework_id":{"value":"kubemesos-diffcheck-none"}}`)},
		{"15-scheduler-malformed-json", http.MethodPost, map[string]string{"Content-Type": mediaJSON}, []byte(`{"type":`)},
		{"16-scheduler-malformed-protobuf", http.MethodPost, map[string]string{"Content-Type": mediaProtobuf}, []byte{0xff, 0xff, 0xff, 0xff}},
		{"17-scheduler-unknown-framework", http.MethodPost, map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": "0b2a6f52-3bd8-4d0e-9d35-6a1c1d5b7e10"}, []byte(`{"type":"REVIVE","framework_id":{"value":"kubemesos-diffcheck-none"}}`)},
		{"18-scheduler-get", http.MethodGet, nil, nil},
		// Mesos compares Content-Type as a whole string: parameters make it unsupported.
		{"19-scheduler-content-type-with-charset", http.MethodPost, map[string]string{"Content-Type": mediaJSON + "; charset=utf-8"}, []byte(`{"type":"REVIVE"}`)},
	}
	for _, tc := range cases {
		s.step(tc.step)
		a, err := s.c.do(ctx, tc.method, s.c.url("/api/v1/scheduler"), tc.header, tc.body)
		if err != nil {
			s.fail(err)
			continue
		}
		if a.Status == http.StatusOK {
			// A subscription this step did not mean to open: record its first event and end it.
			s.rec.set("status", strconv.Itoa(a.Status))
			s.rec.set("content-type", a.ContentType)
			doc, err := firstRecord(a.Body)
			s.rec.set("first event", str(dig(doc, "type")))
			if id, ok := dig(doc, "subscribed", "framework_id", "value").(string); ok && err == nil {
				s.teardown(ctx, id, a.Header.Get("Mesos-Stream-Id"))
			}
			continue
		}
		s.recordAnswer(a)
	}
}

// firstRecord decodes the first RecordIO record of a body.
func firstRecord(b []byte) (map[string]any, error) {
	n, rest, ok := strings.Cut(string(b), "\n")
	size, err := strconv.Atoi(n)
	if !ok || err != nil || size > len(rest) {
		return nil, errors.New("no record")
	}
	var m map[string]any
	return m, json.Unmarshal([]byte(rest[:size]), &m)
}

func (s *scenario) teardown(ctx context.Context, frameworkID, streamID string) {
	body := marshal(&scheduler.Call{Type: scheduler.Call_TEARDOWN, FrameworkID: &mesos.FrameworkID{Value: frameworkID}})
	_, _ = s.c.do(ctx, http.MethodPost, s.c.url("/api/v1/scheduler"), map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": streamID}, body)
}

// uuidLen describes a base64 "uuid" field by its decoded length.
func uuidLen(v any) string {
	str, ok := v.(string)
	if !ok {
		return Absent
	}
	b, err := base64.StdEncoding.DecodeString(str)
	if err != nil {
		return "not base64"
	}
	return fmt.Sprintf("%d bytes", len(b))
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package mesossim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	testclock "k8s.io/utils/clock/testing"
)

// waitTimeout bounds every wait for an asynchronous event in these tests (a deadline, not a timing assertion).
const waitTimeout = 20 * time.Second

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeAgent models an agent's status update manager: per task a queue of updates, only the head is
// outstanding, the next is sent when the head is acknowledged. It records what the master asked of it.
type fakeAgent struct {
	id     string
	m      *Master
	script func(t mesos.TaskInfo) []mesos.TaskState

	mu          sync.Mutex
	log         []string
	queues      map[string][]mesos.TaskStatus
	fwOf        map[string]string
	partitioned bool
	// hold, when set, keeps Launch from taking its tasks until it is closed (a busy agent).
	hold chan struct{}
}

func newFakeAgent(id string, m *Master) *fakeAgent {
	return &fakeAgent{id: id, m: m, queues: map[string][]mesos.TaskStatus{}, fwOf: map[string]string{},
		script: func(mesos.TaskInfo) []mesos.TaskState {
			return []mesos.TaskState{mesos.TASK_RUNNING, mesos.TASK_FINISHED}
		}}
}

func (a *fakeAgent) record(format string, args ...any) {
	a.log = append(a.log, fmt.Sprintf(format, args...))
}

func (a *fakeAgent) calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.log...)
}

func (a *fakeAgent) status(taskID string, s mesos.TaskState) mesos.TaskStatus {
	src := mesos.SOURCE_EXECUTOR
	aid := mesos.AgentID{Value: a.id}
	return mesos.TaskStatus{TaskID: mesos.TaskID{Value: taskID}, State: &s, Source: &src, UUID: newUUIDBytes(), AgentID: &aid}
}

// sendHead delivers the head of a task's queue (outside a.mu).
func (a *fakeAgent) sendHead(taskID string) {
	a.mu.Lock()
	q := a.queues[taskID]
	fw := a.fwOf[taskID]
	part := a.partitioned
	a.mu.Unlock()
	if len(q) == 0 || part {
		return
	}
	a.m.StatusUpdate(mesos.AgentID{Value: a.id}, mesos.FrameworkID{Value: fw}, q[0])
}

func (a *fakeAgent) Launch(fw mesos.FrameworkInfo, e *mesos.ExecutorInfo, tasks []mesos.TaskInfo, group bool) {
	if a.hold != nil {
		<-a.hold
	}
	a.mu.Lock()
	var ids []string
	for _, t := range tasks {
		a.record("launch %s group=%v executor=%v", t.TaskID.Value, group, e != nil)
		a.fwOf[t.TaskID.Value] = fw.ID.Value
		for _, s := range a.script(t) {
			a.queues[t.TaskID.Value] = append(a.queues[t.TaskID.Value], a.status(t.TaskID.Value, s))
		}
		ids = append(ids, t.TaskID.Value)
	}
	a.mu.Unlock()
	for _, id := range ids {
		a.sendHead(id)
	}
}

func (a *fakeAgent) Kill(fw mesos.FrameworkID, t mesos.TaskID, p *mesos.KillPolicy) {
	a.mu.Lock()
	grace := "none"
	if p != nil && p.GracePeriod != nil {
		grace = strconv.FormatInt(p.GracePeriod.Nanoseconds, 10)
	}
	a.record("kill %s grace=%s", t.Value, grace)
	q := a.queues[t.Value]
	if len(q) > 0 {
		q = q[:1]
	}
	a.queues[t.Value] = append(q, a.status(t.Value, mesos.TASK_KILLED))
	send := len(q) == 0
	a.mu.Unlock()
	if send {
		a.sendHead(t.Value)
	}
}

func (a *fakeAgent) Acknowledge(fw mesos.FrameworkID, t mesos.TaskID, uuid []byte) {
	a.mu.Lock()
	q := a.queues[t.Value]
	ok := len(q) > 0 && bytes.Equal(q[0].UUID, uuid)
	if ok {
		a.record("ack %s %s", t.Value, q[0].GetState())
		a.queues[t.Value] = q[1:]
	}
	a.mu.Unlock()
	if ok {
		a.sendHead(t.Value)
	}
}

func (a *fakeAgent) ShutdownExecutor(fw mesos.FrameworkID, e mesos.ExecutorID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.record("shutdown-executor %s", e.Value)
}

func (a *fakeAgent) ShutdownFramework(fw mesos.FrameworkID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.record("shutdown-framework")
}

func (a *fakeAgent) FrameworkMessage(fw mesos.FrameworkID, e mesos.ExecutorID, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.record("message %s %s", e.Value, data)
}

func (a *fakeAgent) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.record("stop")
}

func (a *fakeAgent) Partition(p bool) {
	a.mu.Lock()
	a.partitioned = p
	a.record("partition %v", p)
	var heads []string
	if !p {
		for id, q := range a.queues {
			if len(q) > 0 {
				heads = append(heads, id)
			}
		}
	}
	a.mu.Unlock()
	for _, id := range heads {
		a.sendHead(id)
	}
}

func (a *fakeAgent) KillExecutor(fw mesos.FrameworkID, e mesos.ExecutorID) error {
	a.mu.Lock()
	a.record("kill-executor %s", e.Value)
	a.mu.Unlock()
	a.m.ExecutorTerminated(mesos.AgentID{Value: a.id}, fw, e, 9)
	return nil
}

// harness: a master in manual allocation mode on a fake clock, served over HTTP, with fake agents.
type harness struct {
	t      *testing.T
	clock  *testclock.FakeClock
	m      *Master
	srv    *httptest.Server
	url    string
	agents []*fakeAgent
}

func newHarness(t *testing.T, cfg Config, agents int, res string) *harness {
	t.Helper()
	clk := testclock.NewFakeClock(t0)
	cfg.Clock = clk
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = l
	}
	m := NewMaster(cfg)
	h := &harness{t: t, clock: clk, m: m}
	h.srv = httptest.NewServer(m.Handler())
	h.url = h.srv.URL
	t.Cleanup(func() {
		m.Close()
		h.srv.CloseClientConnections()
		h.srv.Close()
	})
	rs, err := ParseResources(res)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < agents; i++ {
		id := fmt.Sprintf("agent-%d", i)
		a := newFakeAgent(id, m)
		info := mesos.AgentInfo{ID: &mesos.AgentID{Value: id}, Hostname: fmt.Sprintf("host-%d", i), Resources: rs}
		if err := m.AddAgent(info, a); err != nil {
			t.Fatal(err)
		}
		h.agents = append(h.agents, a)
	}
	return h
}

// ----- a plain JSON scheduler client written from the Mesos scheduler HTTP API docs -----

type jsonClient struct {
	t        *testing.T
	url      string
	streamID string
	fwID     string
	events   chan map[string]any
	cancel   context.CancelFunc
	done     chan struct{}
}

func (h *harness) jsonSubscribe(frameworkInfo map[string]any) *jsonClient {
	h.t.Helper()
	c := &jsonClient{t: h.t, url: h.url + "/api/v1/scheduler", events: make(chan map[string]any, 1000), done: make(chan struct{})}
	c.subscribe(frameworkInfo)
	return c
}

func (c *jsonClient) subscribe(frameworkInfo map[string]any) {
	c.t.Helper()
	body := map[string]any{"type": "SUBSCRIBE", "subscribe": map[string]any{"framework_info": frameworkInfo}}
	if id, ok := frameworkInfo["id"].(map[string]any); ok {
		body["framework_id"] = id
	}
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", c.url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		c.t.Fatalf("subscribe: %v", err)
	}
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		cancel()
		c.t.Fatalf("subscribe: %d %s", resp.StatusCode, msg)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		c.t.Errorf("subscribe Content-Type = %q, want application/json", ct)
	}
	c.streamID = resp.Header.Get("Mesos-Stream-Id")
	c.cancel = cancel
	c.done = make(chan struct{})
	events := c.events
	done := c.done
	go func() {
		defer close(done)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			n, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil || n <= 0 {
				return
			}
			rec := make([]byte, n)
			if _, err := io.ReadFull(r, rec); err != nil {
				return
			}
			var ev map[string]any
			if err := json.Unmarshal(rec, &ev); err != nil {
				return
			}
			if hasNull(ev) {
				c.t.Errorf("event carries null members (Mesos omits unset fields): %s", rec)
			}
			events <- ev
		}
	}()
	ev := c.next("SUBSCRIBED")
	c.fwID = str(ev, "subscribed", "framework_id", "value")
	c.t.Cleanup(c.close)
}

func (c *jsonClient) close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
}

// disconnect drops the subscription connection (the scheduler process "dies").
func (c *jsonClient) disconnect() { c.close() }

// call posts a call and returns the HTTP status and body.
func (c *jsonClient) call(typ string, payload map[string]any) (int, string) {
	c.t.Helper()
	body := map[string]any{"type": typ, "framework_id": map[string]any{"value": c.fwID}}
	for k, v := range payload {
		body[k] = v
	}
	b, _ := json.Marshal(body)
	return c.raw(b, map[string]string{"Content-Type": "application/json", "Mesos-Stream-Id": c.streamID})
}

func (c *jsonClient) raw(body []byte, headers map[string]string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.url, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("call: %v", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

func (c *jsonClient) mustCall(typ string, payload map[string]any) {
	c.t.Helper()
	if code, msg := c.call(typ, payload); code != http.StatusAccepted {
		c.t.Fatalf("%s: HTTP %d %s", typ, code, msg)
	}
}

// next returns the next event of type typ, skipping others (HEARTBEATs, unrelated events).
func (c *jsonClient) next(typ string) map[string]any {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev := <-c.events:
			if ev["type"] == typ {
				return ev
			}
		case <-deadline:
			c.t.Fatalf("framework %s: no %s event within %v", c.fwID, typ, waitTimeout)
			return nil
		}
	}
}

// nextUpdate returns the next UPDATE for taskID.
func (c *jsonClient) nextUpdate(taskID string) map[string]any {
	c.t.Helper()
	for {
		ev := c.next("UPDATE")
		if str(ev, "update", "status", "task_id", "value") == taskID {
			return ev
		}
	}
}

// str digs a string out of nested JSON objects.
func str(v any, path ...string) string {
	for _, p := range path {
		mp, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mp[p]
	}
	s, _ := v.(string)
	return s
}

func offersOf(ev map[string]any) []map[string]any {
	var out []map[string]any
	offers, _ := ev["offers"].(map[string]any)["offers"].([]any)
	for _, o := range offers {
		out = append(out, o.(map[string]any))
	}
	return out
}

// ----- mesos-go's own scheduler client -----

type goClient struct {
	t      *testing.T
	caller calls.Caller
	fwID   string
	events chan *scheduler.Event
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *harness) goSubscribe(info *mesos.FrameworkInfo) *goClient {
	h.t.Helper()
	caller := httpsched.NewCaller(httpcli.New(httpcli.Endpoint(h.url + "/api/v1/scheduler")))
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := caller.Call(ctx, calls.Subscribe(info))
	if err != nil {
		cancel()
		h.t.Fatalf("mesos-go subscribe: %v", err)
	}
	c := &goClient{t: h.t, caller: caller, events: make(chan *scheduler.Event, 1000), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer resp.Close()
		for {
			var e scheduler.Event
			if err := resp.Decode(&e); err != nil {
				return
			}
			c.events <- &e
		}
	}()
	h.t.Cleanup(func() { cancel(); <-c.done })
	ev := c.next(scheduler.Event_SUBSCRIBED)
	c.fwID = ev.Subscribed.FrameworkID.Value
	return c
}

func (c *goClient) next(typ scheduler.Event_Type) *scheduler.Event {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case e := <-c.events:
			if e.Type == typ {
				return e
			}
		case <-deadline:
			c.t.Fatalf("no %s event within %v", typ, waitTimeout)
			return nil
		}
	}
}

func (c *goClient) call(call *scheduler.Call) {
	c.t.Helper()
	call = call.With(calls.Framework(c.fwID))
	resp, err := c.caller.Call(context.Background(), call)
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		c.t.Fatalf("%s: %v", call.Type, err)
	}
}

func hasNull(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range x {
			if hasNull(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasNull(e) {
				return true
			}
		}
	}
	return false
}

func newUUIDBytes() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}

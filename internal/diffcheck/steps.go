package diffcheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Task IDs the scenario uses (fixed, so that a real cluster's operator can find them).
const (
	taskEcho    = FrameworkName + "-echo"
	taskTooBig  = FrameworkName + "-too-big"
	taskSleep   = FrameworkName + "-sleep"
	taskUnknown = FrameworkName + "-never-launched"
	taskFence   = FrameworkName + "-fence"
)

func (s *scenario) multiRole(ctx context.Context) {
	s.step("20-multi-role-subscribe")
	f, err := s.subscribe(ctx, true)
	if err != nil {
		s.fail(err)
		return
	}
	defer f.sub.Close()
	s.step("21-multi-role-offers")
	s.recordOffers(f.offers, f.first)

	s.step("22-multi-role-no-stream-id")
	s.badCall(ctx, f, "")
	s.step("23-multi-role-wrong-stream-id")
	s.badCall(ctx, f, "0b2a6f52-3bd8-4d0e-9d35-6a1c1d5b7e10")

	ok := true
	for _, st := range []struct {
		name string
		run  func(context.Context, *framework) error
	}{
		{"24-multi-role-decline-filter", s.declineFilter},
		{"25-multi-role-revive", s.revive},
		{"26-multi-role-launch-echo", s.launchEcho},
		{"27-multi-role-launch-too-big", s.launchTooBig},
		{"28-multi-role-launch-sleep", s.launchSleep},
		{"29-multi-role-reconcile-implicit", s.reconcileImplicit},
		{"30-multi-role-reconcile-finished", s.reconcileFinished},
		{"31-multi-role-reconcile-unknown", s.reconcileUnknown},
		{"32-multi-role-kill", s.kill},
	} {
		s.step(st.name)
		if !ok {
			s.rec.set("skipped", "an earlier step failed")
			continue
		}
		if err := st.run(ctx, f); err != nil {
			s.fail(err)
			ok = false
		}
	}
	s.step("33-multi-role-teardown")
	s.recordTeardown(ctx, f)
	s.step("34-multi-role-chunking")
	s.rec.set("chunking", f.sub.Chunking())
}

// badCall sends a REVIVE with the given stream ID (none: "").
func (s *scenario) badCall(ctx context.Context, f *framework, streamID string) {
	a, err := f.callRaw(ctx, marshal(&scheduler.Call{Type: scheduler.Call_REVIVE, FrameworkID: &mesos.FrameworkID{Value: f.id}}), streamID)
	if err != nil {
		s.fail(err)
		return
	}
	s.recordAnswer(a)
}

// scalar copies the offer's first resource called name with amount set to v (keeping its role,
// reservations and allocation_info, which a MULTI_ROLE framework must echo).
func scalar(o mesos.Offer, name string, v float64) (mesos.Resource, bool) {
	for _, r := range o.Resources {
		if r.Name == name && r.GetType() == mesos.SCALAR && r.Scalar != nil && len(r.Reservations) == 0 && r.Reservation == nil && r.Disk == nil {
			c := r
			c.Scalar = &mesos.Value_Scalar{Value: v}
			return c, true
		}
	}
	return mesos.Resource{}, false
}

// launch accepts o with one command task; leftover resources are offered again at once.
func (f *framework) launch(ctx context.Context, o mesos.Offer, id, command string, cpus, mem float64) (answer, error) {
	c, ok1 := scalar(o, "cpus", cpus)
	m, ok2 := scalar(o, "mem", mem)
	if !ok1 || !ok2 {
		return answer{}, errors.New("offer without unreserved cpus and mem")
	}
	shell := true
	refuse := 0.0
	task := mesos.TaskInfo{
		Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID,
		Resources: []mesos.Resource{c, m},
		Command:   &mesos.CommandInfo{Shell: &shell, Value: &command},
	}
	return f.call(ctx, &scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{o.ID},
		Operations: []mesos.Offer_Operation{{Type: mesos.Offer_Operation_LAUNCH,
			Launch: &mesos.Offer_Operation_Launch{TaskInfos: []mesos.TaskInfo{task}}}},
		Filters: &mesos.Filters{RefuseSeconds: &refuse},
	}})
}

// follow records the updates of task id until one satisfies stop: the list of states, and per
// state its source, reason, message, uuid and fields.
func (s *scenario) follow(ctx context.Context, f *framework, id string, stop func(state string) bool) error {
	var states []string
	err := f.until(ctx, s.opts.Wait, func(ev event) bool {
		if ev.Type != "UPDATE" {
			return false
		}
		st, _ := dig(ev.Doc, "update", "status").(map[string]any)
		if dig(st, "task_id", "value") != id {
			return false
		}
		state, _ := st["state"].(string)
		states = append(states, state)
		s.recordStatus(state, st)
		return stop(state)
	})
	s.rec.set("states", states)
	return err
}

func (s *scenario) recordStatus(prefix string, st map[string]any) {
	s.rec.set(prefix+".source", str(st["source"]))
	s.rec.set(prefix+".reason", str(st["reason"]))
	if state, _ := st["state"].(string); state == "TASK_ERROR" || state == "TASK_DROPPED" {
		// Such messages list the offer's resources, whose amounts are the cluster's own.
		s.rec.setMasked(prefix+".message", str(st["message"]))
	} else {
		s.rec.set(prefix+".message", str(st["message"]))
	}
	s.rec.set(prefix+".uuid", uuidLen(st["uuid"]))
	s.rec.set(prefix+".fields", sortedKeys(st))
	if cs, ok := st["container_status"].(map[string]any); ok {
		s.rec.set(prefix+".container_status.fields", sortedKeys(cs))
	}
}

func str(v any) string {
	if v == nil {
		return Absent
	}
	return fmt.Sprint(v)
}

func terminal(state string) bool {
	switch state {
	case "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
		"TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNREACHABLE", "TASK_UNKNOWN":
		return true
	}
	return false
}

func (s *scenario) launchEcho(ctx context.Context, f *framework) error {
	o, err := f.offer(ctx)
	if err != nil {
		return err
	}
	// The other offers go back with the default filter (5s): this step needs one.
	if _, err := f.declineHeld(ctx, 5); err != nil {
		return err
	}
	s.echoAgent = &o.AgentID
	a, err := f.launch(ctx, o, taskEcho, "echo hi", 0.1, 32)
	if err != nil {
		return err
	}
	s.rec.set("accept status", strconv.Itoa(a.Status))
	return s.follow(ctx, f, taskEcho, terminal)
}

func (s *scenario) launchTooBig(ctx context.Context, f *framework) error {
	o, err := f.offer(ctx)
	if err != nil {
		return err
	}
	cpus := 0.0
	for _, r := range o.Resources {
		if r.Name == "cpus" && r.Scalar != nil {
			cpus += r.Scalar.Value
		}
	}
	a, err := f.launch(ctx, o, taskTooBig, "echo never", cpus+1, 32)
	if err != nil {
		return err
	}
	s.rec.set("accept status", strconv.Itoa(a.Status))
	return s.follow(ctx, f, taskTooBig, terminal)
}

func (s *scenario) launchSleep(ctx context.Context, f *framework) error {
	o, err := f.offer(ctx)
	if err != nil {
		return err
	}
	s.sleepAgent = &o.AgentID
	a, err := f.launch(ctx, o, taskSleep, "sleep 300", 0.1, 32)
	if err != nil {
		return err
	}
	s.rec.set("accept status", strconv.Itoa(a.Status))
	return s.follow(ctx, f, taskSleep, func(state string) bool { return state == "TASK_RUNNING" || terminal(state) })
}

// reconcile sends a RECONCILE and then, as a fence, an explicit one for a task that never existed:
// the master answers calls in order, so the answers before the fence's are the first call's.
func (s *scenario) reconcile(ctx context.Context, f *framework, tasks []scheduler.Call_Reconcile_Task) error {
	a, err := f.call(ctx, &scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{Tasks: tasks}})
	if err != nil {
		return err
	}
	s.rec.set("status", strconv.Itoa(a.Status))
	if _, err := f.call(ctx, &scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{
		Tasks: []scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: taskFence}}}}}); err != nil {
		return err
	}
	var answers []string
	err = f.until(ctx, s.opts.Wait, func(ev event) bool {
		if ev.Type != "UPDATE" {
			return false
		}
		st, _ := dig(ev.Doc, "update", "status").(map[string]any)
		id, _ := dig(st, "task_id", "value").(string)
		if id == taskFence {
			return true
		}
		state, _ := st["state"].(string)
		answers = append(answers, strings.TrimPrefix(id, FrameworkName+"-")+"="+state)
		s.recordStatus(strings.TrimPrefix(id, FrameworkName+"-"), st)
		return false
	})
	s.rec.set("answers", answers)
	return err
}

func (s *scenario) reconcileImplicit(ctx context.Context, f *framework) error {
	return s.reconcile(ctx, f, nil)
}

func (s *scenario) reconcileFinished(ctx context.Context, f *framework) error {
	return s.reconcile(ctx, f, []scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: taskEcho}, AgentID: s.echoAgent}})
}

func (s *scenario) reconcileUnknown(ctx context.Context, f *framework) error {
	return s.reconcile(ctx, f, []scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: taskUnknown}}})
}

func (s *scenario) kill(ctx context.Context, f *framework) error {
	a, err := f.call(ctx, &scheduler.Call{Type: scheduler.Call_KILL, Kill: &scheduler.Call_Kill{TaskID: mesos.TaskID{Value: taskSleep}, AgentID: s.sleepAgent}})
	if err != nil {
		return err
	}
	s.rec.set("kill status", strconv.Itoa(a.Status))
	return s.follow(ctx, f, taskSleep, terminal)
}

// recordTeardown tears the framework down and records whether the master ends its stream.
func (s *scenario) recordTeardown(ctx context.Context, f *framework) {
	// The kill's freed resources are offered one allocation later (or not, if TEARDOWN comes first):
	// take them before, so that only what the master does after TEARDOWN is recorded.
	if err := f.quiet(ctx, s.opts.FilterWindow); err != nil {
		s.fail(err)
		return
	}
	a, err := f.call(ctx, &scheduler.Call{Type: scheduler.Call_TEARDOWN})
	if err != nil {
		s.fail(err)
		return
	}
	s.rec.set("status", strconv.Itoa(a.Status))
	var after []string
	err = f.until(ctx, s.opts.Wait, func(ev event) bool {
		if len(after) == 0 || after[len(after)-1] != ev.Type {
			after = append(after, ev.Type)
		}
		return false
	})
	s.rec.set("events after TEARDOWN", after)
	switch {
	case errors.Is(err, errStreamEnded):
		s.rec.set("stream", "ended")
	case err != nil:
		s.rec.set("stream", err.Error())
	}
}

func (s *scenario) singleRole(ctx context.Context) {
	s.step("40-single-role-subscribe")
	f, err := s.subscribe(ctx, false)
	if err != nil {
		s.fail(err)
		return
	}
	defer f.sub.Close()
	s.step("41-single-role-offers")
	s.recordOffers(f.offers, f.first)

	s.step("42-single-role-teardown")
	s.recordTeardown(ctx, f)
	s.step("43-single-role-chunking")
	s.rec.set("chunking", f.sub.Chunking())
}

// declineFilter declines every offer of the first OFFERS for an hour and watches whether any
// comes back within the filter window (it is the only framework of the scenario then, so nothing
// else frees resources meanwhile).
func (s *scenario) declineFilter(ctx context.Context, f *framework) error {
	a, err := f.declineHeld(ctx, 3600)
	if err != nil {
		return err
	}
	s.rec.set("status", strconv.Itoa(a.Status))
	err = f.until(ctx, s.opts.FilterWindow, func(ev event) bool { return false })
	if errors.Is(err, errStreamEnded) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	s.rec.set("offered within the filter window", strconv.FormatBool(len(f.offers) > 0))
	return nil
}

// revive clears the filters: the declined resources are offered again (and kept for the launches).
func (s *scenario) revive(ctx context.Context, f *framework) error {
	a, err := f.call(ctx, &scheduler.Call{Type: scheduler.Call_REVIVE})
	if err != nil {
		return err
	}
	s.rec.set("status", strconv.Itoa(a.Status))
	if len(f.offers) == 0 {
		err = f.until(ctx, s.opts.Wait, func(event) bool { return len(f.offers) > 0 })
	}
	s.rec.set("offered again", strconv.FormatBool(err == nil))
	return err
}

func (s *scenario) executorErrors(ctx context.Context) {
	const (
		fw   = `"framework_id":{"value":"kubemesos-diffcheck-none"}`
		exec = `"executor_id":{"value":"kubemesos-diffcheck"}`
	)
	status := func(uuid string) string {
		return `"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"` + uuid + `"}}`
	}
	cases := []struct {
		step, contentType, body string
	}{
		{"50-executor-no-content-type", "", `{"type":"HEARTBEAT",` + fw + `,` + exec + `}`},
		{"51-executor-malformed-json", mediaJSON, `{"type":`},
		{"52-executor-malformed-protobuf", mediaProtobuf, "\xff\xff\xff\xff"},
		{"53-executor-no-framework-id", mediaJSON, `{"type":"HEARTBEAT",` + exec + `}`},
		{"54-executor-unknown-call-type", mediaJSON, `{"type":"NO_SUCH_CALL",` + fw + `,` + exec + `}`},
		{"55-executor-uuid-not-16-bytes", mediaJSON, `{"type":"UPDATE",` + fw + `,` + exec + `,` + status("YWJj") + `}`},
		{"56-executor-no-uuid", mediaJSON, `{"type":"UPDATE",` + fw + `,` + exec + `,"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR"}}}`},
		// A version 4 UUID: sixteen zero bytes (version 0) would be refused as "Not a valid UUID" first.
		{"57-executor-unknown-framework", mediaJSON, `{"type":"UPDATE",` + fw + `,` + exec + `,` + status("AAAAAAAAQAAAAAAAAAAAAA==") + `}`},
	}
	var unreachable error
	for _, tc := range cases {
		s.step(tc.step)
		if s.agentURL == nil {
			s.rec.set("error", "no agent endpoint from GET_AGENTS")
			continue
		}
		if unreachable != nil {
			// One unreachable agent (from where the check runs) need not cost every step a timeout.
			s.fail(unreachable)
			continue
		}
		u := *s.agentURL
		u.Path = "/api/v1/executor"
		a, err := s.c.do(ctx, http.MethodPost, u.String(), map[string]string{"Content-Type": tc.contentType, "Accept": mediaJSON}, []byte(tc.body))
		if err != nil {
			unreachable = err
			s.fail(err)
			continue
		}
		s.recordAnswer(a)
	}
}

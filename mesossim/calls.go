package mesossim

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/internal/mesosrole"
)

// defaultRefuse is Filters.refuse_seconds' default.
const defaultRefuse = 5 * time.Second

func refuseOf(f *mesos.Filters) time.Duration {
	if f == nil || f.RefuseSeconds == nil {
		return defaultRefuse
	}
	s := *f.RefuseSeconds
	if s < 0 {
		return 0
	}
	if s > 365*24*3600 {
		s = 365 * 24 * 3600
	}
	return time.Duration(s * float64(time.Second))
}

// validateCall is Mesos' validation::scheduler::call::validate: problems answer 400. principal is the
// request's authenticated principal, "" when the master does not authenticate frameworks.
func validateCall(c *scheduler.Call, principal string) error {
	if c.Type == scheduler.Call_SUBSCRIBE {
		if c.Subscribe == nil {
			return fmt.Errorf("Expecting 'subscribe' to be present")
		}
		fi := c.Subscribe.FrameworkInfo
		if fi == nil {
			return fmt.Errorf("Expecting 'framework_info' to be present")
		}
		// FrameworkIDs compare by value, an unset one as "" (so either side alone set differs).
		if c.GetFrameworkID().GetValue() != fi.GetID().GetValue() {
			return fmt.Errorf("'framework_id' differs from 'subscribe.framework_info.id'")
		}
		if principal != "" && fi.Principal != nil && principal != fi.GetPrincipal() {
			return fmt.Errorf("Authenticated principal '%s' does not match principal '%s' set in `FrameworkInfo`", principal, fi.GetPrincipal())
		}
		// The FrameworkInfo itself is validated by the master's subscribe (validateFramework), which
		// answers a bad one with an ERROR event on the stream, not with 400.
		return nil
	}
	if c.FrameworkID == nil || c.FrameworkID.Value == "" {
		return fmt.Errorf("Expecting 'framework_id' to be present")
	}
	missing := func(name string) error { return fmt.Errorf("Expecting '%s' to be present", name) }
	switch c.Type {
	case scheduler.Call_ACCEPT:
		if c.Accept == nil {
			return missing("accept")
		}
	case scheduler.Call_DECLINE:
		if c.Decline == nil {
			return missing("decline")
		}
	case scheduler.Call_KILL:
		if c.Kill == nil {
			return missing("kill")
		}
	case scheduler.Call_SHUTDOWN:
		if c.Shutdown == nil {
			return missing("shutdown")
		}
	case scheduler.Call_ACKNOWLEDGE:
		if c.Acknowledge == nil {
			return missing("acknowledge")
		}
		if len(c.Acknowledge.UUID) != 16 {
			return fmt.Errorf("Invalid UUID in 'acknowledge.uuid'")
		}
	case scheduler.Call_RECONCILE:
		if c.Reconcile == nil {
			return missing("reconcile")
		}
	case scheduler.Call_MESSAGE:
		if c.Message == nil {
			return missing("message")
		}
	case scheduler.Call_REQUEST:
		if c.Request == nil {
			return missing("request")
		}
	case scheduler.Call_ACCEPT_INVERSE_OFFERS:
		if c.AcceptInverseOffers == nil {
			return missing("accept_inverse_offers")
		}
	case scheduler.Call_DECLINE_INVERSE_OFFERS:
		if c.DeclineInverseOffers == nil {
			return missing("decline_inverse_offers")
		}
	case scheduler.Call_UPDATE_FRAMEWORK:
		if c.UpdateFramework == nil {
			return missing("update_framework")
		}
		if c.GetFrameworkID().GetValue() != c.UpdateFramework.FrameworkInfo.GetID().GetValue() {
			return fmt.Errorf("'framework_id' differs from 'update_framework.framework_info.id'")
		}
	}
	return nil
}

// validateFrameworkRoles is validation::framework::internal::validateRoles, with Mesos' texts.
func validateFrameworkRoles(fi *mesos.FrameworkInfo) error {
	multi := hasCap(fi, mesos.FrameworkInfo_Capability_MULTI_ROLE)
	if multi && fi.Role != nil {
		return fmt.Errorf("'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable")
	}
	if !multi && len(fi.Roles) > 0 {
		return fmt.Errorf("'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable")
	}
	if multi {
		seen, dup := map[string]bool{}, map[string]bool{}
		for _, r := range fi.Roles {
			if seen[r] {
				dup[r] = true
			}
			seen[r] = true
		}
		if len(dup) > 0 {
			return fmt.Errorf("'FrameworkInfo.roles' contains duplicate items: %s", stringifySet(dup))
		}
		for _, r := range fi.Roles {
			if err := mesosrole.Validate(r); err != nil {
				return fmt.Errorf("'FrameworkInfo.roles' contains invalid role: %v", err)
			}
		}
		return nil
	}
	if err := mesosrole.Validate(fi.GetRole()); err != nil {
		return fmt.Errorf("'FrameworkInfo.role' is not a valid role: %v", err)
	}
	return nil
}

// validateFrameworkUpdate is validation::framework::validateUpdate.
func validateFrameworkUpdate(old, updated *mesos.FrameworkInfo) error {
	if (old.Principal == nil) != (updated.Principal == nil) || old.GetPrincipal() != updated.GetPrincipal() {
		return fmt.Errorf("Changing framework's principal is not allowed.")
	}
	if updated.User != old.User {
		return fmt.Errorf("Updating 'FrameworkInfo.user' is unsupported; attempted to update from '%s' to '%s'", old.User, updated.User)
	}
	if updated.GetCheckpoint() != old.GetCheckpoint() {
		return fmt.Errorf("Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update from '%t' to '%t'", old.GetCheckpoint(), updated.GetCheckpoint())
	}
	return nil
}

// validateSuppressedRoles is validation::framework::validateSuppressedRoles.
func validateSuppressedRoles(roles, suppressed []string) error {
	bad := map[string]bool{}
	for _, r := range suppressed {
		if !slices.Contains(roles, r) {
			bad[r] = true
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("Suppressed roles %s are not contained in the set of roles", stringifySet(bad))
	}
	return nil
}

// stringifySet is stout's stringify of a std::set<string>: "{ a, b }".
func stringifySet(set map[string]bool) string {
	items := make([]string, 0, len(set))
	for k := range set {
		items = append(items, k)
	}
	slices.Sort(items)
	return "{ " + strings.Join(items, ", ") + " }"
}

// callRoles checks the roles of a REVIVE or SUPPRESS as Master::revive and Master::suppress do: one
// invalid role, or one the framework is not subscribed to, drops the whole call (logged, still 202).
func (m *Master) callRoles(f *framework, verb string, roles []string) bool {
	for _, r := range roles {
		msg := ""
		if err := mesosrole.Validate(r); err != nil {
			msg = fmt.Sprintf("%s role '%s' is invalid: %v", verb, r, err)
		} else if !slices.Contains(f.roles, r) {
			msg = fmt.Sprintf("%s role '%s' is not one of the frameworks's subscribed roles", verb, r)
		}
		if msg != "" {
			m.log.WithField("framework", f.id).Warn("dropping call: " + msg)
			return false
		}
	}
	return true
}

// handleCall executes a validated non-SUBSCRIBE call for a subscribed framework. It returns the HTTP
// status and message to answer with (Mesos answers most calls 202 before acting).
func (m *Master) handleCall(streamID, principal string, c *scheduler.Call) (int, string) {
	m.lock()
	defer m.unlock()
	f := m.frameworks[c.FrameworkID.Value]
	if f == nil {
		return 400, "Framework cannot be found"
	}
	// Mesos' implicit scheduler authorization: an authenticated caller must be the framework's
	// principal (one without a principal has "", which no authenticated principal matches).
	if principal != "" && principal != f.info.GetPrincipal() {
		return 400, fmt.Sprintf("Authenticated principal '%s' does not match principal '%s' set in `FrameworkInfo`", principal, f.info.GetPrincipal())
	}
	if f.stream == nil {
		return 403, "Framework is not subscribed"
	}
	if streamID == "" {
		return 400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header"
	}
	if streamID != f.stream.id {
		return 400, fmt.Sprintf("The stream ID '%s' included in this request didn't match the stream ID currently associated with framework ID %s", streamID, f.id)
	}
	log := m.log.WithFields(logrus.Fields{"framework": f.id, "call": c.Type.String()})
	log.Debug("processing call")
	switch c.Type {
	case scheduler.Call_TEARDOWN:
		m.removeFramework(f)
	case scheduler.Call_ACCEPT:
		m.accept(f, c.Accept)
	case scheduler.Call_DECLINE:
		refuse := refuseOf(c.Decline.Filters)
		for _, id := range c.Decline.OfferIDs {
			if o := m.offers[id.Value]; o != nil && o.offer.FrameworkID.Value == f.id {
				m.removeOffer(o, true, refuse)
			}
		}
	case scheduler.Call_REVIVE:
		if m.callRoles(f, "revive", c.Revive.GetRoles()) {
			m.alloc.Revive(f.id, c.Revive.GetRoles())
			m.kick()
		}
	case scheduler.Call_SUPPRESS:
		if m.callRoles(f, "suppression", c.Suppress.GetRoles()) {
			m.alloc.Suppress(f.id, c.Suppress.GetRoles())
		}
	case scheduler.Call_KILL:
		m.kill(f, c.Kill)
	case scheduler.Call_SHUTDOWN:
		if ag := m.agents[c.Shutdown.AgentID.Value]; ag != nil && !ag.unreachable {
			fid, eid := mesos.FrameworkID{Value: f.id}, c.Shutdown.ExecutorID
			m.tell(ag, func(h Agent) { h.ShutdownExecutor(fid, eid) })
		}
	case scheduler.Call_ACKNOWLEDGE:
		m.acknowledge(f, c.Acknowledge)
	case scheduler.Call_RECONCILE:
		m.reconcile(f, c.Reconcile.Tasks)
	case scheduler.Call_MESSAGE:
		if ag := m.agents[c.Message.AgentID.Value]; ag != nil && !ag.unreachable {
			fid, eid, data := mesos.FrameworkID{Value: f.id}, c.Message.ExecutorID, c.Message.Data
			m.tell(ag, func(h Agent) { h.FrameworkMessage(fid, eid, data) })
		} else {
			log.WithField("agent", c.Message.AgentID.Value).Warn("dropping framework message for unknown agent")
		}
	case scheduler.Call_REQUEST:
		// Mesos hands requests to the allocator, whose built-in implementation ignores them.
	case scheduler.Call_UPDATE_FRAMEWORK:
		// Master::updateFramework: validate, update the allocator (roles left keep what they hold),
		// rescind the offers of roles left.
		fi := c.UpdateFramework.FrameworkInfo
		if err := validateFrameworkRoles(&fi); err != nil {
			return 400, "Supplied FrameworkInfo is not valid: " + err.Error()
		}
		if err := validateFrameworkUpdate(&f.info, &fi); err != nil {
			return 400, "FrameworkInfo update is not valid: " + err.Error()
		}
		roles := m.frameworkRoles(&fi)
		if err := validateSuppressedRoles(roles, c.UpdateFramework.SuppressedRoles); err != nil {
			return 400, "'UpdateFramework' call is not valid: " + err.Error()
		}
		f.info = fi
		f.roles = roles
		m.alloc.UpdateFramework(f.id, roles, c.UpdateFramework.SuppressedRoles)
		for id := range f.offers {
			if o := m.offers[id]; o != nil && !slices.Contains(roles, o.role) {
				m.rescind(o, true, 0)
			}
		}
		m.log.WithFields(logrus.Fields{"framework": f.id, "roles": roles, "suppressed": c.UpdateFramework.SuppressedRoles}).Info("framework updated")
		m.kick()
		return 200, ""
	case scheduler.Call_ACCEPT_INVERSE_OFFERS:
		m.answerInverseOffers(f, c.AcceptInverseOffers.InverseOfferIDs, c.AcceptInverseOffers.Filters, true)
	case scheduler.Call_DECLINE_INVERSE_OFFERS:
		m.answerInverseOffers(f, c.DeclineInverseOffers.InverseOfferIDs, c.DeclineInverseOffers.Filters, false)
	default:
		return 501, "501 Not Implemented."
	}
	return 202, ""
}

// kill forwards KILL to the agent; an unknown task is reconciled (TASK_LOST/UNKNOWN/GONE as Mesos does).
func (m *Master) kill(f *framework, k *scheduler.Call_Kill) {
	t := f.tasks[k.TaskID.Value]
	if t == nil {
		m.reconcile(f, []scheduler.Call_Reconcile_Task{{TaskID: k.TaskID, AgentID: k.AgentID}})
		return
	}
	ag := m.agents[t.task.AgentID.Value]
	if ag == nil || ag.unreachable {
		return
	}
	policy := k.KillPolicy
	if policy == nil {
		policy = t.task.KillPolicy
	}
	fid, tid := mesos.FrameworkID{Value: f.id}, k.TaskID
	m.tell(ag, func(h Agent) { h.Kill(fid, tid, policy) })
}

func (m *Master) acknowledge(f *framework, a *scheduler.Call_Acknowledge) {
	ag := m.agents[a.AgentID.Value]
	if ag == nil || ag.unreachable {
		m.log.WithFields(logrus.Fields{"framework": f.id, "agent": a.AgentID.Value}).Warn("acknowledgement for an unknown or unreachable agent dropped")
		return
	}
	if t := f.tasks[a.TaskID.Value]; t != nil && t.terminal && t.terminalUUID != nil && string(t.terminalUUID) == string(a.UUID) {
		delete(f.tasks, a.TaskID.Value)
		f.addCompleted(t, m.cfg.MaxCompletedTasksPerFramework)
	}
	fid, tid, uuid := mesos.FrameworkID{Value: f.id}, a.TaskID, a.UUID
	m.tell(ag, func(h Agent) { h.Acknowledge(fid, tid, uuid) })
}

// reconcile answers RECONCILE: explicit with tasks, implicit (every known task) without. Answers carry
// REASON_RECONCILIATION and no uuid.
func (m *Master) reconcile(f *framework, tasks []scheduler.Call_Reconcile_Task) {
	answer := func(t *task) {
		// Built as Mesos' master builds it: the latest state, with health, labels, container and check
		// status of the latest update, but neither its data nor its uuid.
		state := t.task.GetState()
		a := t.task.AgentID
		src := mesos.SOURCE_MASTER
		reason := mesos.REASON_RECONCILIATION
		msg := "Reconciliation: Latest task state"
		ts := float64(m.clock.Now().UnixNano()) / 1e9
		st := mesos.TaskStatus{TaskID: t.task.TaskID, State: &state, AgentID: &a, Source: &src, Reason: &reason,
			Message: &msg, Timestamp: &ts, ExecutorID: t.task.ExecutorID}
		if n := len(t.task.Statuses); n > 0 {
			last := t.task.Statuses[n-1]
			st.Healthy, st.Labels, st.ContainerStatus, st.CheckStatus = last.Healthy, last.Labels, last.ContainerStatus, last.CheckStatus
		}
		f.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}})
	}
	if len(tasks) == 0 {
		for _, t := range sortedTasks(f.tasks) {
			answer(t)
		}
		for _, t := range sortedTasks(f.unreachable) {
			answer(t)
		}
		return
	}
	for _, rt := range tasks {
		if t := f.tasks[rt.TaskID.Value]; t != nil {
			answer(t)
			continue
		}
		if t := f.unreachable[rt.TaskID.Value]; t != nil {
			answer(t)
			continue
		}
		var state mesos.TaskState
		var msg string
		switch {
		case rt.AgentID == nil || rt.AgentID.Value == "":
			state, msg = mesos.TASK_UNKNOWN, "Reconciliation: Task is unknown"
		case m.agents[rt.AgentID.Value] == nil:
			state, msg = mesos.TASK_UNKNOWN, "Reconciliation: Task is unknown"
		case m.agents[rt.AgentID.Value].unreachable:
			state, msg = mesos.TASK_UNREACHABLE, "Reconciliation: Task is unreachable"
		default:
			state, msg = mesos.TASK_GONE, "Reconciliation: Task is unknown to the agent"
		}
		f.send(m.masterUpdate(rt.TaskID, rt.AgentID, lostState(f, state), mesos.REASON_RECONCILIATION, msg))
	}
}

// accept validates offers and operations the way Mesos' master does and launches valid tasks.
func (m *Master) accept(f *framework, a *scheduler.Call_Accept) {
	now := m.clock.Now()
	var offered mesos.Resources
	var agentID, role string
	offerErr := m.validateOffers(f, a.OfferIDs)
	if len(a.OfferIDs) == 0 {
		offerErr = "No offers specified"
	}
	var valid []*offer
	for _, id := range a.OfferIDs {
		if o := m.offers[id.Value]; o != nil && o.offer.FrameworkID.Value == f.id && !slices.Contains(valid, o) {
			valid = append(valid, o)
		}
	}
	if offerErr != "" {
		for _, o := range valid {
			m.removeOffer(o, true, 0)
		}
		for _, op := range a.Operations {
			for _, t := range opTasks(op) {
				f.send(m.masterUpdate(t.TaskID, &t.AgentID, lostState(f, mesos.TASK_DROPPED), mesos.REASON_INVALID_OFFERS, "Task launched with invalid offers: "+offerErr))
			}
		}
		return
	}
	agentID, role = valid[0].offer.AgentID.Value, valid[0].role
	for _, o := range valid {
		offered = append(offered, o.offer.Resources...)
		m.removeOffer(o, false, 0)
	}
	remaining := mesos.Resources(nil).Plus(offered...)
	ag := m.agents[agentID]
	for _, op := range a.Operations {
		upgradeOperation(&op)
		switch op.Type {
		case mesos.Offer_Operation_LAUNCH:
			if op.Launch == nil {
				continue
			}
			for _, ti := range op.Launch.TaskInfos {
				ti := ti
				if err := m.validateTask(f, &ti, ti.Executor, false, agentID, role, remaining); err != nil {
					f.send(m.masterUpdate(ti.TaskID, &ti.AgentID, mesos.TASK_ERROR, mesos.REASON_TASK_INVALID, err.Error()))
					continue
				}
				remaining = m.consume(f, &ti, ti.Executor, true, agentID, role, remaining)
				m.launch(f, ag, ti.Executor, []mesos.TaskInfo{ti}, false, role)
			}
		case mesos.Offer_Operation_LAUNCH_GROUP:
			if op.LaunchGroup == nil {
				continue
			}
			tasks := op.LaunchGroup.TaskGroup.Tasks
			exec := op.LaunchGroup.Executor
			var err error
			if exec.Type != mesos.ExecutorInfo_DEFAULT && exec.Type != mesos.ExecutorInfo_CUSTOM {
				err = fmt.Errorf("'ExecutorInfo.type' must be 'DEFAULT' or 'CUSTOM'")
			}
			if len(tasks) == 0 && err == nil {
				err = fmt.Errorf("Task group is empty")
			}
			injectAllocation(exec.Resources, role)
			for i := range tasks {
				if err != nil {
					break
				}
				if tasks[i].Executor != nil {
					err = fmt.Errorf("'TaskInfo.executor' must not be set")
					break
				}
				err = m.validateTask(f, &tasks[i], &exec, true, agentID, role, nil)
			}
			if err == nil {
				// The group against what it needs as a whole (validateTaskGroupAndExecutorResources).
				var total mesos.Resources
				for i := range tasks {
					total = total.Plus(tasks[i].Resources...)
				}
				if _, running := f.executors[agentID][exec.ExecutorID.Value]; !running {
					total = total.Plus(exec.Resources...)
				}
				if !rez.ContainsAll(remaining, total) {
					err = fmt.Errorf("Total resources %s required by task group and its executor are more than available %s",
						stringifyResources(total), stringifyResources(remaining))
				}
			}
			if err == nil {
				seen := map[string]bool{}
				for _, t := range tasks {
					if seen[t.TaskID.Value] {
						err = fmt.Errorf("Task group has duplicate task ID %s", t.TaskID.Value)
					}
					seen[t.TaskID.Value] = true
				}
			}
			if err != nil {
				for _, t := range tasks {
					f.send(m.masterUpdate(t.TaskID, &t.AgentID, mesos.TASK_ERROR, mesos.REASON_TASK_GROUP_INVALID, err.Error()))
				}
				continue
			}
			for i := range tasks {
				remaining = m.consume(f, &tasks[i], &exec, i == 0, agentID, role, remaining)
			}
			m.launch(f, ag, &exec, tasks, true, role)
		default:
			m.log.WithFields(logrus.Fields{"framework": f.id, "operation": op.Type.String()}).Warn("offer operation not supported by the simulator, ignored")
		}
	}
	if len(remaining) > 0 {
		m.alloc.Recover(agentID, f.id, role, remaining, refuseOf(a.Filters), now)
	}
}

// validateOffers is validation::offer::validate: its validators in Mesos' order, each over every offer.
func (m *Master) validateOffers(f *framework, ids []mesos.OfferID) string {
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id.Value] {
			return fmt.Sprintf("Duplicate offer %s in offer list", id.Value)
		}
		seen[id.Value] = true
	}
	for _, id := range ids {
		if m.offers[id.Value] == nil {
			return fmt.Sprintf("Offer %s is no longer valid", id.Value)
		}
	}
	for _, id := range ids {
		if o := m.offers[id.Value]; o.offer.FrameworkID.Value != f.id {
			return fmt.Sprintf("Offer %s has invalid framework %s while framework %s is expected", id.Value, o.offer.FrameworkID.Value, f.id)
		}
	}
	role := ""
	for i, id := range ids {
		r := m.offers[id.Value].role
		if i == 0 {
			role = r
		} else if r != role {
			// Mesos' text, its missing quotes included.
			return fmt.Sprintf("Aggregated offers must be allocated to the same role. Offer %s uses role '%s but another is using role '%s", id.Value, r, role)
		}
	}
	agent := ""
	for i, id := range ids {
		a := m.offers[id.Value].offer.AgentID.Value
		if i == 0 {
			agent = a
		} else if a != agent {
			return fmt.Sprintf("Aggregated offers must belong to one single agent. Offer %s uses agent %s and agent %s", id.Value, a, agent)
		}
	}
	return ""
}

// upgradeOperation brings the resources of a LAUNCH or LAUNCH_GROUP into the current format, as
// validateAndUpgradeResources does, so that a framework without RESERVATION_REFINEMENT can hand back
// what it was offered. Invalid resources are left as they are for task validation to refuse.
func upgradeOperation(op *mesos.Offer_Operation) {
	upgrade := func(rs []mesos.Resource) {
		for i := range rs {
			if rs[i].Validate() == nil {
				upgradeResource(&rs[i])
			}
		}
	}
	tasks := opTasks(*op)
	for i := range tasks {
		t := &tasks[i]
		upgrade(t.Resources)
		if t.Executor != nil {
			upgrade(t.Executor.Resources)
		}
	}
	if op.Type == mesos.Offer_Operation_LAUNCH_GROUP && op.LaunchGroup != nil {
		upgrade(op.LaunchGroup.Executor.Resources)
	}
}

func opTasks(op mesos.Offer_Operation) []mesos.TaskInfo {
	switch {
	case op.Type == mesos.Offer_Operation_LAUNCH && op.Launch != nil:
		return op.Launch.TaskInfos
	case op.Type == mesos.Offer_Operation_LAUNCH_GROUP && op.LaunchGroup != nil:
		return op.LaunchGroup.TaskGroup.Tasks
	}
	return nil
}

func injectAllocation(rs mesos.Resources, role string) {
	for i := range rs {
		if rs[i].AllocationInfo == nil {
			r := role
			rs[i].AllocationInfo = &mesos.Resource_AllocationInfo{Role: &r}
		}
	}
}

// allocatedToSingleRole is validation::resource::validateAllocatedToSingleRole (the master has set
// allocation_info where it was missing).
func allocatedToSingleRole(rs mesos.Resources) error {
	role := ""
	for i := range rs {
		if rs[i].AllocationInfo == nil || rs[i].AllocationInfo.Role == nil {
			return fmt.Errorf("The resources are not allocated to a role")
		}
		r := *rs[i].AllocationInfo.Role
		if i == 0 {
			role = r
		} else if r != role {
			return fmt.Errorf("The resources have multiple allocation roles ('%s' and '%s') but only one allocation role is allowed", r, role)
		}
	}
	return nil
}

var idRE = regexp.MustCompile(`^[^/\x00-\x1f\x7f]+$`)

func execIf(cond bool, e *mesos.ExecutorInfo) *mesos.ExecutorInfo {
	if cond {
		return e
	}
	return nil
}

// needed is what launching a task takes from an offer: its resources plus those of executor e when e is
// given and not running yet.
func needed(t *mesos.TaskInfo, e *mesos.ExecutorInfo, f *framework, agentID string) mesos.Resources {
	rs := mesos.Resources(nil).Plus(t.Resources...)
	if e != nil {
		if _, running := f.executors[agentID][e.ExecutorID.Value]; !running {
			rs = rs.Plus(e.Resources...)
		}
	}
	return rs
}

// validateTask is Mesos' task validation: IDs, agent, executor/command, resources within the offer.
// e is the task's executor (TaskInfo.executor, or the group's executor when inGroup).
func (m *Master) validateTask(f *framework, t *mesos.TaskInfo, e *mesos.ExecutorInfo, inGroup bool, agentID, role string, available mesos.Resources) error {
	injectAllocation(t.Resources, role)
	if t.TaskID.Value == "" || !idRE.MatchString(t.TaskID.Value) || t.TaskID.Value == "." || t.TaskID.Value == ".." {
		return fmt.Errorf("'TaskID.value' '%s' is invalid", t.TaskID.Value)
	}
	if t.AgentID.Value != agentID {
		return fmt.Errorf("Task uses invalid agent: %s", t.AgentID.Value)
	}
	if old := f.tasks[t.TaskID.Value]; old != nil {
		return fmt.Errorf("Task has duplicate ID: %s", t.TaskID.Value)
	}
	if !inGroup && (t.Executor == nil) == (t.Command == nil) {
		return fmt.Errorf("Task should have at least one (but not both) of CommandInfo or ExecutorInfo present")
	}
	if len(t.Resources) == 0 {
		return fmt.Errorf("Task uses no resources")
	}
	for i := range t.Resources {
		if err := t.Resources[i].Validate(); err != nil {
			return fmt.Errorf("Task uses invalid resources: %v", err)
		}
	}
	// Resources allocated to another role than the offer's are not in the offer: the containment
	// check below refuses them, as Mesos' does.
	if err := allocatedToSingleRole(t.Resources); err != nil {
		return fmt.Errorf("Invalid task resources: %v", err)
	}
	if e != nil {
		if e.ExecutorID.Value == "" || !idRE.MatchString(e.ExecutorID.Value) {
			return fmt.Errorf("'ExecutorID.value' '%s' is invalid", e.ExecutorID.Value)
		}
		if e.FrameworkID != nil && e.FrameworkID.Value != f.id {
			return fmt.Errorf("ExecutorInfo has an invalid FrameworkID (Actual: %s vs Expected: %s)", e.FrameworkID.Value, f.id)
		}
		if e.FrameworkID == nil {
			e.FrameworkID = &mesos.FrameworkID{Value: f.id}
		}
		if e.Type != mesos.ExecutorInfo_DEFAULT && e.Command == nil {
			return fmt.Errorf("Executor '%s' of framework %s should have 'ExecutorInfo.command' set", e.ExecutorID.Value, f.id)
		}
		injectAllocation(e.Resources, role)
		if err := allocatedToSingleRole(e.Resources); err != nil {
			return fmt.Errorf("Invalid executor resources: %v", err)
		}
		if running, ok := f.executors[agentID][e.ExecutorID.Value]; ok && !sameExecutor(running, *e) {
			return incompatibleExecutorError(&running, e)
		}
	}
	if inGroup {
		return nil // the group's resources are checked as a whole
	}
	if need := needed(t, e, f, agentID); !rez.ContainsAll(available, need) {
		return fmt.Errorf("Total resources %s required by task and its executor is more than available %s",
			stringifyResources(need), stringifyResources(available))
	}
	return nil
}

// consume records a task (and its executor, if new) as launched and takes its resources out of what
// is left of the offer.
func (m *Master) consume(f *framework, t *mesos.TaskInfo, e *mesos.ExecutorInfo, withExec bool, agentID, role string, remaining mesos.Resources) mesos.Resources {
	need := needed(t, execIf(withExec, e), f, agentID)
	var execID *mesos.ExecutorID
	if e != nil {
		id := e.ExecutorID
		execID = &id
		if _, ok := f.executors[agentID][e.ExecutorID.Value]; !ok {
			if f.executors[agentID] == nil {
				f.executors[agentID] = map[string]mesos.ExecutorInfo{}
			}
			f.executors[agentID][e.ExecutorID.Value] = *e
		}
	}
	st := mesos.TASK_STAGING
	f.tasks[t.TaskID.Value] = &task{role: role, task: mesos.Task{
		Name: t.Name, TaskID: t.TaskID, FrameworkID: mesos.FrameworkID{Value: f.id}, ExecutorID: execID,
		AgentID: t.AgentID, State: &st, Resources: t.Resources, Labels: t.Labels, Discovery: t.Discovery,
		Container: t.Container, HealthCheck: t.HealthCheck, KillPolicy: t.KillPolicy,
	}}
	if f.info.User != "" {
		u := f.info.User
		f.tasks[t.TaskID.Value].task.User = &u
	}
	return remaining.Minus(need...)
}

func (m *Master) launch(f *framework, ag *agentEntry, e *mesos.ExecutorInfo, tasks []mesos.TaskInfo, group bool, role string) {
	if ag == nil {
		return
	}
	info := f.info
	var exec *mesos.ExecutorInfo
	if e != nil {
		c := *e
		exec = &c
	}
	ts := append([]mesos.TaskInfo(nil), tasks...)
	m.log.WithFields(logrus.Fields{"framework": f.id, "agent": ag.info.ID.Value, "tasks": len(ts), "group": group}).Info("launching tasks")
	m.tell(ag, func(h Agent) { h.Launch(info, exec, ts, group) })
}

func sortedTasks(ts map[string]*task) []*task {
	out := make([]*task, 0, len(ts))
	for _, t := range ts {
		out = append(out, t)
	}
	sortTasks(out)
	return out
}

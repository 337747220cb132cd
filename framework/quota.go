package framework

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/master/calls"
	"github.com/mesos/mesos-go/api/v1/lib/quota"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/internal/mesosdecode"
	"github.com/kubemesos/kubemesos/offerbridge"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// Quota annotations on a namespace: the Mesos quota of its role (RoleAnnotation), as comma-separated
// name=value scalars ("cpus=4,mem=4096"; mem and disk in MB, as Mesos counts them). The guarantee is
// what Mesos keeps headroom for, the limit what the role is never offered beyond (its Mesos tasks and
// offers together). Either may be left out. The framework sets them with the operator API's
// UPDATE_QUOTA and puts the role back to the default quota when no namespace of it asks any more.
const (
	QuotaGuaranteeAnnotation = "kubemesos.io/mesos-quota-guarantee"
	QuotaLimitAnnotation     = "kubemesos.io/mesos-quota-limit"
)

// Events about quota, on the namespace.
const (
	// EventInvalidMesosQuota: an annotation does not parse; nothing is applied for the role.
	EventInvalidMesosQuota = "InvalidMesosQuota"
	// EventMesosQuotaConflict: namespaces of one role ask for different quotas; nothing is applied.
	EventMesosQuotaConflict = "MesosQuotaConflict"
	// EventMesosQuotaRefused: the master refused UPDATE_QUOTA; the event carries its text.
	EventMesosQuotaRefused = "MesosQuotaRefused"
	// EventMesosQuotaSet (Normal): the role's quota is now the namespace's.
	EventMesosQuotaSet = "MesosQuotaSet"
)

// quotaRetry is how long a refused UPDATE_QUOTA waits before it is sent again unchanged (a quota over
// the cluster's capacity may fit once agents join).
const quotaRetry = 30 * time.Second

// quantities are Mesos scalar quantities by name.
type quantities map[string]float64

// String is Mesos' ResourceQuantities text: "cpus:4; mem:4096", "{}" when empty.
func (q quantities) String() string {
	if len(q) == 0 {
		return "{}"
	}
	names := make([]string, 0, len(q))
	for n := range q {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ":" + strconv.FormatFloat(q[n], 'g', -1, 64)
	}
	return strings.Join(parts, "; ")
}

// mesosQuota is a role's quota as the namespaces ask for it.
type mesosQuota struct{ guarantees, limits quantities }

func (q mesosQuota) key() string { return q.guarantees.String() + "|" + q.limits.String() }

func (q mesosQuota) isDefault() bool { return len(q.guarantees) == 0 && len(q.limits) == 0 }

func (q mesosQuota) String() string {
	return "guarantee " + q.guarantees.String() + ", limit " + q.limits.String()
}

// parseQuantities parses "cpus=4,mem=4096": Mesos scalar names with finite non-negative values, each
// name once.
func parseQuantities(s string) (quantities, error) {
	out := quantities{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not name=value", item)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s is given twice", name)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || v < 0 {
			return nil, fmt.Errorf("%s=%s is not a finite non-negative number", name, value)
		}
		out[name] = v
	}
	return out, nil
}

// namespaceQuota is the quota a namespace asks for its role; asked is false without quota annotations.
func namespaceQuota(ns *corev1.Namespace) (q mesosQuota, asked bool, err error) {
	g, hasG := ns.Annotations[QuotaGuaranteeAnnotation]
	l, hasL := ns.Annotations[QuotaLimitAnnotation]
	if !hasG && !hasL {
		return mesosQuota{}, false, nil
	}
	if q.guarantees, err = parseQuantities(g); err != nil {
		return q, true, fmt.Errorf("annotation %s=%q of namespace %s: %v", QuotaGuaranteeAnnotation, g, ns.Name, err)
	}
	if q.limits, err = parseQuantities(l); err != nil {
		return q, true, fmt.Errorf("annotation %s=%q of namespace %s: %v", QuotaLimitAnnotation, l, ns.Name, err)
	}
	return q, true, nil
}

// quotaWant is what the namespaces ask of one role.
type quotaWant struct {
	quota      mesosQuota
	namespaces []*corev1.Namespace // those asking (all of them when problem is set)
	problem    string              // event reason when nothing may be applied
	message    string
}

// desiredQuotas groups the namespaces' quota annotations by role. A role whose namespaces disagree, or
// one of whose annotations is invalid, gets a problem and keeps whatever quota it has.
func desiredQuotas(nss []*corev1.Namespace, def string) map[string]*quotaWant {
	out := map[string]*quotaWant{}
	for _, ns := range nss {
		role, err := namespaceRole(ns, def)
		if err != nil {
			continue // its role is invalid: InvalidMesosRole says so
		}
		q, asked, err := namespaceQuota(ns)
		if !asked {
			continue
		}
		w := out[role]
		if w == nil {
			w = &quotaWant{quota: q}
			out[role] = w
		}
		w.namespaces = append(w.namespaces, ns)
		switch {
		case w.problem == EventInvalidMesosQuota:
		case err != nil:
			w.problem, w.message = EventInvalidMesosQuota, err.Error()+": the quota of Mesos role "+strconv.Quote(role)+" is left as it is"
		case w.problem == "" && q.key() != w.quota.key():
			w.problem = EventMesosQuotaConflict
		}
	}
	for role, w := range out {
		if w.problem == EventMesosQuotaConflict {
			var parts []string
			for _, ns := range w.namespaces {
				q, _, _ := namespaceQuota(ns)
				parts = append(parts, ns.Name+" asks "+q.String())
			}
			sort.Strings(parts)
			w.message = "namespaces of Mesos role " + strconv.Quote(role) + " ask for different quotas (" + strings.Join(parts, "; ") + "): the role's quota is left as it is"
		}
	}
	return out
}

// quotaOperator is the master's operator API for quota.
type quotaOperator interface {
	// UpdateQuota sends UPDATE_QUOTA; a refusal is a *quotaRefusal.
	UpdateQuota(ctx context.Context, role string, q mesosQuota) error
	// RoleUsage is GET_ROLES: what each role is allocated and offered, by resource name.
	RoleUsage(ctx context.Context) (map[string]quantities, error)
}

// quotaRefusal is the master's answer to a refused UPDATE_QUOTA.
type quotaRefusal struct {
	code int
	text string
}

func (r *quotaRefusal) Error() string {
	return fmt.Sprintf("the Mesos master refused UPDATE_QUOTA (HTTP %d): %s", r.code, r.text)
}

var _ quotaOperator = operatorAgents{}

func (o operatorAgents) UpdateQuota(ctx context.Context, role string, q mesosQuota) error {
	cfg := quota.QuotaConfig{Role: role}
	for n, v := range q.guarantees {
		if cfg.Guarantees == nil {
			cfg.Guarantees = map[string]mesos.Value_Scalar{}
		}
		cfg.Guarantees[n] = mesos.Value_Scalar{Value: v}
	}
	for n, v := range q.limits {
		if cfg.Limits == nil {
			cfg.Limits = map[string]mesos.Value_Scalar{}
		}
		cfg.Limits[n] = mesos.Value_Scalar{Value: v}
	}
	// mesos-go v0.0.11 has the message but no constructor for UPDATE_QUOTA.
	call := &master.Call{Type: master.Call_UPDATE_QUOTA, UpdateQuota: &master.Call_UpdateQuota{QuotaConfigs: []quota.QuotaConfig{cfg}}}
	resp, err := o.sender.Send(ctx, calls.NonStreaming(call))
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		var apiErr *apierrors.Error
		if errors.As(err, &apiErr) {
			for _, code := range []apierrors.Code{400, 401, 403, 404, 409, 500, 501, 503} {
				if code.Matches(err) {
					text := strings.TrimPrefix(strings.TrimPrefix(err.Error(), apierrors.ErrorTable[code]), ": ")
					return &quotaRefusal{code: int(code), text: text}
				}
			}
		}
		return fmt.Errorf("UPDATE_QUOTA: %w", err)
	}
	return nil
}

func (o operatorAgents) RoleUsage(ctx context.Context) (map[string]quantities, error) {
	resp, err := o.sender.Send(ctx, calls.NonStreaming(calls.GetRoles()))
	if err != nil {
		return nil, fmt.Errorf("GET_ROLES: %w", err)
	}
	defer resp.Close()
	var r master.Response
	if err := mesosdecode.Decode(resp, &r); err != nil {
		return nil, fmt.Errorf("decoding GET_ROLES response: %w", err)
	}
	out := map[string]quantities{}
	for _, role := range r.GetGetRoles().GetRoles() {
		q := quantities{}
		for _, res := range role.Resources {
			q[res.Name] += res.GetScalar().GetValue()
		}
		out[role.Name] = q
	}
	return out, nil
}

// quotaState is what the framework has set on the master, and the events already recorded.
type quotaState struct {
	mu      sync.Mutex
	applied map[string]mesosQuota   // role → quota the master has from us
	refused map[string]quotaAttempt // role → last refused attempt
	warned  map[string]string       // namespace → reason+message of its last event
	usage   map[string]quantities   // role → allocated and offered, from the last GET_ROLES
}

type quotaAttempt struct {
	key string
	at  time.Time
}

// syncQuotas is one pass of the quota controller: the quota the namespaces ask of each role is set
// on the master when it differs from what was set; a role set before that no namespace asks for any
// more goes back to the default quota; problems become Warning events on the namespaces, once per
// cause. It also refreshes the roles' usage for the pods' unschedulable messages.
func (s *sched) syncQuotas(ctx context.Context, now time.Time) {
	if s.quotaOp == nil {
		return
	}
	want := desiredQuotas(s.namespaceList(), s.roles.def)
	q := &s.quota
	q.mu.Lock()
	if q.applied == nil {
		q.applied, q.refused, q.warned = map[string]mesosQuota{}, map[string]quotaAttempt{}, map[string]string{}
	}
	todo := map[string]mesosQuota{}
	var problems []*quotaWant
	for role, w := range want {
		if w.problem != "" {
			problems = append(problems, w)
			continue
		}
		if cur, ok := q.applied[role]; !ok || cur.key() != w.quota.key() {
			todo[role] = w.quota
		}
	}
	for role := range q.applied {
		if _, asked := want[role]; !asked {
			todo[role] = mesosQuota{} // back to the default quota
		}
	}
	for role, quota := range todo {
		if a, ok := q.refused[role]; ok && a.key == quota.key() && now.Sub(a.at) < quotaRetry {
			delete(todo, role)
		}
	}
	q.mu.Unlock()
	sort.Slice(problems, func(i, j int) bool { return problems[i].namespaces[0].Name < problems[j].namespaces[0].Name })
	for _, w := range problems {
		for _, ns := range w.namespaces {
			s.warnNamespace(ns, w.problem, w.message)
		}
	}

	roles := make([]string, 0, len(todo))
	for r := range todo {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, role := range roles {
		quota := todo[role]
		err := s.quotaOp.UpdateQuota(ctx, role, quota)
		q.mu.Lock()
		if err != nil {
			q.refused[role] = quotaAttempt{key: quota.key(), at: now}
			q.mu.Unlock()
			s.log.WithError(err).WithField("role", role).Warn("setting Mesos quota")
			var ref *quotaRefusal
			if w := want[role]; w != nil && errors.As(err, &ref) {
				for _, ns := range w.namespaces {
					s.warnNamespace(ns, EventMesosQuotaRefused, fmt.Sprintf("quota %s of Mesos role %q: %v", quota, role, err))
				}
			}
			continue
		}
		delete(q.refused, role)
		if quota.isDefault() {
			delete(q.applied, role)
		} else {
			q.applied[role] = quota
		}
		q.mu.Unlock()
		s.log.WithFields(logrus.Fields{"role": role, "quota": quota.String()}).Info("Mesos quota set")
		if w := want[role]; w != nil {
			for _, ns := range w.namespaces {
				s.recorder.Eventf(ns, corev1.EventTypeNormal, EventMesosQuotaSet, "Mesos role %q has quota %s", role, quota)
			}
		}
	}

	q.mu.Lock()
	// A namespace that has no problem any more has its next one reported, even a repeat of its last.
	troubled := map[string]bool{}
	for role, w := range want {
		if _, refused := q.refused[role]; refused || w.problem != "" {
			for _, ns := range w.namespaces {
				troubled[ns.Name] = true
			}
		}
	}
	for ns := range q.warned {
		if !troubled[ns] {
			delete(q.warned, ns)
		}
	}
	limited := len(q.applied) > 0
	q.mu.Unlock()
	if limited {
		usage, err := s.quotaOp.RoleUsage(ctx)
		if err != nil {
			s.log.WithError(err).Debug("GET_ROLES")
			return
		}
		q.mu.Lock()
		q.usage = usage
		q.mu.Unlock()
	}
}

// warnNamespace records a Warning on a namespace unless the same one was the last recorded there.
func (s *sched) warnNamespace(ns *corev1.Namespace, reason, message string) {
	s.quota.mu.Lock()
	if s.quota.warned == nil {
		s.quota.warned = map[string]string{}
	}
	dup := s.quota.warned[ns.Name] == reason+message
	s.quota.warned[ns.Name] = reason + message
	s.quota.mu.Unlock()
	if !dup {
		s.recorder.Event(ns, corev1.EventTypeWarning, reason, message)
	}
}

// runQuotas runs syncQuotas every period until ctx ends.
func (s *sched) runQuotas(ctx context.Context, every time.Duration) error {
	t := s.clock.NewTicker(every)
	defer t.Stop()
	for {
		s.syncQuotas(ctx, s.clock.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// quotaBlocked returns why a pending pod cannot run in its role now because of the role's quota
// limit: what the role holds (Mesos' allocated and offered, from GET_ROLES) plus what the pod asks
// exceeds a limit the framework set. "" otherwise.
func (s *sched) quotaBlocked(pod *corev1.Pod, role string) string {
	s.quota.mu.Lock()
	q, ok := s.quota.applied[role]
	usage := s.quota.usage[role]
	s.quota.mu.Unlock()
	if !ok || len(q.limits) == 0 {
		return ""
	}
	d, err := podtranslate.PodDemand(pod, s.translate)
	if err != nil {
		return ""
	}
	ask := quantities{"cpus": d.CPUs, "mem": d.MemMB}
	var over []string
	for _, n := range []string{"cpus", "mem"} {
		if lim, ok := q.limits[n]; ok && usage[n]+ask[n] > lim+1e-9 {
			over = append(over, n)
		}
	}
	if len(over) == 0 {
		return ""
	}
	return fmt.Sprintf("Mesos role %q is at its quota limit %s (it holds %s; the pod asks cpus:%g; mem:%g): %s",
		role, q.limits, usage, d.CPUs, d.MemMB, strings.Join(over, ", ")+" over the limit")
}

// quotaUnschedulable marks the pods of quota-limited roles that this cycle neither launched nor found
// unschedulable (their role got no offer: Mesos offers nothing beyond the limit) unschedulable with
// the quota as the reason, and adds the quota to the reason of those it found unschedulable.
func (s *sched) quotaUnschedulable(ctx context.Context, pods []*corev1.Pod, roleOf func(*corev1.Pod) string, plan *offerbridge.Plan, now time.Time) {
	if roleOf == nil {
		return
	}
	s.quota.mu.Lock()
	any := len(s.quota.applied) > 0
	s.quota.mu.Unlock()
	if !any {
		return
	}
	seen := map[string]bool{}
	if plan != nil {
		for _, l := range plan.Launches {
			for _, p := range l.Pods {
				seen[string(p.Pod.UID)] = true
			}
		}
		for i := range plan.Unschedulable {
			u := &plan.Unschedulable[i]
			seen[string(u.Pod.UID)] = true
			if why := s.quotaBlocked(u.Pod, roleOf(u.Pod)); why != "" {
				u.Message += " " + why + "."
			}
		}
		for _, p := range plan.Waiting {
			seen[string(p.UID)] = true
		}
	}
	for _, p := range pods {
		if seen[string(p.UID)] {
			continue
		}
		if why := s.quotaBlocked(p, roleOf(p)); why != "" {
			s.unschedulable(ctx, &offerbridge.Unfit{Pod: p, Message: "0/0 agents are available: " + why + ".",
				Reasons: map[string]int{"MesosQuota": 1}}, now)
		}
	}
}

// quotaSyncPeriod is how often namespaces' quota annotations are compared with what was set, and the
// roles' usage read for the pods' messages.
const quotaSyncPeriod = 2 * time.Second

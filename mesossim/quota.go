package mesossim

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/quota"

	"github.com/kubemesos/kubemesos/internal/mesosrole"
	"github.com/kubemesos/kubemesos/mesossim/allocator"
	"github.com/kubemesos/kubemesos/mesossim/internal/httpauth"
)

// QuotaACL is one of the local authorizer's update_quotas ACLs (--acls): it applies to requests whose
// principal is one of Principals (none listed: any principal, or none) and whose role is one of Roles
// (none listed: any role), and then allows them unless Deny. The first ACL that applies decides; when
// none does, Config.QuotaACLsPermissive does (Mesos' "permissive", true by default in Mesos; here the
// zero value false is used only when QuotaACLs is set).
type QuotaACL struct {
	Principals []string
	Roles      []string
	Deny       bool
}

// quotaAuthorized is authorizeUpdateQuotaConfig with the local authorizer.
func (m *Master) quotaAuthorized(principal, role string) bool {
	if m.cfg.QuotaACLs == nil {
		return true // no --acls: Mesos has no authorizer and allows everything
	}
	for _, acl := range m.cfg.QuotaACLs {
		if len(acl.Principals) > 0 && !contains(acl.Principals, principal) {
			continue
		}
		if len(acl.Roles) > 0 && !contains(acl.Roles, role) {
			continue
		}
		return !acl.Deny
	}
	return m.cfg.QuotaACLsPermissive
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// quantities is a set of scalar quantities by name, as ResourceQuantities and ResourceLimits.
type quantities map[string]float64

// scalarText is operator<<(ostream&, Value::Scalar): fixed-point with three decimals, printed with 15
// significant digits.
func scalarText(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'g', 15, 64)
}

// String is operator<< of ResourceQuantities and ResourceLimits: "cpus:2; mem:1024" in name order,
// "{}" when empty.
func (q quantities) String() string {
	if len(q) == 0 {
		return "{}"
	}
	parts := make([]string, 0, len(q))
	for _, n := range sortedKeys(q) {
		parts = append(parts, n+":"+scalarText(q[n]))
	}
	return strings.Join(parts, "; ")
}

// mapText is type_utils.hpp's operator<< of a protobuf Map: "{ cpus: 2, mem: 1024 }" (Mesos prints the
// map's own order; names are sorted here).
func mapText(m map[string]mesos.Value_Scalar) string {
	parts := make([]string, 0, len(m))
	for _, n := range sortedKeys(m) {
		parts = append(parts, n+": "+scalarText(m[n].Value))
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func toQuantities(m map[string]mesos.Value_Scalar) quantities {
	out := quantities{}
	for n, v := range m {
		if v.Value != 0 {
			out[n] = v.Value
		}
	}
	return out
}

// containsQ is ResourceQuantities::contains (and ResourceLimits', limits absent being infinite when
// limits is true).
func containsQ(have, want quantities, limits bool) bool {
	for n, v := range want {
		h, ok := have[n]
		if !ok && limits {
			continue
		}
		if h+1e-9 < v {
			return false
		}
	}
	return true
}

// validateQuotaConfig is quota::validate(QuotaConfig) (src/master/quota.cpp) with its texts.
func validateQuotaConfig(c *quota.QuotaConfig) error {
	if c.Role == "" {
		return fmt.Errorf("'QuotaConfig.role' must be set")
	}
	if err := mesosrole.Validate(c.Role); err != nil {
		return fmt.Errorf("Invalid 'QuotaConfig.role': %v", err)
	}
	const exabyteInMegabytes = 1024 * 1024 * 1024 * 1024
	const otherLimit = 1000 * 1000 * 1000 * 1000
	tooLarge := func(m map[string]mesos.Value_Scalar) error {
		for _, n := range sortedKeys(m) {
			v := m[n].Value
			if n == "mem" || n == "disk" {
				if v > exabyteInMegabytes {
					return fmt.Errorf("{'%s': %s} is invalid: values greater than 1 exabyte (%d) are not supported", n, scalarText(v), exabyteInMegabytes)
				}
			} else if v > otherLimit {
				return fmt.Errorf("{'%s': %s} is invalid: values greater than 1 trillion (%d) are not supported", n, scalarText(v), otherLimit)
			}
		}
		return nil
	}
	if err := tooLarge(c.Guarantees); err != nil {
		return fmt.Errorf("Invalid 'QuotaConfig.guarantees': %v", err)
	}
	if err := tooLarge(c.Limits); err != nil {
		return fmt.Errorf("Invalid 'QuotaConfig.limits': %v", err)
	}
	for _, n := range sortedKeys(c.Guarantees) {
		if err := validateInputScalar(c.Guarantees[n].Value); err != nil {
			return fmt.Errorf("Invalid guarantee configuration {'%s': %s}: %v", n, scalarText(c.Guarantees[n].Value), err)
		}
	}
	for _, n := range sortedKeys(c.Limits) {
		if err := validateInputScalar(c.Limits[n].Value); err != nil {
			return fmt.Errorf("Invalid limit configuration {'%s': %s}: %v", n, scalarText(c.Limits[n].Value), err)
		}
	}
	if !containsQ(quantities(scalarMap(c.Limits)), toQuantities(c.Guarantees), true) {
		return fmt.Errorf("'QuotaConfig.guarantees' %s is not contained within the 'QuotaConfig.limits' %s", mapText(c.Guarantees), mapText(c.Limits))
	}
	return nil
}

func scalarMap(m map[string]mesos.Value_Scalar) map[string]float64 {
	out := make(map[string]float64, len(m))
	for n, v := range m {
		out[n] = v.Value
	}
	return out
}

// validateInputScalar is common::validation::validateInputScalarValue.
func validateInputScalar(v float64) error {
	switch {
	case math.IsInf(v, 0):
		return fmt.Errorf("Infinite values not supported")
	case math.IsNaN(v):
		return fmt.Errorf("NaN not supported")
	case v != 0 && math.Abs(v) < 0x1p-1022:
		return fmt.Errorf("Subnormal values not supported")
	case v < 0:
		return fmt.Errorf("Negative values not supported")
	}
	return nil
}

// consumedQuota is RoleResourceBreakdown::consumedQuota: what the role and its subroles' tasks and
// executors hold of unreserved non-revocable scalars (outstanding offers not counted), plus every
// scalar reserved for them.
func (m *Master) consumedQuota(role string) quantities {
	out := quantities(m.alloc.QuotaOfferedOrConsumed(role))
	for _, o := range m.offers {
		if o.role != role && !strings.HasPrefix(o.role, role+"/") {
			continue
		}
		for _, r := range o.offer.Resources {
			if r.GetType() == mesos.SCALAR && r.Scalar != nil && len(r.Reservations) == 0 && (r.Role == nil || *r.Role == "*") && r.Revocable == nil {
				out[r.Name] -= r.Scalar.Value
				if out[r.Name] < 1e-9 {
					delete(out, r.Name)
				}
			}
		}
	}
	return out
}

// updateQuota is Master::QuotaHandler::update: validation (texts and 400s as Mesos'), the force flag
// for the consumption and capacity checks, authorization (403), then the quotas are set, the
// allocator told, and offers rescinded to enforce limits and guarantees.
func (m *Master) updateQuota(u *master.Call_UpdateQuota, principal string) (int, string) {
	m.lock()
	defer m.unlock()
	force := u.GetForce()
	for i := range u.QuotaConfigs {
		c := &u.QuotaConfigs[i]
		// Setting quota on a nested role is temporarily disabled (MESOS-7402).
		if strings.Contains(c.Role, "/") {
			return http.StatusBadRequest, "Updating quota on nested role '" + c.Role + "' is not supported yet"
		}
		if err := validateQuotaConfig(c); err != nil {
			return http.StatusBadRequest, "Invalid QuotaConfig: " + err.Error()
		}
	}
	for i := range u.QuotaConfigs {
		c := &u.QuotaConfigs[i]
		limits := quantities(scalarMap(c.Limits))
		consumed := m.consumedQuota(c.Role)
		if !containsQ(limits, consumed, true) {
			if !force {
				return http.StatusBadRequest, "Invalid QuotaConfig: Role '" + c.Role + "' is already consuming '" + consumed.String() +
					"'; this is more than the requested limits '" + limits.String() + "' (use 'force' flag to bypass this check)"
			}
			m.log.Infof("Updating '%s' quota limit to '%s'; this is below its current quota consumption '%s'; Ignored violation since the force flag is provided.", c.Role, limits, consumed)
		}
	}
	// Only top-level roles have quota, so the QuotaTree's guarantee check (a parent's guarantees contain
	// its children's) always holds, and the total guarantees are the top-level roles' sum.
	total := quantities{}
	for _, r := range m.alloc.QuotaRoles() {
		if !hasConfigFor(u.QuotaConfigs, r) {
			for n, v := range m.alloc.GetQuota(r).Guarantees {
				total[n] += v
			}
		}
	}
	for i := range u.QuotaConfigs {
		for n, v := range toQuantities(u.QuotaConfigs[i].Guarantees) {
			total[n] += v
		}
	}
	capacity := quantities{}
	for _, ag := range m.agents {
		if ag.unreachable {
			continue
		}
		for _, r := range ag.info.Resources {
			if r.GetType() == mesos.SCALAR && r.Scalar != nil && r.Revocable == nil {
				capacity[r.Name] += r.Scalar.Value
			}
		}
	}
	if !containsQ(capacity, total, false) {
		if !force {
			return http.StatusBadRequest, "Invalid QuotaConfig: total quota guarantees '" + total.String() +
				"' exceed cluster capacity '" + capacity.String() + "' (use 'force' flag to bypass this check)"
		}
		m.log.Info("Using force flag to override quota overcommit check")
	}
	for i := range u.QuotaConfigs {
		if !m.quotaAuthorized(principal, u.QuotaConfigs[i].Role) {
			return http.StatusForbidden, "403 Forbidden."
		}
	}
	for i := range u.QuotaConfigs {
		c := &u.QuotaConfigs[i]
		m.alloc.SetQuota(c.Role, allocator.Quota{Guarantees: toQuantities(c.Guarantees), Limits: scalarMap(c.Limits)})
		m.log.Infof("Updated quota for role '%s', guarantees: %s limits: %s", c.Role, toQuantities(c.Guarantees), quantities(scalarMap(c.Limits)))
		m.rescindForQuota(c)
	}
	return http.StatusOK, ""
}

func hasConfigFor(cs []quota.QuotaConfig, role string) bool {
	for i := range cs {
		if cs[i].Role == role {
			return true
		}
	}
	return false
}

// rescindForQuota is _update's best-effort rescind: offers of the role's subtree until what it consumes
// and is offered fits its limits, then other roles' offers until what is rescinded plus what the role
// consumes and is offered covers its guarantees.
func (m *Master) rescindForQuota(c *quota.QuotaConfig) {
	inRole := func(o *offer) bool { return o.role == c.Role || strings.HasPrefix(o.role, c.Role+"/") }
	consumedAndOffered := quantities(m.alloc.QuotaOfferedOrConsumed(c.Role))
	limits := quantities(scalarMap(c.Limits))
	offerIDs := sortedKeys(m.offers)
	for _, id := range offerIDs {
		if containsQ(limits, consumedAndOffered, true) {
			break
		}
		o := m.offers[id]
		if o == nil || !inRole(o) {
			continue
		}
		for _, r := range o.offer.Resources {
			if r.Scalar != nil {
				consumedAndOffered[r.Name] -= r.Scalar.Value
			}
		}
		m.rescind(o, true, 0)
	}
	guarantees := toQuantities(c.Guarantees)
	rescinded := quantities{}
	covered := func() bool {
		sum := quantities{}
		for n, v := range rescinded {
			sum[n] += v
		}
		for n, v := range consumedAndOffered {
			sum[n] += v
		}
		return containsQ(sum, guarantees, false)
	}
	for _, id := range offerIDs {
		if covered() {
			break
		}
		o := m.offers[id]
		if o == nil || inRole(o) {
			continue
		}
		for _, r := range o.offer.Resources {
			if r.Scalar != nil {
				rescinded[r.Name] += r.Scalar.Value
			}
		}
		m.rescind(o, true, 0)
	}
}

// quotaStatus is QuotaHandler::_status: every non-default quota, as legacy QuotaInfos (guarantees as
// resources) and QuotaConfigs, by role.
func (m *Master) quotaStatus() quota.QuotaStatus {
	m.lock()
	defer m.unlock()
	var st quota.QuotaStatus
	for _, role := range m.alloc.QuotaRoles() {
		q := m.alloc.GetQuota(role)
		role := role
		info := quota.QuotaInfo{Role: &role}
		cfg := quota.QuotaConfig{Role: role}
		for _, n := range sortedKeys(q.Guarantees) {
			info.Guarantee = append(info.Guarantee, mesos.Resource{Name: n, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: q.Guarantees[n]}})
			if cfg.Guarantees == nil {
				cfg.Guarantees = map[string]mesos.Value_Scalar{}
			}
			cfg.Guarantees[n] = mesos.Value_Scalar{Value: q.Guarantees[n]}
		}
		for n, v := range q.Limits {
			if cfg.Limits == nil {
				cfg.Limits = map[string]mesos.Value_Scalar{}
			}
			cfg.Limits[n] = mesos.Value_Scalar{Value: v}
		}
		st.Infos = append(st.Infos, info)
		st.Configs = append(st.Configs, cfg)
	}
	return st
}

// quotaCall answers GET_QUOTA and UPDATE_QUOTA.
func (m *Master) quotaCall(call *master.Call, principal string) (*master.Response, int, string) {
	switch call.Type {
	case master.Call_GET_QUOTA:
		st := m.quotaStatus()
		return &master.Response{Type: master.Response_GET_QUOTA, GetQuota: &master.Response_GetQuota{Status: st}}, 0, ""
	case master.Call_UPDATE_QUOTA:
		if call.UpdateQuota == nil {
			return nil, http.StatusBadRequest, "Failed to validate master::Call: Expecting 'update_quota' to be present"
		}
		status, msg := m.updateQuota(call.UpdateQuota, principal)
		return nil, status, msg
	}
	return nil, http.StatusNotImplemented, ""
}

// serveQuota is the legacy /quota endpoint's GET: the QuotaStatus as JSON.
func (m *Master) serveQuota(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r)
		return
	}
	if _, ok := m.authenticateOperator(w, r); !ok {
		return
	}
	st := m.quotaStatus()
	b, err := encodeAs(mediaJSON, &st)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeRaw(w, b)
}

// roleQuotaModel is the "quota" object of a role in /roles: its role, guarantee, limit and consumed
// quota as name → value objects.
func (m *Master) roleQuotaModel(role string) map[string]any {
	q := m.alloc.GetQuota(role)
	obj := func(s map[string]float64) map[string]any {
		out := map[string]any{}
		for n, v := range s {
			out[n] = v
		}
		return out
	}
	return map[string]any{"role": role, "guarantee": obj(q.Guarantees), "limit": obj(q.Limits), "consumed": obj(m.consumedQuota(role))}
}

// serveRoles is GET /roles: ReadOnlyHandler::roles, every known role with its weight, quota,
// allocated and offered quantities and frameworks.
func (m *Master) serveRoles(w http.ResponseWriter, r *http.Request) {
	m.lock()
	offered := map[string]quantities{}
	for _, o := range m.offers {
		if offered[o.role] == nil {
			offered[o.role] = quantities{}
		}
		for _, res := range o.offer.Resources {
			if res.Scalar != nil {
				offered[o.role][res.Name] += res.Scalar.Value
			}
		}
	}
	roles := []any{}
	for _, ri := range m.alloc.Roles() {
		alloc := map[string]any{}
		res := map[string]any{}
		for n, v := range ri.Allocated {
			res[n] = v
			if a := v - offered[ri.Name][n]; a > 1e-9 {
				alloc[n] = a
			}
		}
		off := map[string]any{}
		for n, v := range offered[ri.Name] {
			off[n] = v
		}
		fws := []string{}
		fws = append(fws, ri.Frameworks...)
		roles = append(roles, map[string]any{
			"name": ri.Name, "weight": m.alloc.Weight(ri.Name), "quota": m.roleQuotaModel(ri.Name),
			"resources": res, "allocated": alloc, "offered": off, "reserved": map[string]any{}, "frameworks": fws,
		})
	}
	m.unlock()
	writeJSON(w, map[string]any{"roles": roles})
}

// authenticateOperator is libprocess' authentication of the master's read-write realm
// (--authenticate_http_readwrite): 401 without valid credentials.
func (m *Master) authenticateOperator(w http.ResponseWriter, r *http.Request) (principal string, ok bool) {
	if !m.cfg.AuthenticateHTTPReadWrite {
		return "", true // no authenticator: requests have no principal
	}
	p, ok := httpauth.Basic(r.Header.Get("Authorization"), m.cfg.Credentials)
	if !ok {
		unauthorized(w, ReadWriteAuthenticationRealm)
		return "", false
	}
	return p, true
}

// ReadWriteAuthenticationRealm is Mesos' READWRITE_HTTP_AUTHENTICATION_REALM, the operator API's.
const ReadWriteAuthenticationRealm = "mesos-master-readwrite"

package mesossim

import (
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

// hasKey reports whether a JSON object key occurs anywhere in v.
func hasKey(v any, key string) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == key || hasKey(e, key) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasKey(e, key) {
				return true
			}
		}
	}
	return false
}

// resourceByName returns the offered resources named name, keyed by their reservation role ("*" for
// unreserved ones, whichever format they are in).
func resourceByName(t *testing.T, offer map[string]any, name string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range offer["resources"].([]any) {
		r := r.(map[string]any)
		if r["name"] != name {
			continue
		}
		role := "*"
		if rs, ok := r["reservations"].([]any); ok {
			role = str(rs[len(rs)-1], "role")
		} else if ro, ok := r["role"].(string); ok {
			role = ro
		}
		out[role] = r
	}
	return out
}

// TestOfferFormatFollowsFrameworkCapabilities: offers are shaped per framework as Master::offer shapes
// them. Without MULTI_ROLE there is no allocation_info anywhere; without RESERVATION_REFINEMENT
// resources are in the pre-refinement format (`role`, no `reservations`); with both, the current format.
func TestOfferFormatFollowsFrameworkCapabilities(t *testing.T) {
	multiRole := map[string]any{"type": "MULTI_ROLE"}
	refinement := map[string]any{"type": "RESERVATION_REFINEMENT"}
	for _, tc := range []struct {
		name           string
		info           map[string]any
		wantAllocation bool
		wantReserved   map[string]any // the reserved cpus without name/type/scalar/allocation_info
		wantUnreserved map[string]any
	}{
		{"old framework", map[string]any{"role": "web"}, false,
			map[string]any{"role": "web"}, map[string]any{"role": "*"}},
		{"MULTI_ROLE", map[string]any{"roles": []string{"web"}, "capabilities": []any{multiRole}}, true,
			map[string]any{"role": "web"}, map[string]any{"role": "*"}},
		{"MULTI_ROLE and RESERVATION_REFINEMENT", map[string]any{"roles": []string{"web"}, "capabilities": []any{multiRole, refinement}}, true,
			map[string]any{"reservations": []any{map[string]any{"type": "STATIC", "role": "web"}}}, map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{}, 1, "cpus(web):1;cpus:2;mem:512")
			c := h.jsonSubscribe(fwInfo("f", tc.info))
			h.m.Allocate()
			ev := c.next("OFFERS")
			o := offersOf(ev)[0]
			if got := hasKey(ev, "allocation_info"); got != tc.wantAllocation {
				t.Errorf("allocation_info in the OFFERS event: %v, want %v: %v", got, tc.wantAllocation, ev)
			}
			if tc.wantAllocation {
				if r := str(o, "allocation_info", "role"); r != "web" {
					t.Errorf("offer allocation_info.role = %q, want web", r)
				}
				for _, r := range o["resources"].([]any) {
					if got := str(r, "allocation_info", "role"); got != "web" {
						t.Errorf("resource %v: allocation_info.role %q, want web", r, got)
					}
				}
			}
			cpus := resourceByName(t, o, "cpus")
			strip := func(r map[string]any) map[string]any {
				out := map[string]any{}
				for k, v := range r {
					switch k {
					case "name", "type", "scalar", "allocation_info":
					default:
						out[k] = v
					}
				}
				return out
			}
			if diff := cmp.Diff(tc.wantReserved, strip(cpus["web"])); diff != "" {
				t.Errorf("reserved cpus format (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUnreserved, strip(cpus["*"])); diff != "" {
				t.Errorf("unreserved cpus format (-want +got):\n%s", diff)
			}

			// The framework hands the offered resources back as it got them (whatever their format, with or
			// without allocation_info); the master injects the offer's role and upgrades the format.
			task := commandTask("t1", o["agent_id"], 0, 0)
			task["resources"] = []any{cpus["web"], cpus["*"]}
			c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, task))
			run := c.nextUpdate("t1")["update"].(map[string]any)["status"].(map[string]any)
			if run["state"] != "TASK_RUNNING" {
				t.Fatalf("t1: %v %v, want TASK_RUNNING", run["state"], run["message"])
			}
			tasks := h.operator(master.Call{Type: master.Call_GET_TASKS}, mediaJSON).GetTasks.Tasks
			if len(tasks) != 1 {
				t.Fatalf("GET_TASKS: %v", tasks)
			}
			web := "web"
			want := mesos.Resources{
				{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1},
					Reservations:   []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: &web}},
					AllocationInfo: &mesos.Resource_AllocationInfo{Role: &web}},
				{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 2}, AllocationInfo: &mesos.Resource_AllocationInfo{Role: &web}},
			}
			if diff := cmp.Diff(want.String(), mesos.Resources(tasks[0].Resources).String()); diff != "" || !equalResources(want, tasks[0].Resources) {
				t.Errorf("launched task's resources (-want +got):\n%s\n%v", diff, tasks[0].Resources)
			}
			c.mustCall("ACKNOWLEDGE", map[string]any{"acknowledge": map[string]any{"agent_id": run["agent_id"], "task_id": run["task_id"], "uuid": run["uuid"]}})
			if st := str(c.nextUpdate("t1"), "update", "status", "state"); st != "TASK_FINISHED" {
				t.Errorf("t1: %s, want TASK_FINISHED", st)
			}
		})
	}
}

func equalResources(a, b []mesos.Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(&a[i], &b[i]) {
			return false
		}
	}
	return true
}

// TestReservationFormatConversions: convertResourceFormat both ways, for static and dynamic
// reservations (principal and labels move between `reservation` and `reservations`).
func TestReservationFormatConversions(t *testing.T) {
	web, p, star := "web", "ops", "*"
	labels := &mesos.Labels{Labels: []mesos.Label{{Key: "k", Value: &p}}}
	scalar := func() (*mesos.Value_Type, *mesos.Value_Scalar) {
		return mesos.SCALAR.Enum(), &mesos.Value_Scalar{Value: 1}
	}
	res := func(mut func(*mesos.Resource)) mesos.Resource {
		ty, sc := scalar()
		r := mesos.Resource{Name: "cpus", Type: ty, Scalar: sc}
		mut(&r)
		return r
	}
	for _, tc := range []struct {
		name      string
		current   mesos.Resource
		preRefine mesos.Resource
	}{
		{"unreserved", res(func(*mesos.Resource) {}), res(func(r *mesos.Resource) { r.Role = &star })},
		{"static",
			res(func(r *mesos.Resource) {
				r.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: &web}}
			}),
			res(func(r *mesos.Resource) { r.Role = &web })},
		{"dynamic",
			res(func(r *mesos.Resource) {
				r.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_DYNAMIC.Enum(), Role: &web, Principal: &p, Labels: labels}}
			}),
			res(func(r *mesos.Resource) {
				r.Role = &web
				r.Reservation = &mesos.Resource_ReservationInfo{Principal: &p, Labels: labels}
			})},
		{"dynamic without principal",
			res(func(r *mesos.Resource) {
				r.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_DYNAMIC.Enum(), Role: &web}}
			}),
			res(func(r *mesos.Resource) {
				r.Role = &web
				r.Reservation = &mesos.Resource_ReservationInfo{}
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down := tc.current
			downgradeResource(&down)
			if !proto.Equal(&down, &tc.preRefine) {
				t.Errorf("downgraded: %v, want %v", down.String(), tc.preRefine.String())
			}
			if err := down.Validate(); err != nil {
				t.Errorf("downgraded resource is invalid: %v", err)
			}
			up := tc.preRefine
			upgradeResource(&up)
			if !proto.Equal(&up, &tc.current) {
				t.Errorf("upgraded: %v, want %v", up.String(), tc.current.String())
			}
			again := tc.current
			upgradeResource(&again)
			if !proto.Equal(&again, &tc.current) {
				t.Errorf("upgrading the current format changed it: %v", again.String())
			}
		})
	}
}

package offerbridge

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/resources"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func ids(offers []mesos.Offer) []string {
	out := []string{}
	for _, o := range offers {
		out = append(out, o.ID.Value)
	}
	return out
}

func idValues(xs []mesos.OfferID) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, x.Value)
	}
	return out
}

func TestBook(t *testing.T) {
	tests := []struct {
		name   string
		script func(t *testing.T, b *Book, clk *clocktesting.FakePassiveClock)
		want   Counts
	}{
		{
			name: "take, place, settle: accepted, declined and unmentioned",
			script: func(t *testing.T, b *Book, _ *clocktesting.FakePassiveClock) {
				b.Add(basic("o1", "a1", 1, 1), basic("o2", "a2", 1, 1), basic("o3", "a3", 1, 1))
				b.Add(basic("o1", "a1", 1, 1)) // duplicate delivery
				if diff := cmp.Diff([]string{"o1", "o2", "o3"}, ids(b.Take())); diff != "" {
					t.Errorf("Take (-want +got):\n%s", diff)
				}
				un := b.Settle(Plan{Launches: []Launch{{OfferIDs: offerIDs("o1")}}, Decline: offerIDs("o2")})
				if diff := cmp.Diff([]string{"o3"}, idValues(un)); diff != "" {
					t.Errorf("unmentioned (-want +got):\n%s", diff)
				}
			},
			want: Counts{Received: 3, Accepted: 1, Declined: 2, Duplicates: 1},
		},
		{
			name: "rescinded while held and while in flight",
			script: func(t *testing.T, b *Book, _ *clocktesting.FakePassiveClock) {
				b.Add(basic("o1", "a1", 1, 1), basic("o2", "a1", 1, 1), basic("o3", "a2", 1, 1))
				if !b.Rescind(mesos.OfferID{Value: "o1"}) {
					t.Errorf("Rescind(o1) of a held offer = false")
				}
				taken := b.Take()
				if !b.Rescind(mesos.OfferID{Value: "o2"}) {
					t.Errorf("Rescind(o2) of an offer in flight = false")
				}
				if b.Rescind(mesos.OfferID{Value: "o1"}) {
					t.Errorf("second Rescind(o1) = true")
				}
				// The plan was made before the rescind arrived; o2 is no longer the book's.
				un := b.Settle(Plan{Launches: []Launch{{OfferIDs: offerIDs("o2")}}, Decline: offerIDs("o3")})
				if len(taken) != 2 || len(un) != 0 {
					t.Errorf("taken %v, unmentioned %v", ids(taken), un)
				}
			},
			want: Counts{Received: 3, Declined: 1, Rescinded: 2, Stale: 2},
		},
		{
			name: "agent removed",
			script: func(t *testing.T, b *Book, _ *clocktesting.FakePassiveClock) {
				b.Add(basic("o1", "a1", 1, 1), basic("o2", "a2", 1, 1))
				b.Take()
				b.Add(basic("o3", "a1", 1, 1), basic("o4", "a2", 1, 1))
				if diff := cmp.Diff([]string{"o1", "o3"}, idValues(b.RemoveAgent("a1"))); diff != "" {
					t.Errorf("RemoveAgent (-want +got):\n%s", diff)
				}
				b.Rescind(mesos.OfferID{Value: "o3"}) // the master's RESCIND arrives after the agent's removal
				b.Settle(Plan{Decline: offerIDs("o2")})
				b.Take()
				b.Settle(Plan{Launches: []Launch{{OfferIDs: offerIDs("o4")}}})
			},
			want: Counts{Received: 4, Accepted: 1, Declined: 1, Rescinded: 2, Stale: 1},
		},
		{
			name: "offers held too long expire",
			script: func(t *testing.T, b *Book, clk *clocktesting.FakePassiveClock) {
				b.Add(basic("o1", "a1", 1, 1))
				clk.SetTime(t0.Add(300 * time.Millisecond))
				b.Add(basic("o2", "a2", 1, 1))
				next, ok := b.NextExpiry()
				if !ok || !next.Equal(t0.Add(500*time.Millisecond)) {
					t.Errorf("NextExpiry = %v, %v; want %v", next, ok, t0.Add(500*time.Millisecond))
				}
				if got := b.Expired(t0.Add(499 * time.Millisecond)); len(got) != 0 {
					t.Errorf("Expired before max age = %v", ids(got))
				}
				if diff := cmp.Diff([]string{"o1"}, ids(b.Expired(t0.Add(500*time.Millisecond)))); diff != "" {
					t.Errorf("Expired (-want +got):\n%s", diff)
				}
				next, ok = b.NextExpiry()
				if !ok || !next.Equal(t0.Add(800*time.Millisecond)) {
					t.Errorf("NextExpiry = %v, %v; want %v", next, ok, t0.Add(800*time.Millisecond))
				}
				if diff := cmp.Diff([]string{"o2"}, ids(b.Expired(t0.Add(time.Second)))); diff != "" {
					t.Errorf("Expired (-want +got):\n%s", diff)
				}
				if _, ok := b.NextExpiry(); ok {
					t.Errorf("NextExpiry of an empty book = true")
				}
			},
			want: Counts{Received: 2, Declined: 2, Expired: 2},
		},
		{
			name: "kept offers are held again with their age",
			script: func(t *testing.T, b *Book, clk *clocktesting.FakePassiveClock) {
				b.Add(basic("o1", "a1", 1, 1), basic("o2", "a2", 1, 1))
				b.Take()
				clk.SetTime(t0.Add(300 * time.Millisecond))
				b.Keep(offerIDs("o2", "o9")) // o9: not in flight, ignored
				if un := b.Settle(Plan{Launches: []Launch{{OfferIDs: offerIDs("o1")}}}); len(un) != 0 {
					t.Errorf("unmentioned %v, want none: o2 is held again", idValues(un))
				}
				if b.Len() != 1 {
					t.Errorf("Len = %d, want o2 held", b.Len())
				}
				if diff := cmp.Diff([]string{"o2"}, ids(b.Expired(t0.Add(500*time.Millisecond)))); diff != "" {
					t.Errorf("Expired at its receipt + 500ms (-want +got):\n%s", diff)
				}
			},
			want: Counts{Received: 2, Accepted: 1, Declined: 1, Expired: 1},
		},
		{
			name: "unbalanced while held or in flight",
			script: func(t *testing.T, b *Book, _ *clocktesting.FakePassiveClock) {
				b.Add(basic("o1", "a1", 1, 1), basic("o2", "a1", 1, 1))
				b.Take()
				b.Add(basic("o3", "a1", 1, 1))
				if b.Len() != 1 {
					t.Errorf("Len = %d, want 1 held", b.Len())
				}
				if b.Counts().Balanced() {
					t.Errorf("Balanced with offers held and in flight")
				}
			},
			want: Counts{Received: 3, Held: 1, InFlight: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakePassiveClock(t0)
			b := NewBook(clk, 500*time.Millisecond)
			tt.script(t, b, clk)
			got := b.Counts()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Counts (-want +got):\n%s", diff)
			}
			if got.Received != got.Accepted+got.Declined+got.Rescinded+uint64(got.Held+got.InFlight) {
				t.Errorf("accounting does not add up: %+v", got)
			}
		})
	}
}

// TestBookNoLeak is mesosphere/kubernetes-mesos#636: one unusable offer in a batch must not keep the
// rest of the batch from being answered. Offers flow through Book and Place in cycles; at the end
// every offer received was accepted, declined or rescinded exactly once.
func TestBookNoLeak(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	b := NewBook(clk, 500*time.Millisecond)
	for cycle := range 20 {
		in := randomInput(uint64(cycle)+1000, 8, 12)
		for i := range in.Offers {
			in.Offers[i].ID.Value = fmt.Sprintf("c%d-%s", cycle, in.Offers[i].ID.Value)
		}
		// An offer nothing can use: no resources at all, and one without an agent ID.
		in.Offers = append(in.Offers,
			mesos.Offer{ID: mesos.OfferID{Value: fmt.Sprintf("c%d-empty", cycle)}, AgentID: mesos.AgentID{Value: "a-empty"}},
			mesos.Offer{ID: mesos.OfferID{Value: fmt.Sprintf("c%d-noagent", cycle)}})
		b.Add(in.Offers...)
		if cycle%3 == 0 {
			b.Rescind(in.Offers[0].ID)
		}
		if cycle%5 == 0 {
			b.RemoveAgent("a01")
		}
		clk.SetTime(clk.Now().Add(100 * time.Millisecond))
		if cycle%4 == 0 {
			b.Expired(clk.Now().Add(-50 * time.Millisecond)) // nothing is that old yet
		}
		in.Offers = b.Take()
		in.Returning = b.Returning(clk.Now())
		plan := Place(in)
		checkPlan(t, in, plan)
		// Every other unused offer is held again for the next cycle, as the framework does when
		// every pod was placed.
		var keep []mesos.OfferID
		for i, id := range plan.Decline {
			if i%2 == 0 {
				keep = append(keep, id)
			}
		}
		b.Keep(keep)
		plan.Decline = slices.DeleteFunc(plan.Decline, func(id mesos.OfferID) bool { return slices.Contains(keep, id) })
		if un := b.Settle(plan); len(un) != 0 {
			t.Errorf("cycle %d: plan left offers unanswered: %v", cycle, un)
		}
	}
	clk.SetTime(clk.Now().Add(time.Second))
	b.Expired(clk.Now())
	c := b.Counts()
	if !c.Balanced() {
		t.Errorf("offers leaked: %+v", c)
	}
	if c.Accepted == 0 || c.Declined == 0 || c.Rescinded == 0 {
		t.Errorf("scenario must exercise every outcome: %+v", c)
	}
}

func TestBookConcurrent(t *testing.T) {
	b := NewBook(clocktesting.NewFakePassiveClock(t0), time.Second)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("w%d-o%d", w, i)
				b.Add(basic(id, fmt.Sprintf("a%d", i%7), 1, 1))
				if i%3 == 0 {
					b.Rescind(mesos.OfferID{Value: id})
				}
				if i%50 == 0 {
					b.RemoveAgent("a3")
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			taken := b.Take()
			plan := Plan{}
			for i, o := range taken {
				if i%2 == 0 {
					plan.Decline = append(plan.Decline, o.ID)
				} else {
					plan.Launches = append(plan.Launches, Launch{OfferIDs: []mesos.OfferID{o.ID}})
				}
			}
			b.Settle(plan)
			b.Expired(t0)
			b.Counts()
		}
	})
	wg.Wait()
	b.Settle(Plan{Decline: idsOf(b.Take())})
	c := b.Counts()
	if !c.Balanced() || c.Received != 800 {
		t.Errorf("counts after concurrent use: %+v", c)
	}
}

func idsOf(offers []mesos.Offer) []mesos.OfferID {
	out := make([]mesos.OfferID, len(offers))
	for i := range offers {
		out[i] = offers[i].ID
	}
	return out
}

func TestDecideOffers(t *testing.T) {
	tests := []struct {
		name string
		flow OfferFlow
		want OfferAction
	}{
		{"idle and active: suppress", OfferFlow{}, Suppress},
		{"idle and suppressed: nothing", OfferFlow{Suppressed: true}, NoAction},
		{"pending while suppressed: revive", OfferFlow{Pending: 1, Suppressed: true}, Revive},
		{"pending, offers flowing: nothing", OfferFlow{Pending: 3}, NoAction},
		{"new pods while filters hold agents back: revive", OfferFlow{Pending: 3, NewPending: true, Filtered: true}, Revive},
		{"new pods, no filters: nothing", OfferFlow{Pending: 3, NewPending: true}, NoAction},
		{"old pods, filters: wait for filters", OfferFlow{Pending: 3, Filtered: true}, NoAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want.String(), DecideOffers(tt.flow).String()); diff != "" {
				t.Errorf("DecideOffers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBookReturning: what an ACCEPT leaves of its offers is returning room until the agent's next
// offer for that role, the agent's removal, or ReturnWait.
func TestBookReturning(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	b := NewBook(clk, 500*time.Millisecond)
	o1 := basic("o1", "a1", 4, 4096)
	o1.Unavailability = &mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: 7}}
	b.Add(o1, basic("o2", "a2", 4, 4096), basic("o3", "a3", 4, 4096), basic("o4", "a4", 1, 512))
	in := Input{Offers: b.Take(), Executor: ExecutorCost{CPUs: 0.5, MemMB: 32},
		Pods: []*corev1.Pod{pod("p1", 1, 1024), pod("p2", 1, 1024), pod("p3", 3, 1024)}}
	in.Translate.PodNetwork = "kubemesos" // sandboxed: pod task, sandbox task and executor carved apart
	plan := Place(in)
	if len(plan.Launches) != 3 {
		t.Fatalf("launches %v, want p1, p2, p3 on three agents", placed(plan))
	}
	// a3's next offer is here before the cycle settles: it, not the computed remainder, says what is free.
	b.Add(basic("o5", placed(plan)[2][len("p3@"):], 1, 100))
	if un := b.Settle(plan); len(un) != 0 {
		t.Fatalf("unmentioned %v", idValues(un))
	}
	got := b.Returning(clk.Now())
	if len(got) != 2 {
		t.Fatalf("Returning = %d offers, want 2 (the third agent was offered again)", len(got))
	}
	for _, r := range got {
		var l *Launch
		for i := range plan.Launches {
			if plan.Launches[i].AgentID == r.AgentID {
				l = &plan.Launches[i]
			}
		}
		if l == nil {
			t.Fatalf("returning room of %s, which had no launch", r.AgentID.Value)
		}
		var offered, carved mesos.Resources
		for _, o := range in.Offers {
			if o.AgentID == r.AgentID {
				offered.Add(o.Resources...)
			}
		}
		carved.Add(l.Executor...)
		for _, pp := range l.Pods {
			carved.Add(pp.Resources...)
			carved.Add(pp.Sandbox.Executor...)
			carved.Add(pp.Sandbox.Task...)
		}
		if !resources.Equivalent(mesos.Resources(r.Resources).Plus(carved...), offered) {
			t.Errorf("%s: returning %s + carved %s != offered %s", r.AgentID.Value, mesos.Resources(r.Resources), carved, offered)
		}
		if r.AgentID.Value == "a1" && r.Unavailability == nil {
			t.Errorf("a1's returning room lost its offer's unavailability")
		}
	}
	// Placement sees them: a pod that fits only on a returning agent's room waits.
	next := Place(Input{Returning: got, Offers: b.Take(), Pods: []*corev1.Pod{pod("p4", 2, 128)}})
	if len(next.Waiting) != 1 || len(next.Launches) != 0 {
		t.Errorf("p4: placed %v, waiting %d, want it waiting for returning room", placed(next), len(next.Waiting))
	}
	b.Settle(next)

	// The first agent is offered again, the second removed: nothing returns any more.
	b.Add(basic("o6", got[0].AgentID.Value, 2, 2048))
	b.RemoveAgent(got[1].AgentID.Value)
	if r := b.Returning(clk.Now()); len(r) != 0 {
		t.Errorf("Returning after the agent's offer and removal = %v, want none", ids(r))
	}

	// Room not offered again within ReturnWait is forgotten.
	b.Take()
	b.Settle(Plan{Launches: []Launch{{AgentID: mesos.AgentID{Value: got[0].AgentID.Value}, OfferIDs: offerIDs("o6")}}})
	if r := b.Returning(clk.Now().Add(ReturnWait - time.Millisecond)); len(r) != 1 {
		t.Errorf("Returning just before ReturnWait = %v, want o6's room", ids(r))
	}
	if r := b.Returning(clk.Now().Add(ReturnWait)); len(r) != 0 {
		t.Errorf("Returning at ReturnWait = %v, want none", ids(r))
	}
	if r := b.Returning(clk.Now()); len(r) != 0 {
		t.Errorf("Returning after it was forgotten = %v, want none", ids(r))
	}
	if c := b.Counts(); !c.Balanced() {
		t.Errorf("counts %+v", c)
	}
}

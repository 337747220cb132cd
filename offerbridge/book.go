package offerbridge

import (
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"k8s.io/utils/clock"
)

// Book holds the offers the framework received until a placement cycle takes them, and accounts for
// every one: each offer received ends exactly once as accepted, declined (including expired) or
// rescinded (including those of removed agents). The earlier Kubernetes-on-Mesos bridge leaked offers
// it never answered, so Mesos counted the resources as taken (mesosphere/kubernetes-mesos#636); Counts
// lets tests and metrics prove that cannot happen here. Safe for concurrent use.
//
// Life of an offer: Add → held → Take → in flight → Settle (accepted or declined) or Keep (held again,
// its age kept). Rescind and RemoveAgent end it in either state; Expired ends a held offer older than
// the maximum hold time.
//
// The book also knows what the accepted offers left unused on their agents (Returning): Mesos offers
// it again at its next allocation, and placement ranks those agents with the ones in hand.
type Book struct {
	clock  clock.PassiveClock
	maxAge time.Duration

	mu        sync.Mutex
	seq       uint64
	held      map[string]heldOffer
	inFlight  map[string]heldOffer
	returning map[agentRole]returningRoom
	counts    Counts
}

// ReturnWait is how long the room an ACCEPT left unused is expected back: Mesos' allocator recovers
// it at once (refuse_seconds 0 installs no filter, HierarchicalAllocatorProcess::recoverResources)
// and offers it at the next allocation, every --allocation_interval (1 s by default). After twice
// that, something else took it (another framework, an agent gone) and the pods waiting for it are
// placed on what is in hand.
const ReturnWait = 2 * time.Second

type agentRole struct{ agent, role string }

type returningRoom struct {
	offer mesos.Offer // the accepted offer with the resources left unused
	since time.Time
}

type heldOffer struct {
	offer    mesos.Offer
	received time.Time
	seq      uint64
}

// Counts is the Book's accounting. Received == Accepted + Declined + Rescinded + Held + InFlight at all
// times; Expired is the part of Declined that aged out in the book.
type Counts struct {
	Received  uint64
	Accepted  uint64
	Declined  uint64
	Rescinded uint64
	Expired   uint64
	// Duplicates are Adds of an offer ID already known (not counted as received); Stale are Settle or
	// Rescind mentions of offers the book no longer holds (already ended).
	Duplicates uint64
	Stale      uint64
	Held       int
	InFlight   int
}

// Balanced reports whether every offer received is accounted for and none is held or in flight.
func (c Counts) Balanced() bool {
	return c.Held == 0 && c.InFlight == 0 && c.Received == c.Accepted+c.Declined+c.Rescinded
}

// NewBook returns an empty book. maxAge is --offer-hold's upper bound: offers held longer are returned by
// Expired to be declined.
func NewBook(clk clock.PassiveClock, maxAge time.Duration) *Book {
	return &Book{
		clock:     clk,
		maxAge:    maxAge,
		held:      make(map[string]heldOffer),
		inFlight:  make(map[string]heldOffer),
		returning: make(map[agentRole]returningRoom),
	}
}

// Add holds offers received from Mesos. An offer ID seen before is ignored.
func (b *Book) Add(offers ...mesos.Offer) {
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range offers {
		id := o.ID.Value
		if _, ok := b.held[id]; ok {
			b.counts.Duplicates++
			continue
		}
		if _, ok := b.inFlight[id]; ok {
			b.counts.Duplicates++
			continue
		}
		b.seq++
		b.held[id] = heldOffer{offer: o, received: now, seq: b.seq}
		b.counts.Received++
		// What the agent has free for the role now, returned room included.
		delete(b.returning, agentRole{o.AgentID.Value, offerRole(&o)})
	}
}

// Rescind forgets an offer Mesos rescinded, whether held or in flight (an ACCEPT already sent for it
// fails at the master and its tasks come back as dropped or lost). It reports whether the book had it.
func (b *Book) Rescind(id mesos.OfferID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.held[id.Value]; ok {
		delete(b.held, id.Value)
		b.counts.Rescinded++
		return true
	}
	if _, ok := b.inFlight[id.Value]; ok {
		delete(b.inFlight, id.Value)
		b.counts.Rescinded++
		return true
	}
	b.counts.Stale++
	return false
}

// RemoveAgent forgets every offer of an agent Mesos reported gone (the master rescinds them; the RESCIND
// events may arrive later and are then stale). It returns the offers it forgot, sorted.
func (b *Book) RemoveAgent(agentID string) []mesos.OfferID {
	b.mu.Lock()
	defer b.mu.Unlock()
	var gone []mesos.OfferID
	for id, h := range b.held {
		if h.offer.AgentID.Value == agentID {
			delete(b.held, id)
			gone = append(gone, h.offer.ID)
		}
	}
	for id, h := range b.inFlight {
		if h.offer.AgentID.Value == agentID {
			delete(b.inFlight, id)
			gone = append(gone, h.offer.ID)
		}
	}
	for k := range b.returning {
		if k.agent == agentID {
			delete(b.returning, k)
		}
	}
	b.counts.Rescinded += uint64(len(gone))
	sort.Slice(gone, func(i, j int) bool { return gone[i].Value < gone[j].Value })
	return gone
}

// Take returns every held offer, oldest first, and moves them in flight until Settle.
func (b *Book) Take() []mesos.Offer {
	b.mu.Lock()
	defer b.mu.Unlock()
	hs := make([]heldOffer, 0, len(b.held))
	for _, h := range b.held {
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].seq < hs[j].seq })
	out := make([]mesos.Offer, len(hs))
	for i, h := range hs {
		out[i] = h.offer
		b.inFlight[h.offer.ID.Value] = h
	}
	clear(b.held)
	return out
}

// Keep returns offers in flight that a cycle did not need to the held ones, with the time they were
// received, so that Expired still declines them once the maximum hold time has passed. Offers not in
// flight (rescinded meanwhile) are ignored.
func (b *Book) Keep(ids []mesos.OfferID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		if h, ok := b.inFlight[id.Value]; ok {
			delete(b.inFlight, id.Value)
			b.held[id.Value] = h
		}
	}
}

// Settle records a plan's outcome for the offers in flight: offers of its Launches are accepted, its
// Decline list declined. Offers in flight the plan does not mention are declined too and returned, so
// the caller declines them as well and nothing leaks. What each Launch leaves of its offers (their
// resources minus those carved for the executor and the pods) is returning room until an offer of
// its agent and role arrives or ReturnWait has passed; not when such an offer is already held.
func (b *Book) Settle(plan Plan) (unmentioned []mesos.OfferID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	for i := range plan.Launches {
		b.remember(&plan.Launches[i], now)
		for _, id := range plan.Launches[i].OfferIDs {
			b.end(id.Value, &b.counts.Accepted)
		}
	}
	for _, id := range plan.Decline {
		b.end(id.Value, &b.counts.Declined)
	}
	for id := range b.inFlight {
		unmentioned = append(unmentioned, mesos.OfferID{Value: id})
	}
	clear(b.inFlight)
	b.counts.Declined += uint64(len(unmentioned))
	sort.Slice(unmentioned, func(i, j int) bool { return unmentioned[i].Value < unmentioned[j].Value })
	return unmentioned
}

// Unaccepted corrects the record of a settled Launch whose offers were declined after all (its
// pods could not be bound, its executor is unknown): they count as declined, and its agent's
// returning room is forgotten, as Mesos offers the agent's resources whole again.
func (b *Book) Unaccepted(l *Launch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(uint64(len(l.OfferIDs)), b.counts.Accepted)
	b.counts.Accepted -= n
	b.counts.Declined += n
	for k := range b.returning {
		if k.agent == l.AgentID.Value {
			delete(b.returning, k)
		}
	}
}

// remember records the room a Launch leaves on its agent, from its offers still in flight.
func (b *Book) remember(l *Launch, now time.Time) {
	var left mesos.Resources
	var tmpl *mesos.Offer
	for _, id := range l.OfferIDs {
		if h, ok := b.inFlight[id.Value]; ok {
			if tmpl == nil {
				tmpl = &h.offer
			}
			left.Add(h.offer.Resources...)
		}
	}
	if tmpl == nil {
		return
	}
	k := agentRole{tmpl.AgentID.Value, offerRole(tmpl)}
	for _, h := range b.held {
		if h.offer.AgentID.Value == k.agent && offerRole(&h.offer) == k.role {
			return // offered again already (the ACCEPT was quick): the offer says what is free
		}
	}
	left.Subtract(l.Executor...)
	for _, pp := range l.Pods {
		left.Subtract(pp.Resources...)
		if pp.Sandbox != nil {
			left.Subtract(pp.Sandbox.Executor...)
			left.Subtract(pp.Sandbox.Task...)
		}
	}
	if len(left) == 0 {
		delete(b.returning, k)
		return
	}
	o := *tmpl
	o.Resources = left
	b.returning[k] = returningRoom{offer: o, since: now}
}

// Returning returns the room accepted offers left on their agents that Mesos has not offered again
// yet, as offers (Input.Returning), by agent and role; it forgets room older than ReturnWait.
func (b *Book) Returning(now time.Time) []mesos.Offer {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]mesos.Offer, 0, len(b.returning))
	for k, r := range b.returning {
		if now.Sub(r.since) >= ReturnWait {
			delete(b.returning, k)
			continue
		}
		out = append(out, r.offer)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].AgentID.Value != out[j].AgentID.Value {
			return out[i].AgentID.Value < out[j].AgentID.Value
		}
		return offerRole(&out[i]) < offerRole(&out[j])
	})
	return out
}

func (b *Book) end(id string, counter *uint64) {
	if _, ok := b.inFlight[id]; !ok {
		b.counts.Stale++
		return
	}
	delete(b.inFlight, id)
	*counter++
}

// Expired removes and returns the held offers received maxAge or longer before now, oldest first; the
// caller must decline them (they count as declined).
func (b *Book) Expired(now time.Time) []mesos.Offer {
	b.mu.Lock()
	defer b.mu.Unlock()
	var hs []heldOffer
	for id, h := range b.held {
		if now.Sub(h.received) >= b.maxAge {
			hs = append(hs, h)
			delete(b.held, id)
		}
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].seq < hs[j].seq })
	out := make([]mesos.Offer, len(hs))
	for i, h := range hs {
		out[i] = h.offer
	}
	b.counts.Declined += uint64(len(out))
	b.counts.Expired += uint64(len(out))
	return out
}

// NextExpiry returns when the oldest held offer reaches maxAge, for the framework's timer; false when
// nothing is held.
func (b *Book) NextExpiry() (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var oldest time.Time
	found := false
	for _, h := range b.held {
		if !found || h.received.Before(oldest) {
			oldest, found = h.received, true
		}
	}
	if !found {
		return time.Time{}, false
	}
	return oldest.Add(b.maxAge), true
}

// Len returns how many offers are held (not in flight).
func (b *Book) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held)
}

// Counts returns a snapshot of the accounting.
func (b *Book) Counts() Counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.counts
	c.Held = len(b.held)
	c.InFlight = len(b.inFlight)
	return c
}

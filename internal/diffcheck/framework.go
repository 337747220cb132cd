package diffcheck

import (
	"context"
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

// framework is one subscribed scheduler of the scenario.
type framework struct {
	s      *scenario
	sub    *subscription
	id     string
	offers []mesos.Offer  // held, not yet used or declined
	first  map[string]any // the first OFFERS event
	ended  bool           // the stream has ended
}

var errStreamEnded = errors.New("event stream ended")

// subscribe opens the framework's stream and records its first events up to the first OFFERS. On an
// error the stream is closed.
func (s *scenario) subscribe(ctx context.Context, multiRole bool) (*framework, error) {
	h := http.Header{}
	h.Set("Content-Type", mediaJSON)
	h.Set("Accept", mediaJSON)
	if s.c.principal != "" {
		r := http.Request{Header: http.Header{}}
		r.SetBasicAuth(s.c.principal, s.c.secret)
		h.Set("Authorization", r.Header.Get("Authorization"))
	}
	sub, err := dialSubscribe(ctx, s.c.baseURL("/api/v1/scheduler"), h, s.subscribeBody(multiRole))
	if err != nil {
		return nil, err
	}
	s.rec.set("status", strconv.Itoa(sub.Status))
	s.rec.set("content-type", sub.Header.Get("Content-Type"))
	s.rec.set("transfer-encoding", sub.Header.Get("Transfer-Encoding"))
	if sub.Status != http.StatusOK {
		s.rec.set("body", sub.Body)
		return nil, fmt.Errorf("SUBSCRIBE answered %d", sub.Status)
	}
	s.rec.set("stream id", fmt.Sprintf("%d bytes", len(sub.StreamID)))
	s.rec.red.learn(sub.StreamID, "<stream_id>")
	f := &framework{s: s, sub: sub}

	ev, err := f.next(ctx)
	if err != nil {
		sub.Close()
		return nil, err
	}
	if ev.Type != "SUBSCRIBED" {
		sub.Close()
		s.rec.set("first event", ev.Type)
		return nil, fmt.Errorf("first event %s, not SUBSCRIBED", ev.Type)
	}
	f.id, _ = dig(ev.Doc, "subscribed", "framework_id", "value").(string)
	s.rec.red.learn(f.id, "<framework_id>")
	if mid, ok := dig(ev.Doc, "subscribed", "master_info", "id").(string); ok {
		s.rec.red.learn(mid, "<master_id>")
	}
	s.rec.set("heartbeat_interval_seconds", fmt.Sprint(dig(ev.Doc, "subscribed", "heartbeat_interval_seconds")))
	s.rec.shape("SUBSCRIBED", ev.Doc)

	// The events up to the first OFFERS, in order (consecutive repeats folded).
	order := []string{ev.Type}
	err = f.until(ctx, s.opts.Wait, func(ev event) bool {
		if order[len(order)-1] != ev.Type {
			order = append(order, ev.Type)
		}
		if ev.Type == "OFFERS" {
			f.first = ev.Doc
			return true
		}
		return false
	})
	s.rec.set("events until first OFFERS", order)
	if err != nil {
		sub.Close()
		return nil, err
	}
	return f, nil
}

func (c *client) baseURL(path string) *url.URL {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return &u
}

// endOfStream records that the master ended the event stream, and says why: its error, or
// errStreamEnded.
func (f *framework) endOfStream() error {
	f.ended = true
	if err := f.sub.Err(); err != nil {
		return err
	}
	return errStreamEnded
}

// next returns the next event, waiting at most the scenario's Wait.
func (f *framework) next(ctx context.Context) (event, error) {
	t := time.NewTimer(f.s.opts.Wait)
	defer t.Stop()
	select {
	case ev, ok := <-f.sub.events:
		if !ok {
			return event{}, f.endOfStream()
		}
		return ev, nil
	case <-t.C:
		return event{}, fmt.Errorf("no event within %s", f.s.opts.Wait)
	case <-ctx.Done():
		return event{}, ctx.Err()
	}
}

// until feeds events to done until it returns true, for at most d. Along the way offers are held
// and updates that carry a uuid are acknowledged, as any scheduler does.
func (f *framework) until(ctx context.Context, d time.Duration, done func(event) bool) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		var ev event
		select {
		case e, ok := <-f.sub.events:
			if !ok {
				return f.endOfStream()
			}
			ev = e
		case <-deadline.C:
			return fmt.Errorf("waited %s", d)
		case <-ctx.Done():
			return ctx.Err()
		}
		f.absorb(ctx, ev)
		if done(ev) {
			return nil
		}
	}
}

// quiet absorbs events until none has come for d, or for at most the scenario's Wait: what a step
// observes next is then the master's answer to it, not an event already on its way.
func (f *framework) quiet(ctx context.Context, d time.Duration) error {
	limit := time.NewTimer(f.s.opts.Wait)
	defer limit.Stop()
	for {
		idle := time.NewTimer(d)
		select {
		case e, ok := <-f.sub.events:
			idle.Stop()
			if !ok {
				return f.endOfStream()
			}
			f.absorb(ctx, e)
		case <-idle.C:
			return nil
		case <-limit.C:
			idle.Stop()
			return fmt.Errorf("events kept coming for %s", f.s.opts.Wait)
		case <-ctx.Done():
			idle.Stop()
			return ctx.Err()
		}
	}
}

// absorb does what a scheduler must do with any event: hold offers, forget rescinded ones,
// acknowledge updates.
func (f *framework) absorb(ctx context.Context, ev event) {
	switch ev.Type {
	case "OFFERS":
		var e scheduler.Event
		if json.Unmarshal(ev.Raw, &e) == nil && e.Offers != nil {
			for _, o := range e.Offers.Offers {
				f.s.rec.red.learn(o.ID.Value, "<offer_id>")
				f.offers = append(f.offers, o)
			}
		}
	case "RESCIND":
		id, _ := dig(ev.Doc, "rescind", "offer_id", "value").(string)
		for i, o := range f.offers {
			if o.ID.Value == id {
				f.offers = append(f.offers[:i], f.offers[i+1:]...)
				break
			}
		}
	case "UPDATE":
		var e scheduler.Event
		if json.Unmarshal(ev.Raw, &e) != nil || e.Update == nil {
			return
		}
		st := e.Update.Status
		if len(st.UUID) > 0 && st.AgentID != nil {
			_, _ = f.call(ctx, &scheduler.Call{Type: scheduler.Call_ACKNOWLEDGE, Acknowledge: &scheduler.Call_Acknowledge{
				AgentID: *st.AgentID, TaskID: st.TaskID, UUID: st.UUID}})
		}
	}
}

// call sends a call of this framework on its stream; it answers the status and body.
func (f *framework) call(ctx context.Context, c *scheduler.Call) (answer, error) {
	c.FrameworkID = &mesos.FrameworkID{Value: f.id}
	return f.callRaw(ctx, marshal(c), f.sub.StreamID)
}

func (f *framework) callRaw(ctx context.Context, body []byte, streamID string) (answer, error) {
	return f.s.c.do(ctx, http.MethodPost, f.s.c.url("/api/v1/scheduler"),
		map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": streamID}, body)
}

// offer returns a held offer, waiting for one if none is held.
func (f *framework) offer(ctx context.Context) (mesos.Offer, error) {
	if len(f.offers) == 0 {
		if err := f.until(ctx, f.s.opts.Wait, func(ev event) bool { return len(f.offers) > 0 }); err != nil {
			return mesos.Offer{}, fmt.Errorf("waiting for an offer: %w", err)
		}
	}
	o := f.offers[0]
	f.offers = f.offers[1:]
	return o, nil
}

// declineHeld declines every held offer with the given filter.
func (f *framework) declineHeld(ctx context.Context, refuse float64) (answer, error) {
	if len(f.offers) == 0 {
		return answer{}, nil
	}
	var ids []mesos.OfferID
	for _, o := range f.offers {
		ids = append(ids, o.ID)
	}
	f.offers = nil
	return f.call(ctx, &scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{
		OfferIDs: ids, Filters: &mesos.Filters{RefuseSeconds: &refuse}}})
}

// recordOffers records what the framework's offers look like: allocation_info, roles, resource
// names and types, and the shape of an offer.
func (s *scenario) recordOffers(offers []mesos.Offer, raw map[string]any) {
	alloc, roles, res := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, o := range offers {
		alloc[strconv.FormatBool(o.AllocationInfo != nil)] = true
		for _, r := range o.Resources {
			res[r.Name+":"+r.GetType().String()] = true
			roles["resource.allocation_info "+strconv.FormatBool(r.AllocationInfo != nil)] = true
			if r.AllocationInfo != nil {
				roles["allocation role "+r.AllocationInfo.GetRole()] = true
			}
		}
	}
	s.rec.set("offer.allocation_info present", keys(alloc))
	s.rec.set("resources allocation", keys(roles))
	s.rec.set("resource names", keys(res))
	s.rec.shape("OFFERS", raw)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

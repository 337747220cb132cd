package allocator

import (
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesosalloc "github.com/mesos/mesos-go/api/v1/lib/allocator"
)

// Maintenance, as Mesos' hierarchical allocator keeps it (updateUnavailability, updateInverseOffer,
// generateInverseOffers, getInverseOfferStatuses): an agent with an unavailability gets inverse offers
// sent to every active framework with resources offered or allocated on it, one outstanding per
// framework and agent, unless the framework refused them for a while.

type agentMaintenance struct {
	unavailability mesos.Unavailability
	// outstanding are the frameworks with an inverse offer for the agent not answered yet.
	outstanding map[string]bool
	// statuses are the frameworks' last answers.
	statuses map[string]mesosalloc.InverseOfferStatus
}

// InverseOffer is one inverse offer to make: the agent's unavailability for a framework. Mesos sends
// them with empty resources (the whole agent).
type InverseOffer struct {
	FrameworkID    string
	AgentID        string
	Unavailability mesos.Unavailability
}

// UpdateUnavailability sets (nil: clears) an agent's unavailability; outstanding inverse offers and
// the frameworks' answers are forgotten, as the master rescinds them first.
func (a *Allocator) UpdateUnavailability(agentID string, u *mesos.Unavailability) {
	if _, ok := a.agents[agentID]; !ok {
		return
	}
	if a.maint == nil {
		a.maint = map[string]*agentMaintenance{}
	}
	delete(a.maint, agentID)
	if u != nil {
		a.maint[agentID] = &agentMaintenance{unavailability: *u, outstanding: map[string]bool{},
			statuses: map[string]mesosalloc.InverseOfferStatus{}}
	}
}

// UpdateInverseOffer records a framework's answer to (status non-nil) or the loss of (status nil:
// timed out, rescinded) its inverse offer for an agent; with refuse > 0 the framework gets no inverse
// offer for the agent until now+refuse (Mesos' InverseOfferFilter).
func (a *Allocator) UpdateInverseOffer(agentID, frameworkID string, status *mesosalloc.InverseOfferStatus, refuse time.Duration, now time.Time) {
	m := a.maint[agentID]
	if m == nil {
		return
	}
	if m.outstanding[frameworkID] {
		delete(m.outstanding, frameworkID)
		if status != nil {
			m.statuses[frameworkID] = *status
		}
	}
	if refuse <= 0 {
		return
	}
	if a.ioFilters == nil {
		a.ioFilters = map[string]map[string]time.Time{}
	}
	if a.ioFilters[frameworkID] == nil {
		a.ioFilters[frameworkID] = map[string]time.Time{}
	}
	a.ioFilters[frameworkID][agentID] = now.Add(refuse)
}

// InverseOffers is generateInverseOffers: the inverse offers to make now, sorted by framework and agent.
// They are outstanding from here on.
func (a *Allocator) InverseOffers(now time.Time) []InverseOffer {
	var out []InverseOffer
	ids := make([]string, 0, len(a.maint))
	for id := range a.maint {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, agentID := range ids {
		m := a.maint[agentID]
		ag := a.agents[agentID]
		if ag == nil {
			delete(a.maint, agentID)
			continue
		}
		fws := map[string]bool{}
		for k := range ag.used {
			fws[k.framework] = true
		}
		names := make([]string, 0, len(fws))
		for id := range fws {
			names = append(names, id)
		}
		sort.Strings(names)
		for _, fid := range names {
			fw := a.frameworks[fid]
			if fw == nil || !fw.active || m.outstanding[fid] {
				continue
			}
			if until, ok := a.ioFilters[fid][agentID]; ok {
				if now.Before(until) {
					continue
				}
				delete(a.ioFilters[fid], agentID)
			}
			m.outstanding[fid] = true
			out = append(out, InverseOffer{FrameworkID: fid, AgentID: agentID, Unavailability: m.unavailability})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].FrameworkID < out[j].FrameworkID })
	return out
}

// InverseOfferStatuses are the frameworks' last answers per agent with an unavailability
// (getInverseOfferStatuses).
func (a *Allocator) InverseOfferStatuses(agentID string) []mesosalloc.InverseOfferStatus {
	m := a.maint[agentID]
	if m == nil {
		return nil
	}
	ids := make([]string, 0, len(m.statuses))
	for id := range m.statuses {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]mesosalloc.InverseOfferStatus, len(ids))
	for i, id := range ids {
		out[i] = m.statuses[id]
	}
	return out
}

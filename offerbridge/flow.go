package offerbridge

// OfferAction is what the framework should tell Mesos about offers.
type OfferAction int

const (
	// NoAction: keep the current state.
	NoAction OfferAction = iota
	// Revive: send REVIVE (clears refuse filters and un-suppresses the roles).
	Revive
	// Suppress: send SUPPRESS, so Mesos offers this framework's share to others until a Revive.
	Suppress
)

func (a OfferAction) String() string {
	switch a {
	case NoAction:
		return "none"
	case Revive:
		return "revive"
	case Suppress:
		return "suppress"
	}
	return "unknown"
}

// OfferFlow is the state DecideOffers looks at.
type OfferFlow struct {
	// Pending is the number of pods waiting for placement (not counting pods in back-off).
	Pending int
	// Suppressed is what the framework last told Mesos (SUPPRESS sent and no REVIVE since).
	Suppressed bool
	// NewPending is true when pods became pending since the last decision (created, or back-off over).
	NewPending bool
	// Filtered is true when offers were declined with a refuse filter since the last REVIVE, so some
	// agents will not be offered again until the filter expires.
	Filtered bool
}

// DecideOffers is the suppress/revive rule. Nothing pending: suppress, so the framework holds no offers it
// cannot use. Something pending while suppressed: revive. New pods while refuse filters are active:
// revive at once instead of waiting for the filters to expire — the earlier bridge waited out a fixed
// 5 s filter per offer cycle and a rolling update took 7–8 s to its first pod
// (mesosphere/kubernetes-mesos#624).
func DecideOffers(f OfferFlow) OfferAction {
	switch {
	case f.Pending <= 0:
		if f.Suppressed {
			return NoAction
		}
		return Suppress
	case f.Suppressed:
		return Revive
	case f.NewPending && f.Filtered:
		return Revive
	}
	return NoAction
}

package containerizer

import (
	"context"
	"errors"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func init() {
	Register("linux/capabilities", newLinuxCapabilities)
}

// linuxCapabilities is Mesos' linux/capabilities (isolators/linux/capabilities.cpp): a container's
// effective capabilities are its LinuxInfo's (effective_capabilities or the legacy capability_info), else
// the agent's --effective_capabilities; its bounding set is its LinuxInfo's bounding_capabilities (within
// the agent's --bounding_capabilities), else the agent's, else its effective set.
type linuxCapabilities struct {
	Base
	flags Flags
}

func newLinuxCapabilities(f Flags) (Isolator, error) {
	for _, names := range [][]string{f.EffectiveCapabilities, f.BoundingCapabilities} {
		if _, err := capSetOf(names); err != nil {
			return nil, err
		}
	}
	if f.EffectiveCapabilities != nil && f.BoundingCapabilities != nil {
		eff, _ := capSetOf(f.EffectiveCapabilities)
		bnd, _ := capSetOf(f.BoundingCapabilities)
		if eff&bnd != eff {
			return nil, errors.New("Allowed capabilities are not a subset of the bounding capabilites")
		}
	}
	return &linuxCapabilities{flags: f}, nil
}

func (*linuxCapabilities) Name() string { return "linux/capabilities" }

func capNames(ci *mesos.CapabilityInfo) []string {
	names := []string{}
	for _, c := range ci.GetCapabilities() {
		names = append(names, c.String())
	}
	return names
}

// stringifyCaps renders a set of capabilities as stout prints a std::set: "{ CHOWN, NET_ADMIN }".
func stringifyCaps(s capSet) string {
	var names []string
	for c := 0; c < 64; c++ {
		if s&(1<<uint(c)) != 0 {
			names = append(names, mesos.CapabilityInfo_Capability(1000+c).String())
		}
	}
	return "{ " + strings.Join(names, ", ") + " }"
}

func (l *linuxCapabilities) Prepare(_ context.Context, c *Container, li *LaunchInfo) error {
	effective, bounding := l.flags.EffectiveCapabilities, []string(nil)
	if linux := c.Info.GetLinuxInfo(); linux != nil {
		if linux.CapabilityInfo != nil && linux.EffectiveCapabilities != nil {
			return errors.New("Only one of 'capability_info' or 'effective_capabilities' is allowed")
		}
		if linux.CapabilityInfo != nil {
			effective = capNames(linux.CapabilityInfo)
		}
		if linux.EffectiveCapabilities != nil {
			effective = capNames(linux.EffectiveCapabilities)
		}
		if linux.BoundingCapabilities != nil {
			bounding = capNames(linux.BoundingCapabilities)
		}
	}
	if bounding != nil && l.flags.BoundingCapabilities != nil {
		requested, _ := capSetOf(bounding)
		allowed, _ := capSetOf(l.flags.BoundingCapabilities)
		if requested&allowed != requested {
			return errors.New("Bounding capabilities '" + stringifyCaps(requested) + "', but only '" +
				stringifyCaps(allowed) + "' are allowed")
		}
	}
	if bounding == nil {
		bounding = l.flags.BoundingCapabilities
	}
	if effective != nil && bounding == nil {
		bounding = effective
	}
	if effective != nil {
		requested, _ := capSetOf(effective)
		allowed, _ := capSetOf(bounding)
		if requested&allowed != requested {
			return errors.New("Requested capabilities '" + stringifyCaps(requested) + "', but only '" +
				stringifyCaps(allowed) + "' are allowed")
		}
	}
	if effective == nil && bounding == nil {
		return nil
	}
	li.EffectiveCapabilities = effective
	li.BoundingCapabilities = bounding
	return nil
}

package containerizer

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"golang.org/x/sys/unix"
)

// capSet is a set of capability numbers as a bit mask (the kernel's 64-bit v3 layout).
type capSet uint64

// capabilityNumber maps Mesos' CapabilityInfo name ("NET_ADMIN", or its enum value CapabilityInfo
// numbers as 1000 + the kernel's number) to the kernel's capability number.
func capabilityNumber(name string) (int, error) {
	v, ok := mesos.CapabilityInfo_Capability_value[strings.TrimPrefix(strings.ToUpper(name), "CAP_")]
	if !ok || v < 1000 {
		return 0, fmt.Errorf("Unknown capability '%s'", name)
	}
	return int(v) - 1000, nil
}

func capSetOf(names []string) (capSet, error) {
	var s capSet
	for _, n := range names {
		c, err := capabilityNumber(n)
		if err != nil {
			return 0, err
		}
		s |= 1 << uint(c)
	}
	return s, nil
}

func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 40
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 40
	}
	return n
}

type procCaps struct{ effective, permitted, inheritable capSet }

func getCaps() (procCaps, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return procCaps{}, err
	}
	join := func(lo, hi uint32) capSet { return capSet(lo) | capSet(hi)<<32 }
	return procCaps{
		effective:   join(data[0].Effective, data[1].Effective),
		permitted:   join(data[0].Permitted, data[1].Permitted),
		inheritable: join(data[0].Inheritable, data[1].Inheritable),
	}, nil
}

func setCaps(c procCaps) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(c.effective), Permitted: uint32(c.permitted), Inheritable: uint32(c.inheritable)},
		{Effective: uint32(c.effective >> 32), Permitted: uint32(c.permitted >> 32), Inheritable: uint32(c.inheritable >> 32)},
	}
	return unix.Capset(&hdr, &data[0])
}

// applyCapabilities is launch.cpp's calculateCapabilities and Capabilities::set for this thread:
// effective capabilities become every set (ambient, effective, permitted, inheritable, bounding);
// bounding capabilities, when given, replace the bounding set; the inheritable set is clipped to the
// bounding set. SETPCAP is first raised again (setuid cleared the effective set) so that the bounding
// set can be changed.
func applyCapabilities(li LaunchInfo) error {
	cur, err := getCaps()
	if err != nil {
		return fmt.Errorf("Failed to get capabilities for the current process: %v", err)
	}
	cur.effective |= 1 << unix.CAP_SETPCAP
	if err := setCaps(cur); err != nil {
		return fmt.Errorf("Failed to add SETPCAP to the effective set: %v", err)
	}
	last := lastCap()
	all := capSet(1)<<uint(last+1) - 1
	bounding, ambient := all, capSet(0)
	for c := 0; c <= last; c++ {
		if ok, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); ok != 1 {
			bounding &^= 1 << uint(c)
		}
	}
	if li.EffectiveCapabilities != nil {
		target, err := capSetOf(li.EffectiveCapabilities)
		if err != nil {
			return err
		}
		ambient, cur.effective, cur.permitted, cur.inheritable, bounding = target, target, target, target, target
	}
	if li.BoundingCapabilities != nil {
		if bounding, err = capSetOf(li.BoundingCapabilities); err != nil {
			return err
		}
	}
	cur.inheritable = bounding
	for c := 0; c <= last; c++ {
		if bounding&(1<<uint(c)) == 0 {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("dropping capability %d from the bounding set: %v", c, err)
			}
		}
	}
	if err := setCaps(cur); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing the ambient set: %v", err)
	}
	for c := 0; c <= last; c++ {
		if ambient&(1<<uint(c)) != 0 {
			if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
				return fmt.Errorf("raising capability %d in the ambient set: %v", c, err)
			}
		}
	}
	return nil
}

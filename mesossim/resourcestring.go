package mesossim

import (
	"fmt"
	"math"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// stringifyResources is Mesos' operator<< for Resources (src/common/resources.cpp), as its
// validation errors print them: "cpus(allocated: web):0.11; mem(allocated: web):104", "{}" when
// empty. Clients match these messages, so they must read as a real master's. Not reproduced: the
// "<count>" Mesos appends to a shared resource held more than once.
func stringifyResources(rs mesos.Resources) string {
	if len(rs) == 0 {
		return "{}"
	}
	parts := make([]string, len(rs))
	for i := range rs {
		parts[i] = stringifyResource(&rs[i])
	}
	return strings.Join(parts, "; ")
}

func stringifyResource(r *mesos.Resource) string {
	var b strings.Builder
	b.WriteString(r.Name)
	if r.AllocationInfo != nil {
		fmt.Fprintf(&b, "(allocated: %s)", r.AllocationInfo.GetRole())
	}
	if len(r.Reservations) > 0 {
		b.WriteString("(reservations: [")
		for i, res := range r.Reservations {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "(%s,%s", res.GetType().String(), res.GetRole())
			if res.Principal != nil {
				b.WriteString("," + res.GetPrincipal())
			}
			if res.Labels != nil {
				b.WriteString("," + stringifyLabels(res.Labels))
			}
			b.WriteString(")")
		}
		b.WriteString("])")
	}
	if r.Disk != nil {
		b.WriteString("[" + stringifyDisk(r.Disk) + "]")
	}
	if r.Revocable != nil {
		b.WriteString("{REV}")
	}
	if r.Shared != nil {
		b.WriteString("<SHARED>")
	}
	b.WriteString(":")
	switch r.GetType() {
	case mesos.SCALAR:
		b.WriteString(stringifyScalar(r.GetScalar().GetValue()))
	case mesos.RANGES:
		b.WriteString("[")
		for i, rg := range r.GetRanges().GetRange() {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d-%d", rg.Begin, rg.End)
		}
		b.WriteString("]")
	case mesos.SET:
		b.WriteString("{" + strings.Join(r.GetSet().GetItem(), ", ") + "}")
	}
	return b.String()
}

// stringifyScalar prints a scalar as Mesos does: rounded to its fixed three decimals, then with a
// double's 15 significant digits ("0.11", "104", "1.5").
func stringifyScalar(v float64) string {
	return fmt.Sprintf("%.15g", math.Round(v*1000)/1000)
}

func stringifyLabels(l *mesos.Labels) string {
	parts := make([]string, len(l.Labels))
	for i, label := range l.Labels {
		parts[i] = label.Key
		if label.Value != nil {
			parts[i] += ": " + label.GetValue()
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func stringifyDisk(d *mesos.Resource_DiskInfo) string {
	var b strings.Builder
	if s := d.Source; s != nil {
		csi, hasCSI := "", s.ID != nil || s.Profile != nil
		if hasCSI {
			csi = "(" + s.GetVendor() + "," + s.GetID() + "," + s.GetProfile() + ")"
		}
		// A MOUNT or PATH source without CSI identity prints its root.
		rooted := func(kind string, root *string) {
			b.WriteString(kind)
			if hasCSI {
				b.WriteString(csi)
			} else if root != nil {
				b.WriteString(":" + *root)
			}
		}
		switch s.GetType() {
		case mesos.Resource_DiskInfo_Source_MOUNT:
			rooted("MOUNT", s.GetMount().Root)
		case mesos.Resource_DiskInfo_Source_PATH:
			rooted("PATH", s.GetPath().Root)
		case mesos.Resource_DiskInfo_Source_BLOCK:
			b.WriteString("BLOCK" + csi)
		case mesos.Resource_DiskInfo_Source_RAW:
			b.WriteString("RAW" + csi)
		default:
			b.WriteString("UNKNOWN")
		}
	}
	if d.Persistence != nil {
		if d.Source != nil {
			b.WriteString(",")
		}
		b.WriteString(d.Persistence.GetID())
	}
	if v := d.Volume; v != nil {
		cfg := v.GetContainerPath()
		if v.HostPath != nil {
			cfg = v.GetHostPath() + ":" + cfg
			if v.Mode != nil {
				cfg += map[mesos.Volume_Mode]string{mesos.RW: ":rw", mesos.RO: ":ro"}[*v.Mode]
			}
		}
		b.WriteString(":" + cfg)
	}
	return b.String()
}

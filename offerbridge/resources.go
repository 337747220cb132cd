package offerbridge

import (
	"math"
	"sort"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Scalar dimensions placement knows about, in the order their checkers run.
const (
	dimCPU = iota
	dimMem
	dimDisk
	dimGPU
	numDims
)

// Mesos resource names (apache/mesos docs/attributes-resources.md).
var dimNames = [numDims]string{dimCPU: "cpus", dimMem: "mem", dimDisk: "disk", dimGPU: "gpus"}

const portsName = "ports"

// milli converts a Mesos scalar to thousandths. Mesos itself keeps scalars as fixed point with three
// decimals, so integer arithmetic on thousandths never drifts the way float sums do.
func milli(v float64) int64 {
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	return int64(math.Round(v * 1000))
}

func fromMilli(m int64) float64 { return float64(m) / 1000 }

// scalarPool is one offered scalar resource (one name, one reservation, one allocation role) and how much
// of it is still free in this plan.
type scalarPool struct {
	tmpl *mesos.Resource
	free int64
}

// portPool is one offered ports resource and its still-free ranges (sorted, squashed).
type portPool struct {
	tmpl *mesos.Resource
	free mesos.Ranges
}

// bucket is what one agent offers to one allocation role: the unit one ACCEPT can use.
type bucket struct {
	role     string
	offerIDs []mesos.OfferID
	pools    [numDims][]scalarPool
	free     [numDims]int64
	ports    []portPool
	launch   int // index into Plan.Launches, -1 while unused
	// returning is true for what an agent will offer again (Input.Returning): it has no offers, and
	// a pod placed on it waits.
	returning bool
}

// usable reports whether placement may carve from r: plain scalar or ranges resources only. Revocable
// resources may vanish at any time and must not be mixed with non-revocable ones of the same name;
// shared resources and disks with DiskInfo (persistent volumes, MOUNT/PATH disks) need a volume the pod
// cannot express.
func usable(r *mesos.Resource) bool {
	return r.Revocable == nil && r.Shared == nil && r.Disk == nil
}

// reserved reports whether r is reserved (statically or dynamically) rather than unreserved ("*").
func reserved(r *mesos.Resource) bool {
	if len(r.Reservations) > 0 || r.Reservation != nil {
		return true
	}
	return r.Role != nil && *r.Role != mesos.DefaultRole
}

// add puts one offered resource into the bucket.
func (b *bucket) add(r *mesos.Resource) {
	if !usable(r) {
		return
	}
	switch r.GetType() {
	case mesos.SCALAR:
		for d, name := range dimNames {
			if r.Name == name {
				v := milli(r.GetScalar().GetValue())
				if v > 0 {
					b.pools[d] = append(b.pools[d], scalarPool{tmpl: r, free: v})
					b.free[d] += v
				}
				return
			}
		}
	case mesos.RANGES:
		if r.Name != portsName {
			return
		}
		rs := make(mesos.Ranges, 0, len(r.GetRanges().GetRange()))
		for _, x := range r.GetRanges().GetRange() {
			if x.Begin > x.End {
				x.Begin, x.End = x.End, x.Begin
			}
			rs = append(rs, x)
		}
		if len(rs) > 0 {
			b.ports = append(b.ports, portPool{tmpl: r, free: rs.Sort().Squash()})
		}
	}
}

// order sorts pools so that reserved resources of the role are carved before unreserved ones (the
// reservation exists for this framework; unreserved resources stay available to others), keeping the
// offers' order otherwise.
func (b *bucket) order() {
	for d := range b.pools {
		sort.SliceStable(b.pools[d], func(i, j int) bool {
			return reserved(b.pools[d][i].tmpl) && !reserved(b.pools[d][j].tmpl)
		})
	}
	sort.SliceStable(b.ports, func(i, j int) bool {
		return reserved(b.ports[i].tmpl) && !reserved(b.ports[j].tmpl)
	})
}

// portsFree reports whether every port is free in the bucket.
func (b *bucket) portsFree(ports []uint64) bool {
	for _, p := range ports {
		if b.portPool(p) < 0 {
			return false
		}
	}
	return true
}

func (b *bucket) portPool(p uint64) int {
	for i := range b.ports {
		if b.ports[i].free.Search(p) >= 0 {
			return i
		}
	}
	return -1
}

// carve takes need out of the bucket and returns it as Mesos resources copied from the offered ones
// (name, role, reservations, allocation_info), with the actual port numbers. The caller has checked
// that need fits.
func (b *bucket) carve(need *need) mesos.Resources {
	var out mesos.Resources
	for d := range need.scalar {
		rem := need.scalar[d]
		for i := range b.pools[d] {
			if rem == 0 {
				break
			}
			p := &b.pools[d][i]
			take := min(rem, p.free)
			if take == 0 {
				continue
			}
			p.free -= take
			rem -= take
			out = append(out, derive(p.tmpl, &mesos.Value_Scalar{Value: fromMilli(take)}, nil))
		}
		b.free[d] -= need.scalar[d] - rem
	}
	if len(need.ports) > 0 {
		taken := make([]mesos.Ranges, len(b.ports))
		for _, port := range need.ports {
			i := b.portPool(port)
			if i < 0 {
				continue // not reachable after a successful check
			}
			b.ports[i].free, _ = b.ports[i].free.Partition(port)
			taken[i] = append(taken[i], mesos.Value_Range{Begin: port, End: port})
		}
		for i, rs := range taken {
			if len(rs) > 0 {
				out = append(out, derive(b.ports[i].tmpl, nil, &mesos.Value_Ranges{Range: rs.Sort().Squash()}))
			}
		}
	}
	return out
}

// derive copies the identity of an offered resource (name, type, role, reservations, allocation_info,
// provider) with a new value. Nested messages are copied so the result shares nothing mutable with the
// offer.
func derive(t *mesos.Resource, s *mesos.Value_Scalar, r *mesos.Value_Ranges) mesos.Resource {
	out := mesos.Resource{Name: t.Name, Type: t.Type, Scalar: s, Ranges: r}
	if t.Role != nil {
		role := *t.Role
		out.Role = &role
	}
	if t.AllocationInfo != nil {
		ai := mesos.Resource_AllocationInfo{}
		if t.AllocationInfo.Role != nil {
			role := *t.AllocationInfo.Role
			ai.Role = &role
		}
		out.AllocationInfo = &ai
	}
	if t.Reservation != nil {
		out.Reservation = proto.Clone(t.Reservation).(*mesos.Resource_ReservationInfo)
	}
	if len(t.Reservations) > 0 {
		out.Reservations = make([]mesos.Resource_ReservationInfo, len(t.Reservations))
		for i := range t.Reservations {
			out.Reservations[i] = *proto.Clone(&t.Reservations[i]).(*mesos.Resource_ReservationInfo)
		}
	}
	if t.ProviderID != nil {
		out.ProviderID = &mesos.ResourceProviderID{Value: t.ProviderID.Value}
	}
	return out
}

package mesossim

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Resources print as Mesos' operator<< prints them in its validation errors.
func TestStringifyResources(t *testing.T) {
	str := func(s string) *string { return &s }
	role := "web"
	alloc := &mesos.Resource_AllocationInfo{Role: &role}
	scalar := func(name string, v float64) mesos.Resource {
		return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}, AllocationInfo: alloc}
	}
	rw := mesos.RW
	for _, tc := range []struct {
		name string
		rs   mesos.Resources
		want string
	}{
		{"empty", nil, "{}"},
		{"scalars", mesos.Resources{scalar("cpus", 0.11), scalar("mem", 104)}, "cpus(allocated: web):0.11; mem(allocated: web):104"},
		{"scalar rounded to Mesos' fixed point", mesos.Resources{{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.1 + 0.2}}}, "cpus:0.3"},
		{"ranges", mesos.Resources{{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 31000, End: 31001}, {Begin: 31005, End: 32000}}}}},
			"ports:[31000-31001, 31005-32000]"},
		{"set", mesos.Resources{{Name: "gpus_ids", Type: mesos.SET.Enum(), Set: &mesos.Value_Set{Item: []string{"a", "b"}}}}, "gpus_ids:{a, b}"},
		{"reserved persistent volume, revocable", mesos.Resources{{
			Name: "disk", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 64},
			Reservations: []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_DYNAMIC.Enum(), Role: str("web"), Principal: str("ops"),
				Labels: &mesos.Labels{Labels: []mesos.Label{{Key: "k", Value: str("v")}, {Key: "flag"}}}}},
			Disk: &mesos.Resource_DiskInfo{Persistence: &mesos.Resource_DiskInfo_Persistence{ID: "vol-1"},
				Volume: &mesos.Volume{ContainerPath: "data", HostPath: str("/srv/data"), Mode: &rw}},
			Revocable: &mesos.Resource_RevocableInfo{},
		}}, "disk(reservations: [(DYNAMIC,web,ops,{k: v, flag})])[vol-1:/srv/data:data:rw]{REV}:64"},
		{"mount disk", mesos.Resources{{Name: "disk", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1024},
			Disk: &mesos.Resource_DiskInfo{Source: &mesos.Resource_DiskInfo_Source{Type: mesos.Resource_DiskInfo_Source_MOUNT,
				Mount: &mesos.Resource_DiskInfo_Source_Mount{Root: str("/mnt/d1")}}}}}, "disk[MOUNT:/mnt/d1]:1024"},
	} {
		if got := stringifyResources(tc.rs); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

package agent

import (
	"context"
	"math"
	"net/http"
	"os"
	"reflect"
	"sync"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

func scalars(kv ...any) []mesos.Resource {
	var out []mesos.Resource
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, mesos.Resource{Name: kv[i].(string), Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: kv[i+1].(float64)}})
	}
	return out
}

// Slave::computeExecutorLimits: a limit only when a task has one; the executor's request and the
// requests of tasks without a limit are added; cpus requests only with --cgroups_enable_cfs; an
// infinite limit stays infinite.
func TestComputeExecutorLimits(t *testing.T) {
	executor := scalars("cpus", 0.1, "mem", 32.0)
	task := func(res []mesos.Resource, limits map[string]float64) mesos.TaskInfo {
		ti := mesos.TaskInfo{Resources: res}
		if limits != nil {
			ti.Limits = map[string]mesos.Value_Scalar{}
			for k, v := range limits {
				ti.Limits[k] = mesos.Value_Scalar{Value: v}
			}
		}
		return ti
	}
	for _, tc := range []struct {
		name  string
		tasks []mesos.TaskInfo
		cfs   bool
		want  map[string]float64
	}{
		{"no limits", []mesos.TaskInfo{task(scalars("cpus", 1.0, "mem", 64.0), nil)}, true, nil},
		{"one task's limits", []mesos.TaskInfo{task(scalars("cpus", 0.5, "mem", 64.0), map[string]float64{"cpus": 1, "mem": 128})}, false,
			map[string]float64{"cpus": 1.1, "mem": 160}},
		{"requests of unlimited tasks, cfs", []mesos.TaskInfo{
			task(scalars("cpus", 0.5, "mem", 64.0), map[string]float64{"cpus": 1, "mem": 128}),
			task(scalars("cpus", 0.25, "mem", 16.0), nil)}, true,
			map[string]float64{"cpus": 1.35, "mem": 176}},
		{"requests of unlimited tasks, no cfs: no cpu limit", []mesos.TaskInfo{
			task(scalars("cpus", 0.5, "mem", 64.0), map[string]float64{"cpus": 1}),
			task(scalars("cpus", 0.25, "mem", 16.0), nil)}, false,
			nil},
		{"infinite", []mesos.TaskInfo{task(scalars("mem", 64.0), map[string]float64{"mem": math.Inf(1)})}, false,
			map[string]float64{"mem": math.Inf(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]float64{}
			for k, v := range computeExecutorLimits(executor, tc.tasks, tc.cfs) {
				got[k] = math.Round(v.Value*1000) / 1000
			}
			want := tc.want
			if want == nil {
				want = map[string]float64{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("limits %v, want %v", got, want)
			}
		})
	}
}

// recorder is an isolator that records the resources and limits of the containers it prepares.
type resourceRecorder struct {
	containerizer.Base
	mu   sync.Mutex
	seen map[string][2]any
}

func (r *resourceRecorder) Name() string { return "test/resources" }
func (r *resourceRecorder) Prepare(_ context.Context, c *containerizer.Container, _ *containerizer.LaunchInfo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[c.ID.Value] = [2]any{c.Resources, c.Limits}
	return nil
}

var recorder = &resourceRecorder{seen: map[string][2]any{}}

func init() {
	containerizer.Register("test/resources", func(containerizer.Flags) (containerizer.Isolator, error) { return recorder, nil })
}

// LAUNCH_CONTAINER's resources and limits reach the isolators (cgroups/cpu and cgroups/mem apply them
// to a nested container with its own cgroups); LAUNCH_NESTED_CONTAINER has none.
func TestLaunchContainerResourcesReachTheIsolators(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	f := newNestedFixtureWith(t, func(c *Config) { c.Isolation = "filesystem/linux,test/resources" })
	if !f.a.Isolating() {
		t.Fatal("not isolating")
	}
	res := scalars("cpus", 0.1, "mem", 32.0)
	limits := map[string]mesos.Value_Scalar{"mem": {Value: 32}}
	call := agentcalls.LaunchContainer(f.child("limited"), shell("true"), nil, res)
	call.LaunchContainer.Limits = limits
	if code, body := postCall(t, f.a, call); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER: %d %s", code, body)
	}
	if code, body := postCall(t, f.a, agentcalls.LaunchNestedContainer(f.child("plain"), shell("true"), nil)); code != http.StatusOK {
		t.Fatalf("LAUNCH_NESTED_CONTAINER: %d %s", code, body)
	}
	recorder.mu.Lock()
	defer recorder.mu.Unlock()
	if got := recorder.seen["limited"]; !reflect.DeepEqual(got[0], res) || !reflect.DeepEqual(got[1], limits) {
		t.Errorf("LAUNCH_CONTAINER's container had resources %v limits %v, want %v %v", got[0], got[1], res, limits)
	}
	if got := recorder.seen["plain"]; got[0].([]mesos.Resource) != nil || got[1].(map[string]mesos.Value_Scalar) != nil {
		t.Errorf("LAUNCH_NESTED_CONTAINER's container had resources %v limits %v", got[0], got[1])
	}
}

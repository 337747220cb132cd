package nested

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os/user"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/executor/podworker"
)

// fakeUsers is an agent host's user database: app (1000, groups 1000 and 50), root, and the
// executor running as root.
type fakeUsers struct{}

func (fakeUsers) LookupUID(uid int64) (*HostUser, error) {
	switch uid {
	case 0:
		return &HostUser{Name: "root", UID: 0, GID: 0, Groups: []int64{0}}, nil
	case 1000:
		return &HostUser{Name: "app", UID: 1000, GID: 1000, Groups: []int64{1000, 50}}, nil
	}
	return nil, user.UnknownUserIdError(uid)
}

func (fakeUsers) Current() (*HostUser, error) {
	return &HostUser{Name: "root", UID: 0, GID: 0, Groups: []int64{0}}, nil
}

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func scalarRes(cpus, mem float64) []mesos.Resource {
	return []mesos.Resource{
		{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: cpus}},
		{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: mem}},
	}
}

func limitsOf(cpus, mem float64) map[string]mesos.Value_Scalar {
	return map[string]mesos.Value_Scalar{"cpus": {Value: cpus}, "mem": {Value: mem}}
}

var inf = math.Inf(1)

func TestResources(t *testing.T) {
	tests := []struct {
		name       string
		req, lim   corev1.ResourceList
		wantRes    []mesos.Resource
		wantLimits map[string]mesos.Value_Scalar
	}{
		{"none: the minimum, unbounded", nil, nil, scalarRes(0.001, 32), limitsOf(inf, inf)},
		{"requests only: no limit is infinity", rl("cpu", "250m", "memory", "64Mi"), nil, scalarRes(0.25, 64), limitsOf(inf, inf)},
		{"limits only: requests default to them", nil, rl("cpu", "2", "memory", "32Mi"), scalarRes(2, 32), limitsOf(2, 32)},
		{"both", rl("cpu", "100m", "memory", "100Mi"), rl("cpu", "500m", "memory", "200Mi"), scalarRes(0.1, 100), limitsOf(0.5, 200)},
		{"decimal memory rounds up to whole MB", rl("memory", "100M"), rl("memory", "1G"), scalarRes(0.001, 96), limitsOf(inf, 954)},
		{"cpu only", rl("cpu", "1"), rl("cpu", "1"), scalarRes(1, 32), limitsOf(1, inf)},
		{"memory limit, cpu request", rl("cpu", "10m"), rl("memory", "1Gi"), scalarRes(0.01, 1024), limitsOf(inf, 1024)},
		{"zero request is none", rl("cpu", "0", "memory", "0"), nil, scalarRes(0.001, 32), limitsOf(inf, inf)},
		{"other resources are not sent", rl("ephemeral-storage", "1Gi"), rl("nvidia.com/gpu", "1"), scalarRes(0.001, 32), limitsOf(inf, inf)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Requests: tt.req, Limits: tt.lim}}
			res, lim := Resources(c)
			if diff := cmp.Diff(tt.wantRes, res); diff != "" {
				t.Errorf("resources (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLimits, lim); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
		})
	}
}

func i64(v int64) *int64 { return &v }

func strPtr(s string) *string { return &s }

func TestRunAs(t *testing.T) {
	pod := func(psc *corev1.PodSecurityContext) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{SecurityContext: psc}}
	}
	tests := []struct {
		name     string
		pod      *corev1.Pod
		sc       *corev1.SecurityContext
		wantName string
		wantUID  int64
		wantErr  string
	}{
		{"nothing: the executor's user", pod(nil), nil, "", 0, ""},
		{"pod runAsUser", pod(&corev1.PodSecurityContext{RunAsUser: i64(1000)}), nil, "app", 1000, ""},
		{"container overrides pod", pod(&corev1.PodSecurityContext{RunAsUser: i64(1000)}), &corev1.SecurityContext{RunAsUser: i64(0)}, "root", 0, ""},
		{"no such host user", pod(nil), &corev1.SecurityContext{RunAsUser: i64(4242)}, "", 0,
			"runAsUser 4242 of container c: the agent host has no user with uid 4242; Mesos runs a container as a user NAME of the agent host (CommandInfo.user), so the host needs a user with that uid"},
		{"runAsGroup as Mesos gives it", pod(&corev1.PodSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(1000)}), nil, "app", 1000, ""},
		{"runAsGroup Mesos cannot give", pod(&corev1.PodSecurityContext{RunAsUser: i64(1000)}), &corev1.SecurityContext{RunAsGroup: i64(3000)}, "", 0,
			`runAsGroup 3000 of container c cannot be applied: Mesos runs the container with the primary group of user "app" (uid 1000) of the agent host, gid 1000, and has no field for a group`},
		{"runAsGroup without runAsUser: the executor's", pod(&corev1.PodSecurityContext{RunAsGroup: i64(5)}), nil, "", 0,
			`runAsGroup 5 of container c cannot be applied: Mesos runs the container with the primary group of user "root" (uid 0) of the agent host, gid 0, and has no field for a group`},
		{"supplementalGroups among the user's", pod(&corev1.PodSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{50, 1000}, FSGroup: i64(50)}), nil, "app", 1000, ""},
		{"supplementalGroups beyond the user's", pod(&corev1.PodSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{50, 7}}), nil, "", 0,
			`supplementalGroups of pod p: group 7 cannot be added to container c: Mesos gives it the groups of user "app" (uid 1000) of the agent host, [1000 50], and has no field for more`},
		{"fsGroup beyond the user's", pod(&corev1.PodSecurityContext{RunAsUser: i64(1000), FSGroup: i64(2000)}), nil, "", 0,
			`fsGroup 2000 of pod p cannot be added to container c: Mesos gives it the groups of user "app" (uid 1000) of the agent host, [1000 50], and has no field for more`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, uid, err := RunAs(tt.pod, &corev1.Container{Name: "c", SecurityContext: tt.sc}, fakeUsers{})
			if tt.wantErr != "" {
				var ce *podworker.CreateError
				if !errors.As(err, &ce) || ce.Reason != podworker.ReasonCreateContainerConfigError || ce.Message != tt.wantErr {
					t.Fatalf("RunAs = %v, want CreateContainerConfigError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || name != tt.wantName || uid != tt.wantUID {
				t.Errorf("RunAs = %q, %d, %v; want %q, %d", name, uid, err, tt.wantName, tt.wantUID)
			}
		})
	}
}

func caps(names ...string) []mesos.CapabilityInfo_Capability {
	var out []mesos.CapabilityInfo_Capability
	for _, n := range names {
		out = append(out, mesos.CapabilityInfo_Capability(mesos.CapabilityInfo_Capability_value[n]))
	}
	return out
}

// The runtime's 14 default capabilities in Mesos' enum order.
var defaultCaps = caps("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
	"NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP")

// A privileged container's capabilities are those of Mesos' enum in the bounding set; bits of
// capabilities the enum lacks (PERFMON 38, BPF 39, CHECKPOINT_RESTORE 40) are no names.
func TestPrivilegedCapabilities(t *testing.T) {
	all := allCaps()
	without := func(drop ...mesos.CapabilityInfo_Capability) []mesos.CapabilityInfo_Capability {
		var out []mesos.CapabilityInfo_Capability
		for _, c := range all {
			if !slices.Contains(drop, c) {
				out = append(out, c)
			}
		}
		return out
	}
	var defMask uint64
	for _, c := range defaultCaps {
		defMask |= 1 << uint(c-1000)
	}
	tests := []struct {
		name string
		bnd  uint64
		want []mesos.CapabilityInfo_Capability
	}{
		{"a full bounding set of kernel 5.9+ (cap_last_cap 40)", 0x1ffffffffff, all},
		{"this CI host's: no SYS_RESOURCE (24)", 0x1fffeffffff, without(mesos.CapabilityInfo_SYS_RESOURCE)},
		{"no SYS_ADMIN (21), no SYS_MODULE (16)", 0x3fffffffff &^ (1<<21 | 1<<16), without(mesos.CapabilityInfo_SYS_ADMIN, mesos.CapabilityInfo_SYS_MODULE)},
		{"the runtime's default set", defMask, defaultCaps},
		{"only capabilities newer than the enum", 0x1c000000000, nil},
		{"none", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PrivilegedCapabilities(tt.bnd); !slices.Equal(got, tt.want) {
				t.Errorf("PrivilegedCapabilities(%#x) = %v, want %v", tt.bnd, got, tt.want)
			}
		})
	}
}

func allCaps() []mesos.CapabilityInfo_Capability {
	return caps("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
		"LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
		"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
		"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
		"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ")
}

func TestParseCapBnd(t *testing.T) {
	status := "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n"
	if got, err := parseCapBnd([]byte(status)); err != nil || got != 0x1fffeffffff {
		t.Errorf("parseCapBnd = %#x, %v; want 0x1fffeffffff", got, err)
	}
	for _, bad := range []string{"Name:\tcat\nCapEff:\t0000000000000000\n", "CapBnd:\tzz\n"} {
		if got, err := parseCapBnd([]byte(bad)); err == nil {
			t.Errorf("parseCapBnd(%q) = %#x, want an error", bad, got)
		}
	}
}

func TestCapabilitySet(t *testing.T) {
	yes := true
	add := func(add []corev1.Capability, drop ...corev1.Capability) *corev1.SecurityContext {
		return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: add, Drop: drop}}
	}
	all := caps("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
		"LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
		"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
		"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
		"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ")
	tests := []struct {
		name    string
		sc      *corev1.SecurityContext
		want    []mesos.CapabilityInfo_Capability
		wantErr string
	}{
		{"no security context: the runtime's defaults", nil, defaultCaps, ""},
		{"add and drop", add([]corev1.Capability{"NET_ADMIN", "CAP_SYS_TIME"}, "KILL", "cap_chown", "MKNOD"),
			caps("DAC_OVERRIDE", "FOWNER", "FSETID", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "NET_ADMIN", "NET_RAW",
				"SYS_CHROOT", "SYS_TIME", "AUDIT_WRITE", "SETFCAP"), ""},
		{"drop ALL then add", add([]corev1.Capability{"NET_BIND_SERVICE"}, "ALL"), caps("NET_BIND_SERVICE"), ""},
		{"drop ALL", add(nil, "ALL"), nil, ""},
		{"add ALL then drop", add([]corev1.Capability{"ALL"}, "SYS_ADMIN"), func() []mesos.CapabilityInfo_Capability {
			var out []mesos.CapabilityInfo_Capability
			for _, c := range all {
				if c != mesos.CapabilityInfo_SYS_ADMIN {
					out = append(out, c)
				}
			}
			return out
		}(), ""},
		{"add ALL and drop ALL: none, then the named adds", add([]corev1.Capability{"ALL", "KILL"}, "all"), caps("KILL"), ""},
		{"privileged: every one the executor's bounding set holds, add/drop ignored", &corev1.SecurityContext{Privileged: &yes, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			func() []mesos.CapabilityInfo_Capability {
				var out []mesos.CapabilityInfo_Capability
				for _, c := range all {
					if in, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c-1000), 0, 0, 0); in == 1 {
						out = append(out, c)
					}
				}
				return out
			}(), ""},
		{"unknown name", add([]corev1.Capability{"NET_FLY"}), nil, `container c: unknown capability "NET_FLY" (Mesos' CapabilityInfo names, with or without CAP_)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CapabilitySet(&corev1.Container{Name: "c", SecurityContext: tt.sc})
			if tt.wantErr != "" {
				var ce *podworker.CreateError
				if !errors.As(err, &ce) || ce.Reason != podworker.ReasonCreateContainerConfigError || ce.Message != tt.wantErr {
					t.Fatalf("CapabilitySet = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("capabilities (-want +got):\n%s", diff)
			}
		})
	}
}

// captureAgent records the LAUNCH_CONTAINER calls it receives and answers with status and body.
type captureAgent struct {
	mu       sync.Mutex
	calls    []agent.Call_LaunchContainer
	sessions []agent.Call_LaunchNestedContainerSession
	status   int
	body     string
}

func (f *captureAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var call agent.Call
	if err := call.Unmarshal(b); err != nil {
		http.Error(w, "unexpected call", http.StatusBadRequest)
		return
	}
	switch call.GetType() {
	case agent.Call_WAIT_CONTAINER:
		zero := int32(0)
		out, _ := (&agent.Response{Type: agent.Response_WAIT_CONTAINER, WaitContainer: &agent.Response_WaitContainer{ExitStatus: &zero}}).Marshal()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
		return
	case agent.Call_KILL_CONTAINER, agent.Call_REMOVE_CONTAINER:
		return
	case agent.Call_LAUNCH_NESTED_CONTAINER_SESSION:
		f.mu.Lock()
		f.sessions = append(f.sessions, *call.LaunchNestedContainerSession)
		f.mu.Unlock()
		http.Error(w, "sessions are only recorded", http.StatusInternalServerError)
		return
	case agent.Call_LAUNCH_CONTAINER:
	default:
		http.Error(w, "unexpected call", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, *call.LaunchContainer)
	status, body := f.status, f.body
	f.mu.Unlock()
	if status != 0 {
		http.Error(w, body, status)
	}
}

// The LAUNCH_CONTAINER the runtime sends pins every isolation field: the resources and limits, the
// user by name, and the LinuxInfo (own cgroups, capabilities).
func TestStartSendsIsolation(t *testing.T) {
	yes, no := true, false
	root := func(c []mesos.CapabilityInfo_Capability) *mesos.LinuxInfo {
		return &mesos.LinuxInfo{ShareCgroups: &no, BoundingCapabilities: &mesos.CapabilityInfo{Capabilities: c}, EffectiveCapabilities: &mesos.CapabilityInfo{Capabilities: c}}
	}
	tests := []struct {
		name       string
		psc        *corev1.PodSecurityContext
		c          corev1.Container
		wantUser   *string
		wantLinux  *mesos.LinuxInfo
		wantRes    []mesos.Resource
		wantLimits map[string]mesos.Value_Scalar
	}{
		{"best effort, no security context", nil, corev1.Container{Name: "main", Command: []string{"true"}},
			nil, root(defaultCaps), scalarRes(0.001, 32), limitsOf(inf, inf)},
		{"guaranteed init-like container as root with an added capability", nil, corev1.Container{Name: "init", Command: []string{"true"},
			Resources:       corev1.ResourceRequirements{Limits: rl("cpu", "500m", "memory", "32Mi")},
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}}}},
			nil, root(caps("NET_ADMIN")), scalarRes(0.5, 32), limitsOf(0.5, 32)},
		{"runAsUser 1000: by name, bounding only", &corev1.PodSecurityContext{RunAsUser: i64(1000)}, corev1.Container{Name: "main", Command: []string{"id"},
			Resources:       corev1.ResourceRequirements{Requests: rl("memory", "64Mi")},
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}},
			strPtr("app"), &mesos.LinuxInfo{ShareCgroups: &no, EffectiveCapabilities: &mesos.CapabilityInfo{},
				BoundingCapabilities: &mesos.CapabilityInfo{Capabilities: caps("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
					"NET_BIND_SERVICE", "NET_ADMIN", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP")}},
			scalarRes(0.001, 64), limitsOf(inf, inf)},
		{"container runAsUser 0 over the pod's", &corev1.PodSecurityContext{RunAsUser: i64(1000)}, corev1.Container{Name: "main", Command: []string{"id"},
			SecurityContext: &corev1.SecurityContext{RunAsUser: i64(0)}},
			strPtr("root"), root(defaultCaps), scalarRes(0.001, 32), limitsOf(inf, inf)},
		{"privileged: every capability, no seccomp filter", nil, corev1.Container{Name: "main", Command: []string{"true"},
			SecurityContext: &corev1.SecurityContext{Privileged: &yes}},
			nil, func() *mesos.LinuxInfo {
				all, _ := CapabilitySet(&corev1.Container{SecurityContext: &corev1.SecurityContext{Privileged: &yes}})
				li := root(all)
				li.Seccomp = &mesos.SeccompInfo{Unconfined: &yes}
				return li
			}(), scalarRes(0.001, 32), limitsOf(inf, inf)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := &captureAgent{}
			srv := httptest.NewServer(fa)
			defer srv.Close()
			r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Users: fakeUsers{}})
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid"}, Spec: corev1.PodSpec{SecurityContext: tt.psc, Containers: []corev1.Container{tt.c}}}
			ready(t, r, pod)
			if _, err := r.Start(context.Background(), pod, &pod.Spec.Containers[0], 0); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if len(fa.calls) != 1 {
				t.Fatalf("%d LAUNCH_CONTAINER calls", len(fa.calls))
			}
			got := fa.calls[0]
			if diff := cmp.Diff(tt.wantUser, got.Command.User); diff != "" {
				t.Errorf("CommandInfo.user (-want +got):\n%s", diff)
			}
			if got.Container == nil || got.Container.GetType() != mesos.ContainerInfo_MESOS {
				t.Fatalf("container info %v", got.Container)
			}
			if diff := cmp.Diff(tt.wantLinux, got.Container.LinuxInfo); diff != "" {
				t.Errorf("LinuxInfo (-want +got):\n%s", diff)
			}
			// Nested one level under its parent, the container has its own cgroups.
			if diff := cmp.Diff(tt.wantRes, got.Resources); diff != "" {
				t.Errorf("resources (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLimits, got.Limits); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
			if got.ContainerID.GetParent().GetValue() != "executor" || got.ContainerID.GetParent().GetParent() != nil {
				t.Errorf("container ID %v, want a child of the executor's container", got.ContainerID)
			}
		})
	}
}

// What cannot be launched is the container's waiting reason: refusals before the call
// (CreateContainerConfigError, no call sent) and the agent's (CreateContainerError with its text).
func TestStartRefusals(t *testing.T) {
	yes := true
	refusal := "Bounding capabilities '{ CHOWN, SYS_ADMIN }', but only '{ CHOWN }' are allowed"
	tests := []struct {
		name        string
		psc         *corev1.PodSecurityContext
		sc          *corev1.SecurityContext
		agentStatus int
		wantReason  string
		wantMessage string
		wantCalls   int
	}{
		{"runAsNonRoot with runAsUser 0", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, &corev1.SecurityContext{RunAsUser: i64(0)}, 0,
			podworker.ReasonCreateContainerConfigError, `container's runAsUser breaks non-root policy (pod: "p_ns(uid)", container: main)`, 0},
		{"unknown uid", nil, &corev1.SecurityContext{RunAsUser: i64(4242)}, 0, podworker.ReasonCreateContainerConfigError,
			"runAsUser 4242 of container main: the agent host has no user with uid 4242; Mesos runs a container as a user NAME of the agent host (CommandInfo.user), so the host needs a user with that uid", 0},
		{"capabilities outside the agent's bounding set", nil, &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}},
			http.StatusBadRequest, podworker.ReasonCreateContainerError, "the Mesos agent refused the container: " + refusal, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := &captureAgent{status: tt.agentStatus, body: refusal}
			srv := httptest.NewServer(fa)
			defer srv.Close()
			r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Users: fakeUsers{}})
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid"}, Spec: corev1.PodSpec{SecurityContext: tt.psc,
				Containers: []corev1.Container{{Name: "main", Command: []string{"true"}, SecurityContext: tt.sc}}}}
			ready(t, r, pod)
			_, err := r.Start(context.Background(), pod, &pod.Spec.Containers[0], 0)
			var ce *podworker.CreateError
			if !errors.As(err, &ce) || ce.Reason != tt.wantReason || strings.TrimSpace(ce.Message) != tt.wantMessage {
				t.Fatalf("Start = %v, want %s %q", err, tt.wantReason, tt.wantMessage)
			}
			if len(fa.calls) != tt.wantCalls {
				t.Errorf("%d LAUNCH_CONTAINER calls, want %d", len(fa.calls), tt.wantCalls)
			}
		})
	}
}

// An exec (probes, hooks) is a session (a DEBUG container, the only kind that enters the container's
// filesystem) with its container's capabilities: without them Mesos would give it the agent's
// default set, every capability for root.
func TestExecGetsTheContainersCapabilities(t *testing.T) {
	fa := &captureAgent{}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Users: fakeUsers{}})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "main", Command: []string{"sleep", "1"},
		SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"KILL"}}},
	}}}}
	ready(t, r, pod)
	h, err := r.Start(context.Background(), pod, &pod.Spec.Containers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	// The fake agent refuses the session after recording it.
	_, _ = r.Exec(context.Background(), h, []string{"true"}, nil, nil)
	if len(fa.calls) != 1 || len(fa.sessions) != 1 {
		t.Fatalf("%d LAUNCH_CONTAINER and %d LAUNCH_NESTED_CONTAINER_SESSION calls, want the container's and the exec's", len(fa.calls), len(fa.sessions))
	}
	kill := &mesos.CapabilityInfo{Capabilities: caps("KILL")}
	want := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: &mesos.LinuxInfo{BoundingCapabilities: kill, EffectiveCapabilities: kill}}
	if diff := cmp.Diff(want, fa.sessions[0].Container); diff != "" {
		t.Errorf("exec container info (-want +got):\n%s", diff)
	}
	if p := fa.sessions[0].ContainerID.Parent; p == nil || p.Value != h.ID {
		t.Errorf("the session's parent is %v, want the container %s", p, h.ID)
	}
}

// A container without runAsUser runs as its image's numeric USER, as under a container runtime
// (Mesos' docker/runtime ignores it): the host user of that uid, without effective capabilities;
// runAsUser wins; a named image user and an image without one leave the executor's user ("Security
// Context … should run with an image specified user ID").
func TestStartRunsAsTheImageUser(t *testing.T) {
	one := int64(0)
	for _, tt := range []struct {
		name, image string
		sc          *corev1.SecurityContext
		wantUser    *string
		wantEff     bool
	}{
		{name: "numeric image user", image: "nonroot", wantUser: ptrStr("app")},
		{name: "runAsUser wins", image: "nonroot", sc: &corev1.SecurityContext{RunAsUser: &one}, wantUser: ptrStr("root"), wantEff: true},
		{name: "named image user", image: "named", wantEff: true},
		{name: "no image user", image: "plain", wantEff: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fa := &captureAgent{}
			srv := httptest.NewServer(fa)
			defer srv.Close()
			images := fakeImages{"nonroot": {User: "1000:1000"}, "named": {User: "nginx"}, "plain": {}}
			r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Users: fakeUsers{}, Images: images})
			c := corev1.Container{Name: "c", Image: tt.image, Command: []string{"id"}, SecurityContext: tt.sc}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
			ready(t, r, pod)
			if _, err := r.Start(context.Background(), pod, &pod.Spec.Containers[0], 0); err != nil {
				t.Fatalf("Start: %v", err)
			}
			got := fa.calls[0]
			if diff := cmp.Diff(tt.wantUser, got.Command.User); diff != "" {
				t.Errorf("CommandInfo.user (-want +got):\n%s", diff)
			}
			if eff := len(got.Container.GetLinuxInfo().GetEffectiveCapabilities().GetCapabilities()) > 0; eff != tt.wantEff {
				t.Errorf("effective capabilities %v, want some: %v", got.Container.GetLinuxInfo().GetEffectiveCapabilities(), tt.wantEff)
			}
			if pod.Spec.Containers[0].SecurityContext != tt.sc {
				t.Error("Start changed the pod's container")
			}
		})
	}
}

func ptrStr(s string) *string { return &s }

package nested

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/executor/podworker"
)

// flakyAgent answers WAIT_CONTAINER with scripted failures first (agent restarting), then the exit.
type flakyAgent struct {
	mu      sync.Mutex
	script  []int // HTTP codes to answer with before the real answer; 0 drops the connection
	calls   int
	status  int32
	waitIDs []string
}

func (f *flakyAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var call agent.Call
	if err := call.Unmarshal(body); err != nil || call.GetType() != agent.Call_WAIT_CONTAINER {
		http.Error(w, "unexpected call", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls++
	f.waitIDs = append(f.waitIDs, call.WaitContainer.ContainerID.Value+"<"+call.WaitContainer.ContainerID.GetParent().GetValue())
	var code int
	if len(f.script) > 0 {
		code, f.script = f.script[0], f.script[1:]
	} else {
		code = http.StatusOK
	}
	status := f.status
	f.mu.Unlock()
	switch code {
	case 0:
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	case http.StatusOK:
		b, _ := (&agent.Response{Type: agent.Response_WAIT_CONTAINER, WaitContainer: &agent.Response_WaitContainer{ExitStatus: &status}}).Marshal()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	default:
		http.Error(w, "scripted", code)
	}
}

func TestWaitSurvivesAgentRestart(t *testing.T) {
	tests := []struct {
		name      string
		script    []int
		wantErr   bool
		wantCalls int
		wantExit  int32
	}{
		{"answers at once", nil, false, 1, 1},
		{"agent unavailable then back", []int{503, 0, 503}, false, 4, 1},
		{"container unknown", []int{404}, true, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := &flakyAgent{script: tt.script, status: 1 << 8}
			srv := httptest.NewServer(fa)
			defer srv.Close()
			r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", RetryInitial: time.Millisecond, RetryMax: 2 * time.Millisecond})
			ready(t, r, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid"}})
			st, err := r.Wait(context.Background(), podworker.Handle{ID: "uid-main-0", PodUID: "uid"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Wait = %+v, %v", st, err)
			}
			if st.ExitCode != tt.wantExit {
				t.Errorf("exit code %d, want %d", st.ExitCode, tt.wantExit)
			}
			fa.mu.Lock()
			defer fa.mu.Unlock()
			if fa.calls != tt.wantCalls {
				t.Errorf("%d WAIT_CONTAINER calls, want %d", fa.calls, tt.wantCalls)
			}
			if diff := cmp.Diff("uid-main-0<executor", fa.waitIDs[0]); diff != "" {
				t.Errorf("container ID (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWaitGivesUpAfterRecovery(t *testing.T) {
	fa := &flakyAgent{script: []int{503, 503, 503, 503, 503, 503, 503, 503, 503, 503}}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", RetryInitial: time.Millisecond, RetryMax: time.Millisecond, WaitRecovery: 5 * time.Millisecond})
	ready(t, r, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid"}})
	if _, err := r.Wait(context.Background(), podworker.Handle{ID: "c", PodUID: "uid"}); err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Errorf("Wait = %v, want it to give up on the unavailable agent past the recovery time", err)
	}
}

func TestExitStatus(t *testing.T) {
	i := func(v int32) *int32 { return &v }
	destroyed := "destroyed"
	tests := []struct {
		name string
		w    agent.Response_WaitContainer
		want podworker.ExitStatus
	}{
		{"exit 0", agent.Response_WaitContainer{ExitStatus: i(0)}, podworker.ExitStatus{}},
		{"exit 3", agent.Response_WaitContainer{ExitStatus: i(3 << 8)}, podworker.ExitStatus{ExitCode: 3}},
		{"SIGTERM", agent.Response_WaitContainer{ExitStatus: i(15)}, podworker.ExitStatus{ExitCode: 143, Signal: 15}},
		{"no status", agent.Response_WaitContainer{Message: &destroyed}, podworker.ExitStatus{ExitCode: 137, Message: "destroyed"}},
		{"memory limit", agent.Response_WaitContainer{ExitStatus: i(9), Reason: mesos.REASON_CONTAINER_LIMITATION_MEMORY.Enum()},
			podworker.ExitStatus{ExitCode: 137, Signal: 9, Reason: "OOMKilled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, exitStatus(&tt.w)); diff != "" {
				t.Errorf("exit status (-want +got):\n%s", diff)
			}
		})
	}
}

// A LAUNCH_CONTAINER is answered once the container runs (its image pulled), so it outlasts the bound
// of the other calls: the launch is awaited, not given up on and sent again beside the first.
func TestStartWaitsForASlowLaunch(t *testing.T) {
	a := &launchAgent{delay: 300 * time.Millisecond}
	srv := httptest.NewServer(a)
	defer srv.Close()
	r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", CallTimeout: 50 * time.Millisecond})
	ready(t, r, testPod(corev1.Container{}))
	c := corev1.Container{Name: "r1", Command: []string{"sleep", "3600"}}
	if _, err := r.Start(context.Background(), testPod(c), &c, 0); err != nil {
		t.Fatalf("Start = %v, want the slow launch awaited", err)
	}
	if n := len(a.sent()); n != 1 {
		t.Errorf("%d LAUNCH_CONTAINER calls, want 1", n)
	}
}

package executor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
)

// The agent's --work_dir comes from GET_FLAGS; a refusal (403 without VIEW_FLAGS) is not retried
// and says what the executor needs.
func TestAgentWorkDir(t *testing.T) {
	var calls atomic.Int32
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if st := int(status.Load()); st != http.StatusOK {
			http.Error(w, "", st)
			return
		}
		dir := "/var/lib/mesos"
		out, _ := (&agent.Response{Type: agent.Response_GET_FLAGS, GetFlags: &agent.Response_GetFlags{Flags: []mesos.Flag{
			{Name: "docker_registry", Value: strPtr("https://registry-1.docker.io")}, {Name: "work_dir", Value: &dir}}}}).Marshal()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer srv.Close()
	dir, err := agentWorkDir(context.Background(), srv.URL+"/api/v1")
	if dir != "/var/lib/mesos" || err != nil || calls.Load() != 1 {
		t.Errorf("agentWorkDir = %q, %v after %d calls; want /var/lib/mesos at once", dir, err, calls.Load())
	}
	status.Store(http.StatusForbidden)
	calls.Store(0)
	if _, err := agentWorkDir(context.Background(), srv.URL+"/api/v1"); err == nil || !strings.Contains(err.Error(), "VIEW_FLAGS") || calls.Load() != 1 {
		t.Errorf("agentWorkDir refused = %v after %d calls; want one call and the ACL named", err, calls.Load())
	}
}

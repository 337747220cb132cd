package kubeletapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/executor/containerlogs"
)

// BenchmarkServeTail: `kubectl logs --tail=100` of a 64 MiB CRI log through the handler (the
// kubelet's reader seeks back from the end).
func BenchmarkServeTail(b *testing.B) {
	sandbox := b.TempDir()
	reg := NewRegistry(sandbox)
	pod := testPod("web")
	reg.Update(pod, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "c1")}})
	path := containerlogs.Path(sandbox, pod.UID, "c1")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	line := "2026-01-01T00:00:00.123456789Z stdout F " + strings.Repeat("x", 87) + "\n"
	if err := os.WriteFile(path, []byte(strings.Repeat(line, 64<<20/len(line))), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{NodeName: "agent0", Pods: reg, Authenticator: anyUser, Authorizer: allowAll, Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/containerLogs/default/web/main?tailLines=100", nil)
	req.SetPathValue("namespace", "default")
	req.SetPathValue("pod", "web")
	req.SetPathValue("container", "main")
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.serveLogs(rec, req)
		if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), "\n") != 100 {
			b.Fatalf("serveLogs = %d, %d lines", rec.Code, strings.Count(rec.Body.String(), "\n"))
		}
	}
}

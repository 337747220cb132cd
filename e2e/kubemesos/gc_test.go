package kubemesos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// TestAgentsCollectEndedPodDirectories: with a short --gc_delay, what a finished pod left on its
// agent (its sandbox executor's sandbox and checkpoint on a pod network, its task's checkpoint under
// the kubelet executor) is deleted once the pod is over, while the kubelet executor's own stay.
func TestAgentsCollectEndedPodDirectories(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1, PodNetwork: agentMode().Isolating, AgentTweak: func(_ int, c *agent.Config) {
		c.GCDelay = 5 * time.Second
	}})
	spec := podSpec("sleep 5; echo done")
	spec.RestartPolicy = corev1.RestartPolicyNever
	e.createPod("collected", spec)
	e.waitPhase("collected", corev1.PodRunning)
	p, err := e.kube.CoreV1().Pods(e.ns).Get(context.Background(), "collected", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uid := string(p.UID)
	work := filepath.Join(e.dir, "mesos")
	executors := []string{
		filepath.Join(work, "slaves", "*", "frameworks", "*", "executors", "*"),
		filepath.Join(work, "meta", "slaves", "*", "frameworks", "*", "executors", "*"),
	}
	var pods, others []string
	for _, pattern := range append(executors, filepath.Join(executors[1], "runs", "*", "tasks", "*")) {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if strings.Contains(filepath.Base(m), uid) {
				pods = append(pods, m)
			} else if !strings.Contains(m, "/tasks/") && !strings.Contains(m, uid) {
				others = append(others, m)
			}
		}
	}
	if len(pods) == 0 || len(others) == 0 {
		t.Fatalf("the pod's directories %v and the kubelet executor's %v: want both", pods, others)
	}
	t.Logf("%s; the pod's directories: %v", e.mode, pods)
	e.waitPhase("collected", corev1.PodSucceeded)
	e.eventually("the pod's directories deleted", 2*time.Minute, func(context.Context) (bool, error) {
		for _, d := range pods {
			if _, err := os.Lstat(d); err == nil {
				return false, fmt.Errorf("%s is still there", d)
			}
		}
		return true, nil
	})
	for _, d := range others {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("the kubelet executor's %s: %v", d, err)
		}
	}
	log, err := os.ReadFile(e.simLog)
	deleted := false
	for _, line := range strings.Split(string(log), "\n") {
		deleted = deleted || strings.Contains(line, `msg="Deleted '`) && strings.Contains(line, uid)
	}
	if !deleted {
		t.Errorf("the simulator's log has no \"Deleted '...%s...'\" (%v)", uid, err)
	}
}

package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// With --runtime hollow the executor reports the pod Running through its real task and status
// paths, while nothing runs on the agent (the container's command would have written a file and
// exited); a kill ends the pod as a SIGTERM'd process.
func TestHollowRuntime(t *testing.T) {
	env := newSimEnvWith(t, nil, func(c *Config) { c.RuntimeName = RuntimeHollow })
	marker := filepath.Join(env.dir, "ran")
	task := env.launch(shPod("hollow", corev1.RestartPolicyAlways, 30, "touch "+marker+"; exit 3"))
	env.awaitState(task, "TASK_RUNNING")
	waitFor(t, "Running status", func() bool {
		p := env.pod("hollow")
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	if id := env.pod("hollow").Status.ContainerStatuses[0].ContainerID; !strings.HasSuffix(id, "://uid-hollow-main-0") {
		t.Errorf("containerID %q, want the hollow runtime's", id)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the container's command ran (stat: %v)", err)
	}
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: task}, podtranslate.KillPolicy(0))
	env.awaitState(task, "TASK_KILLED")
	waitFor(t, "terminal status", func() bool { return env.pod("hollow").Status.Phase == corev1.PodFailed })
	if term := terminated(env.pod("hollow")); term == nil || term.ExitCode != 143 {
		t.Errorf("container state %+v, want exit 143", term)
	}
}

func TestRuntimeSetting(t *testing.T) {
	if err := ValidateEnv(map[string]string{"KUBEMESOS_RUNTIME": "hollow"}); err != nil {
		t.Errorf("hollow: %v", err)
	}
	if err := ValidateEnv(map[string]string{"KUBEMESOS_RUNTIME": "docker"}); err == nil || !strings.Contains(err.Error(), `--runtime "docker"`) {
		t.Errorf("docker: %v", err)
	}
}

package executor

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// authenticatingAgent makes the simulated agent one started with --authenticate_http_executors,
// --authenticate_http_readwrite, --http_authenticators=jwt and a --jwt_secret_key: every call an
// executor makes, to the executor API and the operator API, must carry its token.
func authenticatingAgent(t *testing.T) func(*agent.Config) {
	key := filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(key, []byte("executor-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *agent.Config) {
		c.AuthenticateHTTPExecutors, c.AuthenticateHTTPReadwrite = true, true
		c.HTTPAuthenticators, c.JWTSecretKey = "jwt", key
	}
}

// The kubelet executor sends its MESOS_EXECUTOR_AUTHENTICATION_TOKEN: it subscribes, updates, reads
// the agent's flags and runs the pod's container (LAUNCH_CONTAINER, WAIT_CONTAINER, ...) on an agent
// that refuses calls without it.
func TestKubeletExecutorAuthenticatesToTheAgent(t *testing.T) {
	var token string
	mutate := authenticatingAgent(t)
	env := newSimEnvWith(t, func(c *agent.Config) {
		mutate(c)
		hook := c.ExecutorHook
		c.ExecutorHook = func(ctx context.Context, vars map[string]string) error {
			token = vars["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"]
			return hook(ctx, vars)
		}
	}, nil)
	task := env.launch(shPod("authed", corev1.RestartPolicyNever, 30, `echo hello`))
	env.awaitState(task, "TASK_FINISHED")
	waitFor(t, "the pod's status", func() bool { return env.pod("authed").Status.Phase == corev1.PodSucceeded })
	if token == "" {
		t.Error("the agent gave the executor no token")
	}
}

// The pods' sandbox executors (a process in its own container) send their token too.
func TestSandboxExecutorAuthenticatesToTheAgent(t *testing.T) {
	env, network := newNetworkEnv(t, 96, authenticatingAgent(t))
	pod := shPod("boxed", corev1.RestartPolicyNever, 5, `sleep 600`)
	pod.Spec.Containers[0].Image = ""
	sbTask, podTask := env.launchSandboxed(pod, network)
	env.awaitState(podTask, "TASK_RUNNING")
	waitFor(t, "the pod's IP", func() bool { return env.pod("boxed").Status.PodIP != "" })
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: podTask}, nil)
	env.awaitState(podTask, "TASK_KILLED")
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: sbTask}, nil)
	env.awaitState(sbTask, "TASK_KILLED")
}

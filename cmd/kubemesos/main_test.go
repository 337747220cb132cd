package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/kubemesos/kubemesos/internal/cli"
)

// Every option must be discoverable from --help together with its environment variable.
func TestHelpDocumentsEveryFlagAndItsEnvironmentVariable(t *testing.T) {
	for _, name := range []string{"framework", "executor"} {
		t.Run(name, func(t *testing.T) {
			root := newRootCommand()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetArgs([]string{name, "--help"})
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			sub, _, err := root.Find([]string{name})
			if err != nil {
				t.Fatal(err)
			}
			sub.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Name == "help" {
					return
				}
				if !strings.Contains(out.String(), "--"+f.Name) {
					t.Errorf("--help does not list --%s", f.Name)
				}
				if !strings.Contains(f.Usage, cli.EnvName(f.Name)) {
					t.Errorf("--%s usage %q does not name %s", f.Name, f.Usage, cli.EnvName(f.Name))
				}
			})
		})
	}
}

func TestFrameworkRejectsInvalidConfigurationBeforeStarting(t *testing.T) {
	t.Setenv("KUBEMESOS_MASTER", "not a url")
	root := newRootCommand()
	root.SetArgs([]string{"framework", "--kubeconfig", "/nonexistent"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "--master") {
		t.Fatalf("want an error naming --master, got %v", err)
	}
}

// TestFrameworkRejectsUnknownExecutorSettings: a typo in an executor setting fails the framework's
// start, from the flag or from its environment variable.
func TestFrameworkRejectsUnknownExecutorSettings(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T) []string{
		"flag": func(*testing.T) []string { return []string{"--executor-env", "KUBEMESOS_KUBELET_ADRESS=:10250"} },
		"environment": func(t *testing.T) []string {
			t.Setenv("KUBEMESOS_EXECUTOR_ENV", "KUBEMESOS_LOG_LEVEL=debug,KUBEMESOS_KUBELET_ADRESS=:10250")
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := newRootCommand()
			root.SetArgs(append([]string{"framework", "--kubeconfig", "/nonexistent"}, setup(t)...))
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), "--executor-env: KUBEMESOS_KUBELET_ADRESS is not a setting of the executor") {
				t.Fatalf("want an error naming the unknown setting, got %v", err)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "kubemesos ") {
		t.Errorf("version printed %q", out.String())
	}
}

// Launched by an agent (MESOS_EXECUTOR_ID set), pod-sandbox is the pod's sandbox executor: it needs
// the rest of the executor environment.
func TestPodSandboxIsAnExecutorUnderAnAgent(t *testing.T) {
	for _, k := range []string{"MESOS_FRAMEWORK_ID", "MESOS_SANDBOX", "MESOS_AGENT_ENDPOINT"} {
		t.Setenv(k, "")
	}
	t.Setenv("MESOS_EXECUTOR_ID", "kubemesos-pod-1")
	root := newRootCommand()
	root.SetArgs([]string{"pod-sandbox"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "reading the Mesos executor environment: missing environment variable MESOS_FRAMEWORK_ID") {
		t.Fatalf("pod-sandbox under an agent without its environment: %v", err)
	}
}

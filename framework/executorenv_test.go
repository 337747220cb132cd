package framework

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func TestExecutorEnvValidated(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		wantErr string
	}{
		{"none", nil, ""},
		{"executor settings", []string{"KUBEMESOS_KUBELET_ADDRESS=:10250", "KUBEMESOS_LOG_LEVEL=debug"}, ""},
		{"typo", []string{"KUBEMESOS_KUBELET_ADRESS=:10250"}, "--executor-env: KUBEMESOS_KUBELET_ADRESS is not a setting of the executor"},
		{"bad value", []string{"KUBEMESOS_LOG_LEVEL=loud"}, "--executor-env: --log-level"},
		{"not KEY=VALUE", []string{"KUBEMESOS_LOG_LEVEL"}, `"KUBEMESOS_LOG_LEVEL" is not KEY=VALUE`},
		{"twice", []string{"KUBEMESOS_LOG_LEVEL=debug", "KUBEMESOS_LOG_LEVEL=info"}, "KUBEMESOS_LOG_LEVEL is set twice"},
		{"kubeconfig has its flag", []string{"KUBEMESOS_KUBECONFIG=/k"}, "set it with --executor-kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.ExecutorEnv = tt.env
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestExecutorEnvFlag(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("framework", pflag.ContinueOnError)
	c.BindFlags(fs)
	if err := fs.Parse([]string{"--executor-env=KUBEMESOS_LOG_LEVEL=debug", "--executor-env", "KUBEMESOS_KUBELET_ADDRESS=:10250,KUBEMESOS_SHUTDOWN_MARGIN=2s"}); err != nil {
		t.Fatal(err)
	}
	env, err := c.executorEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"KUBEMESOS_LOG_LEVEL": "debug", "KUBEMESOS_KUBELET_ADDRESS": ":10250", "KUBEMESOS_SHUTDOWN_MARGIN": "2s"}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("executor env (-want +got):\n%s", diff)
	}
}

// TestExecutorInfoEnvironment: the settings go into the ExecutorInfo's environment in one order, so
// that the same settings always make the same ExecutorInfo.
func TestExecutorInfoEnvironment(t *testing.T) {
	s := ExecutorSettings{URI: "http://fw/executor/kubemesos", Kubeconfig: "/etc/k", LogLevel: "info", CPUs: 0.1, MemMB: 64,
		Env: map[string]string{"KUBEMESOS_SHUTDOWN_MARGIN": "2s", "KUBEMESOS_LOG_LEVEL": "debug", "KUBEMESOS_KUBELET_ADDRESS": ":10250",
			"KUBEMESOS_HOST_IP": "10.0.0.1", "KUBEMESOS_SUBSCRIBE_BACKOFF": "1s"}}
	first := NewExecutorInfo(s)
	var got []string
	for _, v := range first.Command.Environment.Variables {
		got = append(got, v.Name+"="+v.GetValue())
	}
	want := []string{"KUBEMESOS_LOG_LEVEL=debug", "KUBEMESOS_KUBECONFIG=/etc/k", "KUBEMESOS_HOST_IP=10.0.0.1",
		"KUBEMESOS_KUBELET_ADDRESS=:10250", "KUBEMESOS_SHUTDOWN_MARGIN=2s", "KUBEMESOS_SUBSCRIBE_BACKOFF=1s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	for range 50 {
		if again := NewExecutorInfo(s); !again.Equal(first) {
			t.Fatalf("the same settings made another ExecutorInfo:\n%v\n%v", again, first)
		}
	}
	// Without --executor-env the environment is what it was before the flag existed.
	plain := NewExecutorInfo(ExecutorSettings{URI: s.URI, LogLevel: "info", CPUs: 0.1, MemMB: 64})
	if vars := plain.Command.Environment.Variables; len(vars) != 1 || vars[0].Name != "KUBEMESOS_LOG_LEVEL" || vars[0].GetValue() != "info" {
		t.Errorf("environment without --executor-env: %v", vars)
	}
}

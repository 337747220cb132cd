package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

type testConfig struct {
	Master   string
	Roles    []string
	Failover time.Duration
	Leader   bool
}

func newTestCommand(cfg *testConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "test", RunE: func(cmd *cobra.Command, _ []string) error { return Apply(cmd) }}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Master, "master", "http://127.0.0.1:5050", "Mesos master")
	fs.StringSliceVar(&cfg.Roles, "roles", []string{"kubemesos"}, "roles")
	fs.DurationVar(&cfg.Failover, "failover-timeout", time.Hour, "failover timeout")
	fs.BoolVar(&cfg.Leader, "leader-elect", true, "leader election")
	AddConfigFlag(fs)
	DocumentEnv(fs)
	return cmd
}

func TestApplyPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte("master: http://file:5050\nroles: [a, b]\nfailover-timeout: 2h\nleader-elect: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want testConfig
	}{
		{
			name: "defaults",
			want: testConfig{Master: "http://127.0.0.1:5050", Roles: []string{"kubemesos"}, Failover: time.Hour, Leader: true},
		},
		{
			name: "file beats defaults",
			args: []string{"--config", file},
			want: testConfig{Master: "http://file:5050", Roles: []string{"a", "b"}, Failover: 2 * time.Hour, Leader: false},
		},
		{
			name: "env beats file",
			args: []string{"--config", file},
			env:  map[string]string{"KUBEMESOS_MASTER": "http://env:5050", "KUBEMESOS_FAILOVER_TIMEOUT": "3h"},
			want: testConfig{Master: "http://env:5050", Roles: []string{"a", "b"}, Failover: 3 * time.Hour, Leader: false},
		},
		{
			name: "flag beats env",
			args: []string{"--master", "http://flag:5050", "--roles", "x"},
			env:  map[string]string{"KUBEMESOS_MASTER": "http://env:5050", "KUBEMESOS_ROLES": "y,z"},
			want: testConfig{Master: "http://flag:5050", Roles: []string{"x"}, Failover: time.Hour, Leader: true},
		},
		{
			name: "config file from env",
			env:  map[string]string{"KUBEMESOS_CONFIG": file},
			want: testConfig{Master: "http://file:5050", Roles: []string{"a", "b"}, Failover: 2 * time.Hour, Leader: false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var got testConfig
			cmd := newTestCommand(&got)
			cmd.SetArgs(tt.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyRejectsBadValue(t *testing.T) {
	t.Setenv("KUBEMESOS_FAILOVER_TIMEOUT", "soon")
	var got testConfig
	cmd := newTestCommand(&got)
	cmd.SetArgs(nil)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	if err == nil {
		t.Fatal("want an error for an unparsable duration from the environment")
	}
	if want := "KUBEMESOS_FAILOVER_TIMEOUT"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q should name %s", err, want)
	}
}

func TestDocumentEnv(t *testing.T) {
	var cfg testConfig
	cmd := newTestCommand(&cfg)
	if got := cmd.Flags().Lookup("failover-timeout").Usage; !strings.Contains(got, "KUBEMESOS_FAILOVER_TIMEOUT") {
		t.Errorf("usage %q does not name the environment variable", got)
	}
}

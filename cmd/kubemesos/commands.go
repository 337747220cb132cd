package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubemesos/kubemesos/executor"
	"github.com/kubemesos/kubemesos/executor/podsandbox"
	"github.com/kubemesos/kubemesos/executor/sandboxexec"
	"github.com/kubemesos/kubemesos/framework"
	"github.com/kubemesos/kubemesos/internal/cli"
)

// configurable is what framework.Config and executor.Config have in common.
type configurable interface {
	BindFlags(*pflag.FlagSet)
	Validate() error
}

// newConfiguredCommand binds cfg's flags (plus --config), documents their environment variables, and
// runs run once the flags are filled from the environment and file and cfg is valid.
func newConfiguredCommand(use, short, long string, cfg configurable, run func(context.Context) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.Apply(cmd); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return run(cmd.Context())
		},
	}
	cfg.BindFlags(cmd.Flags())
	cli.AddConfigFlag(cmd.Flags())
	cli.DocumentEnv(cmd.Flags())
	return cmd
}

func newFrameworkCommand() *cobra.Command {
	cfg := framework.DefaultConfig()
	return newConfiguredCommand("framework", "Run the Mesos framework that schedules pods onto Mesos offers",
		`Run the kubemesos framework: it subscribes to the Mesos master, watches the API server for pending
pods that name its scheduler, places them on Mesos offers, binds them to the Node that stands for the
Mesos agent and launches them as tasks on the kubemesos executor.

Every flag can also be set with a KUBEMESOS_* environment variable (named in each flag's help) or a key of
the --config file; a flag on the command line wins over the environment, which wins over the file.`,
		&cfg, func(ctx context.Context) error { return framework.Run(ctx, cfg) })
}

func newExecutorCommand() *cobra.Command {
	cfg := executor.DefaultConfig()
	return newConfiguredCommand("executor", "Run the kubelet-like Mesos executor (launched by Mesos agents, not by hand)",
		`Run the kubemesos executor. A Mesos agent starts it with the MESOS_* environment of the executor API;
it runs the pods the framework places on that agent as nested containers and writes their status to the
API server.

Every flag can also be set with a KUBEMESOS_* environment variable (named in each flag's help) or a key of
the --config file.`,
		&cfg, func(ctx context.Context) error { return executor.Run(ctx, cfg) })
}

func newPodSandboxCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pod-sandbox",
		Short: "Hold a pod's network namespace (the per-pod sandbox executor the framework launches)",
		Long: `Run as a pod's sandbox. Launched by a Mesos agent (MESOS_EXECUTOR_ID set), it is the pod's sandbox
executor: its container is on the pod network, the kubelet executor nests the pod's containers under it,
and it runs the pod's sandbox task until the framework kills it (TASK_KILLED, exit 0). Otherwise it
waits for SIGTERM (then exits 0), as the kubelet's pause container. Either way it carries kubectl
port-forward connections into the pod's network namespace through the unix socket
` + podsandbox.SocketName + ` in its sandbox directory ($MESOS_SANDBOX).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getenv("MESOS_EXECUTOR_ID") != "" {
				// Launched by an agent as the pod's sandbox executor (design P).
				return sandboxexec.Run(cmd.Context(), sandboxexec.Config{})
			}
			dir := os.Getenv("MESOS_SANDBOX")
			if dir == "" {
				dir = "."
			}
			return podsandbox.Run(cmd.Context(), dir, os.Getenv("MESOS_CONTAINER_ID"))
		},
	}
}

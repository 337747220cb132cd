package main

import (
	"github.com/spf13/cobra"

	"github.com/kubemesos/kubemesos/executor"
	"github.com/kubemesos/kubemesos/framework"
	"github.com/kubemesos/kubemesos/internal/cli"
)

func newFrameworkCommand() *cobra.Command {
	cfg := framework.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "framework",
		Short: "Run the Mesos framework that schedules pods onto Mesos offers",
		Long: `Run the kubemesos framework: it subscribes to the Mesos master, watches the API server for pending
pods that name its scheduler, places them on Mesos offers, binds them to the Node that stands for the
Mesos agent and launches them as tasks on the kubemesos executor.

Every flag can also be set with a KUBEMESOS_* environment variable (named in each flag's help) or a key of
the --config file; a flag on the command line wins over the environment, which wins over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.Apply(cmd); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return framework.Run(cmd.Context(), cfg)
		},
	}
	cfg.BindFlags(cmd.Flags())
	cli.AddConfigFlag(cmd.Flags())
	cli.DocumentEnv(cmd.Flags())
	return cmd
}

func newExecutorCommand() *cobra.Command {
	cfg := executor.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "executor",
		Short: "Run the kubelet-like Mesos executor (launched by Mesos agents, not by hand)",
		Long: `Run the kubemesos executor. A Mesos agent starts it with the MESOS_* environment of the executor API;
it runs the pods the framework places on that agent as nested containers and writes their status to the
API server.

Every flag can also be set with a KUBEMESOS_* environment variable (named in each flag's help) or a key of
the --config file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.Apply(cmd); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return executor.Run(cmd.Context(), cfg)
		},
	}
	cfg.BindFlags(cmd.Flags())
	cli.AddConfigFlag(cmd.Flags())
	cli.DocumentEnv(cmd.Flags())
	return cmd
}

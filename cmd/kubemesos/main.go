// Command kubemesos is the one binary of kubemesos: the Mesos framework that schedules pods, and the
// executor that Mesos agents launch to run them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubemesos/kubemesos/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kubemesos:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kubemesos",
		Short:         "Run Kubernetes pods as Apache Mesos tasks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newFrameworkCommand(), newExecutorCommand(), newPodSandboxCommand(), newVersionCommand(), newTmpfsCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit this binary was built from",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String())
		},
	}
}

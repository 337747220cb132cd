package main

import (
	"github.com/spf13/cobra"

	"github.com/kubemesos/kubemesos/executor/nested"
)

// newTmpfsCommand is what the executor's helper container runs to mount (or unmount) a memory
// emptyDir's tmpfs for the agent's mount namespace (executor/nested/tmpfs.go): mount(2) itself, so
// that no image's mount binary is needed.
func newTmpfsCommand() *cobra.Command {
	var (
		size    int64
		unmount bool
	)
	cmd := &cobra.Command{
		Use:    nested.TmpfsCommand + " [--size=<bytes>|--unmount] <dir>",
		Short:  "Mount a tmpfs on a memory emptyDir's directory (the executor's helper container runs it)",
		Args:   cobra.ExactArgs(1),
		Hidden: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if unmount {
				return nested.UnmountTmpfs(args[0])
			}
			return nested.MountTmpfs(args[0], size)
		},
	}
	cmd.Flags().Int64Var(&size, "size", 0, "size of the tmpfs in bytes (0: the kernel's default)")
	cmd.Flags().BoolVar(&unmount, "unmount", false, "unmount the tmpfs on <dir> instead")
	return cmd
}

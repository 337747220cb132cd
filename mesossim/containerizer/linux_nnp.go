package containerizer

import "context"

func init() {
	Register("linux/nnp", func(Flags) (Isolator, error) { return noNewPrivileges{}, nil })
}

// noNewPrivileges is Mesos' linux/nnp (isolators/linux/nnp.cpp): every container runs with
// no_new_privs, so that no setuid binary or file capability gives it more than it started with.
type noNewPrivileges struct{ Base }

func (noNewPrivileges) Name() string { return "linux/nnp" }

func (noNewPrivileges) Prepare(_ context.Context, _ *Container, li *LaunchInfo) error {
	li.NoNewPrivileges = true
	return nil
}

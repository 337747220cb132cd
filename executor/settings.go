package executor

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kubemesos/kubemesos/internal/cli"
)

// ValidateEnv checks settings meant for executors as KUBEMESOS_<FLAG> environment variables (the
// framework's --executor-env puts them in the ExecutorInfo): each must be the variable of a flag of
// `kubemesos executor` (or KUBEMESOS_CONFIG) holding a value that flag and Validate accept, so a typo
// fails when the framework starts rather than in every executor.
func ValidateEnv(env map[string]string) error {
	c := DefaultConfig()
	fs := pflag.NewFlagSet("executor", pflag.ContinueOnError)
	c.BindFlags(fs)
	byVar := map[string]string{}
	var known []string
	fs.VisitAll(func(f *pflag.Flag) {
		byVar[cli.EnvName(f.Name)] = f.Name
		known = append(known, cli.EnvName(f.Name))
	})
	known = append(known, cli.EnvName(cli.ConfigFlag))
	slices.Sort(known)
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	slices.Sort(names)
	var errs []error
	for _, k := range names {
		if k == cli.EnvName(cli.ConfigFlag) {
			continue // a file on the agent
		}
		flag, ok := byVar[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s is not a setting of the executor (one of %s)", k, strings.Join(known, ", ")))
			continue
		}
		if err := fs.Set(flag, env[k]); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", k, env[k], err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.Validate()
}

// kubeletListenAddress binds a host-less --kubelet-address to the agent's IP: the API server reaches
// the kubelet API at the Node's InternalIP, which is that IP, and nothing else needs it.
func kubeletListenAddress(addr, agentIP string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" || agentIP == "" {
		return addr
	}
	return net.JoinHostPort(agentIP, port)
}

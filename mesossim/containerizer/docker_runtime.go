package containerizer

import (
	"context"
	"errors"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func init() {
	Register("docker/runtime", func(Flags) (Isolator, error) { return dockerRuntime{}, nil })
}

// dockerRuntime is Mesos' docker/runtime (isolators/docker/runtime.cpp) for what reaches the launch: the
// image's environment and, for a container with its own root filesystem, its WorkingDir. The command
// itself is merged with the image's Entrypoint/Cmd before Prepare (Container.Command), as the agent
// computes it for launches without isolation too (DockerRuntimeCommand).
type dockerRuntime struct{ Base }

func (dockerRuntime) Name() string { return "docker/runtime" }

func (dockerRuntime) Prepare(_ context.Context, c *Container, li *LaunchInfo) error {
	if c.Image == nil || c.Debug {
		return nil
	}
	for name, value := range ImageEnvironment(*c.Image) {
		if li.Environment == nil {
			li.Environment = map[string]string{}
		}
		li.Environment[name] = value
	}
	if c.Image.WorkingDir != "" && c.Rootfs != "" {
		li.WorkingDirectory = c.Image.WorkingDir
	}
	return nil
}

// DockerRuntimeCommand is DockerRuntimeIsolatorProcess::getLaunchCommand (isolators/docker/
// runtime.cpp), which merges a CommandInfo with the image's Entrypoint and Cmd:
//   - shell: the command as is (/bin/sh -c value); an error without a value;
//   - not shell, with a value: the command as is; the image's Entrypoint and Cmd are ignored;
//   - not shell, no value: Entrypoint[0] runs with argv Entrypoint + the CommandInfo's arguments, and
//     Cmd is appended only when there are no such arguments; without an Entrypoint, Cmd[0] runs with
//     argv Cmd[0] + the arguments (Cmd[1:] only when there are none); with neither, an error.
//
// has_value counts: a value set to "" is a value.
func DockerRuntimeCommand(command mesos.CommandInfo, cfg v1.Config) (mesos.CommandInfo, error) {
	if command.GetShell() {
		if command.Value == nil {
			return mesos.CommandInfo{}, errors.New("Shell specified but no command value provided")
		}
		return command, nil
	}
	if command.Value != nil {
		return command, nil
	}
	user := command.Arguments
	var argv []string
	switch {
	case len(cfg.Entrypoint) > 0:
		argv = append(append(argv, cfg.Entrypoint...), user...)
		if len(user) == 0 {
			argv = append(argv, cfg.Cmd...)
		}
	case len(cfg.Cmd) > 0:
		argv = append(append(argv, cfg.Cmd[0]), user...)
		if len(user) == 0 {
			argv = append(argv, cfg.Cmd[1:]...)
		}
	default:
		return mesos.CommandInfo{}, errors.New("No executable is found")
	}
	value := argv[0]
	command.Value = &value
	command.Arguments = argv
	return command, nil
}

// ImageEnvironment is DockerRuntimeIsolatorProcess::getLaunchEnvironment: the image's Env split at
// the first '=', entries without one skipped; a later duplicate wins.
func ImageEnvironment(cfg v1.Config) map[string]string {
	if len(cfg.Env) == 0 {
		return nil
	}
	env := make(map[string]string, len(cfg.Env))
	for _, kv := range cfg.Env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		env[name] = value
	}
	return env
}

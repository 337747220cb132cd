package containerizer

import (
	"context"
	"strings"
)

func init() {
	Register("docker/runtime", func(Flags) (Isolator, error) { return dockerRuntime{}, nil })
}

// dockerRuntime is Mesos' docker/runtime (isolators/docker/runtime.cpp) for what reaches the launch: the
// image's environment and, for a container with its own root filesystem, its WorkingDir. The command
// itself is merged with the image's Entrypoint/Cmd before Prepare (Container.Command), as the agent
// computes it for launches without isolation too.
type dockerRuntime struct{ Base }

func (dockerRuntime) Name() string { return "docker/runtime" }

func (dockerRuntime) Prepare(_ context.Context, c *Container, li *LaunchInfo) error {
	if c.Image == nil || c.Debug {
		return nil
	}
	for _, kv := range c.Image.Env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
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

package imagearchive

import v1 "github.com/google/go-containerregistry/pkg/v1"

// BusyboxConfig is the runtime config of docker.io/library/busybox: no Entrypoint, Cmd ["sh"], so a
// Mesos agent runs `sh <arguments…>` for a container that sends only arguments.
var BusyboxConfig = v1.Config{
	Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	Cmd: []string{"sh"},
}

// EchoEntrypointImage is a stand-in image with an Entrypoint, for local registries of simulated
// agents. Those run containers as host processes (no root filesystem), so its Entrypoint must exist
// on any host: `echo entry`, followed by the Cmd ("default-cmd") or by the container's arguments,
// which shows in the container's output which rule built its argv.
const EchoEntrypointImage = "kubemesos/echo-entrypoint"

// EchoEntrypointConfig is EchoEntrypointImage's config.
var EchoEntrypointConfig = v1.Config{
	Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	Entrypoint: []string{"echo", "entry"},
	Cmd:        []string{"default-cmd"},
}

// StandIns are the images WriteStandIns writes: busybox (also as busybox:latest, a different archive
// for Mesos, which does not normalise names) and EchoEntrypointImage.
var StandIns = map[string]v1.Config{
	"busybox":           BusyboxConfig,
	"busybox:latest":    BusyboxConfig,
	EchoEntrypointImage: EchoEntrypointConfig,
}

// WriteStandIns writes StandIns into the local registry dir (created if missing), each with one empty
// layer: a simulated agent reads only their configs.
func WriteStandIns(dir string) error {
	for name, cfg := range StandIns {
		if err := Write(dir, name, cfg); err != nil {
			return err
		}
	}
	return nil
}

package agent

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// Defaults of the Mesos agent flags --isolation and --docker_registry (src/slave/flags.cpp).
const (
	DefaultIsolation      = "posix/cpu,posix/mem"
	DefaultDockerRegistry = "https://registry-1.docker.io"
)

// validateImageFlags fails as a Mesos agent fails at startup for --isolation, --image_providers and
// --docker_registry (MesosContainerizer::create, Store::create, docker Puller::create), with Mesos'
// error chain. The simulator runs containers as host processes: the isolators are recorded and
// checked, not applied; the linux launcher Mesos also requires for images is taken for granted.
// It returns the image types the agent provisions.
func validateImageFlags(cfg *Config) (map[mesos.Image_Type]bool, error) {
	containerizer := func(msg string) error {
		return errors.New("Failed to create a containerizer: Could not create MesosContainerizer: " + msg)
	}
	tokens := tokenize(cfg.Isolation, ",")
	isolations := map[string]bool{}
	for _, t := range tokens {
		isolations[t] = true
	}
	if len(isolations) != len(tokens) {
		return nil, containerizer("Duplicate entries found in --isolation flag '[ " + strings.Join(tokens, ", ") + " ]'")
	}
	count := func(prefix string, except ...string) int {
		n := 0
		for t := range isolations {
			if strings.HasPrefix(t, prefix) && !contains(except, t) {
				n++
			}
		}
		return n
	}
	if count("filesystem/") > 1 {
		return nil, containerizer("Using multiple filesystem isolators simultaneously is disallowed")
	}
	if count("network/", "network/ports") > 1 {
		return nil, containerizer("Using multiple network isolators simultaneously is disallowed")
	}
	providers := tokenize(cfg.ImageProviders, ",")
	if len(providers) == 0 {
		return map[mesos.Image_Type]bool{}, nil
	}
	if !isolations["filesystem/linux"] {
		return nil, containerizer("The 'filesystem/linux' isolator must be enabled for container image support")
	}
	stores := func(msg string) error {
		return containerizer("Failed to create provisioner: Failed to create image stores: " + msg)
	}
	types := map[mesos.Image_Type]bool{}
	for _, p := range providers {
		t, ok := mesos.Image_Type_value[strings.ToUpper(p)]
		if !ok {
			return nil, stores("Unknown image type '" + p + "'")
		}
		if mesos.Image_Type(t) != mesos.Image_DOCKER {
			// Mesos has an APPC store; the simulator provisions only docker images.
			return nil, stores("Unsupported image type '" + p + "' (the simulated agent provisions only 'docker' images)")
		}
		// Mesos' docker Puller::create: '/' or 'hdfs://' is an archive directory, anything else a
		// registry. The simulator reaches no registry and no HDFS: only a local directory will do.
		if !strings.HasPrefix(cfg.DockerRegistry, "/") {
			return nil, stores("Failed to create store for image type '" + p + "': the simulated agent cannot pull from '" +
				cfg.DockerRegistry + "': --docker_registry must be a local directory of image archives (an absolute path)")
		}
		types[mesos.Image_DOCKER] = true
	}
	if types[mesos.Image_DOCKER] && !strings.Contains(cfg.Isolation, "docker/runtime") {
		// Mesos EXITs here rather than returning an error.
		return nil, errors.New("Docker runtime isolator has to be specified if 'DOCKER' is included in 'image_providers'. " +
			"Please add 'docker/runtime' to '--isolation' flags")
	}
	return types, nil
}

// tokenize is stout's strings::tokenize: split on any delimiter, dropping empty tokens.
func tokenize(s, delims string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(delims, r) })
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// preparedLaunch is a container's command after image provisioning and the docker/runtime isolator.
type preparedLaunch struct {
	command mesos.CommandInfo
	// image is the provisioned image's config (nil without one), for the containerizer's docker/runtime.
	image *v1.Config
	// env is the image's environment (the isolator's): above the agent's variables, below the
	// CommandInfo's, as MesosContainerizerProcess::_launch merges them.
	env map[string]string
	// fallback is set when the command is the simulator's --image-command stand-in for an image the
	// agent cannot provision: the container then runs without that image.
	fallback bool
}

// prepareLaunchLocked provisions the container's image and determines its command, failing with the
// body of Mesos' 400 for LAUNCH_(NESTED_)CONTAINER(_SESSION). A container without an image runs its
// command. With an image, the agent's store is used (--image_providers=docker: the archive in
// --docker_registry, then Mesos' docker/runtime rule); an image the agent cannot provision runs under
// the simulator's --image-command fallback when that names it (not a Mesos behaviour: images cannot
// be pulled here), else the launch fails as in Mesos.
//
// In process mode the image's WorkingDir is a directory of a root filesystem the agent does not
// provision (containers are host processes): the process keeps the sandbox as working directory. In
// isolating mode the containerizer's provisioner makes the rootfs and docker/runtime applies it.
func (a *Agent) prepareLaunchLocked(ci *mesos.ContainerInfo, command mesos.CommandInfo) (preparedLaunch, string) {
	img := ci.GetMesos().GetImage()
	if img == nil {
		if command.GetValue() == "" {
			return preparedLaunch{}, "Failed to launch container: no command and no image"
		}
		return preparedLaunch{command: command}, ""
	}
	fallback, hasFallback := a.imageCommand(ci)
	if !a.imageTypes[img.GetType()] {
		if hasFallback {
			return preparedLaunch{command: fallbackCommand(command, fallback), fallback: true}, ""
		}
		// ProvisionerProcess::provision; stringify(Image::Type) prints the enum's name.
		return preparedLaunch{}, "Unsupported container image type: " + img.GetType().String()
	}
	name := img.GetDocker().GetName()
	cfg, msg, missing := a.dockerImageConfigLocked(name, img.GetCached())
	if missing && hasFallback {
		return preparedLaunch{command: fallbackCommand(command, fallback), fallback: true}, ""
	}
	if msg != "" {
		return preparedLaunch{}, msg
	}
	cmd, err := containerizer.DockerRuntimeCommand(command, cfg)
	if err != nil {
		return preparedLaunch{}, "Failed to determine the launch command: " + err.Error()
	}
	return preparedLaunch{command: cmd, env: containerizer.ImageEnvironment(cfg), image: &cfg}, ""
}

// dockerImageConfigLocked is the docker store's get: a cached image unless cached is false (Mesos'
// Image.cached), else the archive's config, read as Mesos' image tar puller reads it. missing
// reports that the archive does not exist.
func (a *Agent) dockerImageConfigLocked(name string, cached bool) (cfg v1.Config, msg string, missing bool) {
	ref, err := imagearchive.ParseReference(name)
	if err != nil {
		return v1.Config{}, "Failed to parse docker image '" + name + "': " + err.Error(), true
	}
	key := ref.String() // the store's key for pulls and its metadata
	if c, ok := a.imageCache[key]; ok && cached {
		return c, "", false
	}
	path := ref.ArchivePath(a.cfg.DockerRegistry)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return v1.Config{}, "Failed to find archive for image '" + key + "' at '" + path + "'", true
	}
	cfg, err = imagearchive.ReadConfigFor(path, name)
	if err != nil {
		return v1.Config{}, err.Error(), false
	}
	a.imageCache[key] = cfg
	return cfg, "", false
}

// fallbackCommand is the simulator's --image-command stand-in for an image it cannot provision: a
// command with a value runs as given; otherwise the configured shell command runs, with the
// CommandInfo's arguments as its "$@" (like an entrypoint).
func fallbackCommand(command mesos.CommandInfo, script string) mesos.CommandInfo {
	switch {
	case command.GetValue() != "":
	case len(command.Arguments) > 0:
		sh, no := "/bin/sh", false
		command.Value, command.Shell = &sh, &no
		command.Arguments = append([]string{"sh", "-c", script, "sh"}, command.Arguments...)
	default:
		command.Value = &script
		command.Shell = nil
	}
	return command
}

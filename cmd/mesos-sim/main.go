// Command mesos-sim runs the simulated Mesos cluster (package mesossim): one master serving the Mesos
// v1 scheduler and operator HTTP APIs plus N agents running executors as real processes, so that
// Mesos frameworks can be developed and tested on machines where Mesos cannot be installed.
//
//	mesos-sim --listen 127.0.0.1:5050 --agents 3 \
//	  --agent-resources 'cpus:4;mem:8192;disk:65536;ports:[31000-32000]' \
//	  --agent-attributes 'rack:r%d' --work-dir DIR --allocation-interval 1s \
//	  --image_providers docker --docker_registry /path/to/archives --isolation filesystem/linux,docker/runtime
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

type options struct {
	listen             string
	agents             int
	agentResources     string
	agentAttributes    string
	workDir            string
	allocationInterval time.Duration
	offerTimeout       time.Duration
	heartbeatInterval  time.Duration
	weights            string
	imageCommands      []string
	imageProviders     string
	dockerRegistry     string
	isolation          string
	seed               int64
	logLevel           string
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("mesos-sim", pflag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:5050", "address of the master's HTTP endpoint")
	fs.IntVar(&o.agents, "agents", 3, "number of agents")
	fs.StringVar(&o.agentResources, "agent-resources", mesossim.DefaultAgentResources, "resources of every agent, in Mesos' syntax")
	fs.StringVar(&o.agentAttributes, "agent-attributes", "", "attributes of every agent, in Mesos' syntax; %d is replaced by the agent index")
	fs.StringVar(&o.workDir, "work-dir", "", "agents' work dir (sandboxes); default: a temporary directory removed on exit")
	fs.DurationVar(&o.allocationInterval, "allocation-interval", time.Second, "batch allocation interval (0: offers only through POST /admin/allocate)")
	fs.DurationVar(&o.offerTimeout, "offer-timeout", 0, "rescind offers held longer than this (0: never)")
	fs.DurationVar(&o.heartbeatInterval, "heartbeat-interval", 15*time.Second, "HEARTBEAT event interval")
	fs.StringVar(&o.weights, "weights", "", "role weights, e.g. 'web=1,batch=3'")
	fs.StringVar(&o.imageProviders, "image_providers", "", "the agents' --image_providers: 'docker' provisions container images from --docker_registry")
	fs.StringVar(&o.dockerRegistry, "docker_registry", agent.DefaultDockerRegistry, "the agents' --docker_registry: with --image_providers=docker, a local directory of docker-save archives (<dir>/<image>.tar); registries cannot be reached")
	fs.StringVar(&o.isolation, "isolation", agent.DefaultIsolation, "the agents' --isolation (recorded; --image_providers=docker needs filesystem/linux and docker/runtime)")
	fs.StringArrayVar(&o.imageCommands, "image-command", nil, "image=command: what runs for a container of an image the agents cannot provision, when it has no command (repeatable; '*' for any image; not a Mesos flag)")
	fs.Int64Var(&o.seed, "seed", 1, "allocator seed (agent order)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.agents < 0 {
		return nil, errors.New("--agents must not be negative")
	}
	return o, nil
}

func (o *options) clusterConfig(log *logrus.Logger) (mesossim.ClusterConfig, error) {
	weights, err := mesossim.ParseWeights(o.weights)
	if err != nil {
		return mesossim.ClusterConfig{}, fmt.Errorf("--weights: %w", err)
	}
	if _, err := mesossim.ParseResources(o.agentResources); err != nil {
		return mesossim.ClusterConfig{}, fmt.Errorf("--agent-resources: %w", err)
	}
	if _, err := mesossim.ParseAttributes(o.agentAttributes, 0); err != nil {
		return mesossim.ClusterConfig{}, fmt.Errorf("--agent-attributes: %w", err)
	}
	images := map[string]string{}
	for _, ic := range o.imageCommands {
		image, cmd, ok := strings.Cut(ic, "=")
		if !ok || image == "" || cmd == "" {
			return mesossim.ClusterConfig{}, fmt.Errorf("--image-command %q: expected image=command", ic)
		}
		images[image] = cmd
	}
	return mesossim.ClusterConfig{
		Master: mesossim.Config{
			Log: log, AllocationInterval: o.allocationInterval, OfferTimeout: o.offerTimeout,
			HeartbeatInterval: o.heartbeatInterval, Weights: weights, Seed: o.seed,
		},
		Listen: o.listen, Agents: o.agents, AgentResources: o.agentResources,
		AgentAttributes: o.agentAttributes, WorkDir: o.workDir, ImageCommands: images,
		ImageProviders: o.imageProviders, DockerRegistry: o.dockerRegistry, Isolation: o.isolation,
	}, nil
}

func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	log := logrus.New()
	lvl, err := logrus.ParseLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log.SetLevel(lvl)
	if o.workDir == "" {
		dir, err := os.MkdirTemp("", "mesos-sim-")
		if err != nil {
			return fmt.Errorf("creating work dir: %w", err)
		}
		defer os.RemoveAll(dir)
		o.workDir = dir
	}
	cfg, err := o.clusterConfig(log)
	if err != nil {
		return err
	}
	c, err := mesossim.StartCluster(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	log.WithFields(logrus.Fields{"master": c.URL, "agents": o.agents, "work_dir": o.workDir}).Info("serving; stop with Ctrl-C")
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mesos-sim:", err)
		os.Exit(2)
	}
}

// Package imageconfig resolves the config of container images (Entrypoint, Cmd, Env, WorkingDir,
// User) from the registry the Mesos agent pulls them from, so that the executor computes a
// container's command the way the kubelet does instead of leaving it to Mesos' docker/runtime
// isolator, whose merge of CommandInfo with the image differs from Kubernetes'.
//
// The registry is the executor's --docker-registry, else the agent's own --docker_registry (agent
// operator API GET_FLAGS; Mesos' default https://registry-1.docker.io). A local directory is read
// the way Mesos' image tar puller reads it (<dir>/<stringify(reference)>.tar); a URL is the default
// registry of references without one, as for Mesos' registry puller, and is read with the pod's
// imagePullSecrets. Of a multi-platform image it takes the linux/amd64 config, as Mesos does.
package imageconfig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	k8schain "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/executor/agentclient"
	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

// DefaultRegistry is Mesos' default of the agent flag --docker_registry.
const DefaultRegistry = "https://registry-1.docker.io"

// DefaultPlatform is the image Mesos' registry puller gets from a multi-platform image: its docker
// fetcher accepts only single-image manifests (uri/fetchers/docker.cpp: v2+json, v1+json,
// v1+prettyjws), for which registries answer with the linux/amd64 image whatever the agent's
// architecture.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// ErrNoImageProvider: the agent has no docker image provider, so it cannot run any image.
var ErrNoImageProvider = errors.New("the agent has no docker image provider")

// SecretLookup reads Secrets (the executor's API client); a missing Secret is an error.
type SecretLookup interface {
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// Config configures a Resolver.
type Config struct {
	// Registry is the executor's --docker-registry: a local directory of image archives or a
	// registry URL. Empty: the agent's --docker_registry, read with GET_FLAGS from AgentURL.
	Registry string
	// AgentURL is the agent's operator API, http(s)://<MESOS_AGENT_ENDPOINT>/api/v1 (agentclient.Options.URL).
	AgentURL string
	// Agent is the token and TLS configuration of the calls (package agentclient).
	Agent agentclient.Options
	// Secrets reads the pods' imagePullSecrets (nil: images are read anonymously).
	Secrets SecretLookup
	// Platform picks the image of a multi-platform index; DefaultPlatform when nil.
	Platform *v1.Platform
	// Transport carries registry requests; remote.DefaultTransport when nil.
	Transport http.RoundTripper
	// CallTimeout bounds GET_FLAGS (default 30 s).
	CallTimeout time.Duration
	// Timeout bounds one Resolve (default 30 s): an unreachable registry must not hold a container's
	// start for the transport's retries, since the agent may still pull the image.
	Timeout time.Duration
}

// Resolver resolves and caches image configs. It is safe for concurrent use.
type Resolver struct {
	cfg    Config
	sender agentcalls.Sender

	mu       sync.Mutex
	flags    *agentFlags          // the agent's, once read
	byRef    map[string]v1.Config // by resolved reference (registry image) or archive path
	byDigest map[string]v1.Config // registry images by manifest digest
}

// New returns a Resolver.
func New(cfg Config) *Resolver {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Platform == nil {
		p := DefaultPlatform
		cfg.Platform = &p
	}
	r := &Resolver{cfg: cfg, byRef: map[string]v1.Config{}, byDigest: map[string]v1.Config{}}
	if cfg.AgentURL != "" {
		cli := cfg.Agent.Client(cfg.AgentURL, httpcli.Timeout(cfg.CallTimeout))
		r.sender = httpagent.NewSender(cli.Send)
	}
	return r
}

// PullPolicy is the container's imagePullPolicy, defaulted as the API server does: Always for an
// image without tag or with tag latest (and no digest), else IfNotPresent.
func PullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	if strings.Contains(c.Image, "@") {
		return corev1.PullIfNotPresent
	}
	if ref, err := name.ParseReference(c.Image, name.WeakValidation); err == nil {
		if t, ok := ref.(name.Tag); ok && t.TagStr() != name.DefaultTag {
			return corev1.PullIfNotPresent
		}
	}
	return corev1.PullAlways
}

// Resolve returns the config of container c's image. With pull policy Always a registry image's
// digest is looked up again (its config is reused if the digest is known) and an archive is read
// again; IfNotPresent and Never use the config resolved before.
func (r *Resolver) Resolve(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (*v1.Config, error) {
	if c.Image == "" {
		return nil, errors.New("container has no image")
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	registry, err := r.registryFor(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolving image %q: %w", c.Image, err)
	}
	always := PullPolicy(c) == corev1.PullAlways
	var cfg v1.Config
	switch {
	case strings.HasPrefix(registry, "/"):
		cfg, err = r.fromArchive(registry, c.Image, always)
	case strings.HasPrefix(registry, "hdfs://"):
		err = fmt.Errorf("the agent's registry %s is on HDFS, which the executor cannot read", registry)
	default:
		cfg, err = r.fromRegistry(ctx, registry, pod, c.Image, always)
	}
	if err != nil {
		return nil, fmt.Errorf("resolving image %q: %w", c.Image, err)
	}
	return &cfg, nil
}

// registryFor returns the registry to read images from: --docker-registry, else the agent's
// --docker_registry. An agent whose flags show no docker image provider cannot provision any image
// (Mesos answers "Unsupported container image type"), so nothing is read: ErrNoImageProvider.
func (r *Resolver) registryFor(ctx context.Context) (string, error) {
	flags, err := r.agent(ctx)
	switch {
	case err == nil && !flags.docker:
		return "", fmt.Errorf("%w (--image_providers=%q)", ErrNoImageProvider, flags.providers)
	case r.cfg.Registry != "":
		return r.cfg.Registry, nil // also when the agent's flags cannot be read
	case err != nil:
		return "", err
	}
	return flags.registry, nil
}

// agentFlags is what the executor needs of the agent's flags.
type agentFlags struct {
	registry  string // --docker_registry, Mesos' default when unset
	providers string // --image_providers
	docker    bool   // docker is one of them
}

// agent returns the agent's flags, read once with GET_FLAGS; without AgentURL, those of an agent
// with the docker provider and the default registry.
func (r *Resolver) agent(ctx context.Context) (agentFlags, error) {
	if r.sender == nil {
		return agentFlags{registry: DefaultRegistry, providers: "docker", docker: true}, nil
	}
	r.mu.Lock()
	flags := r.flags
	r.mu.Unlock()
	if flags != nil {
		return *flags, nil
	}
	resp, err := r.sender.Send(ctx, agentcalls.NonStreaming(agentcalls.GetFlags()))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		return agentFlags{}, fmt.Errorf("reading the agent's flags (GET_FLAGS): %w", err)
	}
	var out agent.Response
	if err := resp.Decode(&out); err != nil {
		return agentFlags{}, fmt.Errorf("decoding GET_FLAGS: %w", err)
	}
	f := agentFlags{registry: DefaultRegistry}
	for _, flag := range out.GetGetFlags().GetFlags() {
		switch flag.GetName() {
		case "docker_registry":
			if flag.GetValue() != "" {
				f.registry = flag.GetValue()
			}
		case "image_providers":
			// As Mesos' provisioner reads it: comma-separated, case-insensitive Image types.
			f.providers = flag.GetValue()
			for _, p := range strings.Split(f.providers, ",") {
				f.docker = f.docker || strings.EqualFold(strings.TrimSpace(p), "docker")
			}
		}
	}
	r.mu.Lock()
	r.flags = &f
	r.mu.Unlock()
	return f, nil
}

// fromArchive reads the config from the archive Mesos' image tar puller would untar: through
// go-containerregistry's tarball reader (docker save's manifest.json), else from the legacy layout
// the way Mesos reads it (archives without manifest.json, or with several images).
func (r *Resolver) fromArchive(dir, image string, always bool) (v1.Config, error) {
	path := imagearchive.Path(dir, image)
	if !always {
		if cfg, ok := r.cached(r.byRef, path); ok {
			return cfg, nil
		}
	}
	var cfg v1.Config
	img, err := tarball.ImageFromPath(path, nil)
	if err == nil {
		var cf *v1.ConfigFile
		if cf, err = img.ConfigFile(); err == nil {
			cfg = cf.Config
		}
	}
	if err != nil {
		var lerr error
		if cfg, lerr = imagearchive.ReadConfigFor(path, image); lerr != nil {
			return v1.Config{}, lerr
		}
	}
	r.store(r.byRef, path, cfg)
	return cfg, nil
}

// fromRegistry reads the config from the image's registry, named as Mesos' registry puller names it.
func (r *Resolver) fromRegistry(ctx context.Context, registry string, pod *corev1.Pod, image string, always bool) (v1.Config, error) {
	ref, err := Reference(registry, image)
	if err != nil {
		return v1.Config{}, err
	}
	key := ref.Name()
	if !always {
		if cfg, ok := r.cached(r.byRef, key); ok {
			return cfg, nil
		}
	}
	kc, err := r.keychain(ctx, pod)
	if err != nil {
		return v1.Config{}, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithPlatform(*r.cfg.Platform)}
	if r.cfg.Transport != nil {
		opts = append(opts, remote.WithTransport(r.cfg.Transport))
	}
	if always {
		desc, err := remote.Head(ref, opts...)
		if err != nil {
			return v1.Config{}, err
		}
		if cfg, ok := r.cached(r.byDigest, desc.Digest.String()); ok {
			r.store(r.byRef, key, cfg)
			return cfg, nil
		}
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return v1.Config{}, err
	}
	img, err := desc.Image() // the platform's image of an index
	if err != nil {
		return v1.Config{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Config{}, err
	}
	// Keyed by the digest the reference points at (an index's, when multi-platform), as Head answers.
	r.store(r.byDigest, desc.Digest.String(), cf.Config)
	r.store(r.byRef, key, cf.Config)
	return cf.Config, nil
}

// Reference names image as Mesos' registry puller does with default registry defaultURL: a
// reference without registry is pulled from defaultURL (its scheme), one with a registry over https
// unless its port is 80 or it is localhost/127.0.0.1 with a port (spec::getRegistryScheme); on a
// docker.io registry a one-component repository is under library/; the tag defaults to latest.
func Reference(defaultURL, image string) (name.Reference, error) {
	mref, err := imagearchive.ParseReference(image)
	if err != nil {
		return nil, fmt.Errorf("Failed to parse docker image '%s': %w", image, err)
	}
	var host, domain, scheme string
	if mref.Registry != "" {
		host, domain, scheme = mref.Registry, mref.Registry, mesosScheme(mref.Registry)
	} else {
		u, err := url.Parse(defaultURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("docker registry %q is neither a directory nor a URL", defaultURL)
		}
		host, domain, scheme = u.Host, u.Hostname(), u.Scheme
	}
	repo := mref.Repository
	if strings.Contains(domain, "docker.io") && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	var opts []name.Option
	if scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	if mref.Digest != "" {
		return name.NewDigest(host+"/"+repo+"@"+mref.Digest, opts...)
	}
	return name.NewTag(host+"/"+repo+":"+mref.TagOrLatest(), opts...)
}

// mesosScheme is spec::getRegistryScheme.
func mesosScheme(registry string) string {
	host, port, found := strings.Cut(registry, ":")
	switch {
	case !found:
		return "https"
	case port == "443":
		return "https"
	case port == "80":
		return "http"
	case host == "localhost" || host == "127.0.0.1":
		return "http"
	}
	return "https"
}

// keychain is the pod's imagePullSecrets of types kubernetes.io/dockerconfigjson and
// kubernetes.io/dockercfg (the Lookup gives data only: the type follows from the key), matched
// against registries the kubelet's way; anonymous when none matches. Missing secrets are skipped,
// as the kubelet does.
func (r *Resolver) keychain(ctx context.Context, pod *corev1.Pod) (authn.Keychain, error) {
	if r.cfg.Secrets == nil || pod == nil || len(pod.Spec.ImagePullSecrets) == 0 {
		return authn.NewMultiKeychain(), nil
	}
	var secrets []corev1.Secret
	for _, ref := range pod.Spec.ImagePullSecrets {
		data, err := r.cfg.Secrets.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			continue
		}
		s := corev1.Secret{Data: data}
		switch {
		case len(data[corev1.DockerConfigJsonKey]) > 0:
			s.Type = corev1.SecretTypeDockerConfigJson
		case len(data[corev1.DockerConfigKey]) > 0:
			s.Type = corev1.SecretTypeDockercfg
		default:
			continue
		}
		secrets = append(secrets, s)
	}
	kc, err := k8schain.NewFromPullSecrets(ctx, secrets)
	if err != nil {
		return nil, fmt.Errorf("reading the imagePullSecrets of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return kc, nil
}

func (r *Resolver) cached(m map[string]v1.Config, key string) (v1.Config, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, ok := m[key]
	return cfg, ok
}

func (r *Resolver) store(m map[string]v1.Config, key string, cfg v1.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m[key] = cfg
}

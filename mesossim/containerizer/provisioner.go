package containerizer

// The provisioner: Mesos' ProvisionerProcess with its docker store (local puller) and the copy
// backend (src/slave/containerizer/mesos/provisioner/{provisioner,paths}.cpp, docker/{store,paths,
// image_tar_puller}.cpp, backends/copy.cpp). An image archive in --docker_registry is untarred into a
// staging directory of --docker_store_dir, its layers are extracted once per layer id into
// <store>/layers/<id>/rootfs, and each container gets its own root filesystem under
// <work_dir>/provisioner/containers/<id>[/containers/<child id>…]/backends/<backend>/rootfses/<uuid>.
//
// The launcher calls Provision for a container with an image before the isolators' Prepare and sets
// Container.Rootfs to ProvisionInfo.Rootfs and Container.Image to &ProvisionInfo.Config; it calls
// Destroy after the isolators' Cleanup, as MesosContainerizerProcess::__destroy does. A failed
// Provision's error is the launch's failure text (e.g. Mesos' "Failed to find archive for image …").
// Not done here: checkpointing the layers file and recovery (the simulator does not restart agents),
// image garbage collection (PRUNE_IMAGES), registry URLs and HDFS (local directories only).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

// Provisioner backends, as named by --image_provisioner_backend.
const (
	BackendCopy    = "copy"
	BackendOverlay = "overlay"
)

// DefaultDockerStoreDir is the default of --docker_store_dir: path::join(os::temp(), "mesos", "store",
// "docker"), os::temp() being $TMPDIR or /tmp.
func DefaultDockerStoreDir() string {
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	return filepath.Join(tmp, "mesos", "store", "docker")
}

// Docker's (AUFS) whiteout names in image layers (docker::spec::WHITEOUT_PREFIX, WHITEOUT_OPAQUE_PREFIX).
const (
	whiteoutPrefix       = ".wh."
	whiteoutOpaquePrefix = ".wh..wh..opq"
)

// ProvisionerConfig are the agent flags the provisioner reads.
type ProvisionerConfig struct {
	// WorkDir is the agent's --work_dir; the provisioner keeps containers' root filesystems in
	// <WorkDir>/provisioner.
	WorkDir string
	// StoreDir is --docker_store_dir (DefaultDockerStoreDir() when empty).
	StoreDir string
	// Registry is --docker_registry, a local directory of `docker save` archives.
	Registry string
	// Backend is --image_provisioner_backend; empty picks Mesos' default (overlay when usable, else copy).
	Backend string
	Log     logrus.FieldLogger
}

// ProvisionInfo is what provisioning a container's image gives: Mesos' ProvisionInfo.
type ProvisionInfo struct {
	// Rootfs is the container's root filesystem on the host.
	Rootfs string
	// Config is the image's runtime config (the top layer's manifest "config", as Mesos reads it).
	Config v1.Config
	// Layers are the store's layer root filesystems the rootfs was made from, base first.
	Layers []string
}

// Provisioner provisions container root filesystems from the docker images of a local registry.
// Its methods may be called concurrently.
type Provisioner struct {
	cfg     ProvisionerConfig
	rootDir string
	backend backend

	mu      sync.Mutex
	stored  map[string][]string // stringify(reference) -> layer ids (the metadata manager's storedImages)
	pulling map[string]*pullCall
	infos   map[string]*provisionerInfo
}

type pullCall struct {
	done     chan struct{}
	layerIDs []string
	err      error
}

type provisionerInfo struct {
	id       mesos.ContainerID
	rootfses map[string][]string // backend -> rootfs ids
}

type backend interface {
	name() string
	provision(layers []string, rootfs, backendDir string) error
	destroy(rootfs, backendDir string) error
}

// NewProvisioner creates <work_dir>/provisioner and the store's directories and chooses the backend as
// Provisioner::create does.
func NewProvisioner(cfg ProvisionerConfig) (*Provisioner, error) {
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		cfg.Log = l
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = DefaultDockerStoreDir()
	}
	dir := filepath.Join(cfg.WorkDir, "provisioner")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("Failed to create provisioner root directory '%s': %v", dir, err)
	}
	rootDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("Failed to resolve the realpath of provisioner root directory '%s': %v", dir, err)
	}
	rootDir, err = filepath.Abs(rootDir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(cfg.StoreDir, "staging"), filepath.Join(cfg.StoreDir, "layers")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("Failed to create image stores: %v", err)
		}
	}
	p := &Provisioner{
		cfg:     cfg,
		rootDir: rootDir,
		stored:  map[string][]string{},
		pulling: map[string]*pullCall{},
		infos:   map[string]*provisionerInfo{},
	}
	backends := availableBackends()
	switch cfg.Backend {
	case "":
		// Mesos' priority list; a backend the filesystem cannot host is skipped with this log line.
		for _, name := range []string{BackendOverlay, BackendCopy} {
			b, ok := backends[name]
			if !ok {
				continue
			}
			if err := validateBackend(name, rootDir); err != nil {
				cfg.Log.Infof("Provisioner backend '%s' is not supported on '%s': %v", name, rootDir, err)
				continue
			}
			p.backend = b
			break
		}
		if p.backend == nil {
			return nil, errors.New("Failed to find a default backend")
		}
	default:
		b, ok := backends[cfg.Backend]
		if !ok {
			return nil, fmt.Errorf("The specified provisioner backend '%s' is not supported: Not found", cfg.Backend)
		}
		if err := validateBackend(cfg.Backend, rootDir); err != nil {
			return nil, fmt.Errorf("The specified provisioner backend '%s' is not supported: %v", cfg.Backend, err)
		}
		p.backend = b
	}
	cfg.Log.Infof("Using default backend '%s'", p.backend.name())
	return p, nil
}

// Backend is the backend the provisioner uses.
func (p *Provisioner) Backend() string { return p.backend.name() }

// RootDir is <work_dir>/provisioner, resolved.
func (p *Provisioner) RootDir() string { return p.rootDir }

// ContainerDir is Mesos' provisioner::paths::getContainerDir: a nested container's directory lies
// under its parent's, in "containers".
func (p *Provisioner) ContainerDir(id mesos.ContainerID) string {
	if id.Parent == nil {
		return filepath.Join(p.rootDir, "containers", id.Value)
	}
	return filepath.Join(p.ContainerDir(*id.Parent), "containers", id.Value)
}

func (p *Provisioner) backendDir(id mesos.ContainerID, backend string) string {
	return filepath.Join(p.ContainerDir(id), "backends", backend)
}

func containerKey(id mesos.ContainerID) string {
	if id.Parent == nil {
		return id.Value
	}
	return containerKey(*id.Parent) + "/" + id.Value
}

// Provision provisions image for the container and returns its root filesystem and config, failing
// with Mesos' messages (an image missing from the registry: "Failed to find archive for image
// 'busybox:1.36' at '<registry>/busybox:1.36.tar'"). An image already in the store is used without
// reading the registry again unless image.cached is false (Mesos' metadata manager).
func (p *Provisioner) Provision(ctx context.Context, id mesos.ContainerID, image mesos.Image) (ProvisionInfo, error) {
	if image.GetType() != mesos.Image_DOCKER {
		return ProvisionInfo{}, fmt.Errorf("Unsupported container image type: %s", image.GetType())
	}
	name := image.GetDocker().GetName()
	ref, err := imagearchive.ParseReference(name)
	if err != nil {
		return ProvisionInfo{}, fmt.Errorf("Failed to parse docker image '%s': %v", name, err)
	}
	layerIDs, err := p.get(ctx, ref, image.GetCached())
	if err != nil {
		return ProvisionInfo{}, err
	}
	// StoreProcess::__get: the layers' root filesystems, and the config from the top layer's manifest.
	layers := make([]string, len(layerIDs))
	for i, l := range layerIDs {
		layers[i] = p.layerRootfs(l)
	}
	manifestPath := filepath.Join(p.layerPath(layerIDs[len(layerIDs)-1]), "json")
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		return ProvisionInfo{}, fmt.Errorf("Failed to read manifest from '%s': %v", manifestPath, err)
	}
	var manifest struct {
		Config *v1.Config `json:"config"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		return ProvisionInfo{}, fmt.Errorf("Failed to parse docker v1 manifest from '%s': %v", manifestPath, err)
	}
	var cfg v1.Config
	if manifest.Config != nil {
		cfg = *manifest.Config
	}

	// ProvisionerProcess::_provision.
	backend := p.backend.name()
	rootfsID := uuid.NewString()
	rootfs := filepath.Join(p.backendDir(id, backend), "rootfses", rootfsID)
	p.cfg.Log.Infof("Provisioning image rootfs '%s' for container %s using %s backend", rootfs, containerKey(id), backend)
	key := containerKey(id)
	p.mu.Lock()
	info := p.infos[key]
	if info == nil {
		info = &provisionerInfo{id: id, rootfses: map[string][]string{}}
		p.infos[key] = info
	}
	info.rootfses[backend] = append(info.rootfses[backend], rootfsID)
	p.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(rootfs), 0o755); err != nil {
		return ProvisionInfo{}, err
	}
	if err := p.backend.provision(layers, rootfs, p.backendDir(id, backend)); err != nil {
		return ProvisionInfo{}, err
	}
	return ProvisionInfo{Rootfs: rootfs, Config: cfg, Layers: layers}, nil
}

// Destroy removes the container's root filesystems, its nested containers' first, and its provisioner
// directory. It returns false for a container it did not provision (Mesos ignores those).
func (p *Provisioner) Destroy(ctx context.Context, id mesos.ContainerID) (bool, error) {
	key := containerKey(id)
	p.mu.Lock()
	info, ok := p.infos[key]
	var children []mesos.ContainerID
	for k, ci := range p.infos {
		if strings.HasPrefix(k, key+"/") && strings.Count(k, "/") == strings.Count(key, "/")+1 {
			children = append(children, ci.id)
		}
	}
	p.mu.Unlock()
	if !ok {
		return false, nil
	}
	var errs []string
	for _, c := range children {
		if _, err := p.Destroy(ctx, c); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return false, fmt.Errorf("Failed to destroy nested containers: %s", strings.Join(errs, "; "))
	}
	p.mu.Lock()
	rootfses := info.rootfses
	p.mu.Unlock()
	for backend, ids := range rootfses {
		for _, rid := range ids {
			rootfs := filepath.Join(p.backendDir(id, backend), "rootfses", rid)
			p.cfg.Log.Infof("Destroying container rootfs at '%s' for container %s", rootfs, key)
			if err := p.backend.destroy(rootfs, p.backendDir(id, backend)); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return false, errors.New(strings.Join(errs, "\n"))
	}
	containerDir := p.ContainerDir(id)
	if err := os.RemoveAll(containerDir); err != nil {
		p.cfg.Log.Errorf("Failed to remove the provisioned container directory at '%s': %v", containerDir, err)
	}
	p.mu.Lock()
	delete(p.infos, key)
	p.mu.Unlock()
	return true, nil
}

func (p *Provisioner) layerPath(id string) string {
	return filepath.Join(p.cfg.StoreDir, "layers", id)
}

// layerRootfs is paths::getImageLayerRootfsPath: "rootfs.overlay" for the overlay backend (whose
// whiteouts are converted), "rootfs" otherwise.
func (p *Provisioner) layerRootfs(id string) string {
	return layerRootfsIn(p.layerPath(id), p.backend.name())
}

func layerRootfsIn(layerPath, backend string) string {
	if backend == BackendOverlay {
		return filepath.Join(layerPath, "rootfs."+backend)
	}
	return filepath.Join(layerPath, "rootfs")
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// get is StoreProcess::get/_get: the stored image if it is cached and all its layers are in the store,
// else one pull per reference at a time, shared by concurrent callers.
func (p *Provisioner) get(ctx context.Context, ref imagearchive.Reference, cached bool) ([]string, error) {
	key := ref.String()
	p.mu.Lock()
	if ids, ok := p.stored[key]; ok && cached {
		missed := false
		for _, id := range ids {
			if !exists(p.layerRootfs(id)) {
				missed = true
				break
			}
		}
		if !missed {
			p.mu.Unlock()
			p.cfg.Log.Infof("Using cached image '%s'", key)
			return ids, nil
		}
	}
	call, ok := p.pulling[key]
	if !ok {
		call = &pullCall{done: make(chan struct{})}
		p.pulling[key] = call
		go func() {
			call.layerIDs, call.err = p.pull(ref)
			p.mu.Lock()
			if call.err == nil {
				p.stored[key] = call.layerIDs
			}
			delete(p.pulling, key)
			p.mu.Unlock()
			close(call.done)
		}()
	}
	p.mu.Unlock()
	select {
	case <-call.done:
		return call.layerIDs, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pull is the image tar puller's pull into a staging directory followed by the store's moveLayers.
func (p *Provisioner) pull(ref imagearchive.Reference) ([]string, error) {
	staging, err := os.MkdirTemp(filepath.Join(p.cfg.StoreDir, "staging"), "")
	if err != nil {
		return nil, fmt.Errorf("Failed to create a staging directory: %v", err)
	}
	defer func() {
		p.cfg.Log.Infof("Removing staging directory '%s'", staging)
		if err := os.RemoveAll(staging); err != nil {
			p.cfg.Log.Warnf("Failed to remove staging directory '%s': %v", staging, err)
		}
	}()
	p.cfg.Log.Infof("Pulling image '%s'", ref)
	image := ref.String()
	tarPath := ref.ArchivePath(p.cfg.Registry)
	if !exists(tarPath) {
		return nil, fmt.Errorf("Failed to find archive for image '%s' at '%s'", image, tarPath)
	}
	if err := untar(tarPath, staging); err != nil {
		return nil, err
	}
	layerIDs, err := p.layerIDs(ref, staging)
	if err != nil {
		return nil, err
	}
	backend := p.backend.name()
	for _, id := range layerIDs {
		if exists(layerRootfsIn(p.layerPath(id), backend)) {
			continue
		}
		layerDir := filepath.Join(staging, id)
		tar := filepath.Join(layerDir, "layer.tar")
		rootfs := layerRootfsIn(layerDir, backend)
		if err := os.MkdirAll(rootfs, 0o755); err != nil {
			return nil, fmt.Errorf("Failed to create directory '%s': %v", rootfs, err)
		}
		if err := untar(tar, rootfs); err != nil {
			return nil, err
		}
		if err := os.Remove(tar); err != nil {
			return nil, fmt.Errorf("Failed to remove '%s' after extraction: %v", tar, err)
		}
	}
	p.cfg.Log.Infof("Moving layers from staging directory '%s' to image store for image '%s'", staging, ref)
	for _, id := range layerIDs {
		if err := p.moveLayer(staging, id); err != nil {
			return nil, err
		}
	}
	p.cfg.Log.Infof("Caching image '%s'", ref)
	return layerIDs, nil
}

// layerIDs is ImageTarPullerProcess::_pull: the tag's top layer in `repositories` (bare repository
// first, then registry/repository) and its parents, base first.
func (p *Provisioner) layerIDs(ref imagearchive.Reference, dir string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "repositories"))
	if err != nil {
		return nil, fmt.Errorf("Failed to read 'repositories': %v", errnoText(err))
	}
	var repositories map[string]json.RawMessage
	if err := json.Unmarshal(raw, &repositories); err != nil {
		return nil, fmt.Errorf("Failed to parse 'repositories': %v", err)
	}
	repo, ok := repositories[ref.Repository]
	if !ok && ref.Registry != "" {
		repo, ok = repositories[ref.Registry+"/"+ref.Repository]
	}
	if !ok {
		return nil, fmt.Errorf("Repository '%s' does not exist in 'repositories'", ref.Repository)
	}
	var tags map[string]json.RawMessage
	if err := json.Unmarshal(repo, &tags); err != nil {
		return nil, fmt.Errorf("Failed to find repository '%s' in 'repositories': %v", ref.Repository, err)
	}
	tag := ref.TagOrLatest()
	rawID, ok := tags[tag]
	if !ok {
		return nil, fmt.Errorf("Layer id '%s' is not found", tag)
	}
	var top string
	if err := json.Unmarshal(rawID, &top); err != nil {
		return nil, fmt.Errorf("Failed to access layer id '%s': %v", tag, err)
	}
	ids := []string{top}
	seen := map[string]bool{top: true}
	for id := top; ; {
		parent, err := parentLayerID(dir, id)
		if err != nil {
			return nil, fmt.Errorf("Failed to find parent layer id for layer '%s': %v", top, err)
		}
		if parent == "" {
			return ids, nil
		}
		if seen[parent] {
			return nil, fmt.Errorf("Failed to find parent layer id for layer '%s': layer '%s' is its own ancestor", top, parent)
		}
		seen[parent] = true
		ids = append([]string{parent}, ids...)
		id = parent
	}
}

func parentLayerID(dir, id string) (string, error) {
	path := filepath.Join(dir, id, "json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("Failed to read manifest from '%s': %v", path, errnoText(err))
	}
	var manifest map[string]json.RawMessage
	if err := json.Unmarshal(raw, &manifest); err != nil {
		return "", fmt.Errorf("Failed to parse manifest from '%s': %v", path, err)
	}
	parent, ok := manifest["parent"]
	if !ok || string(parent) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(parent, &s); err != nil {
		return "", fmt.Errorf("Unexpected 'parent' type in manifest from '%s'", path)
	}
	return s, nil
}

// moveLayer is StoreProcess::moveLayer: a layer already in the store (pulled before, or by another
// image) is kept, the staging copy dropped.
func (p *Provisioner) moveLayer(staging, id string) error {
	source := filepath.Join(staging, id)
	if !exists(source) {
		return nil
	}
	backend := p.backend.name()
	targetRootfs := layerRootfsIn(p.layerPath(id), backend)
	if exists(targetRootfs) {
		return nil
	}
	sourceRootfs := layerRootfsIn(source, backend)
	if backend == BackendOverlay {
		if err := convertWhiteouts(sourceRootfs); err != nil {
			return fmt.Errorf("Failed to convert the whiteout files under '%s': %v", sourceRootfs, err)
		}
	}
	target := p.layerPath(id)
	if !exists(target) {
		// Mesos creates the target and renames onto it; Go's os.Rename refuses an existing directory as
		// the target, so the layer directory is renamed into place directly.
		if err := os.Rename(source, target); err != nil {
			return fmt.Errorf("Failed to move layer from '%s' to '%s': %v", source, target, err)
		}
		return nil
	}
	if err := os.Rename(sourceRootfs, targetRootfs); err != nil {
		return fmt.Errorf("Failed to move rootfs from '%s' to '%s': %v", sourceRootfs, targetRootfs, err)
	}
	return nil
}

// untar is stout's command::untar: `tar -C dir -x -f input` (owners, modes and setuid bits kept when
// run as root).
func untar(input, dir string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("tar", "-C", dir, "-x", "-f", input)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("Failed to untar '%s' into '%s': %v: %s", input, dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// errnoText is the strerror part of an error, as stout's os::read reports it.
func errnoText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, fs.ErrNotExist) {
			return "No such file or directory"
		}
		return pe.Err.Error()
	}
	return err.Error()
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// copyBackend is Mesos' CopyBackend: each layer copied over the rootfs in order with `cp -aT`, its
// whiteouts applied first.
type copyBackend struct{}

func (copyBackend) name() string { return BackendCopy }

func (copyBackend) provision(layers []string, rootfs, _ string) error {
	if len(layers) == 0 {
		return errors.New("No filesystem layers provided")
	}
	if exists(rootfs) {
		return errors.New("Rootfs is already provisioned")
	}
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return fmt.Errorf("Failed to create rootfs directory: %v", err)
	}
	for _, layer := range layers {
		if err := copyLayer(layer, rootfs); err != nil {
			return err
		}
	}
	return nil
}

func copyLayer(layer, rootfs string) error {
	var whiteouts []string
	err := filepath.WalkDir(layer, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("Failed to read '%s': %v", path, err)
		}
		if path == layer {
			return nil
		}
		layerPath := strings.TrimPrefix(path, layer+"/")
		rootfsPath := filepath.Join(rootfs, layerPath)
		removePath := ""
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), whiteoutPrefix) {
			whiteouts = append(whiteouts, rootfsPath)
			if d.Name() == whiteoutOpaquePrefix {
				removePath = filepath.Join(rootfs, filepath.Dir(layerPath))
			} else {
				removePath = filepath.Join(rootfs, filepath.Dir(layerPath), strings.TrimPrefix(d.Name(), whiteoutPrefix))
			}
		}
		if lfi, err := os.Lstat(rootfsPath); err == nil {
			// Replacing a directory by a non-directory or back; and a symlink is removed before a file
			// is copied at its path, so that cp does not write through it (Mesos' security notes).
			if isDir(rootfsPath) != d.IsDir() || lfi.Mode()&fs.ModeSymlink != 0 {
				removePath = rootfsPath
			}
		}
		if removePath != "" {
			if fi, err := os.Lstat(removePath); err == nil {
				if fi.IsDir() {
					if err := os.RemoveAll(removePath); err != nil {
						return fmt.Errorf("Failed to remove directory '%s': %v", removePath, err)
					}
				} else if err := os.Remove(removePath); err != nil {
					return fmt.Errorf("Failed to remove file '%s': %v", removePath, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("cp", "-aT", layer, rootfs)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("Failed to copy layer: %s", stderr.String())
	}
	for _, w := range whiteouts {
		if err := os.Remove(w); err != nil {
			return fmt.Errorf("Failed to remove whiteout file '%s': %v", w, err)
		}
	}
	return nil
}

// isDir is os::stat::isdir, which follows symlinks.
func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func (copyBackend) destroy(rootfs, _ string) error {
	// Mesos runs `rm -rf` and only logs a failure: the directory goes with the container's later.
	_ = os.RemoveAll(rootfs)
	return nil
}

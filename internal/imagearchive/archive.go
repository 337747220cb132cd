package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Write writes the archive of image `reference` with config cfg and the given layers (base first)
// at Path(dir, reference), creating the directories the path needs. Without layers the image gets
// one empty layer: Mesos reads the config from the top layer's `json`, so an image needs one.
// Layers are read into memory; the archives this is for are small.
func Write(dir, reference string, cfg v1.Config, layers ...v1.Layer) error {
	ref, err := ParseReference(reference)
	if err != nil {
		return fmt.Errorf("image %q: %w", reference, err)
	}
	blobs, err := layerBlobs(layers)
	if err != nil {
		return fmt.Errorf("image %q: %w", reference, err)
	}
	data, err := archive(ref, cfg, blobs)
	if err != nil {
		return fmt.Errorf("image %q: %w", reference, err)
	}
	return writeAtomically(fsPath(ref.ArchivePath(dir)), data)
}

type layerBlob struct {
	id     string // docker save's legacy layer id: the directory name in the archive
	data   []byte // uncompressed layer tar
	diffID v1.Hash
}

func layerBlobs(layers []v1.Layer) ([]layerBlob, error) {
	if len(layers) == 0 {
		var empty bytes.Buffer
		if err := tar.NewWriter(&empty).Close(); err != nil {
			return nil, err
		}
		return chainIDs([]layerBlob{{data: empty.Bytes(), diffID: sha256Hash(empty.Bytes())}}), nil
	}
	blobs := make([]layerBlob, 0, len(layers))
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		blobs = append(blobs, layerBlob{data: data, diffID: sha256Hash(data)})
	}
	return chainIDs(blobs), nil
}

// chainIDs gives each layer a legacy id derived from its parent's id and its own content, so that
// equal stacks get equal ids (as docker save's v1 ids do) and different stacks different ones.
func chainIDs(blobs []layerBlob) []layerBlob {
	parent := ""
	for i := range blobs {
		sum := sha256.Sum256([]byte(parent + " " + blobs[i].diffID.String()))
		blobs[i].id = hex.EncodeToString(sum[:])
		parent = blobs[i].id
	}
	return blobs
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// legacyLayerJSON is a layer's `json` in docker save's legacy layout, which Mesos parses as
// docker::spec::v1::ImageManifest; only the top layer carries the image's config.
type legacyLayerJSON struct {
	ID              string     `json:"id"`
	Parent          string     `json:"parent,omitempty"`
	Created         time.Time  `json:"created"`
	Config          *v1.Config `json:"config,omitempty"`
	ContainerConfig *v1.Config `json:"container_config,omitempty"`
	Architecture    string     `json:"architecture,omitempty"`
	OS              string     `json:"os,omitempty"`
}

// manifestEntry is one entry of docker save's manifest.json (what go-containerregistry reads).
type manifestEntry struct {
	Config   string
	RepoTags []string `json:",omitempty"`
	Layers   []string
}

// epoch is every archive's creation time, so that an archive's bytes depend only on its content.
var epoch = time.Unix(0, 0).UTC()

func archive(ref Reference, cfg v1.Config, blobs []layerBlob) ([]byte, error) {
	diffIDs := make([]v1.Hash, len(blobs))
	history := make([]v1.History, len(blobs))
	for i, b := range blobs {
		diffIDs[i] = b.diffID
		history[i] = v1.History{Created: v1.Time{Time: epoch}}
	}
	configFile := v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: diffIDs},
		History:      history,
	}
	configBlob, err := json.Marshal(configFile)
	if err != nil {
		return nil, err
	}
	configName := sha256Hash(configBlob).Hex + ".json"

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	layerPaths := make([]string, len(blobs))
	for i, b := range blobs {
		lj := legacyLayerJSON{ID: b.id, Created: epoch, Architecture: runtime.GOARCH, OS: "linux"}
		if i > 0 {
			lj.Parent = blobs[i-1].id
		}
		if i == len(blobs)-1 {
			c := cfg
			lj.Config = &c
			lj.ContainerConfig = &v1.Config{}
		}
		layerJSON, err := json.Marshal(lj)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: b.id + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
			return nil, err
		}
		layerPaths[i] = b.id + "/layer.tar"
		for _, f := range []struct {
			name string
			data []byte
		}{{b.id + "/VERSION", []byte("1.0")}, {b.id + "/json", layerJSON}, {layerPaths[i], b.data}} {
			if err := add(f.name, f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := add(configName, configBlob); err != nil {
		return nil, err
	}
	entry := manifestEntry{Config: configName, Layers: layerPaths}
	if tag := repoTag(ref); tag != "" {
		entry.RepoTags = []string{tag}
	}
	manifest, err := json.Marshal([]manifestEntry{entry})
	if err != nil {
		return nil, err
	}
	if err := add("manifest.json", manifest); err != nil {
		return nil, err
	}
	repositories, err := json.Marshal(map[string]map[string]string{
		repositoryKey(ref): {ref.TagOrLatest(): blobs[len(blobs)-1].id},
	})
	if err != nil {
		return nil, err
	}
	if err := add("repositories", repositories); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// repositoryKey is the key docker save writes in `repositories`: the name as given, registry
// included. Mesos looks up the bare repository first and then registry/repository, so it finds it.
func repositoryKey(ref Reference) string {
	if ref.Registry != "" {
		return ref.Registry + "/" + ref.Repository
	}
	return ref.Repository
}

// repoTag is manifest.json's tag for the image, or "" when the name is not a valid docker tag
// (go-containerregistry then still reads the archive's single image).
func repoTag(ref Reference) string {
	s := repositoryKey(ref) + ":" + ref.TagOrLatest()
	if _, err := name.NewTag(s); err != nil {
		return ""
	}
	return s
}

func writeAtomically(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".imagearchive-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadConfig reads the config of the image in the archive at path the way Mesos does
// (`repositories` → the tag's top layer → that layer's `json` → "config"), for an archive that holds
// one repository with one tag (what Write writes); ReadConfigFor looks up a given reference.
func ReadConfig(path string) (v1.Config, error) {
	files, err := readArchive(path)
	if err != nil {
		return v1.Config{}, err
	}
	repos, err := parseRepositories(files)
	if err != nil {
		return v1.Config{}, err
	}
	if len(repos) != 1 {
		return v1.Config{}, fmt.Errorf("archive '%s' holds %d repositories in 'repositories'; name the image", path, len(repos))
	}
	for repo, raw := range repos {
		var tags map[string]json.RawMessage
		if err := json.Unmarshal(raw, &tags); err != nil {
			return v1.Config{}, fmt.Errorf("Failed to find repository '%s' in 'repositories': %v", repo, err)
		}
		if len(tags) != 1 {
			return v1.Config{}, fmt.Errorf("repository '%s' in archive '%s' has %d tags; name the image", repo, path, len(tags))
		}
		for tag := range tags {
			return configAt(path, files, tags, tag)
		}
	}
	panic("unreachable")
}

// ReadConfigFor reads the config of image `reference` from the archive at path exactly as Mesos'
// image tar puller and docker store do, failing with their messages (ImageTarPullerProcess::_pull):
// the bare repository is looked up in `repositories`, then registry/repository; the tag (else
// "latest") gives the top layer; every parent layer must be in the archive; the top layer's `json`
// holds the config.
func ReadConfigFor(path, reference string) (v1.Config, error) {
	ref, err := ParseReference(reference)
	if err != nil {
		return v1.Config{}, fmt.Errorf("Failed to parse docker image '%s': %v", reference, err)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return v1.Config{}, fmt.Errorf("Failed to find archive for image '%s' at '%s'", ref, path)
	}
	files, err := readArchive(path)
	if err != nil {
		return v1.Config{}, err
	}
	repos, err := parseRepositories(files)
	if err != nil {
		return v1.Config{}, err
	}
	raw, ok := repos[ref.Repository]
	if !ok && ref.Registry != "" {
		raw, ok = repos[ref.Registry+"/"+ref.Repository]
	}
	if !ok {
		return v1.Config{}, fmt.Errorf("Repository '%s' does not exist in 'repositories'", ref.Repository)
	}
	var tags map[string]json.RawMessage
	if err := json.Unmarshal(raw, &tags); err != nil {
		return v1.Config{}, fmt.Errorf("Failed to find repository '%s' in 'repositories': %v", ref.Repository, err)
	}
	return configAt(path, files, tags, ref.TagOrLatest())
}

// readArchive returns the archive's `repositories` and layer `json` files (layer tars are skipped).
func readArchive(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("Failed to untar '%s': %v", path, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch {
		case h.Typeflag != tar.TypeReg:
		case strings.HasSuffix(name, "/layer.tar"):
			files[name] = nil // its presence is what matters here
		case name == "repositories" || strings.HasSuffix(name, "/json"):
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("Failed to untar '%s': %v", path, err)
			}
			files[name] = b
		}
	}
}

func parseRepositories(files map[string][]byte) (map[string]json.RawMessage, error) {
	b, ok := files["repositories"]
	if !ok {
		return nil, errors.New("Failed to read 'repositories': No such file or directory")
	}
	var repos map[string]json.RawMessage
	if err := json.Unmarshal(b, &repos); err != nil {
		return nil, fmt.Errorf("Failed to parse 'repositories': %v", err)
	}
	return repos, nil
}

func configAt(path string, files map[string][]byte, tags map[string]json.RawMessage, tag string) (v1.Config, error) {
	rawID, ok := tags[tag]
	if !ok {
		return v1.Config{}, fmt.Errorf("Layer id '%s' is not found", tag)
	}
	var top string
	if err := json.Unmarshal(rawID, &top); err != nil {
		return v1.Config{}, fmt.Errorf("Failed to access layer id '%s': %v", tag, err)
	}
	type layerJSON struct {
		Parent *string    `json:"parent"`
		Config *v1.Config `json:"config"`
	}
	read := func(id string) (layerJSON, error) {
		manifestPath := id + "/json"
		b, ok := files[manifestPath]
		if !ok {
			return layerJSON{}, fmt.Errorf("Failed to read manifest from '%s' in '%s': No such file or directory", manifestPath, path)
		}
		var lj layerJSON
		if err := json.Unmarshal(b, &lj); err != nil {
			return layerJSON{}, fmt.Errorf("Failed to parse manifest from '%s' in '%s': %v", manifestPath, path, err)
		}
		if _, ok := files[id+"/layer.tar"]; !ok {
			return layerJSON{}, fmt.Errorf("Failed to extract layer '%s' from '%s': no '%s/layer.tar'", id, path, id)
		}
		return lj, nil
	}
	topJSON, err := read(top)
	if err != nil {
		return v1.Config{}, err
	}
	seen := map[string]bool{top: true}
	for p := topJSON.Parent; p != nil && *p != ""; {
		if seen[*p] {
			return v1.Config{}, fmt.Errorf("Failed to find parent layer id for layer '%s': layer '%s' is its own ancestor", top, *p)
		}
		seen[*p] = true
		lj, err := read(*p)
		if err != nil {
			return v1.Config{}, fmt.Errorf("Failed to find parent layer id for layer '%s': %v", top, err)
		}
		p = lj.Parent
	}
	if topJSON.Config == nil {
		// Mesos' docker/runtime isolator CHECK-fails (the agent aborts) on a manifest without one.
		return v1.Config{}, fmt.Errorf("layer '%s' of '%s' has no 'config'", top, path)
	}
	return *topJSON.Config, nil
}

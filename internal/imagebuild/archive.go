package imagebuild

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	legacytarball "github.com/google/go-containerregistry/pkg/legacy/tarball"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

// Image stacks layers (base first) under cfg, created at Epoch for linux on this architecture.
func Image(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "kubemesos imagebuild"}}
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: Epoch}
	return mutate.ConfigFile(img, cf)
}

// WriteArchives writes img into the local registry dir once, as one `docker save` archive (written by
// go-containerregistry's legacy tarball writer: `repositories`, `<layer id>/{json,layer.tar,VERSION}`,
// manifest.json) tagged with every name, and makes the archive path Mesos looks up for each name
// (`<dir>/<name>.tar`, names taken verbatim) a hard link to it. Each name is in `repositories` under
// the key Mesos' image tar puller finds ([registry/]repository) with its tag, "latest" when it has
// none, as `docker save` of those names would write it. It returns the archive's size.
func WriteArchives(dir string, img v1.Image, names ...string) (int64, error) {
	if len(names) == 0 {
		return 0, fmt.Errorf("no image names")
	}
	refs := map[name.Reference]v1.Image{}
	seen := map[string]bool{}
	for _, n := range names {
		ref, err := imagearchive.ParseReference(n)
		if err != nil {
			return 0, fmt.Errorf("image %q: %w", n, err)
		}
		if ref.Digest != "" {
			return 0, fmt.Errorf("image %q: an archive cannot be named by digest", n)
		}
		repo := ref.Repository
		if ref.Registry != "" {
			repo = ref.Registry + "/" + repo
		}
		tagged := repo + ":" + ref.TagOrLatest()
		if seen[tagged] {
			continue
		}
		seen[tagged] = true
		tag, err := name.NewTag(tagged)
		if err != nil {
			return 0, fmt.Errorf("image %q: %w", n, err)
		}
		refs[tag] = img
	}
	first := filepath.FromSlash(imagearchive.Path(dir, names[0]))
	if err := os.MkdirAll(filepath.Dir(first), 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(first), ".imagebuild-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	if err := legacytarball.MultiWrite(refs, tmp); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("writing %s: %w", first, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return 0, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), first); err != nil {
		return 0, err
	}
	for _, n := range names[1:] {
		p := filepath.FromSlash(imagearchive.Path(dir, n))
		if p == first {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, err
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return 0, err
		}
		if err := os.Link(first, p); err != nil {
			return 0, fmt.Errorf("image %q: %w", n, err)
		}
	}
	return fi.Size(), nil
}

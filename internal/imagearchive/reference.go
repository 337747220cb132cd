// Package imagearchive writes and reads Docker image archives the way a Mesos agent started with
// `--image_providers=docker --docker_registry=<local dir>` finds and reads them: the archive of image
// `name` is `<dir>/<stringify(parse(name))>.tar` (src/slave/containerizer/mesos/provisioner/docker/
// image_tar_puller.cpp, paths.cpp, src/docker/spec.cpp), in `docker save`'s legacy layout
// (`repositories`, `<layer id>/json`, `<layer id>/layer.tar`, `<layer id>/VERSION`), which is what Mesos
// reads. The archives also hold `docker save`'s `manifest.json` and config blob, so that
// go-containerregistry's pkg/v1/tarball reads the same file.
package imagearchive

import (
	"errors"
	"path/filepath"
	"strings"
)

// Reference is Mesos' parsed docker image reference (docker::spec::ImageReference). Mesos does not
// normalise names: `busybox`, `library/busybox` and `docker.io/library/busybox` are three references
// with three archive paths.
type Reference struct {
	Registry   string
	Repository string
	Tag        string
	Digest     string
}

// ParseReference parses an image name exactly as Mesos' docker::spec::parseImageReference does; its
// only error is Mesos' "Multiple '@' symbols found".
func ParseReference(s string) (Reference, error) {
	var ref Reference
	if strings.Contains(s, "@") {
		split := strings.Split(s, "@")
		if len(split) != 2 {
			return Reference{}, errors.New("Multiple '@' symbols found")
		}
		s = split[0]
		ref.Digest = split[1]
	}
	// The tag is the last ':' component unless a '/' follows it (then the ':' is a registry port).
	if strings.Contains(s, ":") {
		split := strings.Split(s, ":")
		if last := split[len(split)-1]; !strings.Contains(last, "/") {
			ref.Tag = last
			s = strings.Join(split[:len(split)-1], ":")
		}
	}
	// Mesos' docker-derived heuristic: a first component with '.' or ':', or "localhost", is a registry.
	first, rest, found := strings.Cut(s, "/")
	if found && (strings.Contains(first, ".") || strings.Contains(first, ":") || first == "localhost") {
		ref.Registry = first
		ref.Repository = rest
	} else {
		ref.Repository = s
	}
	return ref, nil
}

// String is Mesos' operator<< for ImageReference: [registry/]repository then @digest, else :tag.
// It names the archive and appears in Mesos' messages ("Failed to find archive for image '…'").
func (r Reference) String() string {
	s := r.Repository
	if r.Registry != "" {
		s = r.Registry + "/" + r.Repository
	}
	switch {
	case r.Digest != "":
		s += "@" + r.Digest
	case r.Tag != "":
		s += ":" + r.Tag
	}
	return s
}

// TagOrLatest is the tag Mesos looks up in `repositories`: the reference's tag, else "latest" (also
// for a digest reference without a tag).
func (r Reference) TagOrLatest() string {
	if r.Tag != "" {
		return r.Tag
	}
	return "latest"
}

// ArchivePath is Mesos' paths::getImageArchiveTarPath(dir, stringify(reference)): path::join(dir,
// name + ".tar"). The name is not sanitised, so a name with '/' lands in a subdirectory.
func (r Reference) ArchivePath(dir string) string {
	return joinMesos(dir, r.String()+".tar")
}

// Path returns the archive path Mesos' image tar puller would look for image `reference` in the
// local registry `dir`. For a reference Mesos cannot parse (more than one '@'; Mesos fails the launch
// with "Failed to parse docker image …") it returns the path of the name as given.
func Path(dir, reference string) string {
	ref, err := ParseReference(reference)
	if err != nil {
		return joinMesos(dir, reference+".tar")
	}
	return ref.ArchivePath(dir)
}

// joinMesos is stout's path::join of two components: at most one trailing '/' of dir and one leading
// '/' of name dropped, one '/' between them, nothing cleaned (Mesos prints the path it tried verbatim).
func joinMesos(dir, name string) string {
	return strings.TrimSuffix(dir, "/") + "/" + strings.TrimPrefix(name, "/")
}

// fsPath is the file a Mesos-joined path refers to on this host.
func fsPath(p string) string { return filepath.FromSlash(p) }

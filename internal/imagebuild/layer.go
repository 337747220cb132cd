// Package imagebuild builds real Docker images (layers with files, symlinks and modes) and writes
// them as `docker save` archives named the way a Mesos agent's local puller finds them
// (--docker_registry=<dir>: `<dir>/<image>.tar`, see internal/imagearchive). Its busybox image comes
// from Debian's busybox-static package, so a fresh Debian machine can build it without any registry.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Epoch is the modification time of every file and the creation time of every image built here, so
// that equal inputs give byte-equal layers (and so equal layer ids in a Mesos store).
var Epoch = time.Unix(0, 0).UTC()

type entry struct {
	hdr  tar.Header
	data []byte
	file string // host file to copy, when data is nil
}

// Layer collects the entries of one layer. Paths are relative to the image root ("bin/sh" or
// "/bin/sh"); missing parent directories are added with mode 0755. Owner is root unless given.
type Layer struct {
	entries map[string]*entry
}

// NewLayer returns an empty layer.
func NewLayer() *Layer { return &Layer{entries: map[string]*entry{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (l *Layer) put(p string, e *entry) {
	p = clean(p)
	e.hdr.Name = p
	e.hdr.ModTime = Epoch
	e.hdr.Format = tar.FormatPAX
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := l.entries[d]; !ok {
			l.entries[d] = &entry{hdr: tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: Epoch, Format: tar.FormatPAX}}
		}
	}
	if e.hdr.Typeflag == tar.TypeDir {
		e.hdr.Name = p + "/"
	}
	l.entries[p] = e
}

// Dir adds a directory with the given mode (permission and sticky/setuid bits, e.g. 0o1777).
func (l *Layer) Dir(p string, mode int64) *Layer {
	l.put(p, &entry{hdr: tar.Header{Typeflag: tar.TypeDir, Mode: mode}})
	return l
}

// File adds a regular file with the given content and mode.
func (l *Layer) File(p string, mode int64, data []byte) *Layer {
	l.put(p, &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data))}, data: data})
	return l
}

// FileOwned adds a regular file owned by uid:gid.
func (l *Layer) FileOwned(p string, mode int64, uid, gid int, data []byte) *Layer {
	l.put(p, &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), Uid: uid, Gid: gid}, data: data})
	return l
}

// HostFile adds a copy of the host file src (read when the layer is written) with the given mode.
func (l *Layer) HostFile(p string, mode int64, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	l.put(p, &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Mode: mode, Size: fi.Size()}, file: src})
	return nil
}

// Symlink adds a symbolic link p -> target.
func (l *Layer) Symlink(p, target string) *Layer {
	l.put(p, &entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}})
	return l
}

// Has reports whether the layer has an entry at p.
func (l *Layer) Has(p string) bool { _, ok := l.entries[clean(p)]; return ok }

// WriteTar writes the layer as an uncompressed tar, entries sorted by path (parents first).
func (l *Layer) WriteTar(w io.Writer) error {
	names := make([]string, 0, len(l.entries))
	for n := range l.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, n := range names {
		e := l.entries[n]
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		switch {
		case e.data != nil:
			if _, err := tw.Write(e.data); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		case e.file != "":
			f, err := os.Open(e.file)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, hdr.Size)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s from %s: %w", n, e.file, err)
			}
		}
	}
	return tw.Close()
}

// Build returns the layer as a v1.Layer (held in memory: the images built here are tens of MB).
func (l *Layer) Build() (v1.Layer, error) {
	var buf bytes.Buffer
	if err := l.WriteTar(&buf); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	// BestSpeed: the compressed form only serves for the digest (archives hold uncompressed layers).
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed))
}

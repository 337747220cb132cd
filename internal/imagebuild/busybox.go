package imagebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

// BusyboxPackage is the Debian package the busybox image is built from: a static busybox, so the
// image needs no libraries.
const BusyboxPackage = "busybox-static"

// Busybox is a static busybox binary and where it came from.
type Busybox struct {
	Path    string // the binary
	Version string // the Debian package's version
	SHA256  string // of the binary: what the image's content depends on
}

// BusyboxOptions tune FindBusybox. The zero value uses the installed package, else downloads it.
type BusyboxOptions struct {
	// CacheDir keeps downloaded packages (<CacheDir>/debs); empty means the user's cache
	// (~/.cache/kubemesos/busybox-static), so that tests download the package once per machine.
	CacheDir string
	// Download ignores an installed busybox-static and takes the package from apt (apt-get download,
	// then dpkg-deb -x: nothing is installed).
	Download bool
	// Log receives what is being done; nil discards it.
	Log io.Writer
}

// FindBusybox returns busybox-static's /bin/busybox: the installed package's, else the one in the
// package fetched with `apt-get download` into the cache (after `apt-get update` if the package
// lists do not have it yet).
func FindBusybox(ctx context.Context, o BusyboxOptions) (Busybox, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if !o.Download {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}\t${Version}", BusyboxPackage).Output()
		if status, version, ok := strings.Cut(string(out), "\t"); err == nil && ok && strings.HasSuffix(status, " installed") {
			return busyboxAt("/bin/busybox", version)
		}
	}
	dir := o.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return Busybox{}, err
		}
		dir = filepath.Join(base, "kubemesos", BusyboxPackage)
	}
	debs := filepath.Join(dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return Busybox{}, err
	}
	deb, err := downloadDeb(ctx, debs, BusyboxPackage, o.Log)
	if err != nil {
		return Busybox{}, err
	}
	version, err := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, "Version").Output()
	if err != nil {
		return Busybox{}, fmt.Errorf("dpkg-deb -f %s Version: %w", deb, err)
	}
	root := strings.TrimSuffix(deb, ".deb")
	bin := filepath.Join(root, "bin", "busybox")
	if _, err := os.Stat(bin); err != nil {
		tmp, err := os.MkdirTemp(debs, ".extract-")
		if err != nil {
			return Busybox{}, err
		}
		defer os.RemoveAll(tmp)
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
			return Busybox{}, fmt.Errorf("dpkg-deb -x %s: %w: %s", deb, err, out)
		}
		if err := os.Rename(tmp, root); err != nil && !errors.Is(err, os.ErrExist) {
			return Busybox{}, err
		}
	}
	return busyboxAt(bin, strings.TrimSpace(string(version)))
}

// downloadDeb runs `apt-get download pkg` in dir (reusing a .deb of pkg already there) and returns
// the file's path.
func downloadDeb(ctx context.Context, dir, pkg string, log io.Writer) (string, error) {
	find := func() string {
		m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		sort.Strings(m)
		if len(m) == 0 {
			return ""
		}
		return m[len(m)-1]
	}
	if p := find(); p != "" {
		return p, nil
	}
	// Test packages running at once share the cache: each downloads into a directory of its own and
	// renames the file into place.
	download := func() ([]byte, error) {
		fmt.Fprintf(log, "imagebuild: apt-get download %s\n", pkg)
		tmp, err := os.MkdirTemp(dir, ".download-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
		cmd.Dir = tmp
		out, err := cmd.CombinedOutput()
		if err != nil {
			return out, err
		}
		got, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
		for _, f := range got {
			if err := os.Rename(f, filepath.Join(dir, filepath.Base(f))); err != nil {
				return out, err
			}
		}
		return out, nil
	}
	out, err := download()
	if err != nil {
		// A fresh machine's package lists may be empty or stale.
		fmt.Fprintf(log, "imagebuild: apt-get download failed (%s); running apt-get update\n", strings.TrimSpace(string(out)))
		if uout, uerr := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get update: %w: %s", uerr, uout)
		}
		if out, err = download(); err != nil {
			return "", fmt.Errorf("apt-get download %s: %w: %s", pkg, err, out)
		}
	}
	if p := find(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("apt-get download %s left no %s_*.deb in %s", pkg, pkg, dir)
}

func busyboxAt(path, version string) (Busybox, error) {
	f, err := os.Open(path)
	if err != nil {
		return Busybox{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Busybox{}, err
	}
	return Busybox{Path: path, Version: version, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Applets are the binary's applets where `busybox --install -s` puts them ("bin/sh", "usr/bin/awk",
// "sbin/ip", …), read from `busybox --list-full`.
func (b Busybox) Applets(ctx context.Context) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.Path, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w: %s", b.Path, err, stderr.String())
	}
	return strings.Fields(string(out)), nil
}

// BusyboxPasswd and BusyboxGroup are the upstream busybox image's /etc/passwd and /etc/group.
const (
	BusyboxPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	BusyboxGroup = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`
)

// BusyboxLayer is the busybox image's root filesystem: /bin/busybox, every applet as a symlink to it
// where `busybox --install -s` puts it and also in /bin (where the upstream image has all of them, so
// /bin/sleep, /bin/env, … work as there), the upstream image's users and groups, and /tmp, /root,
// /home, /var/spool/mail, /var/www.
func BusyboxLayer(ctx context.Context, b Busybox) (*Layer, error) {
	applets, err := b.Applets(ctx)
	if err != nil {
		return nil, err
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s lists no applets", b.Path)
	}
	l := NewLayer()
	for _, d := range []string{"bin", "dev", "etc", "home", "sbin", "usr/bin", "usr/sbin", "var/spool/mail", "var/www"} {
		l.Dir(d, 0o755)
	}
	l.Dir("root", 0o700)
	l.Dir("tmp", 0o1777)
	if err := l.HostFile("bin/busybox", 0o755, b.Path); err != nil {
		return nil, err
	}
	for _, a := range applets {
		for _, p := range []string{a, "bin/" + filepath.Base(a)} {
			if p != "bin/busybox" && !l.Has(p) {
				l.Symlink(p, "/bin/busybox")
			}
		}
	}
	l.File("etc/passwd", 0o644, []byte(BusyboxPasswd))
	l.File("etc/group", 0o644, []byte(BusyboxGroup))
	return l, nil
}

// BusyboxConfig is the busybox image's config (docker.io/library/busybox: Cmd ["sh"], PATH).
var BusyboxConfig = imagearchive.BusyboxConfig

// BusyboxImage is the busybox image: BusyboxLayer under BusyboxConfig.
func BusyboxImage(ctx context.Context, b Busybox) (v1.Image, error) {
	l, err := BusyboxLayer(ctx, b)
	if err != nil {
		return nil, err
	}
	layer, err := l.Build()
	if err != nil {
		return nil, err
	}
	return Image(BusyboxConfig, layer)
}

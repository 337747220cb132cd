package imagebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/kubemesos/kubemesos/internal/buildcache"
)

// Upstream busybox, the source of the upstream busybox image (registry.k8s.io/e2e-test-images/busybox
// mirrors docker.io/library/busybox:1.37.0, built from this release). Debian's busybox-static is
// not the same shell: Debian reverts upstream's commit 9c143ce5 ("ash: retain envvars with bad
// names in initial environment", debian/patches/revert-9c143ce5…), so its ash drops variables whose
// names are not shell identifiers (`data-1`, which envFrom makes of a ConfigMap's keys) from the
// environment it passes on, where upstream's ash.c init() imports every name=value of environ.
const (
	BusyboxSourceVersion = "1.37.0"
	// BusyboxSourceSHA256 is the release tarball's (busybox-1.37.0.tar.bz2, also Debian's
	// busybox_1.37.0.orig.tar.bz2).
	BusyboxSourceSHA256 = "3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4"
	// BusyboxSourceSuite is the Debian suite whose source package carries that tarball; apt-get
	// fetches it with a private configuration (the host's apt sources and state are not touched).
	BusyboxSourceSuite = "trixie"
)

// busyboxConfigEdits turn `make defconfig` into the build: static (the image has no libraries), and
// without tc, whose CBQ code no longer builds against current kernel headers (Debian drops it too).
var busyboxConfigEdits = [][2]string{
	{"# CONFIG_STATIC is not set", "CONFIG_STATIC=y"},
	{"CONFIG_TC=y", "# CONFIG_TC is not set"},
}

// BuildBusybox returns a static busybox built from upstream's BusyboxSourceVersion with its defconfig
// (see busyboxConfigEdits), cached in <CacheDir>/busybox-<version>-<key>/busybox. The source
// tarball comes from Debian's source package (apt-get source --download-only with a private
// sources list and state under CacheDir) and must have BusyboxSourceSHA256; Debian's patches are
// not applied. SHA256 of the result names its inputs (tarball and configuration), not the binary,
// which embeds its build time.
func BuildBusybox(ctx context.Context, o BusyboxOptions) (Busybox, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.CacheDir == "" {
		return Busybox{}, fmt.Errorf("building busybox: a cache directory is required")
	}
	h := sha256.New()
	fmt.Fprintln(h, BusyboxSourceSHA256)
	for _, e := range busyboxConfigEdits {
		fmt.Fprintln(h, e[0], "->", e[1])
	}
	key := hex.EncodeToString(h.Sum(nil))
	out := filepath.Join(o.CacheDir, "busybox-"+BusyboxSourceVersion+"-"+key[:16], "busybox")
	b := Busybox{Path: out, Version: BusyboxSourceVersion + " (upstream source, defconfig, static, without tc)", SHA256: key}
	if _, err := os.Stat(out); err == nil {
		return b, nil
	}
	// Concurrent builders (make e2e's parallel go test processes on a fresh cache) would share apt's
	// private state, the tarball's rename and the binary's: one fetches and builds, the others wait
	// for its result.
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return Busybox{}, err
	}
	unlock, err := buildcache.Lock(ctx, filepath.Join(o.CacheDir, "busybox-"+BusyboxSourceVersion+".lock"), "busybox", o.Log)
	if err != nil {
		return Busybox{}, err
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return b, nil
	}
	tarball, err := busyboxSource(ctx, filepath.Join(o.CacheDir, "busybox-src"), o.Log)
	if err != nil {
		return Busybox{}, err
	}
	work, err := os.MkdirTemp(o.CacheDir, ".busybox-build-")
	if err != nil {
		return Busybox{}, err
	}
	defer os.RemoveAll(work)
	run := func(dir string, name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			tail := string(out)
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail)
		}
		return nil
	}
	fmt.Fprintf(o.Log, "imagebuild: building busybox %s from source (≈ 1 min)\n", BusyboxSourceVersion)
	if err := run(work, "tar", "-xjf", tarball); err != nil {
		return Busybox{}, err
	}
	src := filepath.Join(work, "busybox-"+BusyboxSourceVersion)
	if err := run(src, "make", "-s", "defconfig"); err != nil {
		return Busybox{}, err
	}
	cfgPath := filepath.Join(src, ".config")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return Busybox{}, err
	}
	lines := strings.Split(string(cfg), "\n")
	for _, e := range busyboxConfigEdits {
		found := false
		for i, l := range lines {
			if l == e[0] {
				lines[i], found = e[1], true
			}
		}
		if !found {
			return Busybox{}, fmt.Errorf("building busybox: defconfig has no line %q", e[0])
		}
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return Busybox{}, err
	}
	if err := run(src, "make", "-s", "-j"+strconv.Itoa(runtime.NumCPU())); err != nil {
		return Busybox{}, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Busybox{}, err
	}
	// Into place by rename: a reader never sees half a binary.
	tmp := out + ".tmp"
	if err := run(src, "cp", "busybox", tmp); err != nil {
		return Busybox{}, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return Busybox{}, err
	}
	return b, nil
}

// busyboxSource fetches the release tarball into dir (once) and checks its digest.
func busyboxSource(ctx context.Context, dir string, log io.Writer) (string, error) {
	tarball := filepath.Join(dir, "busybox_"+BusyboxSourceVersion+".orig.tar.bz2")
	if _, err := os.Stat(tarball); err != nil {
		for _, d := range []string{"lists/partial", "cache/archives/partial", "src"} {
			if err := os.MkdirAll(filepath.Join(dir, "apt", d), 0o755); err != nil {
				return "", err
			}
		}
		apt := filepath.Join(dir, "apt")
		list := filepath.Join(apt, "sources.list")
		if err := os.WriteFile(list, []byte("deb-src http://deb.debian.org/debian "+BusyboxSourceSuite+" main\n"), 0o644); err != nil {
			return "", err
		}
		opts := []string{
			"-o", "Dir::Etc::SourceList=" + list, "-o", "Dir::Etc::SourceParts=/dev/null",
			"-o", "Dir::State::Lists=" + filepath.Join(apt, "lists"), "-o", "Dir::Cache=" + filepath.Join(apt, "cache"),
			"-o", "APT::Get::List-Cleanup=0", "-o", "APT::Sandbox::User=root",
			// No installed packages: with the host's busybox installed, apt-get source asks for
			// that binary's version (bookworm's), which the suite's list does not have.
			"-o", "Dir::State::status=/dev/null",
		}
		fmt.Fprintf(log, "imagebuild: apt-get source --download-only busybox (%s)\n", BusyboxSourceSuite)
		for _, args := range [][]string{append(opts, "update"), append(opts, "source", "--download-only", "busybox")} {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Dir = filepath.Join(apt, "src")
			if out, err := cmd.CombinedOutput(); err != nil {
				return "", fmt.Errorf("apt-get %s: %w: %s", args[len(opts)], err, out)
			}
		}
		got := filepath.Join(apt, "src", filepath.Base(tarball))
		if _, err := os.Stat(got); err != nil {
			return "", fmt.Errorf("Debian %s's busybox source package has no %s (a newer upstream release?): %w", BusyboxSourceSuite, filepath.Base(tarball), err)
		}
		if err := os.Rename(got, tarball); err != nil {
			return "", err
		}
	}
	f, err := os.Open(tarball)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != BusyboxSourceSHA256 {
		return "", fmt.Errorf("%s has sha256 %s, want %s", tarball, got, BusyboxSourceSHA256)
	}
	return tarball, nil
}

package imagebuild

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

func busybox(t testing.TB) Busybox {
	t.Helper()
	b, err := FindBusybox(context.Background(), BusyboxOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layerFiles lists a layer's tar entries by name.
func layerFiles(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = h
	}
}

func TestBusyboxImageFromTheDebianPackage(t *testing.T) {
	ctx := context.Background()
	b := busybox(t)
	if b.Version == "" || len(b.SHA256) != 64 {
		t.Fatalf("busybox = %+v", b)
	}
	img, err := BusyboxImage(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	files := layerFiles(t, layers[0])
	if h := files["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != 0 {
		t.Fatalf("bin/busybox = %+v", h)
	}
	for _, p := range []string{"bin/sh", "bin/sleep", "bin/true", "bin/env", "bin/id", "usr/bin/env", "sbin/ip"} {
		if h := files[p]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
			t.Errorf("%s = %+v, want a symlink to /bin/busybox", p, h)
		}
	}
	if h := files["tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("tmp = %+v", h)
	}
	for _, p := range []string{"etc/passwd", "etc/group", "root", "home", "var/www", "var/spool/mail"} {
		if files[p] == nil {
			t.Errorf("%s missing", p)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Cmd, " "); got != "sh" || cf.Config.Entrypoint != nil || cf.OS != "linux" {
		t.Fatalf("config = %+v", cf.Config)
	}

	// The same inputs give the same layer (so Mesos stores a shared base layer once).
	again, err := BusyboxImage(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("digests differ: %s %s", d1, d2)
	}
}

func TestWriteArchivesNamesAsMesosLooksThemUp(t *testing.T) {
	ctx := context.Background()
	img, err := BusyboxImage(ctx, busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	names := []string{"busybox", "busybox:latest", "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"}
	size, err := WriteArchives(dir, img, names...)
	if err != nil {
		t.Fatal(err)
	}
	if size < 1<<20 {
		t.Fatalf("archive size %d: no busybox in it", size)
	}
	var first os.FileInfo
	for _, n := range names {
		p := imagearchive.Path(dir, n)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = fi
		} else if !os.SameFile(first, fi) {
			t.Errorf("%s is not a link to the first archive", p)
		}
		// What the simulated agent and Mesos' image tar puller read.
		cfg, err := imagearchive.ReadConfigFor(p, n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if strings.Join(cfg.Cmd, " ") != "sh" {
			t.Errorf("%s: Cmd = %q", n, cfg.Cmd)
		}
		// What the executor reads (go-containerregistry's docker save reader).
		ti, err := tarball.ImageFromPath(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cf, err := ti.ConfigFile(); err != nil || strings.Join(cf.Config.Cmd, " ") != "sh" {
			t.Errorf("%s via tarball: %v %v", n, cf, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "registry.k8s.io/e2e-test-images/busybox:1.37.0-2.tar")); err != nil {
		t.Fatal(err)
	}
	// A name that is not written fails as Mesos' lookup does.
	if _, err := imagearchive.ReadConfigFor(imagearchive.Path(dir, "busybox:1.36"), "busybox:1.36"); err == nil ||
		!strings.Contains(err.Error(), "Failed to find archive for image 'busybox:1.36'") {
		t.Fatalf("busybox:1.36: %v", err)
	}
}

// TestBusyboxRootfsRuns unpacks the layer and runs its shell in a chroot: the applets work from the
// image alone.
func TestBusyboxRootfsRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	ctx := context.Background()
	l, err := BusyboxLayer(ctx, busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	tarPath := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WriteTar(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("tar", "-C", root, "-xf", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	cmd := exec.Command("/bin/sh", "-c", "id; ls /tmp && echo ok; /bin/sleep 0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "uid=0(root) gid=0(root)\nok\n"; string(out) != want {
		t.Fatalf("output %q, want %q", out, want)
	}
}

func TestFindBusyboxDownloadsTheDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads busybox-static from the Debian mirror")
	}
	cache := t.TempDir()
	b, err := FindBusybox(context.Background(), BusyboxOptions{CacheDir: cache, Download: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.Path, cache) || b.Version == "" {
		t.Fatalf("busybox = %+v", b)
	}
	out, err := exec.Command(b.Path, "echo", "hi").Output()
	if err != nil || string(out) != "hi\n" {
		t.Fatalf("%s echo hi: %q %v", b.Path, out, err)
	}
	// Found again in the cache without downloading.
	again, err := FindBusybox(context.Background(), BusyboxOptions{CacheDir: cache, Download: true})
	if err != nil || again != b {
		t.Fatalf("again = %+v, %v", again, err)
	}
}

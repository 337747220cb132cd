package containerizer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/kubemesos/kubemesos/internal/imagebuild"
)

var (
	busyboxOnce sync.Once
	busyboxImg  v1.Image
	busyboxErr  error
)

// busyboxImage is the busybox image built from Debian's busybox-static, once per test binary.
func busyboxImage(t testing.TB) v1.Image {
	t.Helper()
	busyboxOnce.Do(func() {
		ctx := context.Background()
		var bb imagebuild.Busybox
		if bb, busyboxErr = imagebuild.FindBusybox(ctx, imagebuild.BusyboxOptions{}); busyboxErr == nil {
			busyboxImg, busyboxErr = imagebuild.BusyboxImage(ctx, bb)
		}
	})
	if busyboxErr != nil {
		t.Fatal(busyboxErr)
	}
	return busyboxImg
}

func dockerImage(name string, cached bool) mesos.Image {
	return mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: name}, Cached: &cached}
}

type provisionerEnv struct {
	registry, store, work string
	p                     *Provisioner
}

func newProvisionerEnv(t testing.TB, backend string) *provisionerEnv {
	t.Helper()
	e := &provisionerEnv{registry: t.TempDir(), store: t.TempDir(), work: t.TempDir()}
	if backend == BackendOverlay {
		if _, ok := availableBackends()[BackendOverlay]; !ok {
			t.Skip("overlayfs needs root and kernel support")
		}
	}
	p, err := NewProvisioner(ProvisionerConfig{WorkDir: e.work, StoreDir: e.store, Registry: e.registry, Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	t.Cleanup(func() {
		// Overlay mounts must go before the temp dirs are removed.
		p.mu.Lock()
		var ids []mesos.ContainerID
		for _, info := range p.infos {
			if info.id.Parent == nil {
				ids = append(ids, info.id)
			}
		}
		p.mu.Unlock()
		for _, id := range ids {
			_, _ = p.Destroy(context.Background(), id)
		}
	})
	return e
}

func (e *provisionerEnv) write(t testing.TB, img v1.Image, names ...string) {
	t.Helper()
	if _, err := imagebuild.WriteArchives(e.registry, img, names...); err != nil {
		t.Fatal(err)
	}
}

func cid(value string, parent *mesos.ContainerID) mesos.ContainerID {
	return mesos.ContainerID{Value: value, Parent: parent}
}

func TestProvisionBusybox(t *testing.T) {
	for _, backend := range []string{BackendCopy, BackendOverlay} {
		t.Run(backend, func(t *testing.T) {
			e := newProvisionerEnv(t, backend)
			e.write(t, busyboxImage(t), "busybox", "registry.k8s.io/e2e-test-images/busybox:1.37.0-2")
			ctx := context.Background()
			for _, name := range []string{"busybox", "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"} {
				id := cid("c-"+strings.NewReplacer("/", "-", ":", "-").Replace(name), nil)
				info, err := e.p.Provision(ctx, id, dockerImage(name, true))
				if err != nil {
					t.Fatal(err)
				}
				// Mesos' layout: <work_dir>/provisioner/containers/<id>/backends/<backend>/rootfses/<uuid>.
				want := regexp.MustCompile("^" + regexp.QuoteMeta(filepath.Join(e.p.RootDir(), "containers", id.Value, "backends", backend, "rootfses")) +
					"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
				if !want.MatchString(info.Rootfs) {
					t.Fatalf("rootfs %s, want %s", info.Rootfs, want)
				}
				if target, err := os.Readlink(filepath.Join(info.Rootfs, "bin/sh")); err != nil || target != "/bin/busybox" {
					t.Fatalf("bin/sh -> %q, %v", target, err)
				}
				if fi, err := os.Stat(filepath.Join(info.Rootfs, "bin/busybox")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
					t.Fatalf("bin/busybox: %v %v", fi, err)
				}
				if fi, err := os.Stat(filepath.Join(info.Rootfs, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 {
					t.Fatalf("tmp: %v %v", fi, err)
				}
				if strings.Join(info.Config.Cmd, " ") != "sh" || len(info.Config.Env) != 1 || !strings.HasPrefix(info.Config.Env[0], "PATH=") {
					t.Fatalf("config %+v", info.Config)
				}
				if len(info.Layers) != 1 || !strings.HasPrefix(info.Layers[0], filepath.Join(e.store, "layers")+"/") {
					t.Fatalf("layers %v", info.Layers)
				}
				// The layer is in the store once, with its manifest; staging is empty again.
				if _, err := os.Stat(filepath.Join(filepath.Dir(info.Layers[0]), "json")); err != nil {
					t.Fatal(err)
				}
				if left, _ := os.ReadDir(filepath.Join(e.store, "staging")); len(left) != 0 {
					t.Fatalf("staging not cleaned: %v", left)
				}

				ok, err := e.p.Destroy(ctx, id)
				if err != nil || !ok {
					t.Fatalf("Destroy = %v, %v", ok, err)
				}
				if _, err := os.Lstat(e.p.ContainerDir(id)); !os.IsNotExist(err) {
					t.Fatalf("container dir left: %v", err)
				}
				if ok, err := e.p.Destroy(ctx, id); ok || err != nil {
					t.Fatalf("second Destroy = %v, %v", ok, err)
				}
				if _, err := os.Stat(info.Layers[0]); err != nil {
					t.Fatalf("store layer removed with the container: %v", err)
				}
			}
			if left, _ := os.ReadDir(filepath.Join(e.p.RootDir(), "containers")); len(left) != 0 {
				t.Fatalf("containers left: %v", left)
			}
		})
	}
}

// TestProvisionedBusyboxRuns runs the image's shell chrooted into the provisioned rootfs.
func TestProvisionedBusyboxRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	e := newProvisionerEnv(t, "")
	e.write(t, busyboxImage(t), "busybox")
	info, err := e.p.Provision(context.Background(), cid("run", nil), dockerImage("busybox", true))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("chroot", info.Rootfs, "/bin/sh", "-c", "echo hi > /tmp/x && cat /tmp/x && whoami").CombinedOutput()
	if err != nil || string(out) != "hi\nroot\n" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestProvisionNestedContainersLayout(t *testing.T) {
	e := newProvisionerEnv(t, BackendCopy)
	e.write(t, busyboxImage(t), "busybox")
	ctx := context.Background()
	parent := cid("parent", nil)
	child := cid("child", &parent)
	pinfo, err := e.p.Provision(ctx, parent, dockerImage("busybox", true))
	if err != nil {
		t.Fatal(err)
	}
	cinfo, err := e.p.Provision(ctx, child, dockerImage("busybox", true))
	if err != nil {
		t.Fatal(err)
	}
	wantDir := filepath.Join(e.p.RootDir(), "containers", "parent", "containers", "child", "backends", "copy", "rootfses")
	if filepath.Dir(cinfo.Rootfs) != wantDir {
		t.Fatalf("child rootfs %s, want under %s", cinfo.Rootfs, wantDir)
	}
	if pinfo.Rootfs == cinfo.Rootfs {
		t.Fatal("parent and child share a rootfs")
	}
	// Destroying the parent destroys the child first (Mesos' recursive destroy).
	if ok, err := e.p.Destroy(ctx, parent); !ok || err != nil {
		t.Fatalf("Destroy = %v, %v", ok, err)
	}
	if _, err := os.Lstat(filepath.Join(e.p.RootDir(), "containers", "parent")); !os.IsNotExist(err) {
		t.Fatalf("parent dir left: %v", err)
	}
	if ok, _ := e.p.Destroy(ctx, child); ok {
		t.Fatal("child still known after its parent's destroy")
	}
}

// whiteoutImage has a base layer and an upper layer that deletes, hides and replaces its files.
func whiteoutImage(t testing.TB) v1.Image {
	t.Helper()
	base := imagebuild.NewLayer().
		File("a/gone", 0o644, []byte("x")).
		File("a/kept", 0o644, []byte("x")).
		File("b/old", 0o644, []byte("x")).
		File("b/sub/old", 0o644, []byte("x")).
		File("c", 0o644, []byte("file becomes dir")).
		File("d/inner", 0o644, []byte("dir becomes file")).
		Symlink("e", "/a/kept").
		File("f/whole", 0o644, []byte("x"))
	upper := imagebuild.NewLayer().
		File("a/.wh.gone", 0o644, nil).
		File("b/.wh..wh..opq", 0o644, nil).
		File("b/new", 0o644, []byte("new")).
		File("c/inside", 0o644, []byte("in")).
		File("d", 0o644, []byte("now a file")).
		File("e", 0o644, []byte("not through the link")).
		File(".wh.f", 0o644, nil)
	var layers []v1.Layer
	for _, l := range []*imagebuild.Layer{base, upper} {
		built, err := l.Build()
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, built)
	}
	img, err := imagebuild.Image(v1.Config{Cmd: []string{"true"}}, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// tree lists a rootfs: path, type, and a regular file's content.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case fi.IsDir():
			out = append(out, rel+"/")
		case fi.Mode()&os.ModeCharDevice != 0:
			out = append(out, rel+" (char device)")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, fmt.Sprintf("%s %q", rel, b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestProvisionAppliesWhiteouts(t *testing.T) {
	want := []string{
		`a/`, `a/kept "x"`,
		`b/`, `b/new "new"`,
		`c/`, `c/inside "in"`,
		`d "now a file"`,
		`e "not through the link"`,
	}
	for _, backend := range []string{BackendCopy, BackendOverlay} {
		t.Run(backend, func(t *testing.T) {
			e := newProvisionerEnv(t, backend)
			e.write(t, whiteoutImage(t), "wh")
			info, err := e.p.Provision(context.Background(), cid("wh", nil), dockerImage("wh", true))
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Layers) != 2 {
				t.Fatalf("layers %v", info.Layers)
			}
			if got := tree(t, info.Rootfs); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("rootfs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// The symlink's target was not written through.
			if b, _ := os.ReadFile(filepath.Join(info.Rootfs, "a/kept")); string(b) != "x" {
				t.Fatalf("a/kept = %q", b)
			}
		})
	}
}

func TestProvisionFailuresAsMesos(t *testing.T) {
	e := newProvisionerEnv(t, BackendCopy)
	e.write(t, busyboxImage(t), "busybox")
	ctx := context.Background()
	for _, tc := range []struct {
		image mesos.Image
		want  string
	}{
		{dockerImage("busybox:1.36", true), "Failed to find archive for image 'busybox:1.36' at '" + e.registry + "/busybox:1.36.tar'"},
		{dockerImage("a@b@c", true), "Failed to parse docker image 'a@b@c': Multiple '@' symbols found"},
		{mesos.Image{Type: mesos.Image_APPC.Enum()}, "Unsupported container image type: APPC"},
	} {
		if _, err := e.p.Provision(ctx, cid("x", nil), tc.image); err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v, want %q", tc.image.GetDocker().GetName(), err, tc.want)
		}
	}
	// An archive whose repositories lack the name.
	if err := os.Link(filepath.Join(e.registry, "busybox.tar"), filepath.Join(e.registry, "other.tar")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Provision(ctx, cid("y", nil), dockerImage("other", true)); err == nil ||
		err.Error() != "Repository 'other' does not exist in 'repositories'" {
		t.Fatalf("other: %v", err)
	}
}

// TestProvisionUsesStoredImage: a stored image is not read from the registry again unless the image
// is not to be cached (Mesos' Image.cached).
func TestProvisionUsesStoredImage(t *testing.T) {
	e := newProvisionerEnv(t, BackendCopy)
	e.write(t, busyboxImage(t), "busybox")
	ctx := context.Background()
	if _, err := e.p.Provision(ctx, cid("one", nil), dockerImage("busybox", true)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.registry, "busybox.tar")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Provision(ctx, cid("two", nil), dockerImage("busybox", true)); err != nil {
		t.Fatalf("cached image pulled again: %v", err)
	}
	if _, err := e.p.Provision(ctx, cid("three", nil), dockerImage("busybox", false)); err == nil ||
		!strings.HasPrefix(err.Error(), "Failed to find archive for image 'busybox'") {
		t.Fatalf("cached=false: %v", err)
	}
}

// TestProvisionConcurrentPullsShareOne: containers provisioning one image at once get one pull.
func TestProvisionConcurrentPullsShareOne(t *testing.T) {
	e := newProvisionerEnv(t, BackendCopy)
	e.write(t, busyboxImage(t), "busybox")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.p.Provision(ctx, cid(fmt.Sprint("c", i), nil), dockerImage("busybox", true))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	layers, _ := os.ReadDir(filepath.Join(e.store, "layers"))
	if len(layers) != 1 {
		t.Fatalf("store layers %v", layers)
	}
}

func TestProvisionerBackendChoice(t *testing.T) {
	if _, err := NewProvisioner(ProvisionerConfig{WorkDir: t.TempDir(), StoreDir: t.TempDir(), Backend: "aufs"}); err == nil ||
		err.Error() != "The specified provisioner backend 'aufs' is not supported: Not found" {
		t.Fatalf("aufs: %v", err)
	}
	p, err := NewProvisioner(ProvisionerConfig{WorkDir: t.TempDir(), StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// Mesos prefers overlay where it can be used.
	want := BackendCopy
	if _, ok := availableBackends()[BackendOverlay]; ok {
		want = BackendOverlay
	}
	if p.Backend() != want {
		t.Fatalf("default backend %s, want %s", p.Backend(), want)
	}
}

// BenchmarkProvision measures provisioning busybox into a rootfs and destroying it: cold (every
// iteration pulls into an empty store) and cached (the layers are in the store), per backend.
func BenchmarkProvision(b *testing.B) {
	for _, backend := range []string{BackendCopy, BackendOverlay} {
		for _, cold := range []bool{true, false} {
			name := backend + "/cached"
			if cold {
				name = backend + "/cold"
			}
			b.Run(name, func(b *testing.B) {
				e := newProvisionerEnv(b, backend)
				e.write(b, busyboxImage(b), "busybox")
				ctx := context.Background()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if cold {
						b.StopTimer()
						e.p.mu.Lock()
						e.p.stored = map[string][]string{}
						e.p.mu.Unlock()
						if err := os.RemoveAll(filepath.Join(e.store, "layers")); err != nil {
							b.Fatal(err)
						}
						if err := os.Mkdir(filepath.Join(e.store, "layers"), 0o755); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					id := cid(fmt.Sprint("b", i), nil)
					if _, err := e.p.Provision(ctx, id, dockerImage("busybox", true)); err != nil {
						b.Fatal(err)
					}
					if _, err := e.p.Destroy(ctx, id); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

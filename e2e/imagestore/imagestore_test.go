package imagestore

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/internal/imagebuild"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

func TestKeyCoversEveryInput(t *testing.T) {
	base := Inputs{
		Busybox:   imagebuild.Busybox{Version: "1:1.35.0-4", SHA256: "aa"},
		GoVersion: "go1.26.8 linux amd64",
		GoMod:     []byte("module m"),
		GoSum:     []byte("sum"),
		PauseSrc:  []byte("package main"),
	}
	k := base.Key()
	if base.Key() != k {
		t.Fatal("key not stable")
	}
	for name, change := range map[string]func(*Inputs){
		"busybox version": func(in *Inputs) { in.Busybox.Version = "1:1.36" },
		"busybox binary":  func(in *Inputs) { in.Busybox.SHA256 = "bb" },
		"go":              func(in *Inputs) { in.GoVersion = "go1.27 linux amd64" },
		"go.mod":          func(in *Inputs) { in.GoMod = []byte("module n") },
		"go.sum":          func(in *Inputs) { in.GoSum = []byte("sum2") },
		"pause":           func(in *Inputs) { in.PauseSrc = []byte("package main // v2") },
		"bash":            func(in *Inputs) { in.Bash.SHA256 = "cc" },
		"hostname":        func(in *Inputs) { in.Hostname.SHA256 = "dd" },
		"dash":            func(in *Inputs) { in.Dash.SHA256 = "ee" },
		"curl":            func(in *Inputs) { in.Curl.SHA256 = "ff" },
		"coredns":         func(in *Inputs) { in.CoreDNS = "v1.14.8 0123456789abcdef" },
		"metrics-server":  func(in *Inputs) { in.MetricsServer = "v0.8.1 0123456789abcdef" },
		// Bytes moved between fields must not give the same key.
		"boundary": func(in *Inputs) { in.GoMod = []byte("module msum"); in.GoSum = nil },
	} {
		in := base
		change(&in)
		if in.Key() == k {
			t.Errorf("%s: key unchanged", name)
		}
	}
}

var testStore struct {
	s   Store
	err error
}

// store builds the image store once for the package's tests, in a cache of its own.
func store(t *testing.T) Store {
	t.Helper()
	if testStore.s.Dir == "" && testStore.err == nil {
		dir, err := os.MkdirTemp("", "imagestore-test-")
		if err != nil {
			t.Fatal(err)
		}
		testStore.s, testStore.err = Ensure(context.Background(), Options{CacheDir: dir, Log: io.Discard})
	}
	if testStore.err != nil {
		t.Fatal(testStore.err)
	}
	return testStore.s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testStore.s.Dir != "" {
		os.RemoveAll(filepath.Dir(filepath.Dir(testStore.s.Dir)))
	}
	os.Exit(code)
}

func TestStoreHasEveryImageUnderEveryName(t *testing.T) {
	s := store(t)
	if s.Cached || s.BuildTime <= 0 || s.Bytes < 60<<20 {
		t.Fatalf("store %+v", s)
	}
	if du, err := DiskUsage(s.Dir); err != nil || du != s.Bytes {
		t.Fatalf("disk usage %d (%v), store says %d", du, err, s.Bytes)
	}
	for _, im := range Images {
		for _, n := range im.Names {
			// As the simulated agent and Mesos' image tar puller read it.
			cfg, err := imagearchive.ReadConfigFor(imagearchive.Path(s.Dir, n), n)
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if diff := cmp.Diff(im.Config, cfg); diff != "" {
				t.Errorf("%s config (-want +got):\n%s", n, diff)
			}
		}
	}
	// An image not in the store fails as a pull does.
	if _, err := imagearchive.ReadConfigFor(imagearchive.Path(s.Dir, "nginx"), "nginx"); err == nil ||
		!strings.HasPrefix(err.Error(), "Failed to find archive for image 'nginx' at ") {
		t.Fatalf("nginx: %v", err)
	}
	// The cluster DNS image under the name kubemesos' kube-dns Deployment uses, with upstream's
	// entrypoint and ports and kubeadm's Corefile path.
	cfg, err := imagearchive.ReadConfigFor(imagearchive.Path(s.Dir, CoreDNSImage), CoreDNSImage)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s %v %v %d", CoreDNSImage, cfg.Entrypoint, cfg.Cmd, len(cfg.ExposedPorts)); got != "coredns:v1.14.7 [/coredns] [-conf /etc/coredns/Corefile] 3" {
		t.Errorf("coredns: %s", got)
	}
	for _, p := range []string{"53/udp", "53/tcp", "9153/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("coredns does not expose %s: %v", p, cfg.ExposedPorts)
		}
	}
	if s.CoreDNS != "v1.14.7" || s.Images["registry.k8s.io/coredns/coredns:v1.14.7"] == nil {
		t.Errorf("store %+v lacks coredns v1.14.7", s)
	}
	again, err := Ensure(context.Background(), Options{CacheDir: filepath.Dir(filepath.Dir(s.Dir)), Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Dir != s.Dir || again.BuildTime != s.BuildTime || again.Bytes != s.Bytes {
		t.Fatalf("second Ensure %+v, first %+v", again, s)
	}
}

// rootfs flattens image name of the store into a new directory (tar keeps modes, owners as root).
func rootfs(t *testing.T, s Store, name string) string {
	t.Helper()
	img, err := tarball.ImageFromPath(imagearchive.Path(s.Dir, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("tar", "-C", dir, "-x")
	cmd.Stdin = mutate.Extract(img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	return dir
}

func topLayerFile(t *testing.T, s Store, name, path string) *tar.Header {
	t.Helper()
	img, err := tarball.ImageFromPath(imagearchive.Path(s.Dir, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s in the top layer: %v", name, path, err)
		}
		if h.Name == path {
			return h
		}
	}
}

func TestImagesLayers(t *testing.T) {
	s := store(t)
	layerCount := func(name string) int {
		img, err := tarball.ImageFromPath(imagearchive.Path(s.Dir, name), nil)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		return len(ls)
	}
	for name, want := range map[string]int{"busybox": 1, "agnhost": 2, "nonewprivs": 2, "pause": 1, "nonroot": 1, "coredns": 1,
		"glibc-dns-testing": 2, "registry.k8s.io/e2e-test-images/agnhost:2.55": 2, "metrics-server": 1} {
		if got := layerCount(name); got != want {
			t.Errorf("%s: %d layers, want %d", name, got, want)
		}
	}
	if h := topLayerFile(t, s, "nonewprivs", "usr/local/bin/nnp"); h.Mode != 0o6755 || h.Uid != 0 || h.Gid != 0 {
		t.Errorf("nnp %o %d:%d, want setuid root", h.Mode, h.Uid, h.Gid)
	}
	if h := topLayerFile(t, s, "agnhost", "agnhost"); h.Mode != 0o755 || h.Size < 10<<20 {
		t.Errorf("agnhost %+v", h)
	}
	if h := topLayerFile(t, s, "pause", "pause"); h.Mode != 0o755 || h.Size > 4<<20 {
		t.Errorf("pause %+v (not a tiny binary)", h)
	}
	if h := topLayerFile(t, s, CoreDNSImage, "coredns"); h.Mode != 0o755 || h.Size < 20<<20 {
		t.Errorf("coredns %+v", h)
	}
}

// chrootCmd runs argv inside root as uid.
func chrootCmd(root string, uid uint32, argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	cmd.Env = []string{PATH}
	cmd.Dir = "/"
	return cmd
}

// TestImagesRunTheirCommands runs each image's default command (or a quick subcommand of it) from the
// image's own root filesystem.
func TestImagesRunTheirCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	s := store(t)

	t.Run("agnhost", func(t *testing.T) {
		out, err := chrootCmd(rootfs(t, s, "registry.k8s.io/e2e-test-images/agnhost:2.66.1"), 0, "/agnhost", "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "development") {
			t.Fatalf("%q %v", out, err)
		}
		// The busybox applets are there for specs that run a shell in agnhost.
		out, err = chrootCmd(rootfs(t, s, "agnhost"), 0, "/bin/sh", "-c", "echo $((1+1))").CombinedOutput()
		if err != nil || string(out) != "2\n" {
			t.Fatalf("%q %v", out, err)
		}
		// /agnhost-2, the entrypoint the "Containers should be able to override the image's default
		// command" specs run.
		out, err = chrootCmd(rootfs(t, s, "agnhost"), 0, "/agnhost-2", "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "development") {
			t.Fatalf("/agnhost-2: %q %v", out, err)
		}
		// curl, which the exec lifecycle hook specs run in it (upstream's alpine has it).
		out, err = chrootCmd(rootfs(t, s, "agnhost"), 0, "/usr/bin/curl", "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "curl ") {
			t.Fatalf("curl: %q %v", out, err)
		}
		// Upstream's /localhost.crt and /localhost.key, which netexec serves HTTPS with.
		out, err = chrootCmd(rootfs(t, s, "agnhost"), 0, "/bin/sh", "-c", "head -1 /localhost.crt; head -1 /localhost.key").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "-----BEGIN CERTIFICATE-----\n-----BEGIN ") {
			t.Fatalf("agnhost's certificate and key: %q %v", out, err)
		}
		// And Debian's bash, with the libraries it loads.
		out, err = chrootCmd(rootfs(t, s, "agnhost"), 0, "/bin/bash", "-c", "echo ${BASH_VERSINFO[0]} $((2+2))").CombinedOutput()
		if err != nil || !strings.HasSuffix(string(out), " 4\n") {
			t.Fatalf("bash: %q %v", out, err)
		}
	})
	t.Run("busybox passes on variables whose names are not identifiers", func(t *testing.T) {
		// envFrom makes variables of a ConfigMap's keys (`data-1`); the ConfigMap and Secret
		// "consumable via the environment" specs run `sh -c env` in busybox and expect them, as
		// upstream's ash (Debian's drops them).
		cmd := chrootCmd(rootfs(t, s, "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"), 0, "/bin/sh", "-c", "env")
		cmd.Env = []string{PATH, "data-1=value-1", "p-data-1=value-1"}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "data-1=value-1\n") || !strings.Contains(string(out), "p-data-1=value-1\n") {
			t.Fatalf("sh -c env: %q %v", out, err)
		}
	})
	t.Run("nonewprivs", func(t *testing.T) {
		// setuid root: uid 1000 runs with effective uid 0 unless no_new_privs is set.
		out, err := chrootCmd(rootfs(t, s, "registry.k8s.io/e2e-test-images/nonewprivs:1.4"), 1000, "/bin/sh", "-c", "nnp").CombinedOutput()
		if err != nil || string(out) != "Effective uid: 0\n" {
			t.Fatalf("%q %v", out, err)
		}
	})
	t.Run("pause", func(t *testing.T) {
		cmd := chrootCmd(rootfs(t, s, "registry.k8s.io/pause:3.10.2"), 0, "/pause")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Fatalf("pause exited by itself: %v %s", err, stderr.String())
		case <-time.After(300 * time.Millisecond):
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("pause after SIGTERM: %v", err)
		}
		if !strings.HasSuffix(stderr.String(), "Shutting down, got signal: Terminated\n") {
			t.Fatalf("stderr %q", stderr.String())
		}
	})
	t.Run("metrics-server", func(t *testing.T) {
		root := rootfs(t, s, MetricsServerImage)
		// As the image's user (65534), from the image alone.
		out, err := chrootCmd(root, 65534, "/metrics-server", "--version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "v0.8.0" {
			t.Fatalf("metrics-server --version: %q %v", out, err)
		}
	})
	t.Run("coredns", func(t *testing.T) {
		root := rootfs(t, s, CoreDNSImage)
		out, err := chrootCmd(root, 0, "/coredns", "-version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "CoreDNS-1.14.7\n") {
			t.Fatalf("coredns -version: %q %v", out, err)
		}
		// It serves DNS from the image alone: a Corefile at the path the image's Cmd names.
		port := freeUDPPort(t)
		corefile := fmt.Sprintf(".:%d {\n    bind 127.0.0.1\n    hosts {\n        10.0.0.10 kube-dns.kube-system.svc.cluster.local\n    }\n}\n", port)
		if err := os.MkdirAll(filepath.Join(root, "etc/coredns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc/coredns/Corefile"), []byte(corefile), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := chrootCmd(root, 0, "/coredns", "-conf", "/etc/coredns/Corefile")
		var output bytes.Buffer
		cmd.Stdout, cmd.Stderr = &output, &output
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
		}()
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
		}}
		hang := time.Now().Add(time.Minute) // a guard against hanging, not a measure of speed
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			addrs, err := r.LookupHost(ctx, "kube-dns.kube-system.svc.cluster.local")
			cancel()
			if err != nil && time.Now().After(hang) {
				t.Fatalf("no answer from coredns: %v\n%s", err, output.String())
			}
			if err == nil {
				if fmt.Sprint(addrs) != "[10.0.0.10]" {
					t.Fatalf("coredns answered %v, want [10.0.0.10]", addrs)
				}
				return
			}
			select {
			case err := <-done:
				done <- err
				t.Fatalf("coredns exited: %v\n%s", err, output.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	t.Run("glibc-dns-testing", func(t *testing.T) {
		root := rootfs(t, s, "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1")
		// As a pod's: its own hostname, and the kubelet's /etc/hosts naming its FQDN first.
		if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("127.0.0.1 localhost\n10.244.1.5 web-0.web.ns.svc.cluster.local web-0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := chrootCmd(root, 0, "/bin/sh", "-c", "hostname web-0 && hostname --version 2>&1 | head -1 && echo $(hostname)';'$(hostname -f)';'")
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUTS
		out, err := cmd.CombinedOutput()
		// Debian's sh running Debian's hostname (busybox's knows no --version), answering -f from
		// /etc/hosts through glibc.
		if err != nil || !strings.HasPrefix(string(out), "hostname ") || !strings.HasSuffix(string(out), "\nweb-0;web-0.web.ns.svc.cluster.local;\n") {
			t.Fatalf("%q %v", out, err)
		}
	})
	t.Run("nonroot", func(t *testing.T) {
		cfg, err := imagearchive.ReadConfigFor(imagearchive.Path(s.Dir, "nonroot"), "nonroot")
		if err != nil || cfg.User != "1234" {
			t.Fatalf("%+v %v", cfg, err)
		}
		out, err := chrootCmd(rootfs(t, s, "nonroot"), 1234, "/bin/id", "-u").CombinedOutput()
		if err != nil || string(out) != "1234\n" {
			t.Fatalf("%q %v", out, err)
		}
	})
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// BenchmarkEnsureCached is a local-up start with the store built: find busybox, hash the inputs,
// load the store.
func BenchmarkEnsureCached(b *testing.B) {
	dir := b.TempDir()
	if _, err := Ensure(context.Background(), Options{CacheDir: dir, Log: io.Discard}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Ensure(context.Background(), Options{CacheDir: dir, Log: io.Discard})
		if err != nil || !s.Cached {
			b.Fatal(s, err)
		}
	}
}

// TestProvisionerProvisionsTheStore provisions every image of the store with the simulated agent's
// provisioner, as an agent with --docker_registry=<store> does: modes and owners survive, and the
// busybox base layer is extracted once for the images built on it.
func TestProvisionerProvisionsTheStore(t *testing.T) {
	s := store(t)
	for _, backend := range []string{containerizer.BackendCopy, containerizer.BackendOverlay} {
		t.Run(backend, func(t *testing.T) {
			if backend == containerizer.BackendOverlay && os.Geteuid() != 0 {
				t.Skip("overlay needs root")
			}
			p, err := containerizer.NewProvisioner(containerizer.ProvisionerConfig{
				WorkDir: t.TempDir(), StoreDir: t.TempDir(), Registry: s.Dir, Backend: backend})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			cached := true
			base := map[string]bool{}
			for i, im := range Images {
				id := mesos.ContainerID{Value: fmt.Sprint("c", i)}
				info, err := p.Provision(ctx, id, mesos.Image{Type: mesos.Image_DOCKER.Enum(),
					Docker: &mesos.Image_Docker{Name: im.Names[0]}, Cached: &cached})
				if err != nil {
					t.Fatalf("%s: %v", im.Names[0], err)
				}
				t.Cleanup(func() { _, _ = p.Destroy(ctx, id) })
				if diff := cmp.Diff(im.Config, info.Config); diff != "" {
					t.Errorf("%s config (-want +got):\n%s", im.Names[0], diff)
				}
				if len(info.Layers) == 2 {
					base[info.Layers[0]] = true
				}
				switch im.Names[0] {
				case "registry.k8s.io/e2e-test-images/nonewprivs:1.4":
					fi, err := os.Stat(filepath.Join(info.Rootfs, "usr/local/bin/nnp"))
					if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
						t.Errorf("nnp: %v %v", fi, err)
					}
				case "registry.k8s.io/e2e-test-images/agnhost:2.66.1":
					for _, f := range []string{"agnhost", "bin/bash", "bin/sh"} {
						if _, err := os.Stat(filepath.Join(info.Rootfs, f)); err != nil {
							t.Error(err)
						}
					}
				case "registry.k8s.io/coredns/coredns:v1.14.7":
					if fi, err := os.Stat(filepath.Join(info.Rootfs, "coredns")); err != nil || fi.Mode().Perm() != 0o755 {
						t.Errorf("coredns: %v %v", fi, err)
					}
				case "registry.k8s.io/pause:3.10.2":
					if _, err := os.Stat(filepath.Join(info.Rootfs, "bin")); !os.IsNotExist(err) {
						t.Errorf("pause has /bin: %v", err)
					}
				}
			}
			if len(base) != 1 {
				t.Fatalf("agnhost and nonewprivs base layers %v, want one shared", base)
			}
		})
	}
}

// BenchmarkProvisionAgnhost provisions and destroys agnhost (the store's largest image, 2 layers):
// cold pulls into an empty docker store each time, cached reuses its layers.
func BenchmarkProvisionAgnhost(b *testing.B) {
	dir := b.TempDir()
	s, err := Ensure(context.Background(), Options{CacheDir: dir, Log: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	for _, backend := range []string{containerizer.BackendCopy, containerizer.BackendOverlay} {
		for _, cold := range []bool{true, false} {
			name := backend + "/cached"
			if cold {
				name = backend + "/cold"
			}
			b.Run(name, func(b *testing.B) {
				if backend == containerizer.BackendOverlay && os.Geteuid() != 0 {
					b.Skip("overlay needs root")
				}
				ctx := context.Background()
				work := b.TempDir()
				newProvisioner := func() *containerizer.Provisioner {
					p, err := containerizer.NewProvisioner(containerizer.ProvisionerConfig{
						WorkDir: work, StoreDir: b.TempDir(), Registry: s.Dir, Backend: backend})
					if err != nil {
						b.Fatal(err)
					}
					return p
				}
				p := newProvisioner()
				cached := true
				image := mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: "agnhost"}, Cached: &cached}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if cold {
						b.StopTimer()
						p = newProvisioner() // an empty store
						b.StartTimer()
					}
					id := mesos.ContainerID{Value: fmt.Sprint("b", i)}
					if _, err := p.Provision(ctx, id, image); err != nil {
						b.Fatal(err)
					}
					if _, err := p.Destroy(ctx, id); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

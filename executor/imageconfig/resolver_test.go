package imageconfig

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

var busyboxConfig = v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}

func pod(secrets ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u"}}
	for _, s := range secrets {
		p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return p
}

func container(image string, policy corev1.PullPolicy) *corev1.Container {
	return &corev1.Container{Name: "c", Image: image, ImagePullPolicy: policy}
}

func TestLocalArchiveAndItsCache(t *testing.T) {
	dir := t.TempDir()
	if err := imagearchive.Write(dir, "busybox", busyboxConfig); err != nil {
		t.Fatal(err)
	}
	r := New(Config{Registry: dir})
	ctx := context.Background()
	got, err := r.Resolve(ctx, pod(), container("busybox", corev1.PullIfNotPresent))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(busyboxConfig, *got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	// A new archive under the same name: IfNotPresent keeps the config it has, Always reads again.
	changed := v1.Config{Entrypoint: []string{"/bin/app"}, WorkingDir: "/srv", User: "1000"}
	if err := imagearchive.Write(dir, "busybox", changed); err != nil {
		t.Fatal(err)
	}
	if got, err = r.Resolve(ctx, pod(), container("busybox", corev1.PullNever)); err != nil || !cmp.Equal(busyboxConfig, *got) {
		t.Errorf("Never: %+v, %v; want the cached config", got, err)
	}
	if got, err = r.Resolve(ctx, pod(), container("busybox", corev1.PullAlways)); err != nil || !cmp.Equal(changed, *got) {
		t.Errorf("Always: %+v, %v; want the new config", got, err)
	}
	// Mesos names archives without normalising: busybox:latest is another file.
	_, err = r.Resolve(ctx, pod(), container("busybox:latest", corev1.PullAlways))
	if want := fmt.Sprintf("Failed to find archive for image 'busybox:latest' at '%s/busybox:latest.tar'", dir); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("missing archive: %v, want it to say %q", err, want)
	}
}

// An archive with only docker save's legacy layout (no manifest.json) is read the way Mesos reads it.
func TestLegacyArchiveWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	cfg := v1.Config{Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"nginx", "-g", "daemon off;"}, WorkingDir: "/"}
	if err := imagearchive.Write(dir, "nginx:1.27", cfg); err != nil {
		t.Fatal(err)
	}
	path := imagearchive.Path(dir, "nginx:1.27")
	dropFromTar(t, path, "manifest.json")
	got, err := New(Config{Registry: dir}).Resolve(context.Background(), pod(), container("nginx:1.27", ""))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cfg, *got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func dropFromTar(t *testing.T, path, drop string) {
	t.Helper()
	in, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tr, tw := tar.NewReader(strings.NewReader(string(in))), tar.NewWriter(out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == drop {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// testRegistry serves go-containerregistry's in-process registry, optionally behind basic auth, and
// counts the requests it gets.
type testRegistry struct {
	srv  *httptest.Server
	host string
	user string
	pass string

	mu       sync.Mutex
	requests []string // "METHOD path"
}

func newTestRegistry(t *testing.T, user, pass string) *testRegistry {
	tr := &testRegistry{user: user, pass: pass}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tr.mu.Lock()
		tr.requests = append(tr.requests, req.Method+" "+req.URL.Path)
		tr.mu.Unlock()
		if tr.user != "" {
			if u, p, ok := req.BasicAuth(); !ok || u != tr.user || p != tr.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(tr.srv.Close)
	u, _ := url.Parse(tr.srv.URL)
	tr.host = u.Host
	return tr
}

func (tr *testRegistry) push(t *testing.T, repoTag string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(tr.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: tr.user, Password: tr.pass})); err != nil {
		t.Fatal(err)
	}
	tr.reset()
}

func (tr *testRegistry) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.requests = nil
}

func (tr *testRegistry) seen() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.requests...)
}

func imageWith(t *testing.T, cfg v1.Config) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestRegistryImageAndDigestCache(t *testing.T) {
	reg := newTestRegistry(t, "", "")
	cfg := v1.Config{Entrypoint: []string{"/app"}, Cmd: []string{"--serve"}, User: "65532"}
	// The default registry is not docker.io, so "app" is app:latest there (no library/).
	reg.push(t, "app:latest", imageWith(t, cfg))
	r := New(Config{Registry: "http://" + reg.host})
	ctx := context.Background()
	got, err := r.Resolve(ctx, pod(), container("app", corev1.PullAlways))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cfg, *got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	// Always again: only the manifest's digest is asked for; the config is the one of that digest.
	reg.reset()
	if _, err := r.Resolve(ctx, pod(), container("app", corev1.PullAlways)); err != nil {
		t.Fatal(err)
	}
	for _, req := range reg.seen() {
		if !strings.HasPrefix(req, "HEAD ") && req != "GET /v2/" {
			t.Errorf("Always with a known digest fetched %s", req)
		}
	}
	// IfNotPresent: nothing at all.
	reg.reset()
	if _, err := r.Resolve(ctx, pod(), container("app:latest", corev1.PullIfNotPresent)); err != nil {
		t.Fatal(err)
	}
	if s := reg.seen(); len(s) != 0 {
		t.Errorf("IfNotPresent with a cached config asked the registry: %v", s)
	}
	// A reference with its own registry ignores the default one.
	r2 := New(Config{Registry: "https://registry.invalid"})
	if got, err := r2.Resolve(ctx, pod(), container(reg.host+"/app", corev1.PullIfNotPresent)); err != nil || !cmp.Equal(cfg, *got) {
		t.Errorf("explicit registry: %+v, %v", got, err)
	}
}

// The pod's imagePullSecrets (dockerconfigjson and dockercfg) authenticate to the registry.
func TestRegistryNeedsPullSecret(t *testing.T) {
	reg := newTestRegistry(t, "puller", "s3cret")
	cfg := v1.Config{Cmd: []string{"/private"}}
	reg.push(t, "team/private:v1", imageWith(t, cfg))
	auth := base64.StdEncoding.EncodeToString([]byte("puller:s3cret"))
	dockerConfigJSON, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.host: map[string]string{"auth": auth}}})
	dockercfg, _ := json.Marshal(map[string]any{reg.host: map[string]string{"auth": auth}})
	secrets := fakeSecrets{
		"ns/regcred":   {corev1.DockerConfigJsonKey: dockerConfigJSON},
		"ns/legacy":    {corev1.DockerConfigKey: dockercfg},
		"ns/unrelated": {"token": []byte("x")},
	}
	ctx := context.Background()
	image := reg.host + "/team/private:v1"
	if _, err := New(Config{Secrets: secrets}).Resolve(ctx, pod(), container(image, corev1.PullAlways)); err == nil || !strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Errorf("without a pull secret: %v, want unauthorized", err)
	}
	for _, secret := range []string{"regcred", "legacy"} {
		got, err := New(Config{Secrets: secrets}).Resolve(ctx, pod("missing", "unrelated", secret), container(image, corev1.PullAlways))
		if err != nil {
			t.Errorf("with %s: %v", secret, err)
			continue
		}
		if diff := cmp.Diff(cfg, *got); diff != "" {
			t.Errorf("with %s: config (-want +got):\n%s", secret, diff)
		}
	}
}

type fakeSecrets map[string]map[string][]byte

func (f fakeSecrets) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	if d, ok := f[ns+"/"+name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("secret %s/%s not found", ns, name)
}

// A multi-platform image resolves to the configured platform's config, by default linux/amd64's.
func TestPlatformOfIndex(t *testing.T) {
	reg := newTestRegistry(t, "", "")
	amd, arm := v1.Config{Cmd: []string{"amd64"}}, v1.Config{Cmd: []string{"arm64"}}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: imageWith(t, amd), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: imageWith(t, arm), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	ref, _ := name.ParseReference(reg.host+"/multi:1", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	for arch, want := range map[string]v1.Config{"amd64": amd, "arm64": arm, "": amd} {
		var platform *v1.Platform // default: what Mesos' fetcher gets
		if arch != "" {
			platform = &v1.Platform{OS: "linux", Architecture: arch}
		}
		r := New(Config{Registry: "http://" + reg.host, Platform: platform})
		got, err := r.Resolve(context.Background(), pod(), container("multi:1", ""))
		if err != nil || !cmp.Equal(want, *got) {
			t.Errorf("%s: %+v, %v; want %+v", arch, got, err, want)
		}
	}
}

// Without --docker-registry the agent's --docker_registry is used (GET_FLAGS), asked once; an agent
// without the flag means Mesos' default; an agent without the docker provider, no image.
func TestAgentRegistryFlag(t *testing.T) {
	dir := t.TempDir()
	if err := imagearchive.Write(dir, "busybox", busyboxConfig); err != nil {
		t.Fatal(err)
	}
	var calls int
	var mu sync.Mutex
	flags := []mesos.Flag{{Name: "docker_registry", Value: &dir}, {Name: "image_providers", Value: ptr("docker")}}
	agentSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var call agent.Call
		body, _ := io.ReadAll(req.Body)
		if err := call.Unmarshal(body); err != nil || call.GetType() != agent.Call_GET_FLAGS {
			http.Error(w, "unexpected call", http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls++
		mu.Unlock()
		resp := agent.Response{Type: agent.Response_GET_FLAGS, GetFlags: &agent.Response_GetFlags{Flags: flags}}
		b, _ := resp.Marshal()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}))
	defer agentSrv.Close()
	r := New(Config{AgentURL: agentSrv.URL + "/api/v1"})
	for range 2 {
		got, err := r.Resolve(context.Background(), pod(), container("busybox", corev1.PullAlways))
		if err != nil || !cmp.Equal(busyboxConfig, *got) {
			t.Fatalf("%+v, %v", got, err)
		}
	}
	if calls != 1 {
		t.Errorf("GET_FLAGS sent %d times, want 1", calls)
	}
	flags = flags[1:]
	f, err := New(Config{AgentURL: agentSrv.URL + "/api/v1"}).agent(context.Background())
	if err != nil || f.registry != DefaultRegistry {
		t.Errorf("agent without docker_registry: %+v, %v; want %q", f, err, DefaultRegistry)
	}
	// An agent without the docker provider cannot run any image: nothing is read, whatever the registry.
	flags = []mesos.Flag{{Name: "docker_registry", Value: &dir}, {Name: "image_providers", Value: ptr("appc")}}
	for _, registry := range []string{"", dir} {
		_, err = New(Config{AgentURL: agentSrv.URL + "/api/v1", Registry: registry}).Resolve(context.Background(), pod(), container("busybox", ""))
		if !errors.Is(err, ErrNoImageProvider) {
			t.Errorf("registry %q, agent --image_providers=appc: %v, want ErrNoImageProvider", registry, err)
		}
	}
	flags = []mesos.Flag{{Name: "docker_registry", Value: &dir}, {Name: "image_providers", Value: ptr("APPC,Docker")}}
	if _, err = New(Config{AgentURL: agentSrv.URL + "/api/v1"}).Resolve(context.Background(), pod(), container("busybox", "")); err != nil {
		t.Errorf("--image_providers=APPC,Docker: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// Reference follows Mesos' registry puller: default registry and scheme, docker.io's library/,
// spec::getRegistryScheme for references that name their registry, latest by default.
func TestReferenceFollowsMesos(t *testing.T) {
	for _, tc := range []struct {
		registry, image string
		want            string
		scheme          string
	}{
		{DefaultRegistry, "busybox", "registry-1.docker.io/library/busybox:latest", "https"},
		{DefaultRegistry, "team/app:v1", "registry-1.docker.io/team/app:v1", "https"},
		{DefaultRegistry, "quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5", "https"},
		{DefaultRegistry, "docker.io/busybox", "index.docker.io/library/busybox:latest", "https"},
		{"http://10.0.0.5:5000", "app", "10.0.0.5:5000/app:latest", "http"},
		{DefaultRegistry, "localhost:5000/app", "localhost:5000/app:latest", "http"},
		{DefaultRegistry, "registry.example.com:80/app", "registry.example.com:80/app:latest", "http"},
		{DefaultRegistry, "registry.example.com:5000/app", "registry.example.com:5000/app:latest", "https"},
		{DefaultRegistry, "busybox@sha256:" + strings.Repeat("a", 64), "registry-1.docker.io/library/busybox@sha256:" + strings.Repeat("a", 64), "https"},
	} {
		ref, err := Reference(tc.registry, tc.image)
		if err != nil {
			t.Errorf("Reference(%s, %s): %v", tc.registry, tc.image, err)
			continue
		}
		if ref.Name() != tc.want || ref.Context().Scheme() != tc.scheme {
			t.Errorf("Reference(%s, %s) = %s over %s, want %s over %s", tc.registry, tc.image, ref.Name(), ref.Context().Scheme(), tc.want, tc.scheme)
		}
	}
}

func TestPullPolicyDefaults(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"busybox":                   corev1.PullAlways,
		"busybox:latest":            corev1.PullAlways,
		"busybox:1.36":              corev1.PullIfNotPresent,
		"localhost:5000/app":        corev1.PullAlways,
		"localhost:5000/app:v1":     corev1.PullIfNotPresent,
		"busybox@sha256:0123456789": corev1.PullIfNotPresent,
	} {
		if got := PullPolicy(&corev1.Container{Image: image}); got != want {
			t.Errorf("PullPolicy(%s) = %s, want %s", image, got, want)
		}
	}
	if got := PullPolicy(&corev1.Container{Image: "busybox", ImagePullPolicy: corev1.PullNever}); got != corev1.PullNever {
		t.Errorf("explicit policy overridden: %s", got)
	}
}

func TestDirectoryPathSeparator(t *testing.T) {
	// The archive path is Mesos' path::join; on this host it is an ordinary file path.
	dir := t.TempDir()
	if err := imagearchive.Write(dir+"/", "team/app:v2", v1.Config{Cmd: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "team", "app:v2.tar")); err != nil {
		t.Fatal(err)
	}
	got, err := New(Config{Registry: dir + "/"}).Resolve(context.Background(), pod(), container("team/app:v2", ""))
	if err != nil || got.Cmd[0] != "x" {
		t.Errorf("%+v, %v", got, err)
	}
}

// A registry that never answers costs Config.Timeout, not the transport's retries.
func TestResolveTimeout(t *testing.T) {
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(stall)
	r := New(Config{Registry: srv.URL, Timeout: 50 * time.Millisecond})
	_, err := r.Resolve(context.Background(), pod(), container("app", corev1.PullAlways))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the deadline", err)
	}
}

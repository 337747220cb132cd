package imagearchive

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The expectations follow src/docker/spec.cpp (parseImageReference, operator<<) and
// provisioner/docker/paths.cpp (getImageArchiveTarPath = path::join(dir, name + ".tar")).
func TestPathAndParseFollowMesos(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ref  Reference
		path string
	}{
		{"busybox", Reference{Repository: "busybox"}, "/reg/busybox.tar"},
		{"busybox:1.36", Reference{Repository: "busybox", Tag: "1.36"}, "/reg/busybox:1.36.tar"},
		{"library/busybox", Reference{Repository: "library/busybox"}, "/reg/library/busybox.tar"},
		{"docker.io/library/busybox:latest", Reference{Registry: "docker.io", Repository: "library/busybox", Tag: "latest"}, "/reg/docker.io/library/busybox:latest.tar"},
		{"registry.example.com:5000/team/app:v1", Reference{Registry: "registry.example.com:5000", Repository: "team/app", Tag: "v1"}, "/reg/registry.example.com:5000/team/app:v1.tar"},
		{"registry.example.com:5000/team/app", Reference{Registry: "registry.example.com:5000", Repository: "team/app"}, "/reg/registry.example.com:5000/team/app.tar"},
		{"localhost/app", Reference{Registry: "localhost", Repository: "app"}, "/reg/localhost/app.tar"},
		{"team/app:v2", Reference{Repository: "team/app", Tag: "v2"}, "/reg/team/app:v2.tar"},
		{"busybox@sha256:abcd", Reference{Repository: "busybox", Digest: "sha256:abcd"}, "/reg/busybox@sha256:abcd.tar"},
		// With both, Mesos keeps the tag but names the image by its digest.
		{"busybox:1.36@sha256:abcd", Reference{Repository: "busybox", Tag: "1.36", Digest: "sha256:abcd"}, "/reg/busybox@sha256:abcd.tar"},
		{"docker.io/library/nginx@sha256:ef01", Reference{Registry: "docker.io", Repository: "library/nginx", Digest: "sha256:ef01"}, "/reg/docker.io/library/nginx@sha256:ef01.tar"},
	} {
		ref, err := ParseReference(tc.in)
		if err != nil || ref != tc.ref {
			t.Errorf("ParseReference(%q) = %+v, %v; want %+v", tc.in, ref, err, tc.ref)
		}
		if got := Path("/reg", tc.in); got != tc.path {
			t.Errorf("Path(/reg, %q) = %q, want %q", tc.in, got, tc.path)
		}
		if got := Path("/reg/", tc.in); got != tc.path {
			t.Errorf("Path(/reg/, %q) = %q, want %q (stout's path::join drops one '/')", tc.in, got, tc.path)
		}
	}
	if _, err := ParseReference("a@b@c"); err == nil || err.Error() != "Multiple '@' symbols found" {
		t.Errorf("ParseReference(a@b@c) error = %v, want Mesos' \"Multiple '@' symbols found\"", err)
	}
	if got := Path("/reg", "a@b@c"); got != "/reg/a@b@c.tar" {
		t.Errorf("Path of an unparsable name = %q", got)
	}
}

func testConfig() v1.Config {
	return v1.Config{
		Entrypoint: []string{"/agnhost"},
		Cmd:        []string{"netexec", "--http-port=8080"},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "A=b=c"},
		WorkingDir: "/srv",
		User:       "1000",
		Labels:     map[string]string{"org.example": "x"},
	}
}

func TestWriteIsReadByGoContainerregistryAndMesosRule(t *testing.T) {
	for _, reference := range []string{
		"busybox", "busybox:1.36", "library/busybox", "docker.io/library/busybox:latest",
		"registry.example.com:5000/team/app:v1", "busybox@sha256:0123456789abcdef",
	} {
		t.Run(strings.ReplaceAll(reference, "/", "_"), func(t *testing.T) {
			dir := t.TempDir()
			l1, err := random.Layer(512, types.DockerLayer)
			if err != nil {
				t.Fatal(err)
			}
			l2, err := random.Layer(256, types.DockerLayer)
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig()
			if err := Write(dir, reference, cfg, l1, l2); err != nil {
				t.Fatal(err)
			}
			path := Path(dir, reference)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("archive not at Mesos' path: %v", err)
			}

			img, err := tarball.ImageFromPath(path, nil)
			if err != nil {
				t.Fatalf("tarball.ImageFromPath: %v", err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cf.Config, cfg) {
				t.Errorf("go-containerregistry config = %+v, want %+v", cf.Config, cfg)
			}
			layers, err := img.Layers()
			if err != nil || len(layers) != 2 {
				t.Fatalf("layers = %d, %v", len(layers), err)
			}
			for i, want := range []v1.Layer{l1, l2} {
				if got, want := uncompressed(t, layers[i]), uncompressed(t, want); !bytes.Equal(got, want) {
					t.Errorf("layer %d differs after the round trip", i)
				}
			}
			if ref, err := ParseReference(reference); err == nil && ref.Digest == "" {
				tag, err := name.NewTag(reference)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tarball.ImageFromPath(path, &tag); err != nil {
					t.Errorf("tarball.ImageFromPath with tag %s: %v", tag, err)
				}
			}

			for _, read := range []func() (v1.Config, error){
				func() (v1.Config, error) { return ReadConfig(path) },
				func() (v1.Config, error) { return ReadConfigFor(path, reference) },
			} {
				got, err := read()
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, cfg) {
					t.Errorf("config read the Mesos way = %+v, want %+v", got, cfg)
				}
			}
		})
	}
}

func uncompressed(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
}

// The legacy layout is what Mesos' image tar puller reads: repositories → top layer id, each
// layer's json names its parent, layer.tar is the layer, VERSION is docker save's "1.0".
func TestLegacyLayout(t *testing.T) {
	dir := t.TempDir()
	l1, _ := random.Layer(100, types.DockerLayer)
	l2, _ := random.Layer(100, types.DockerLayer)
	cfg := v1.Config{Cmd: []string{"sh"}}
	if err := Write(dir, "busybox:1.36", cfg, l1, l2); err != nil {
		t.Fatal(err)
	}
	files := untar(t, filepath.Join(dir, "busybox:1.36.tar"))
	var repos map[string]map[string]string
	if err := json.Unmarshal(files["repositories"], &repos); err != nil {
		t.Fatal(err)
	}
	top := repos["busybox"]["1.36"]
	if len(repos) != 1 || top == "" {
		t.Fatalf("repositories = %s", files["repositories"])
	}
	var topJSON struct {
		ID, Parent string
		Config     *v1.Config `json:"config"`
	}
	if err := json.Unmarshal(files[top+"/json"], &topJSON); err != nil {
		t.Fatal(err)
	}
	if topJSON.ID != top || topJSON.Parent == "" || topJSON.Config == nil || !reflect.DeepEqual(topJSON.Config.Cmd, []string{"sh"}) {
		t.Fatalf("top layer json = %s", files[top+"/json"])
	}
	var base struct{ ID, Parent string }
	if err := json.Unmarshal(files[topJSON.Parent+"/json"], &base); err != nil || base.Parent != "" {
		t.Fatalf("base layer json = %s (%v)", files[topJSON.Parent+"/json"], err)
	}
	for id, l := range map[string]v1.Layer{topJSON.Parent: l1, top: l2} {
		if !bytes.Equal(files[id+"/layer.tar"], uncompressed(t, l)) {
			t.Errorf("%s/layer.tar is not the layer", id)
		}
		if string(files[id+"/VERSION"]) != "1.0" {
			t.Errorf("%s/VERSION = %q", id, files[id+"/VERSION"])
		}
	}
}

func TestWriteWithoutLayersHasOneEmptyLayer(t *testing.T) {
	dir := t.TempDir()
	cfg := v1.Config{Cmd: []string{"sh"}}
	if err := Write(dir, "busybox", cfg); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, "busybox.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	if _, err := tar.NewReader(bytes.NewReader(uncompressed(t, layers[0]))).Next(); err != io.EOF {
		t.Errorf("the layer is not an empty tar: %v", err)
	}
	if got, err := ReadConfigFor(filepath.Join(dir, "busybox.tar"), "busybox"); err != nil || !reflect.DeepEqual(got, cfg) {
		t.Errorf("ReadConfigFor = %+v, %v", got, err)
	}
}

func writeTar(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	tw.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The lookups and failures of ImageTarPullerProcess::_pull, with its texts.
func TestReadConfigForFollowsMesosLookup(t *testing.T) {
	dir := t.TempDir()
	layer := `{"id":"top","config":{"Cmd":["sh"]}}`

	// A bare repository key serves a registry-qualified reference (tried first) ...
	p := filepath.Join(dir, "a.tar")
	writeTar(t, p, map[string]string{"repositories": `{"library/busybox":{"latest":"top"}}`, "top/json": layer, "top/layer.tar": ""})
	if cfg, err := ReadConfigFor(p, "docker.io/library/busybox"); err != nil || cfg.Cmd[0] != "sh" {
		t.Errorf("bare key: %+v, %v", cfg, err)
	}
	// ... and a registry-qualified key is the fallback.
	writeTar(t, p, map[string]string{"repositories": `{"docker.io/library/busybox":{"latest":"top"}}`, "top/json": layer, "top/layer.tar": ""})
	if cfg, err := ReadConfigFor(p, "docker.io/library/busybox"); err != nil || cfg.Cmd[0] != "sh" {
		t.Errorf("qualified key: %+v, %v", cfg, err)
	}

	for _, tc := range []struct {
		name, reference string
		files           map[string]string
		want            string
	}{
		{"no repositories", "busybox", map[string]string{"top/json": layer}, "Failed to read 'repositories': No such file or directory"},
		{"other repository", "busybox", map[string]string{"repositories": `{"alpine":{"latest":"top"}}`}, "Repository 'busybox' does not exist in 'repositories'"},
		{"no registry fallback for a bare name", "library/busybox", map[string]string{"repositories": `{"docker.io/library/busybox":{"latest":"top"}}`}, "Repository 'library/busybox' does not exist in 'repositories'"},
		{"other tag", "busybox:1.36", map[string]string{"repositories": `{"busybox":{"latest":"top"}}`}, "Layer id '1.36' is not found"},
		{"digest looks up latest", "busybox@sha256:ab", map[string]string{"repositories": `{"busybox":{"1.36":"top"}}`}, "Layer id 'latest' is not found"},
		{"missing parent", "busybox", map[string]string{"repositories": `{"busybox":{"latest":"top"}}`, "top/json": `{"id":"top","parent":"base","config":{}}`, "top/layer.tar": ""}, "Failed to find parent layer id for layer 'top': Failed to read manifest from 'base/json'"},
	} {
		p := filepath.Join(dir, tc.name+".tar")
		writeTar(t, p, tc.files)
		if _, err := ReadConfigFor(p, tc.reference); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.want)
		}
	}

	missing := Path(dir, "nginx:1.27")
	_, err := ReadConfigFor(missing, "nginx:1.27")
	if want := "Failed to find archive for image 'nginx:1.27' at '" + missing + "'"; err == nil || err.Error() != want {
		t.Errorf("missing archive: %v, want %q", err, want)
	}
}

func TestWriteStandIns(t *testing.T) {
	dir := t.TempDir()
	if err := WriteStandIns(dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range StandIns {
		got, err := ReadConfigFor(Path(dir, name), name)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, want)
		}
	}
	if StandIns["busybox"].Entrypoint != nil || !reflect.DeepEqual(StandIns["busybox"].Cmd, []string{"sh"}) {
		t.Errorf("busybox stand-in is not busybox's config: %+v", StandIns["busybox"])
	}
}

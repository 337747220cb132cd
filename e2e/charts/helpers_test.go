package charts

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// repoRoot is the kubemesos checkout this test runs in (e2e/charts is two levels down).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "charts", "kubemesos", "Chart.yaml")); err != nil {
		t.Fatalf("not in a kubemesos checkout: %v", err)
	}
	return root
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "kubemesos") }
func dcosDir(t testing.TB) string  { return filepath.Join(repoRoot(t), "charts", "dcos") }

// The release every rendering test installs: `helm template km charts/kubemesos -n mesos`.
const (
	testRelease   = "km"
	testNamespace = "mesos"
	testFullname  = "km-kubemesos"
	kubeVersion   = "v1.37.2"
)

// rendered is one chart rendering: the manifests by template, decoded objects, and NOTES.txt.
type rendered struct {
	Manifests map[string]string // template path -> YAML
	Objects   []runtime.Object  // typed where client-go knows the kind, *unstructured.Unstructured otherwise
	Notes     string
}

// valuesYAML parses a values document written in YAML, like `helm template -f`.
func valuesYAML(t testing.TB, doc string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &vals); err != nil {
		t.Fatalf("values: %v", err)
	}
	return vals
}

// renderChart runs what `helm template` runs (an install with DryRun and ClientOnly, so values.schema.json
// is enforced) against a cluster of kubeVersion. It returns an error instead of failing the test so tests
// can assert on rejected values.
func renderChart(t testing.TB, vals map[string]any, namespace string) (*rendered, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("loading chart: %v", err)
	}
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = testRelease
	install.Namespace = namespace
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	install.KubeVersion = kv
	install.APIVersions = chartutil.VersionSet{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	out := &rendered{Manifests: map[string]string{}, Notes: rel.Info.Notes}
	split := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(split))
	for k := range split {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	for _, k := range keys {
		m := split[k]
		src := "?"
		if first, _, ok := strings.Cut(m, "\n"); ok && strings.HasPrefix(first, "# Source: ") {
			src = strings.TrimPrefix(first, "# Source: ")
		}
		out.Manifests[src] += "---\n" + m + "\n"
		obj, err := decodeObject([]byte(m))
		if err != nil {
			t.Fatalf("%s does not decode: %v\n%s", src, err, m)
		}
		out.Objects = append(out.Objects, obj)
	}
	return out, nil
}

func mustRender(t testing.TB, vals map[string]any) *rendered {
	t.Helper()
	r, err := renderChart(t, vals, testNamespace)
	if err != nil {
		t.Fatalf("rendering chart: %v", err)
	}
	return r
}

// decodeObject decodes strictly into the client-go type of its kind (unknown fields are errors), or into
// Unstructured for kinds client-go does not know (ServiceMonitor).
func decodeObject(data []byte) (runtime.Object, error) {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		return nil, err
	}
	gvk := u.GroupVersionKind()
	if !scheme.Scheme.Recognizes(gvk) {
		return u, nil
	}
	obj, err := scheme.Scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", gvk.Kind, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}

// only returns the single object of type T, failing unless there is exactly one.
func only[T runtime.Object](t testing.TB, r *rendered) T {
	t.Helper()
	all := each[T](r)
	if len(all) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, got %d", zero, len(all))
	}
	return all[0]
}

func each[T runtime.Object](r *rendered) []T {
	var out []T
	for _, o := range r.Objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

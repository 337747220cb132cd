package schedbench

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ { // 10 ms .. 2 s, shuffled order must not matter
		ds = append(ds, time.Duration((i*37)%200+1)*10*time.Millisecond)
	}
	got := Summarize(ds)
	want := Percentiles{P50: 1.0, P90: 1.8, P99: 1.98, N: 200}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := Summarize([]time.Duration{3 * time.Second}); got != (Percentiles{P50: 3, P90: 3, P99: 3, N: 1}) {
		t.Errorf("one sample: %+v", got)
	}
	if got := Summarize(nil); got != (Percentiles{}) {
		t.Errorf("no samples: %+v", got)
	}
	if Rate(100, 2*time.Second) != 50 || Rate(0, time.Second) != 0 || Rate(5, 0) != 0 {
		t.Error("Rate")
	}
}

const metricsText = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 10
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="201",component="",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="POST",version="v1"} 1e+02
apiserver_request_total_other{verb="POST"} 99
apiserver_request_totally 5
apiserver_request_duration_seconds_bucket{verb="POST",le="0.1"} 4
odd{a="x\"y}",b="\\"} 1.5
`

func TestParseSamplesAndCounts(t *testing.T) {
	odd, err := ParseSamples(strings.NewReader(metricsText), "odd")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Sample{{Name: "odd", Labels: map[string]string{"a": `x"y}`, "b": `\`}, Value: 1.5}}, odd); diff != "" {
		t.Errorf("escaped labels (-want +got):\n%s", diff)
	}
	samples, err := ParseSamples(strings.NewReader(metricsText), "apiserver_request_total")
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 5 {
		t.Fatalf("%d samples, want 5 (other metrics sharing the prefix left out): %+v", len(samples), samples)
	}
	got := RequestCounts(samples)
	want := map[RequestKey]float64{
		{Verb: "create", Resource: "pods", Subresource: "binding"}: 12, // failed ones count
		{Verb: "patch", Resource: "pods", Subresource: "status"}:   7,
		{Verb: "list", Resource: "pods"}:                           3,
		{Verb: "create", Resource: "pods"}:                         100,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if _, err := ParseSamples(strings.NewReader(`m{a="x} 1`+"\n"), "m"); err == nil {
		t.Error("unterminated label value accepted")
	}
}

func TestDiffPerPodWrites(t *testing.T) {
	before := map[RequestKey]float64{{"create", "pods", "binding"}: 10, {"list", "pods", ""}: 3, {"get", "nodes", ""}: 5}
	after := map[RequestKey]float64{{"create", "pods", "binding"}: 110, {"list", "pods", ""}: 3, {"patch", "pods", "status"}: 150,
		{"get", "nodes", ""}: 5.2, {"create", "events", ""}: 200, {"watch", "pods", ""}: 1}
	d := DiffCounts(before, after)
	if _, ok := d[RequestKey{"list", "pods", ""}]; ok {
		t.Error("an unchanged count is in the diff")
	}
	per := PerPod(d, 100)
	want := map[string]float64{"create pods/binding": 1, "patch pods/status": 1.5, "create events": 2, "watch pods": 0.01}
	if diff := cmp.Diff(want, per); diff != "" {
		t.Errorf("per pod (-want +got; get nodes' 0.002/pod is below the cut):\n%s", diff)
	}
	if got := Writes(per); got != 4.5 {
		t.Errorf("Writes = %v, want 4.5 (create, patch; not watch)", got)
	}
	if len(PerPod(d, 0)) != 0 {
		t.Error("PerPod of 0 pods")
	}
}

func TestParseStat(t *testing.T) {
	// comm may hold spaces and parentheses; utime 150 and stime 50 ticks are 2 s.
	line := "1234 (kube (x) y) S 77 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 12 0 100 1000 200"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ProcStat{Comm: "kube (x) y", PPID: 77, CPUSeconds: 2}, st); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parseStat("12 (x) S 1"); err == nil {
		t.Error("a short line parsed")
	}
	rss, hwm := parseStatusMemory("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
	if rss != 1<<20 || hwm != 2<<20 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
}

// Descendants walks the parent chain: grandchildren count, other trees and the skipped pid do not.
func TestDescendants(t *testing.T) {
	root := t.TempDir()
	write := func(pid, ppid int, comm string, hwmKB int) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) + " 0 0 0 -1 0 0 0 0 0 100 100 0 0 20 0 1 0 1 1 1"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		status := "VmHWM:\t" + strconv.Itoa(hwmKB) + " kB\nVmRSS:\t1 kB\n"
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(10, 1, "bench", 1)
	write(11, 10, "kubemesos", 1) // the framework: skipped
	write(12, 10, "sh", 1)
	write(13, 12, "kubemesos", 1024) // executor under a shell
	write(14, 10, "kubemesos", 2048)
	write(20, 1, "kubemesos", 1) // another tree
	procRoot = root
	defer func() { procRoot = "/proc" }()
	got, err := Descendants(10, "kubemesos", 11)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !(got[0] == 13 && got[1] == 14 || got[0] == 14 && got[1] == 13) {
		t.Errorf("Descendants = %v, want 13 and 14", got)
	}
	u := SumUsage(got)
	if want := (Usage{CPUSeconds: 4, RSSBytes: 2 << 10, PeakRSSBytes: 3 << 20, Processes: 2}); u != want {
		t.Errorf("SumUsage = %+v, want %+v", u, want)
	}
}

// The proxy counts scheduler calls (protobuf, as the framework sends them) and operator calls
// (JSON) by type, and passes requests and responses through untouched.
func TestMesosCounter(t *testing.T) {
	var bodies [][]byte
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		bodies = append(bodies, buf.Bytes())
		w.Header().Set("Mesos-Stream-Id", "s1")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer upstream.Close()
	c, err := NewMesosCounter(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(c)
	defer proxy.Close()
	post := func(path, ctype string, body []byte) {
		t.Helper()
		resp, err := http.Post(proxy.URL+path, ctype, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Mesos-Stream-Id") != "s1" {
			t.Errorf("response %s %v not passed through", resp.Status, resp.Header)
		}
	}
	accept, err := (&scheduler.Call{Type: scheduler.Call_ACCEPT}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	decline, _ := (&scheduler.Call{Type: scheduler.Call_DECLINE}).Marshal()
	agents, _ := (&master.Call{Type: master.Call_GET_AGENTS}).Marshal()
	post("/api/v1/scheduler", "application/x-protobuf", accept)
	post("/api/v1/scheduler", "application/x-protobuf", accept)
	post("/api/v1/scheduler", "application/x-protobuf", decline)
	post("/api/v1", "application/x-protobuf", agents)
	post("/api/v1", "application/json", []byte(`{"type":"GET_STATE"}`))
	post("/api/v1/scheduler", "application/json", []byte(`not json`))
	before := map[string]int{"scheduler ACCEPT": 1}
	want := map[string]int{"scheduler ACCEPT": 1, "scheduler DECLINE": 1, "operator GET_AGENTS": 1, "operator GET_STATE": 1, "scheduler UNKNOWN": 1}
	if diff := cmp.Diff(want, DiffCalls(before, c.Calls())); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if len(bodies) != 6 || !bytes.Equal(bodies[0], accept) {
		t.Errorf("upstream got %d bodies, first %x", len(bodies), bodies[0])
	}
}

func sampleReport() *Report {
	return &Report{Runs: []Run{
		{Agents: 100, Pods: 1000, Limits: "default", WriteLimit: Probe{PerSecond: 1500},
			KubeScheduler: System{BindsPerSecond: 300}, Kubemesos: System{BindsPerSecond: 150, RunningPerSecond: 120,
				CreateToRunning: Percentiles{P50: 0.5, P90: 1, P99: 2}, MesosCallsPerPod: map[string]float64{"scheduler ACCEPT": 0.1, "scheduler ACKNOWLEDGE": 2}}},
		{Agents: 100, Pods: 1000, Limits: "high", WriteLimit: Probe{PerSecond: 1500},
			KubeScheduler: System{BindsPerSecond: 700}, Kubemesos: System{BindsPerSecond: 0, RunningPerSecond: 0}},
		{Agents: 1000, Pods: 10000, Limits: "high", WriteLimit: Probe{PerSecond: 9999}, Error: "warm-up: 1 agents still have no executor"},
	}}
}

// The chart is well-formed SVG with a bar per series and run whose height is proportional to its
// value on an axis rounded up to 1, 2 or 5 times a power of ten.
func TestWriteSVG(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSVG(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	type rect struct {
		Height string `xml:"height,attr"`
		Title  string `xml:"title"`
	}
	var svg struct {
		Rects []rect   `xml:"rect"`
		Texts []string `xml:"text"`
	}
	if err := xml.Unmarshal(b.Bytes(), &svg); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b.String())
	}
	heights := map[string]string{}
	for _, r := range svg.Rects {
		if r.Title != "" {
			heights[r.Title] = r.Height
		}
	}
	// Axis top 2000 for a largest value of 1500; the plot is 300 px high.
	for title, h := range map[string]string{
		"write limit (Bindings/s, one client): 1500.0": "225",
		"kube-scheduler binds/s: 300.0":                "45",
		"kube-scheduler binds/s: 700.0":                "105",
		"kubemesos Running/s: 120.0":                   "18",
		"kubemesos Running/s: 0.0":                     "0",
	} {
		if heights[title] != h {
			t.Errorf("bar %q height %q, want %q", title, heights[title], h)
		}
	}
	if !strings.Contains(b.String(), "100 agents / 1000 pods") || !strings.Contains(b.String(), "high limits") {
		t.Error("run labels missing")
	}
	if strings.Contains(b.String(), "1000 agents") || strings.Contains(b.String(), "9999") {
		t.Error("the failed run is drawn (its 9999/s write limit would also set the axis)")
	}
	for v, want := range map[float64]float64{0: 1, 1500: 2000, 2000: 2000, 730: 1000, 41: 50, 12: 20} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}

func TestReportTableAndJSON(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], "1000/10000") || !strings.Contains(lines[3], "FAILED: warm-up: 1 agents") {
		t.Fatalf("table:\n%s", b.String())
	}
	for _, want := range []string{"100/1000", "default", "1500", "300.0", "150.0", "120.0 (0.40×)", "0.50/1.00/2.00 s", "2.10"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got := FormatCounts(map[string]float64{"b": 2, "a": 0.5}); got != "a=0.5, b=2" {
		t.Errorf("FormatCounts = %q", got)
	}
}

package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// countingServer serves files by path and counts GET and HEAD requests per path; a path in chunked
// is sent without Content-Length, one in broken answers HEAD but fails GET.
type countingServer struct {
	*httptest.Server
	mu      sync.Mutex
	gets    map[string]int
	heads   map[string]int
	chunked map[string]bool
	broken  map[string]bool
}

func newCountingServer(t *testing.T, files map[string][]byte) *countingServer {
	t.Helper()
	s := &countingServer{gets: map[string]int{}, heads: map[string]int{}, chunked: map[string]bool{}, broken: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		if r.Method == http.MethodHead {
			s.heads[r.URL.Path]++
		} else {
			s.gets[r.URL.Path]++
		}
		chunked, broken := s.chunked[r.URL.Path], s.broken[r.URL.Path]
		s.mu.Unlock()
		if broken && r.Method == http.MethodGet {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		if chunked {
			w.(http.Flusher).Flush() // headers out before the body: no Content-Length
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) count(path string) (gets, heads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[path], s.heads[path]
}

func testCache(t *testing.T, capacity int64) (*fetcherCache, *logtest.Hook) {
	t.Helper()
	log, hook := logtest.NewNullLogger()
	c, err := newFetcherCache(filepath.Join(t.TempDir(), "fetch"), capacity, log)
	if err != nil {
		t.Fatal(err)
	}
	return c, hook
}

func cacheFiles(t *testing.T, c *fetcherCache) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(c.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(c.dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func readFile(t *testing.T, p string) (string, os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	return string(b), st.Mode().Perm()
}

// A cached URI is downloaded once per user into the cache (HEAD for its size, one GET), under Mesos'
// file name c<serial>-<basename>, and copied into every sandbox with output_file and the executable bit;
// another user gets a download of its own under <cache>/<user>; a URI without cache bypasses it.
func TestFetcherCacheDownloadsOncePerUser(t *testing.T) {
	srv := newCountingServer(t, map[string][]byte{"/executor/kubemesos": []byte("#!/bin/sh\necho executor\n"), "/plain.txt": []byte("plain\n")})
	c, _ := testCache(t, DefaultFetcherCacheSize)
	yes := true
	out := "kubemesos"
	uri := mesos.CommandInfo_URI{Value: srv.URL + "/executor/kubemesos?sha256=abc", Executable: &yes, Cache: &yes, OutputFile: &out}
	plain := mesos.CommandInfo_URI{Value: srv.URL + "/plain.txt"}
	for i, user := range []string{"root", "root", "root", "nobody"} {
		sandbox := t.TempDir()
		if err := fetchAll(context.Background(), http.DefaultClient, []mesos.CommandInfo_URI{uri, plain}, sandbox, c, user); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if got, mode := readFile(t, filepath.Join(sandbox, "kubemesos")); got != "#!/bin/sh\necho executor\n" || mode != 0o755 {
			t.Errorf("fetch %d: sandbox file %q mode %v", i, got, mode)
		}
	}
	if gets, heads := srv.count("/executor/kubemesos"); gets != 2 || heads != 2 {
		t.Errorf("cached URI: %d GETs and %d HEADs for 3 fetches as root and 1 as nobody, want 2 and 2", gets, heads)
	}
	if gets, heads := srv.count("/plain.txt"); gets != 4 || heads != 0 {
		t.Errorf("uncached URI: %d GETs %d HEADs, want 4 and 0", gets, heads)
	}
	if got, want := strings.Join(cacheFiles(t, c), " "), "nobody/c2-kubemesos root/c1-kubemesos"; got != want {
		t.Errorf("cache files %q, want %q", got, want)
	}
	if n, used := c.stats(); n != 2 || used != 2*int64(len("#!/bin/sh\necho executor\n")) {
		t.Errorf("cache: %d entries %d bytes", n, used)
	}
}

// Concurrent fetches of one URI wait for the one download.
func TestFetcherCacheConcurrentFetchesShareTheDownload(t *testing.T) {
	srv := newCountingServer(t, map[string][]byte{"/big.bin": []byte(strings.Repeat("x", 1<<20))})
	c, _ := testCache(t, DefaultFetcherCacheSize)
	yes := true
	uri := mesos.CommandInfo_URI{Value: srv.URL + "/big.bin", Cache: &yes}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sandbox := t.TempDir()
			if err := fetchAll(context.Background(), http.DefaultClient, []mesos.CommandInfo_URI{uri}, sandbox, c, ""); err != nil {
				failed.Add(1)
				return
			}
			if st, err := os.Stat(filepath.Join(sandbox, "big.bin")); err != nil || st.Size() != 1<<20 {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of 8 fetches failed", failed.Load())
	}
	if gets, _ := srv.count("/big.bin"); gets != 1 {
		t.Errorf("8 concurrent fetches made %d GETs, want 1", gets)
	}
}

// Space is Mesos': reserved from the announced size, the least recently used unreferenced entries
// evicted for a new one; a URI that cannot fit, or whose size is unknown (no Content-Length), is
// fetched directly into the sandbox with a warning and leaves no entry; an archive is extracted from
// the cache, leaving no copy of it in the sandbox.
func TestFetcherCacheEvictionAndFallbacks(t *testing.T) {
	tgz := tarball(t, map[string]string{"app/hello.txt": "hello from tar\n"})
	files := map[string][]byte{"/a": []byte(strings.Repeat("a", 600)), "/b": []byte(strings.Repeat("b", 600)),
		"/huge": []byte(strings.Repeat("h", 2000)), "/stream": []byte("streamed\n"), "/app.tar.gz": tgz, "/broken": []byte("x")}
	srv := newCountingServer(t, files)
	srv.chunked["/stream"], srv.broken["/broken"] = true, true
	c, hook := testCache(t, 1000+int64(len(tgz)))
	yes := true
	fetch := func(path string) (string, error) {
		sandbox := t.TempDir()
		err := fetchAll(context.Background(), http.DefaultClient, []mesos.CommandInfo_URI{{Value: srv.URL + path, Cache: &yes}}, sandbox, c, "")
		return sandbox, err
	}
	// The archive, a, the archive again (now the most recently used), b: b needs a's room, a goes.
	var sandbox string
	for _, p := range []string{"/app.tar.gz", "/a", "/app.tar.gz", "/b"} {
		var err error
		if sandbox, err = fetch(p); err != nil {
			t.Fatalf("fetch %s: %v", p, err)
		}
		if p == "/app.tar.gz" {
			if got, _ := readFile(t, filepath.Join(sandbox, "app/hello.txt")); got != "hello from tar\n" {
				t.Errorf("extracted from the cache: %q", got)
			}
			if _, err := os.Stat(filepath.Join(sandbox, "app.tar.gz")); !os.IsNotExist(err) {
				t.Errorf("the archive was copied into the sandbox: %v", err)
			}
		}
	}
	if got, want := strings.Join(cacheFiles(t, c), " "), "c1-app.tar.gz c3-b"; got != want {
		t.Errorf("cache files %q, want %q (a, the least recently used, evicted for b)", got, want)
	}
	if gets, _ := srv.count("/app.tar.gz"); gets != 1 {
		t.Errorf("archive downloaded %d times", gets)
	}

	for _, p := range []string{"/huge", "/stream"} {
		hook.Reset()
		sandbox, err := fetch(p)
		if err != nil {
			t.Fatalf("fetch %s: %v", p, err)
		}
		if got, _ := readFile(t, filepath.Join(sandbox, strings.TrimPrefix(p, "/"))); got != string(files[p]) {
			t.Errorf("%s fetched directly: %q", p, got)
		}
		if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel || !strings.Contains(e.Message, "Reverting to fetching directly into the sandbox") {
			t.Errorf("%s: no warning that the cache was bypassed (%v)", p, e)
		}
	}
	if got, want := strings.Join(cacheFiles(t, c), " "), "c1-app.tar.gz c3-b"; got != want {
		t.Errorf("after the fallbacks: cache files %q, want %q", got, want)
	}
	if _, err := fetch("/broken"); err == nil || !strings.Contains(err.Error(), "HTTP status 500") {
		t.Errorf("a failing download: %v", err)
	}
	if got, want := strings.Join(cacheFiles(t, c), " "), "c1-app.tar.gz c3-b"; got != want {
		t.Errorf("after a failed download: cache files %q, want %q", got, want)
	}
}

// The agent reports --fetcher_cache_dir and --fetcher_cache_size as Mesos prints them and empties the
// cache directory when it starts.
func TestAgentFetcherCacheFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fetch")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c9-left-over"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, &fakeMaster{}, func(c *Config) { c.FetcherCacheDir, c.FetcherCacheSize = dir, 1536<<20 })
	flags := flagMap(a.flags())
	if flags["fetcher_cache_dir"] != dir || flags["fetcher_cache_size"] != "1536MB" {
		t.Errorf("flags fetcher_cache_dir %q fetcher_cache_size %q", flags["fetcher_cache_dir"], flags["fetcher_cache_size"])
	}
	if _, err := os.Stat(filepath.Join(dir, "c9-left-over")); !os.IsNotExist(err) {
		t.Errorf("a file of the last run is left in the cache: %v", err)
	}
	def := newTestAgent(t, &fakeMaster{}, nil)
	if got := flagMap(def.flags())["fetcher_cache_size"]; got != "2GB" {
		t.Errorf("default fetcher_cache_size %q, want 2GB", got)
	}
	for _, b := range []struct {
		n    int64
		want string
	}{{0, "0B"}, {100, "100B"}, {2048, "2KB"}, {1 << 40, "1TB"}, {1<<30 + 1, "1073741825B"}} {
		if got := formatBytes(b.n); got != b.want {
			t.Errorf("formatBytes(%d) = %q, want %q", b.n, got, b.want)
		}
	}
}

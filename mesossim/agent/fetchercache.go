package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
)

// DefaultFetcherCacheSize is Mesos' --fetcher_cache_size default (DEFAULT_FETCHER_CACHE_SIZE).
const DefaultFetcherCacheSize = 2 << 30

// fetcherCache is the agent's fetcher cache (src/slave/containerizer/fetcher.cpp, FetcherProcess::Cache):
// a URI with `cache: true` is downloaded once per (user, URI) into --fetcher_cache_dir, then copied
// (or extracted) from there into each sandbox. Space is reserved from the size the URI announces
// (its file size, or its HTTP Content-Length) and freed by evicting the least recently used entries no
// fetch references; a URI whose size cannot be found, or that does not fit, is fetched directly into
// the sandbox, as Mesos falls back. The agent empties the directory when it starts.
type fetcherCache struct {
	dir      string
	capacity int64
	log      logrus.FieldLogger

	mu     sync.Mutex
	used   int64
	serial int
	table  map[string]*cacheEntry
	lru    []*cacheEntry // least recently used first
}

type cacheEntry struct {
	key, dir, filename string
	size               int64 // reserved, then the download's actual size
	refs               int
	done               chan struct{} // closed when the download ended
	err                error         // why it failed (set before done is closed)
}

func (e *cacheEntry) path() string { return filepath.Join(e.dir, e.filename) }

func newFetcherCache(dir string, capacity int64, log logrus.FieldLogger) (*fetcherCache, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clearing the fetcher cache directory %s: %w", dir, err)
	}
	return &fetcherCache{dir: dir, capacity: capacity, log: log, table: map[string]*cacheEntry{}}, nil
}

// cacheKey is Mesos': the URI, prefixed by "<user>@" when the fetch runs as a user.
func cacheKey(user, uri string) string {
	if user == "" {
		return uri
	}
	return user + "@" + uri
}

// nextFilename is Cache::nextFilename: "c<serial>-<basename>", the basename cut to its first and
// last 10 characters when longer than 20 (the extension kept for extraction).
func (c *fetcherCache) nextFilenameLocked(uri string) string {
	base := uriBasename(uri)
	if len(base) > 20 {
		base = base[:10] + "_" + base[len(base)-10:]
	}
	c.serial++
	return "c" + strconv.Itoa(c.serial) + "-" + base
}

func uriBasename(uri string) string {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	return path.Base(uri)
}

// acquire references the entry of (user, uri), creating it when there is none (created true: the
// caller downloads it and calls finish).
func (c *fetcherCache) acquire(user, uri string) (e *cacheEntry, created bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := cacheKey(user, uri)
	if e = c.table[key]; e != nil {
		e.refs++
		c.touchLocked(e)
		return e, false
	}
	dir := c.dir
	if user != "" {
		dir = filepath.Join(dir, user) // per-user cache directories, as Mesos segregates them
	}
	e = &cacheEntry{key: key, dir: dir, filename: c.nextFilenameLocked(uri), refs: 1, done: make(chan struct{})}
	c.table[key] = e
	c.lru = append(c.lru, e)
	return e, true
}

func (c *fetcherCache) touchLocked(e *cacheEntry) {
	for i, x := range c.lru {
		if x == e {
			c.lru = append(append(c.lru[:i:i], c.lru[i+1:]...), e)
			return
		}
	}
}

func (c *fetcherCache) release(e *cacheEntry) {
	c.mu.Lock()
	e.refs--
	c.mu.Unlock()
}

// reserve claims size bytes for e, evicting unreferenced entries from the least recently used on.
func (c *fetcherCache) reserve(e *cacheEntry, size int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if missing := size - (c.capacity - c.used); missing > 0 {
		var victims []*cacheEntry
		var freed int64
		for _, x := range c.lru {
			if x.refs == 0 {
				victims = append(victims, x)
				if freed += x.size; freed >= missing {
					break
				}
			}
		}
		if freed < missing {
			return errors.New("Failed to reserve space in the cache: Could not free up enough fetcher cache space")
		}
		for _, x := range victims {
			c.removeLocked(x)
		}
	}
	c.used += size
	e.size = size
	return nil
}

// finish ends e's download: a failed one is removed from the cache (the next fetch tries again); a
// successful one has its reservation adjusted to the file's size.
func (c *fetcherCache) finish(e *cacheEntry, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		if st, serr := os.Stat(e.path()); serr == nil {
			c.used += st.Size() - e.size
			e.size = st.Size()
		} else {
			err = serr
		}
	}
	if err != nil {
		e.err = err
		c.removeLocked(e)
	}
	close(e.done)
}

func (c *fetcherCache) removeLocked(e *cacheEntry) {
	if c.table[e.key] == e {
		delete(c.table, e.key)
	}
	for i, x := range c.lru {
		if x == e {
			c.lru = append(c.lru[:i:i], c.lru[i+1:]...)
			break
		}
	}
	_ = os.Remove(e.path())
	c.used -= e.size
	e.size = 0
}

// stats are the cache's entries and bytes in use (for tests and the operator).
func (c *fetcherCache) stats() (entries int, used int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.table), c.used
}

// fetchSize is Mesos' fetchSize: a local file's size, or a network URI's Content-Length (a HEAD
// request), which must not be 0.
func fetchSize(ctx context.Context, client *http.Client, uri string) (int64, error) {
	if local, ok := localPath(uri); ok {
		st, err := os.Stat(local)
		if err != nil {
			return 0, fmt.Errorf("Could not determine file size for: '%s', error: %v", local, err)
		}
		return st.Size(), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, uri, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("Failed to get the content length of '%s': HTTP status %d", uri, resp.StatusCode)
	}
	if resp.ContentLength <= 0 {
		return 0, fmt.Errorf("URI reported content-length 0: %s", uri)
	}
	return resp.ContentLength, nil
}

func localPath(uri string) (string, bool) {
	if p, ok := strings.CutPrefix(uri, "file://"); ok {
		return p, true
	}
	return uri, strings.HasPrefix(uri, "/")
}

// fetchThroughCache fetches u into the sandbox through the cache: downloaded into it first when no
// fetch did before (or waited for while another fetch downloads it), then copied or extracted from it.
// cached false: the cache could not be used (u's size unknown, no room, a failed download by another
// fetch): the caller fetches directly into the sandbox, as Mesos reverts with a warning.
func (c *fetcherCache) fetchThroughCache(ctx context.Context, client *http.Client, u mesos.CommandInfo_URI, user, sandbox string) (cached bool, err error) {
	e, created := c.acquire(user, u.Value)
	defer c.release(e)
	if created {
		err := c.download(ctx, client, e, u)
		c.finish(e, err)
	} else {
		select {
		case <-e.done:
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
	if e.err != nil {
		c.log.WithError(e.err).WithField("uri", u.Value).Warn("Reverting to fetching directly into the sandbox, due to failure to fetch through the cache")
		return false, nil
	}
	// fetchFromCache: an archive to extract is extracted from the cache file (no copy of it is left in
	// the sandbox); anything else is copied under its output_file or the URI's base name.
	name := u.GetOutputFile()
	if name == "" {
		name = uriBasename(u.Value)
	}
	if u.GetExtract() && !u.GetExecutable() && isTarball(name) {
		return true, extractTar(e.path(), sandbox)
	}
	local := u
	local.Value, local.OutputFile = e.path(), &name
	return true, fetchOne(ctx, client, local, sandbox)
}

func (c *fetcherCache) download(ctx context.Context, client *http.Client, e *cacheEntry, u mesos.CommandInfo_URI) error {
	size, err := fetchSize(ctx, client, u.Value)
	if err != nil {
		return fmt.Errorf("Could not determine size of cache file for '%s' with error: %v", e.key, err)
	}
	if err := c.reserve(e, size); err != nil {
		return err
	}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return err
	}
	// Into the cache as is: no output_file, not executable, not extracted (done when copied out).
	raw := mesos.CommandInfo_URI{Value: u.Value, OutputFile: &e.filename, Extract: new(bool)}
	return fetchOne(ctx, client, raw, e.dir)
}

package agent

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// fetchAll downloads CommandInfo.uris into the sandbox like the Mesos fetcher: local paths, file://
// and http(s):// URIs; output_file or the URI's base name; the executable bit; tar archives (.tar,
// .tar.gz, .tgz) are extracted when extract is set (the default), other files are left as they are.
// A URI with cache set goes through the agent's fetcher cache when it has one (see fetcherCache),
// keyed by user.
func fetchAll(ctx context.Context, client *http.Client, uris []mesos.CommandInfo_URI, sandbox string, cache *fetcherCache, user string) error {
	for _, u := range uris {
		if cache != nil && u.GetCache() {
			cached, err := cache.fetchThroughCache(ctx, client, u, user, sandbox)
			if err != nil {
				return fmt.Errorf("failed to fetch all URIs for container: fetching %q: %w", u.Value, err)
			}
			if cached {
				continue
			}
		}
		if err := fetchOne(ctx, client, u, sandbox); err != nil {
			return fmt.Errorf("failed to fetch all URIs for container: fetching %q: %w", u.Value, err)
		}
	}
	return nil
}

func fetchOne(ctx context.Context, client *http.Client, u mesos.CommandInfo_URI, sandbox string) error {
	name := u.GetOutputFile()
	src := u.Value
	var open func() (io.ReadCloser, error)
	switch {
	case strings.HasPrefix(src, "http://"), strings.HasPrefix(src, "https://"):
		parsed, err := url.Parse(src)
		if err != nil {
			return err
		}
		if name == "" {
			name = path.Base(parsed.Path)
		}
		open = func() (io.ReadCloser, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
			if err != nil {
				return nil, err
			}
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
			}
			return resp.Body, nil
		}
	case strings.HasPrefix(src, "file://"):
		src = strings.TrimPrefix(src, "file://")
		fallthrough
	case strings.HasPrefix(src, "/"):
		if name == "" {
			name = filepath.Base(src)
		}
		local := src
		open = func() (io.ReadCloser, error) { return os.Open(local) }
	default:
		return fmt.Errorf("unsupported URI scheme (no frameworks_home for relative paths)")
	}
	if name == "" || name == "/" || name == "." || strings.Contains(name, "..") {
		return fmt.Errorf("cannot derive a file name")
	}
	dst := filepath.Join(sandbox, name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	mode := os.FileMode(0o644)
	if u.GetExecutable() {
		mode = 0o755
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(dst, mode); err != nil {
		return err
	}
	if u.GetExtract() && !u.GetExecutable() && isTarball(name) {
		return extractTar(dst, sandbox)
	}
	return nil
}

func isTarball(name string) bool {
	return strings.HasSuffix(name, ".tar") || strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tgz")
}

func extractTar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if !strings.HasSuffix(archive, ".tar") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("extracting %s: %w", filepath.Base(archive), err)
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extracting %s: %w", filepath.Base(archive), err)
		}
		target := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		}
	}
}

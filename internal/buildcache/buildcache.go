// Package buildcache holds what the builders of the content-addressed caches under ~/.cache/kubemesos
// (the Kubernetes binaries, the image store, the CNI plugins) share: where the cache is, whether a built
// entry's executables are there, and a lock so that one process builds while the others wait for it and
// then find the result.
package buildcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Root is the cache root: dir if set, else $KUBEMESOS_CACHE_DIR, else <user cache dir>/kubemesos.
func Root(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if dir = os.Getenv("KUBEMESOS_CACHE_DIR"); dir != "" {
		return dir, nil
	}
	uc, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no KUBEMESOS_CACHE_DIR and no user cache dir: %w", err)
	}
	return filepath.Join(uc, "kubemesos"), nil
}

// Executables reports whether every path is a regular file that someone may execute (a build that
// was interrupted leaves them missing, so the entry is built again).
func Executables(paths ...string) bool {
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// Lock takes an exclusive flock on path and returns its release. It polls instead of blocking
// (a build holds the lock for minutes) so that waiting stops as soon as ctx is done, and tells log once,
// naming who, when it has to wait.
func Lock(ctx context.Context, path, who string, log io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening build lock: %w", err)
	}
	release := func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return release, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !told && log != nil {
			fmt.Fprintf(log, "%s: another build holds %s; waiting for it\n", who, path)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for build lock: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

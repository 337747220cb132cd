// Package buildlock serialises the builders of the content-addressed caches under ~/.cache/kubemesos
// (the Kubernetes binaries, the image store, the CNI plugins): one process builds, the others wait for
// it and then find the result.
package buildlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// Acquire takes an exclusive flock on path and returns its release. It polls instead of blocking
// (a build holds the lock for minutes) so that waiting stops as soon as ctx is done, and tells log once,
// naming who, when it has to wait.
func Acquire(ctx context.Context, path, who string, log io.Writer) (func(), error) {
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

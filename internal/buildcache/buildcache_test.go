package buildcache

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A second holder waits (and says so) until the first releases; a cancelled wait gives up.
func TestLockWaitsForTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	release, err := Lock(context.Background(), path, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var log bytes.Buffer
	if _, err := Lock(ctx, path, "second", &log); err == nil || !strings.Contains(err.Error(), "waiting for build lock") {
		t.Fatalf("a second Lock while held = %v, want a cancelled wait", err)
	}
	if !strings.Contains(log.String(), "second: another build holds "+path) {
		t.Errorf("log = %q", log.String())
	}
	got := make(chan error, 1)
	go func() {
		r, err := Lock(context.Background(), path, "third", nil)
		if err == nil {
			r()
		}
		got <- err
	}()
	release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lock was never handed over after release")
	}
}

// The cache root is the explicit directory, else $KUBEMESOS_CACHE_DIR, else the user's cache dir.
func TestRoot(t *testing.T) {
	t.Setenv("KUBEMESOS_CACHE_DIR", "/from/env")
	if got, _ := Root("/explicit"); got != "/explicit" {
		t.Errorf("Root(/explicit) = %q", got)
	}
	if got, _ := Root(""); got != "/from/env" {
		t.Errorf("Root with KUBEMESOS_CACHE_DIR = %q", got)
	}
	t.Setenv("KUBEMESOS_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got, _ := Root(""); got != "/xdg/kubemesos" {
		t.Errorf("Root from the user cache dir = %q", got)
	}
}

// An entry counts only when every file is there, regular and executable.
func TestExecutables(t *testing.T) {
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "exe"), filepath.Join(dir, "plain")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		paths []string
		want  bool
	}{
		{[]string{exe}, true},
		{[]string{exe, plain}, false},
		{[]string{exe, filepath.Join(dir, "missing")}, false},
		{[]string{dir}, false},
	} {
		if got := Executables(tc.paths...); got != tc.want {
			t.Errorf("Executables(%q) = %v, want %v", tc.paths, got, tc.want)
		}
	}
}

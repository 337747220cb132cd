package cniplugins

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCacheKey(t *testing.T) {
	k := CacheKey("go1.26.8", "linux", "amd64")
	if k != CacheKey("go1.26.8", "linux", "amd64") {
		t.Fatal("the key is not stable")
	}
	for _, other := range []string{CacheKey("go1.26.9", "linux", "amd64"), CacheKey("go1.26.8", "linux", "arm64"),
		CacheKey("go1.26.8", "darwin", "amd64")} {
		if other == k {
			t.Errorf("a different toolchain or platform has the same key %s", k)
		}
	}
}

// Ensure builds the plugins once into the cache (executable by anyone, stamped with the release)
// and later finds them there without building.
func TestEnsureBuildsOnceAndReuses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CNI plugins (-short)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	cache := t.TempDir()
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := EnsureWith(ctx, Options{CacheDir: cache, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, filepath.Join(cache, "cni-plugins-"+Version+"-")) {
		t.Errorf("plugins in %s, not in the cache %s", dir, cache)
	}
	if !strings.Contains(log.String(), "cniplugins: building bridge, loopback, host-local, portmap") {
		t.Errorf("log does not say it built:\n%s", log.String())
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("plugin directory mode %v, %v; want 0755", st.Mode(), err)
	}
	for _, name := range Names() {
		out, err := exec.Command(filepath.Join(dir, name), "--version").CombinedOutput()
		if err != nil {
			t.Errorf("%s --version: %v: %s", name, err, out)
			continue
		}
		if !strings.Contains(string(out), Version) {
			t.Errorf("%s --version = %q, want %s", name, out, Version)
		}
		cmd := exec.Command(filepath.Join(dir, name))
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), `"1.0.0"`) {
			t.Errorf("%s VERSION = %s, %v", name, out, err)
		}
	}
	log.Reset()
	again, err := EnsureWith(ctx, Options{CacheDir: cache, Log: &log})
	if err != nil || again != dir {
		t.Fatalf("second Ensure: %s, %v; want %s", again, err, dir)
	}
	if log.Len() != 0 {
		t.Errorf("second Ensure built again:\n%s", log.String())
	}
}

package buildlock

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A second holder waits (and says so) until the first releases; a cancelled wait gives up.
func TestAcquireWaitsForTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	release, err := Acquire(context.Background(), path, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var log bytes.Buffer
	if _, err := Acquire(ctx, path, "second", &log); err == nil || !strings.Contains(err.Error(), "waiting for build lock") {
		t.Fatalf("a second Acquire while held = %v, want a cancelled wait", err)
	}
	if !strings.Contains(log.String(), "second: another build holds "+path) {
		t.Errorf("log = %q", log.String())
	}
	got := make(chan error, 1)
	go func() {
		r, err := Acquire(context.Background(), path, "third", nil)
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

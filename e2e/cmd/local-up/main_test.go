package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

func TestResetStateDir(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		wantErr  string
		wantKept string // a file that must survive
		wantGone string // a file that must be removed
	}{
		{name: "missing dir is created", setup: func(*testing.T, string) {}},
		{name: "empty dir is used", setup: func(t *testing.T, dir string) { mkdir(t, dir) }},
		{
			name: "previous state is wiped",
			setup: func(t *testing.T, dir string) {
				mkdir(t, dir)
				touch(t, filepath.Join(dir, stateMarker))
				touch(t, filepath.Join(dir, "old-etcd-data"))
			},
			wantGone: "old-etcd-data",
		},
		{
			// A SIGKILLed agent leaves its shared work_dir mount and a tmpfs emptyDir behind.
			name: "mounts a killed agent left are unmounted first",
			setup: func(t *testing.T, dir string) {
				if os.Geteuid() != 0 {
					t.Skip("mounting needs root")
				}
				mesos := filepath.Join(dir, "mesos")
				vol := filepath.Join(mesos, "sandbox", "volumes", "cache")
				mkdir(t, vol)
				touch(t, filepath.Join(dir, stateMarker))
				if err := unix.Mount(mesos, mesos, "", unix.MS_BIND, ""); err != nil {
					t.Fatal(err)
				}
				if err := unix.Mount("tmpfs", vol, "tmpfs", 0, "size=1m"); err != nil {
					t.Fatal(err)
				}
				touch(t, filepath.Join(vol, "data"))
				t.Cleanup(func() { _ = containerizer.UnmountUnder(dir + "/") })
			},
			wantGone: "mesos",
		},
		{
			name: "foreign dir is refused",
			setup: func(t *testing.T, dir string) {
				mkdir(t, dir)
				touch(t, filepath.Join(dir, "thesis.tex"))
			},
			wantErr:  "not made by local-up",
			wantKept: "thesis.tex",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			tt.setup(t, dir)
			err := resetStateDir(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if _, err := os.Stat(filepath.Join(dir, stateMarker)); err != nil {
				t.Errorf("no marker after reset: %v", err)
			}
			if tt.wantKept != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.wantKept)); err != nil {
					t.Errorf("%s was removed: %v", tt.wantKept, err)
				}
			}
			if tt.wantGone != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.wantGone)); !os.IsNotExist(err) {
					t.Errorf("%s survived the reset (stat: %v)", tt.wantGone, err)
				}
			}
		})
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

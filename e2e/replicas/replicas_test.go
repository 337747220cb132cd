package replicas

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func sleeper(t *testing.T) *Replica {
	r := &Replica{Name: "a", Binary: "/bin/sh", Args: []string{"-c", "echo run; exec sleep 60"}, Dir: t.TempDir(),
		OnError: func(err error) { t.Error(err) }}
	t.Cleanup(r.Stop)
	return r
}

// A run that exits is restarted; a held replica stays down until released; each run has its log.
func TestReplicaRestartsHoldsAndReleases(t *testing.T) {
	r := sleeper(t)
	r.Start()
	waitFor(t, "the first run", func() bool { return alive(r.PID()) })
	first := r.PID()
	r.Signal(syscall.SIGKILL)
	waitFor(t, "a restart", func() bool { return r.Runs() == 2 && alive(r.PID()) && r.PID() != first })

	r.Hold()
	second := r.PID()
	r.Signal(syscall.SIGKILL)
	waitFor(t, "the held run's exit", func() bool { return !alive(second) })
	time.Sleep(5 * RestartDelay)
	if n := r.Runs(); n != 2 {
		t.Fatalf("held replica restarted: %d runs", n)
	}
	r.Release()
	waitFor(t, "the restart after Release", func() bool { return r.Runs() == 3 && alive(r.PID()) })

	logs := r.Logs()
	if len(logs) != 3 {
		t.Fatalf("logs %v, want 3", logs)
	}
	for i, l := range logs {
		if want := filepath.Join(r.Dir, "framework-a-"+strconv.Itoa(i+1)+".log"); l != want {
			t.Errorf("log %d: %s, want %s", i, l, want)
		}
		if _, err := os.Stat(l); err != nil {
			t.Error(err)
		}
	}
	// Its output goes to the run's own log.
	waitFor(t, "the last run's output", func() bool { b, _ := os.ReadFile(logs[2]); return string(b) == "run\n" })
}

// Stop ends a paused run too (resumed, then terminated) and restarts nothing after.
func TestReplicaStopEndsAPausedRun(t *testing.T) {
	r := sleeper(t)
	r.Start()
	waitFor(t, "the first run", func() bool { return alive(r.PID()) })
	pid := r.PID()
	r.Signal(syscall.SIGSTOP)
	r.Stop()
	if alive(pid) {
		t.Fatalf("process %d still alive after Stop", pid)
	}
	time.Sleep(3 * RestartDelay)
	if r.Runs() != 1 {
		t.Fatalf("%d runs after Stop", r.Runs())
	}
	r.Stop() // again: no panic
}

// Stop of a held, exited replica returns.
func TestReplicaStopWhileHeld(t *testing.T) {
	r := sleeper(t)
	r.Start()
	waitFor(t, "the first run", func() bool { return alive(r.PID()) })
	r.Hold()
	pid := r.PID()
	r.Signal(syscall.SIGKILL)
	waitFor(t, "the exit", func() bool { return !alive(pid) })
	r.Stop()
}

func TestReplicaStartFailureIsReported(t *testing.T) {
	errs := make(chan error, 1)
	r := &Replica{Name: "x", Binary: "/nonexistent/kubemesos", Dir: t.TempDir(), OnError: func(err error) { errs <- err }}
	r.Start()
	defer r.Stop()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "starting replica x") || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("error %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no error reported")
	}
}

func TestReplicaSubscribedAndServing(t *testing.T) {
	subscribed := "0"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/healthz":
			w.Write([]byte("ok"))
		case "/metrics":
			w.Write([]byte("# TYPE kubemesos_mesos_subscribed gauge\nkubemesos_mesos_subscribed " + subscribed + "\n"))
		default:
			http.NotFound(w, req)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	r := &Replica{}
	r.Port, _ = strconv.Atoi(port)
	ctx := context.Background()
	if !r.Serving(ctx) {
		t.Error("not serving")
	}
	if r.Subscribed(ctx) {
		t.Error("subscribed with the gauge at 0")
	}
	subscribed = "1"
	if !r.Subscribed(ctx) {
		t.Error("not subscribed with the gauge at 1")
	}
	srv.Close()
	if r.Serving(ctx) || r.Subscribed(ctx) {
		t.Error("serving or subscribed with the server gone")
	}
}

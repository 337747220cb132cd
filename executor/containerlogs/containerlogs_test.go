package containerlogs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	crilogs "k8s.io/cri-client/pkg/logs"
	testingclock "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(os.Stderr)
	l.SetLevel(logrus.WarnLevel)
	return l
}

// outputDir is where the tests' containers write their stdout and stderr under root.
func outputDir(root string, uid types.UID, id string) string {
	return filepath.Join(root, "pods", string(uid), "containers", id)
}

// output is a nested container's sandbox with its stdout and stderr files, written as Mesos does.
type output struct {
	t   *testing.T
	dir string
}

func newOutput(t *testing.T, sandbox string, uid types.UID, id string) *output {
	dir := outputDir(sandbox, uid, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"stdout", "stderr"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &output{t: t, dir: dir}
}

func (o *output) write(name, data string) {
	o.t.Helper()
	f, err := os.OpenFile(filepath.Join(o.dir, name), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		o.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		o.t.Fatal(err)
	}
}

// testFollower follows one attempt's files into a log without a goroutine: the test calls read.
func testFollower(t *testing.T, clk *testingclock.FakeClock, maxLine int) (*follower, *output, string) {
	sandbox := t.TempDir()
	out := newOutput(t, sandbox, "uid", "c1")
	path := Path(sandbox, "uid", "c1")
	logFile, err := createLog(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower(logFile, out.dir, clk.Now, maxLine, quietLog())
	t.Cleanup(func() { f.read(true) })
	return f, out, path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFollowerInterleavesInTheOrderSeen(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	f, out, path := testFollower(t, clk, DefaultMaxLineBytes)
	out.write("stdout", "out1\n")
	f.read(false)
	clk.Step(time.Second)
	out.write("stderr", "err1\n")
	f.read(false)
	clk.Step(time.Second)
	out.write("stdout", "out2\nout3\n")
	f.read(false)
	clk.Step(time.Second)
	// Both grew since the last read, stderr first as inotify reported: its lines come first.
	out.write("stderr", "err2\n")
	f.poke(filepath.Join(out.dir, "stderr"))
	out.write("stdout", "out4\n")
	f.poke(filepath.Join(out.dir, "stdout"))
	f.read(false)
	clk.Step(time.Second)
	// Both grew and nothing was reported (the poll): stdout's lines come first.
	out.write("stderr", "err3\n")
	out.write("stdout", "out5\n")
	f.read(false)
	want := "2026-01-01T00:00:00Z stdout F out1\n" +
		"2026-01-01T00:00:01Z stderr F err1\n" +
		"2026-01-01T00:00:02Z stdout F out2\n" +
		"2026-01-01T00:00:02Z stdout F out3\n" +
		"2026-01-01T00:00:03Z stderr F err2\n" +
		"2026-01-01T00:00:03Z stdout F out4\n" +
		"2026-01-01T00:00:04Z stdout F out5\n" +
		"2026-01-01T00:00:04Z stderr F err3\n"
	if diff := cmp.Diff(want, readFile(t, path)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

func TestFollowerPartialLines(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	f, out, path := testFollower(t, clk, 8)
	out.write("stdout", "hal")
	f.read(false)
	if got := readFile(t, path); got != "" {
		t.Fatalf("an unended line was logged: %q", got)
	}
	out.write("stdout", "f\n0123456789abcdefXYZ\n") // a line longer than 8 bytes is cut into partial entries
	out.write("stderr", "no newline")
	f.read(false)
	clk.Step(time.Second)
	f.read(true) // the last read ends an unended line as a partial entry, as containerd does at EOF
	want := "2026-01-01T00:00:00Z stdout F half\n" +
		"2026-01-01T00:00:00Z stdout P 01234567\n" +
		"2026-01-01T00:00:00Z stdout P 89abcdef\n" +
		"2026-01-01T00:00:00Z stdout F XYZ\n" +
		"2026-01-01T00:00:00Z stderr P no newli\n" +
		"2026-01-01T00:00:01Z stderr P ne\n"
	if diff := cmp.Diff(want, readFile(t, path)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	// The kubelet's reader joins the partial entries back.
	var stdout, stderr bytes.Buffer
	if err := crilogs.ReadLogs(context.Background(), path, "", &crilogs.LogOptions{}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "half\n0123456789abcdefXYZ\n" || stderr.String() != "no newline" {
		t.Errorf("read back stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// TestFollowerStripsTheLauncherLines: what the Mesos launcher writes to stderr before the command
// runs is dropped; the same text from the command itself is kept.
func TestFollowerStripsTheLauncherLines(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	f, out, path := testFollower(t, clk, DefaultMaxLineBytes)
	rootfs := "/var/lib/mesos/slave/provisioner/containers/e1/containers/c1/backends/overlay/rootfses/7b1e"
	out.write("stderr", "Preparing rootfs at '"+rootfs+"'\nMarked '/' as rslave\n")
	f.read(false)
	out.write("stderr", "Executing pre-exec command '{\"shell\":true,\"value\":\"mount -n -t proc proc \\/proc\"}'\n"+
		"Changing root to "+rootfs+"\nOverwriting environment variable 'PATH'\n")
	out.write("stdout", "ready\n")
	f.read(false)
	out.write("stderr", "warning: low disk\nMarked '/' as rslave\n")
	f.read(false)
	want := "2026-01-01T00:00:00Z stdout F ready\n" +
		"2026-01-01T00:00:00Z stderr F warning: low disk\n" +
		"2026-01-01T00:00:00Z stderr F Marked '/' as rslave\n"
	if diff := cmp.Diff(want, readFile(t, path)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// TestFollowerStripsTheLauncherLinesOfATerminal: a container with a TTY gets the launcher's lines on
// its terminal, i.e. in its stdout file with "\r\n": they are dropped too.
func TestFollowerStripsTheLauncherLinesOfATerminal(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	f, out, path := testFollower(t, clk, DefaultMaxLineBytes)
	out.write("stdout", "Marked '/' as rslave\r\nChanging root to /rootfs\r\nhello\r\nMarked '/' as rslave\r\n")
	f.read(false)
	want := "2026-01-01T00:00:00Z stdout F hello\r\n" +
		"2026-01-01T00:00:00Z stdout F Marked '/' as rslave\r\n"
	if diff := cmp.Diff(want, readFile(t, path)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

func TestIsLauncherLine(t *testing.T) {
	for line, want := range map[string]bool{
		"Marked '/' as rslave":                        true,
		"Preparing rootfs at '/tmp/rootfs'":           true,
		"Changing root to /tmp/rootfs":                true,
		"Executing pre-exec command '{\"value\":1}'":  true,
		"Overwriting environment variable 'HOME'":     true,
		"Marked '/' as rslave ":                       false,
		"Marked '/' as rslave\r":                      true,
		"Changing root to /tmp/rootfs\r":              true,
		"hello\r":                                     false,
		"Failed to prepare mounts: no such file":      false,
		"Changing rootfs is not supported on Windows": false,
		"hello": false,
	} {
		if got := IsLauncherLine([]byte(line)); got != want {
			t.Errorf("IsLauncherLine(%q) = %v, want %v", line, got, want)
		}
	}
}

func pod(uid types.UID) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: uid}}
}

func runningStatus(id string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "main", ContainerID: "mesos://" + id,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

// TestManagerFollowsAttempts: a running attempt is followed by polls (a fake clock drives them),
// its end makes the last read (an unended line included) before Update returns, a restart starts
// the next attempt's log, the pod's end (its task is over) keeps its logs, complete, and Forget (the
// pod was deleted) removes them.
func TestManagerFollowsAttempts(t *testing.T) {
	sandbox := t.TempDir()
	clk := testingclock.NewFakeClock(t0)
	m := New(Config{Sandbox: sandbox, OutputDir: func(uid types.UID, id string) string { return outputDir(sandbox, uid, id) }, Clock: clk, PollInterval: time.Second, Log: quietLog()})
	defer m.Close()
	p := pod("uid-1")
	out0 := newOutput(t, sandbox, "uid-1", "a0")
	out0.write("stderr", "Marked '/' as rslave\n")
	out0.write("stdout", "first\n")
	m.Update(p, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{runningStatus("a0")}}, false)
	log0 := Path(sandbox, p.UID, "a0")
	waitFor(t, "the first read", func() bool { return readFile(t, log0) != "" })
	if m.Finished("a0") {
		t.Error("a running attempt's log is finished")
	}

	out0.write("stdout", "second\n")
	for !strings.Contains(readFile(t, log0), "second") {
		clk.Step(time.Second) // the poll (inotify may be quicker)
		time.Sleep(time.Millisecond)
	}
	out0.write("stderr", "crash")
	restarted := runningStatus("a1")
	restarted.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "mesos://a0"}
	out1 := newOutput(t, sandbox, "uid-1", "a1")
	out1.write("stdout", "again\n")
	m.Update(p, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{restarted}}, false)
	if !m.Finished("a0") {
		t.Error("the previous attempt's log is not finished")
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(readFile(t, log0), "\n"), "\n") {
		got = append(got, l[strings.IndexByte(l, ' ')+1:])
	}
	if diff := cmp.Diff([]string{"stdout F first", "stdout F second", "stderr P crash"}, got); diff != "" {
		t.Errorf("previous attempt's log (-want +got):\n%s", diff)
	}
	log1 := Path(sandbox, p.UID, "a1")
	waitFor(t, "the new attempt's log", func() bool { return strings.HasSuffix(readFile(t, log1), " stdout F again\n") })

	out1.write("stdout", "unended")
	ended := restarted
	ended.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ContainerID: "mesos://a1"}}
	m.Update(p, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{ended}}, true)
	if !m.Finished("a1") {
		t.Error("the last attempt's log is not finished after the pod's end")
	}
	if got := readFile(t, log1); !strings.HasSuffix(got, " stdout P unended\n") {
		t.Errorf("the last attempt's log after the pod's end = %q, want it to end with its unended line", got)
	}
	if _, err := os.Stat(log0); err != nil {
		t.Errorf("the previous attempt's log is gone after the pod's end: %v", err)
	}
	m.Forget(p.UID)
	if _, err := os.Stat(PodDir(sandbox, p.UID)); !os.IsNotExist(err) {
		t.Errorf("the pod's logs are still there after Forget: %v", err)
	}
}

// TestManagerKeepsTwoAttempts: as the kubelet's container GC keeps the newest dead container of
// each container, a container's logs older than its previous attempt are removed; another
// container's are not.
func TestManagerKeepsTwoAttempts(t *testing.T) {
	sandbox := t.TempDir()
	m := New(Config{Sandbox: sandbox, OutputDir: func(uid types.UID, id string) string { return outputDir(sandbox, uid, id) }, Clock: testingclock.NewFakeClock(t0), PollInterval: time.Hour, Log: quietLog()})
	defer m.Close()
	p := pod("uid-4")
	side := corev1.ContainerStatus{Name: "side", ContainerID: "mesos://s0", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}
	attempt := func(id, prev string) corev1.PodStatus {
		st := runningStatus(id)
		if prev != "" {
			st.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "mesos://" + prev}
		}
		return corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{st, side}}
	}
	for _, id := range []string{"b0", "b1", "b2", "s0"} {
		newOutput(t, sandbox, p.UID, id).write("stdout", id+"\n")
	}
	m.Update(p, attempt("b0", ""), false)
	m.Update(p, attempt("b1", "b0"), false)
	m.Update(p, attempt("b2", "b1"), false)
	exists := map[string]bool{}
	for _, id := range []string{"b0", "b1", "b2", "s0"} {
		_, err := os.Stat(Path(sandbox, p.UID, id))
		exists[id] = err == nil
	}
	if diff := cmp.Diff(map[string]bool{"b0": false, "b1": true, "b2": true, "s0": true}, exists); diff != "" {
		t.Errorf("logs kept (-want +got):\n%s", diff)
	}
}

// TestManagerWakesOnWrites: with the poll stopped (a fake clock never stepped), inotify alone brings
// each write into the log, in the order of the writes.
func TestManagerWakesOnWrites(t *testing.T) {
	sandbox := t.TempDir()
	m := New(Config{Sandbox: sandbox, OutputDir: func(uid types.UID, id string) string { return outputDir(sandbox, uid, id) }, Clock: testingclock.NewFakeClock(t0), PollInterval: time.Hour, Log: quietLog()})
	defer m.Close()
	if m.watcher == nil {
		t.Skip("no inotify here")
	}
	out := newOutput(t, sandbox, "uid-3", "w0")
	p := pod("uid-3")
	m.Update(p, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{runningStatus("w0")}}, false)
	path := Path(sandbox, p.UID, "w0")
	waitFor(t, "the first read (the follower watches the files once it opened them)", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.byFile) == 2
	})
	var want []string
	for i, stream := range []string{"stdout", "stderr", "stdout", "stderr"} {
		line := fmt.Sprintf("%s-%d", stream, i)
		out.write(stream, line+"\n")
		want = append(want, stream+" F "+line)
		waitFor(t, line, func() bool { return strings.Contains(readFile(t, path), line) })
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(readFile(t, path), "\n"), "\n") {
		got = append(got, l[strings.IndexByte(l, ' ')+1:])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// TestManagerTerminatedBeforeSeenRunning: an attempt whose first status is already terminated still
// gets its output logged.
func TestManagerTerminatedBeforeSeenRunning(t *testing.T) {
	sandbox := t.TempDir()
	m := New(Config{Sandbox: sandbox, OutputDir: func(uid types.UID, id string) string { return outputDir(sandbox, uid, id) }, Clock: testingclock.NewFakeClock(t0), Log: quietLog()})
	defer m.Close()
	newOutput(t, sandbox, "uid-2", "quick").write("stdout", "done\n")
	p := pod("uid-2")
	m.Update(p, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "main", ContainerID: "mesos://quick",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}}}, false)
	if got := readFile(t, Path(sandbox, p.UID, "quick")); got != "2026-01-01T00:00:00Z stdout F done\n" {
		t.Errorf("log = %q", got)
	}
}

// waitFor polls cond until it holds (a deadline for goroutines to get somewhere, not a timing assertion).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkFollowerRead: merging 1 MiB of short lines from each file into the CRI log.
func BenchmarkFollowerRead(b *testing.B) {
	sandbox := b.TempDir()
	dir := outputDir(sandbox, "uid", "c1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	data := []byte(strings.Repeat(strings.Repeat("y", 79)+"\n", 1<<20/80))
	for _, name := range []string{"stdout", "stderr"} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(2 * len(data)))
	for b.Loop() {
		logFile, err := os.OpenFile(filepath.Join(b.TempDir(), "c1.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		f := newFollower(logFile, dir, time.Now, DefaultMaxLineBytes, quietLog())
		f.read(true)
	}
}

// TestReadErrorLoggedOnce: an output file that cannot be read is reported once, not at every poll.
func TestReadErrorLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "stdout"), 0o755); err != nil { // reading it fails (EISDIR)
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	logFile, err := createLog(filepath.Join(t.TempDir(), "c.log"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower(logFile, dir, time.Now, DefaultMaxLineBytes, log)
	for range 3 {
		f.read(false)
	}
	f.read(true)
	if n := len(hook.AllEntries()); n != 1 {
		t.Errorf("%d log entries, want 1: %v", n, hook.AllEntries())
	}
}

package podworker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestTerminationMessage(t *testing.T) {
	const fallback = corev1.TerminationMessageFallbackToLogsOnError
	long := strings.Repeat("x", MaxTerminationMessageLength) + "END"
	var manyLines strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&manyLines, "line %03d\n", i)
	}
	tests := []struct {
		name                 string
		policy               corev1.TerminationMessagePolicy
		path                 string // the container's terminationMessagePath
		noFile               bool   // the runtime mounted no file
		file, stdout, stderr string
		exit                 ExitStatus
		want                 string
	}{
		{name: "file content", file: "all done\n", exit: ExitStatus{ExitCode: 0}, want: "all done\n"},
		{name: "file content of a failure", file: "boom", exit: ExitStatus{ExitCode: 2}, want: "boom"},
		{name: "the last 4096 bytes of the file", file: long, want: long[len(long)-MaxTerminationMessageLength:]},
		{name: "runtime message first", file: "why", exit: ExitStatus{ExitCode: 137, Message: "Memory limit exceeded"},
			want: "Memory limit exceeded: why"},
		{name: "no path: no message", path: "-", file: "ignored", want: ""},
		{name: "File policy ignores the logs", stdout: "DONE", exit: ExitStatus{ExitCode: 1}, want: ""},
		{name: "fallback to the logs on a failure", policy: fallback, stdout: "DONE", exit: ExitStatus{ExitCode: 1}, want: "DONE"},
		{name: "fallback without a mounted file", policy: fallback, noFile: true, stdout: "out\n", exit: ExitStatus{ExitCode: 1}, want: "out\n"},
		{name: "no fallback on success", policy: fallback, stdout: "DONE", exit: ExitStatus{ExitCode: 0}, want: ""},
		{name: "the file wins over the logs", policy: fallback, file: "OK", stdout: "DONE", exit: ExitStatus{ExitCode: 1}, want: "OK"},
		{name: "stderr after stdout, launcher lines left out", policy: fallback, stdout: "to stdout\n",
			stderr: "Marked '/' as rslave\nChanging root to /rootfs\ncannot open config\n", exit: ExitStatus{ExitCode: 1},
			want: "to stdout\ncannot open config\n"},
		{name: "the last 80 lines", policy: fallback, stdout: manyLines.String(), exit: ExitStatus{ExitCode: 1},
			want: manyLines.String()[20*len("line 001\n"):]},
		{name: "at most 2048 bytes of the logs", policy: fallback, stdout: "a\n" + strings.Repeat("y", 3000), exit: ExitStatus{ExitCode: 1},
			want: strings.Repeat("y", MaxTerminationMessageLogLength)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := &corev1.Container{Name: "c", TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: tt.policy}
			if tt.path == "-" {
				c.TerminationMessagePath = ""
			}
			h := Handle{ID: "c-0", LogPath: filepath.Join(dir, "stdout"), StderrPath: filepath.Join(dir, "stderr")}
			if !tt.noFile {
				h.TerminationMessagePath = filepath.Join(dir, "msg")
				write(t, h.TerminationMessagePath, tt.file)
			}
			write(t, h.LogPath, tt.stdout)
			write(t, h.StderrPath, tt.stderr)
			if got := withTerminationMessage(c, h, tt.exit).Message; got != tt.want {
				t.Errorf("message = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTerminationMessageUnreadable(t *testing.T) {
	dir := t.TempDir()
	c := &corev1.Container{Name: "c", TerminationMessagePath: "/dev/termination-log"}
	got := withTerminationMessage(c, Handle{TerminationMessagePath: dir}, ExitStatus{ExitCode: 1}).Message
	if want := "Error on reading termination log " + dir + ": "; !strings.HasPrefix(got, want) {
		t.Errorf("message = %q, want the kubelet's %q…", got, want)
	}
	// A file that is gone (the pod's directory was removed) is no message, as in the kubelet.
	got = withTerminationMessage(c, Handle{TerminationMessagePath: filepath.Join(dir, "gone")}, ExitStatus{ExitCode: 1}).Message
	if got != "" {
		t.Errorf("message of a missing file = %q", got)
	}
}

// TestWorkerTerminationMessage: the worker puts the file's content into the terminated state.
func TestWorkerTerminationMessage(t *testing.T) {
	rt := newFakeRuntime()
	rt.dir = t.TempDir()
	pod := testPod(corev1.RestartPolicyNever, nil, "main")
	pod.Spec.Containers[0].TerminationMessagePath = "/dev/termination-log"
	h := startWorker(t, pod, rt)
	h.await("running", func(s Status) bool { return s.AllStarted })
	write(t, filepath.Join(rt.dir, "main-0.msg"), "finished the work")
	rt.exit("main-0", ExitStatus{ExitCode: 0})
	s := h.await("done", func(s Status) bool { return s.Done })
	term := s.PodStatus.ContainerStatuses[0].State.Terminated
	if term == nil || term.Message != "finished the work" || term.Reason != ReasonCompleted {
		t.Errorf("terminated state %+v, want Completed with the file's content", term)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

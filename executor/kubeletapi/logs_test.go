package kubeletapi

import (
	"bufio"
	"bytes"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	testingclock "k8s.io/utils/clock/testing"
)

func TestTailOffset(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		n         int64
		wantTail  string
		wantLines int64
	}{
		{"empty", "", 3, "", 0},
		{"zero lines", "a\nb\n", 0, "", 0},
		{"fewer lines than asked", "a\nb\n", 5, "a\nb\n", 2},
		{"exact", "a\nb\nc\n", 2, "b\nc\n", 2},
		{"last line unterminated", "a\nb\nc", 2, "b\nc", 2},
		{"unterminated single line", "abc", 1, "abc", 1},
		{"empty lines count", "a\n\n\n", 2, "\n\n", 2},
		{"only a newline", "\n", 4, "\n", 1},
		{"long file across chunks", strings.Repeat("0123456789\n", 10000), 3, strings.Repeat("0123456789\n", 3), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader([]byte(tt.data))
			off, lines, err := tailOffset(r, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantTail, tt.data[off:]); diff != "" {
				t.Errorf("tail (-want +got):\n%s", diff)
			}
			if lines != tt.wantLines {
				t.Errorf("lines = %d, want %d", lines, tt.wantLines)
			}
		})
	}
}

func TestParseLogOptions(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	stdout := corev1.LogStreamStdout
	tests := []struct {
		name    string
		query   string
		want    *corev1.PodLogOptions
		wantErr string
	}{
		{"none", "", &corev1.PodLogOptions{}, ""},
		{"all options", "follow=true&tailLines=3&limitBytes=10&previous=true&stream=Stdout",
			&corev1.PodLogOptions{Follow: true, TailLines: i64(3), LimitBytes: i64(10), Previous: true, Stream: &stdout}, ""},
		{"legacy tail", "tail=7", &corev1.PodLogOptions{TailLines: i64(7)}, ""},
		{"legacy tail all", "tail=all", &corev1.PodLogOptions{}, ""},
		{"negative tail", "tailLines=-1", nil, "tailLines must be >= 0"},
		{"zero limit", "limitBytes=0", nil, "limitBytes must be >= 1"},
		{"timestamps", "timestamps=true", nil, "timestamps are not available"},
		{"since", "sinceSeconds=10", nil, "sinceSeconds/sinceTime are not available"},
		{"bad stream", "stream=Both", nil, `invalid stream type "Both"`},
		{"garbage", "tailLines=x", nil, "unable to decode query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseLogOptions(q)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestContainerLogs(t *testing.T) {
	sandbox := t.TempDir()
	reg := NewRegistry(sandbox)
	pod := testPod("web")
	restarted := running("main", "uid-web-main-1")
	restarted.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "mesos://uid-web-main-0"}
	reg.Update(pod, corev1.PodStatus{
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", ContainerID: "mesos://uid-web-init-0",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}},
		ContainerStatuses: []corev1.ContainerStatus{restarted, {Name: "side", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}},
	})
	writeLogs(t, sandbox, "uid-web-main-1", "out1\nout2\nout3\n", "err1\nerr2\n")
	writeLogs(t, sandbox, "uid-web-main-0", "old out\n", "old err\n")
	// The init container's sandbox was removed.
	gone := testPod("gone")
	reg.Update(gone, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "uid-gone-main-0")}})

	base := startServer(t, Config{Pods: reg})
	client := insecureClient()
	tests := []struct {
		name     string
		path     string
		wantCode int
		wantBody string
	}{
		{"stdout then stderr", "/containerLogs/default/web/main", 200, "out1\nout2\nout3\nerr1\nerr2\n"},
		{"stdout only", "/containerLogs/default/web/main?stream=Stdout", 200, "out1\nout2\nout3\n"},
		{"stderr only", "/containerLogs/default/web/main?stream=Stderr", 200, "err1\nerr2\n"},
		{"tail within stderr", "/containerLogs/default/web/main?tailLines=1", 200, "err2\n"},
		{"tail across both files", "/containerLogs/default/web/main?tailLines=3", 200, "out3\nerr1\nerr2\n"},
		{"tail of one stream", "/containerLogs/default/web/main?tailLines=2&stream=Stdout", 200, "out2\nout3\n"},
		{"limit bytes", "/containerLogs/default/web/main?limitBytes=7", 200, "out1\nou"},
		{"limit bytes after tail", "/containerLogs/default/web/main?tailLines=2&limitBytes=6", 200, "err1\ne"},
		{"previous attempt", "/containerLogs/default/web/main?previous=true", 200, "old out\nold err\n"},
		{"follow of a previous attempt returns", "/containerLogs/default/web/main?previous=true&follow=true", 200, "old out\nold err\n"},
		{"no previous attempt", "/containerLogs/default/gone/main?previous=true", 400, "previous terminated container \"main\" in pod \"gone\" not found\n"},
		{"waiting container", "/containerLogs/default/web/side", 400, "container \"side\" in pod \"web\" is waiting to start: PodInitializing\n"},
		{"removed sandbox", "/containerLogs/default/web/init", 404,
			"logs of container \"init\" in pod \"web\" are gone: the sandbox of Mesos container uid-web-init-0 was removed\n"},
		{"unknown pod", "/containerLogs/default/nope/main", 404, "pod default/nope: pod not found on this node\n"},
		{"unknown namespace", "/containerLogs/other/web/main", 404, "pod other/web: pod not found on this node\n"},
		{"unknown container", "/containerLogs/default/web/db", 404, "container \"db\" in pod default/web: container not found in pod\n"},
		{"timestamps refused", "/containerLogs/default/web/main?timestamps=true", 400,
			"bad log request: timestamps are not available: Mesos sandbox logs do not record when a line was written\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, client, base+tt.path)
			if code != tt.wantCode {
				t.Errorf("status %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if diff := cmp.Diff(tt.wantBody, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFollowLogs follows a running container: new output arrives as the files grow (the poll is
// driven by a fake clock), and the stream ends once the container stops running.
func TestFollowLogs(t *testing.T) {
	sandbox := t.TempDir()
	reg := NewRegistry(sandbox)
	pod := testPod("web")
	reg.Update(pod, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "c1")}})
	writeLogs(t, sandbox, "c1", "one\n", "")
	clk := testingclock.NewFakeClock(time.Now())
	base := startServer(t, Config{Pods: reg, Clock: clk, FollowPollInterval: time.Second})

	resp, err := insecureClient().Get(base + "/containerLogs/default/web/main?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	readLine := func(want string) {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("read %q, %v; want %q", line, err, want)
		}
	}
	readLine("one\n")

	appendTo := func(name, data string) {
		f, err := os.OpenFile(filepath.Join(sandbox, "containers", "c1", name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(data); err != nil {
			t.Fatal(err)
		}
	}
	step := func() {
		t.Helper()
		waitFor(t, "the follow loop's ticker", clk.HasWaiters)
		clk.Step(time.Second)
	}
	appendTo("stdout", "two\n")
	step()
	readLine("two\n")
	appendTo("stderr", "oops\n")
	step()
	readLine("oops\n")

	// The container exits after writing a last line: the stream delivers it and ends.
	appendTo("stdout", "bye\n")
	done := corev1.ContainerStatus{Name: "main", ContainerID: "mesos://c1",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}
	reg.Update(pod, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{done}})
	step()
	readLine("bye\n")
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("after the container ended: read %q, %v; want the end of the stream", rest, err)
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

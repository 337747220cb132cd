package kubeletapi

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/kubemesos/kubemesos/executor/containerlogs"
)

func TestParseLogOptions(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	stdout := corev1.LogStreamStdout
	since := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 3, 0, time.UTC))
	tests := []struct {
		name    string
		query   string
		want    *corev1.PodLogOptions
		wantErr string
	}{
		{"none", "", &corev1.PodLogOptions{}, ""},
		{"all options", "follow=true&limitBytes=10&previous=true&stream=Stdout&timestamps=1&sinceSeconds=5",
			&corev1.PodLogOptions{Follow: true, LimitBytes: i64(10), Previous: true, Stream: &stdout, Timestamps: true, SinceSeconds: i64(5)}, ""},
		{"tail", "tailLines=3&sinceTime=2026-01-01T00:00:03Z",
			&corev1.PodLogOptions{TailLines: i64(3), SinceTime: &since}, ""},
		{"legacy tail", "tail=7", &corev1.PodLogOptions{TailLines: i64(7)}, ""},
		{"legacy tail all", "tail=all", &corev1.PodLogOptions{}, ""},
		{"negative tail", "tailLines=-1", nil, "tailLines must be >= 0"},
		{"zero limit", "limitBytes=0", nil, "limitBytes must be >= 1"},
		{"since twice", "sinceSeconds=10&sinceTime=2026-01-01T00:00:03Z", nil, "at most one of sinceTime or sinceSeconds"},
		{"since zero", "sinceSeconds=0", nil, "sinceSeconds must be greater than 0"},
		{"tail of one stream", "tailLines=1&stream=Stderr", nil, "tailLines and specific stream are mutually exclusive"},
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

// TestContainerLogs reads CRI logs as the kubelet serves them: stdout and stderr in the order they
// were written, the newest lines for tailLines, and the options that need the entries' times.
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
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeCRILog(t, sandbox, pod.UID, "uid-web-main-1", t0,
		logEntry{"stdout", "out1"}, logEntry{"stderr", "err1"}, logEntry{"stdout", "out2"}, logEntry{"stderr", "err2"}, logEntry{"stdout", "out3"})
	writeCRILog(t, sandbox, pod.UID, "uid-web-main-0", t0, logEntry{"stdout", "old out"}, logEntry{"stderr", "old err"})
	// The init container has no log (its pod's logs were removed).
	gone := testPod("gone")
	reg.Update(gone, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "uid-gone-main-0")}})

	base := startServer(t, Config{Pods: reg, Clock: testingclock.NewFakeClock(t0.Add(5 * time.Second))})
	client := insecureClient()
	tests := []struct {
		name     string
		path     string
		wantCode int
		wantBody string
	}{
		{"in the order written", "/containerLogs/default/web/main", 200, "out1\nerr1\nout2\nerr2\nout3\n"},
		{"stdout only", "/containerLogs/default/web/main?stream=Stdout", 200, "out1\nout2\nout3\n"},
		{"stderr only", "/containerLogs/default/web/main?stream=Stderr", 200, "err1\nerr2\n"},
		{"the newest lines", "/containerLogs/default/web/main?tailLines=2", 200, "err2\nout3\n"},
		{"legacy tail", "/containerLogs/default/web/main?tail=1", 200, "out3\n"},
		{"limit bytes", "/containerLogs/default/web/main?limitBytes=7", 200, "out1\ner"},
		{"limit bytes after tail", "/containerLogs/default/web/main?tailLines=2&limitBytes=6", 200, "err2\no"},
		{"timestamps", "/containerLogs/default/web/main?tailLines=1&timestamps=true", 200, "2026-01-01T00:00:04.000000000Z out3\n"},
		{"since time", "/containerLogs/default/web/main?sinceTime=2026-01-01T00:00:03Z", 200, "err2\nout3\n"},
		{"since seconds (by the server's clock)", "/containerLogs/default/web/main?sinceSeconds=2", 200, "err2\nout3\n"},
		{"previous attempt", "/containerLogs/default/web/main?previous=true", 200, "old out\nold err\n"},
		{"follow of a previous attempt returns", "/containerLogs/default/web/main?previous=true&follow=true", 200, "old out\nold err\n"},
		{"no previous attempt", "/containerLogs/default/gone/main?previous=true", 400, "previous terminated container \"main\" in pod \"gone\" not found\n"},
		{"waiting container", "/containerLogs/default/web/side", 400, "container \"side\" in pod \"web\" is waiting to start: PodInitializing\n"},
		{"removed log", "/containerLogs/default/web/init", 404,
			"logs of container \"init\" in pod \"web\" (Mesos container uid-web-init-0) are gone\n"},
		{"unknown pod", "/containerLogs/default/nope/main", 404, "pod default/nope: pod not found on this node\n"},
		{"unknown namespace", "/containerLogs/other/web/main", 404, "pod other/web: pod not found on this node\n"},
		{"unknown container", "/containerLogs/default/web/db", 404, "container \"db\" in pod default/web: container not found in pod\n"},
		{"tail of one stream refused", "/containerLogs/default/web/main?tailLines=1&stream=Stdout", 400,
			"bad log request: tailLines and specific stream are mutually exclusive for now\n"},
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

// TestFollowLogs follows a running container: entries appended to its log arrive, and the stream
// ends once the container no longer runs and its log is read to the end.
func TestFollowLogs(t *testing.T) {
	sandbox := t.TempDir()
	reg := NewRegistry(sandbox)
	pod := testPod("web")
	reg.Update(pod, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "c1")}})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeCRILog(t, sandbox, pod.UID, "c1", t0, logEntry{"stdout", "one"})
	base := startServer(t, Config{Pods: reg})

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

	appendEntry := func(stream, line string) {
		f, err := os.OpenFile(containerlogs.Path(sandbox, pod.UID, "c1"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := fmt.Fprintf(f, "%s %s F %s\n", time.Now().UTC().Format(time.RFC3339Nano), stream, line); err != nil {
			t.Fatal(err)
		}
	}
	appendEntry("stdout", "two")
	readLine("two\n")
	appendEntry("stderr", "oops")
	readLine("oops\n")

	// The container ends after a last line: the stream delivers it and ends.
	appendEntry("stdout", "bye")
	done := corev1.ContainerStatus{Name: "main", ContainerID: "mesos://c1",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}
	reg.Update(pod, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{done}})
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

package podworker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// execRuntime is a fakeRuntime whose exec commands write what the test says and exit with its code; a
// command "hang" runs until its context ends.
type execRuntime struct {
	*fakeRuntime
	stdout, stderr string
	code           int32
	got            []string
}

func (e *execRuntime) Exec(ctx context.Context, h Handle, command []string, stdout, stderr io.Writer) (int32, error) {
	e.got = command
	if command[0] == "hang" {
		<-ctx.Done()
		return 0, fmt.Errorf("exec in container %s: %w", h.ID, ctx.Err())
	}
	io.WriteString(stdout, e.stdout)
	io.WriteString(stderr, e.stderr)
	return e.code, nil
}

// An exec probe's result is its command's exit code; a failure's message is its output, stdout then
// stderr, at most 10 KiB of it, as the kubelet's exec prober reports it ("Readiness probe failed: <output>").
func TestExecProbeMessageIsTheOutput(t *testing.T) {
	rt := &execRuntime{fakeRuntime: newFakeRuntime(), stdout: "out\n", stderr: "grep: /shared/log: No such file or directory\n", code: 2}
	p := &NetProber{Runtime: rt}
	probe := &corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"grep", "x", "/shared/log"}}}
	err := p.Probe(context.Background(), nil, &corev1.Container{}, Handle{ID: "c"}, probe)
	var ee *ExecError
	if !errors.As(err, &ee) || err.Error() != rt.stdout+rt.stderr || ee.ExitCode != 2 {
		t.Fatalf("Probe = %v, want the ExecError with the output %q", err, rt.stdout+rt.stderr)
	}
	if strings.Join(rt.got, " ") != "grep x /shared/log" {
		t.Errorf("ran %q", rt.got)
	}

	rt.stdout, rt.stderr = strings.Repeat("a", 8<<10), strings.Repeat("b", 8<<10)
	err = p.Probe(context.Background(), nil, &corev1.Container{}, Handle{ID: "c"}, probe)
	if want := rt.stdout + strings.Repeat("b", 2<<10); err == nil || err.Error() != want {
		t.Errorf("a long output's message has %d bytes, want the first 10 KiB of stdout then stderr", len(err.Error()))
	}

	rt.code = 0
	if err := p.Probe(context.Background(), nil, &corev1.Container{}, Handle{ID: "c"}, probe); err != nil {
		t.Errorf("exit 0: %v, want success", err)
	}
}

// A command still running at the probe's timeoutSeconds fails the probe with the CRI's timeout text.
func TestExecProbeTimeout(t *testing.T) {
	rt := &execRuntime{fakeRuntime: newFakeRuntime()}
	pr := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"hang", "on"}}},
		TimeoutSeconds: 1, FailureThreshold: 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs := make(chan string, 1)
	go probeLoop(ctx, clock.RealClock{}, &NetProber{Runtime: rt}, probeLiveness, nil, &corev1.Container{}, Handle{ID: "c"}, pr,
		func(ok bool, msg string) { msgs <- fmt.Sprint(ok, " ", msg) }, nil)
	select {
	case got := <-msgs:
		if want := `false command timed out: "hang on" timed out after 1s`; got != want {
			t.Errorf("report %q, want %q", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no probe result")
	}
}

// A failed exec hook's error is the kubelet's handlerRunner message, with ExecSync's error.
func TestExecHookFailureMessage(t *testing.T) {
	rt := &execRuntime{fakeRuntime: newFakeRuntime(), stdout: "partial\n", stderr: "no such file\n", code: 1}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}}}
	w, err := New(pod, Config{Runtime: rt, Prober: &NetProber{Runtime: rt}, OnStatus: func(Status) {}})
	if err != nil {
		t.Fatal(err)
	}
	hook := &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "cat /x"}}}
	err = w.runHook(context.Background(), &pod.Spec.Containers[0], Handle{ID: "c"}, hook)
	want := `Exec lifecycle hook ([sh -c cat /x]) for Container "main" in Pod "web_ns(u1)" failed - error: command 'sh -c cat /x' exited with 1: no such file
, message: "partial\nno such file\n"`
	if err == nil || err.Error() != want {
		t.Errorf("runHook = %v\nwant %s", err, want)
	}
}

// A failed preStop hook gets the kubelet's FailedPreStopHook event, without its message, and the
// container is stopped all the same.
func TestWorkerFailedPreStopHook(t *testing.T) {
	rt := newFakeRuntime()
	rt.onTERM["web"] = 0
	prober := &scriptedProber{healthy: map[string]bool{}, calls: map[string]int{}}
	pod := testPod(corev1.RestartPolicyAlways, nil, "web")
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"prestop"}}}}
	h := &harness{t: t, rt: rt, clk: clocktesting.NewFakeClock(t0), statuses: make(chan Status, 1000), result: make(chan error, 1)}
	w, err := New(pod, Config{Runtime: rt, Clock: h.clk, Prober: prober, OnStatus: func(s Status) { h.statuses <- s }, Event: h.record})
	if err != nil {
		t.Fatal(err)
	}
	h.worker = w
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go func() { h.result <- w.Run(ctx) }()
	h.await("running", func(s Status) bool { return s.AllStarted })
	w.Kill(30 * time.Second)
	if s := h.await("done", func(s Status) bool { return s.Done }); s.PodStatus.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s", s.PodStatus.Phase)
	}
	want := []string{
		"Normal Started: Started container web",
		"Warning FailedPreStopHook: PreStopHook failed",
		"Normal Killing: Stopping container web",
	}
	if diff := cmp.Diff(want, h.recorded()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

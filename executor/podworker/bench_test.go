package podworker

import (
	"context"
	"io"
	"testing"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// BenchmarkCoreStatus measures computing a kubelet pod status (done after every change of a pod).
func BenchmarkCoreStatus(b *testing.B) {
	c := newCore(testPod(corev1.RestartPolicyAlways, []string{"init"}, "a", "b", "c"), "10.0.0.1", "10.0.0.1", t0)
	driveStarts(c, t0)
	c.exited(0, ExitStatus{}, t0)
	driveStarts(c, t0)
	b.ReportAllocs()
	for b.Loop() {
		_ = c.status(t0)
	}
}

// BenchmarkWorkerLifecycle runs whole pods (start, run, exit 0, done) through the worker with a
// runtime that costs nothing: the executor's own overhead per pod.
func BenchmarkWorkerLifecycle(b *testing.B) {
	clk := clocktesting.NewFakeClock(t0)
	log := logrus.New()
	log.SetOutput(io.Discard)
	pod := testPod(corev1.RestartPolicyNever, nil, "main")
	b.ReportAllocs()
	for b.Loop() {
		rt := newFakeRuntime()
		done := make(chan struct{})
		w, err := New(pod, Config{Runtime: rt, Clock: clk, Prober: &NetProber{}, Log: log, OnStatus: func(s Status) {
			if s.AllStarted && !s.Done {
				rt.exit("main-0", ExitStatus{})
			}
			if s.Done {
				close(done)
			}
		}})
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		<-done
	}
}

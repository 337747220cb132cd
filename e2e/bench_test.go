package e2e_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/kubebins"
)

// BenchmarkControlPlaneStart measures a warm start (binaries cached) of etcd + kube-apiserver +
// kube-controller-manager until all are ready (ns/op), and the resident memory once ready:
//
//	go test -run '^$' -bench ControlPlaneStart -benchtime 3x .
func BenchmarkControlPlaneStart(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bins, err := kubebins.Ensure(ctx, kubebins.Options{}) // a first build is not part of the measurement
	if err != nil {
		b.Fatal(err)
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	var mem cluster.Memory
	b.ResetTimer()
	for range b.N {
		cp, err := cluster.Start(ctx, cluster.Options{Binaries: &bins, Dir: b.TempDir(), Log: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if mem, err = cp.RSS(); err != nil {
			b.Fatal(err)
		}
		cp.Stop()
		b.StartTimer()
	}
	const mb = 1 << 20
	b.ReportMetric(float64(mem.APIServer)/mb, "apiserver-MB")
	b.ReportMetric(float64(mem.ControllerManager)/mb, "kcm-MB")
	b.ReportMetric(float64(mem.ThisProcess)/mb, "etcd+test-MB")
	b.ReportMetric(float64(mem.Total())/mb, "total-MB")
}

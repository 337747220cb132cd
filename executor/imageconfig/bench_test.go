package imageconfig

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

// BenchmarkResolve: what a container start costs for its image config: a cached config
// (IfNotPresent), and a local archive read again (Always).
func BenchmarkResolve(b *testing.B) {
	dir := b.TempDir()
	if err := imagearchive.Write(dir, "busybox", busyboxConfig); err != nil {
		b.Fatal(err)
	}
	r := New(Config{Registry: dir})
	ctx := context.Background()
	for _, policy := range []corev1.PullPolicy{corev1.PullIfNotPresent, corev1.PullAlways} {
		c := container("busybox", policy)
		b.Run(string(policy), func(b *testing.B) {
			for b.Loop() {
				if _, err := r.Resolve(ctx, pod(), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

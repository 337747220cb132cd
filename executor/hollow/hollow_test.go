package hollow

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/executor/podworker"
)

func pod() (*corev1.Pod, *corev1.Container) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-1"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}}}
	return p, &p.Spec.Containers[0]
}

// A hollow container runs until a terminating signal, which it reports as a signalled process
// (128+signal); ignored signals leave it running; it is removed only once ended.
func TestContainerRunsUntilSignalled(t *testing.T) {
	ctx := context.Background()
	r := New()
	p, c := pod()
	h, err := r.Start(ctx, p, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (podworker.Handle{ID: "uid-1-main-0", PodUID: "uid-1"}); h != want {
		t.Errorf("handle %+v, want %+v", h, want)
	}
	if _, err := r.Start(ctx, p, c, 0); err == nil {
		t.Error("a second start of the same attempt succeeded")
	}
	h1, err := r.Start(ctx, p, c, 1)
	if err != nil || h1.ID != "uid-1-main-1" {
		t.Errorf("attempt 1: %+v, %v", h1, err)
	}
	if err := r.Signal(ctx, h, syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if st, err := r.Wait(short, h); err != context.DeadlineExceeded {
		t.Fatalf("Wait after SIGWINCH = %+v, %v; want it still running", st, err)
	}
	if err := r.Remove(ctx, h); err == nil {
		t.Error("a running container was removed")
	}
	if got := r.Running(); got != 2 {
		t.Errorf("Running() = %d, want 2", got)
	}
	if err := r.Signal(ctx, h, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = r.Signal(ctx, h, syscall.SIGKILL) // after the end: no change
	st, err := r.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(podworker.ExitStatus{ExitCode: 143, Signal: int32(syscall.SIGTERM)}, st); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
	if err := r.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Wait(ctx, h); err == nil {
		t.Error("Wait on a removed container succeeded")
	}
	if got := r.Running(); got != 1 {
		t.Errorf("Running() = %d, want 1", got)
	}
}

package containerizer

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// cleanupOrder is a test isolator recording the containers it cleans up, in order; the cleanup of
// the container keyed hold waits until release is closed (and says so on entered).
type cleanupOrder struct {
	Base
	mu      sync.Mutex
	order   []string
	hold    string
	entered chan struct{}
	release chan struct{}
}

func (*cleanupOrder) Name() string { return "test/cleanup-order" }

func (o *cleanupOrder) Cleanup(_ context.Context, c *Container) error {
	if c.Key == o.hold {
		close(o.entered)
		<-o.release
	}
	o.mu.Lock()
	o.order = append(o.order, c.Key)
	o.mu.Unlock()
	return nil
}

// A container whose init ends is destroyed as Mesos destroys it: its nested containers first (also
// without a pid namespace that would take them along), then its own cleanup; meanwhile no container
// may be launched in it.
func TestNestedContainersAreDestroyedFirst(t *testing.T) {
	requireRoot(t)
	iso := &cleanupOrder{hold: "parent/child", entered: make(chan struct{}), release: make(chan struct{})}
	Register("test/cleanup-order", func(Flags) (Isolator, error) { return iso, nil })
	z := newTestContainerizer(t, "test/cleanup-order")
	parent := &Container{ID: mesos.ContainerID{Value: "parent"}, Command: shell("exec sleep 1000")}
	lp, err := launch(t, z, parent)
	if err != nil {
		t.Fatal(err)
	}
	child := &Container{ID: mesos.ContainerID{Value: "child", Parent: &parent.ID}, Parent: parent, Command: shell("exec sleep 1000")}
	lc, err := launch(t, z, child)
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Signal(parent.Key, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-iso.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the parent's end did not destroy its child")
	}
	select {
	case <-lp.w.Done:
		t.Error("the parent ended before its child was cleaned up")
	default:
	}
	late := &Container{ID: mesos.ContainerID{Value: "late", Parent: &parent.ID}, Parent: parent, Command: shell("true")}
	if _, err := launch(t, z, late); err == nil || err.Error() != "Parent container parent is in 'DESTROYING' state" {
		t.Errorf("launch into a parent being destroyed: %v", err)
	}
	close(iso.release)
	wait(t, z, lp)
	if term, _ := wait(t, z, lc); term.Status != int32(syscall.SIGKILL) {
		t.Errorf("child's termination %+v, want SIGKILL", term)
	}
	iso.mu.Lock()
	defer iso.mu.Unlock()
	if got := strings.Join(iso.order, " "); got != "parent/child parent" {
		t.Errorf("cleanup order %q, want the child's, then the parent's", got)
	}
}

package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// StartT starts a control plane for one test (or benchmark) and stops it in t.Cleanup. If the test
// failed, the last lines of every component's log are logged first. Its directory is a t.TempDir
// unless opts.Dir is set.
func StartT(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // includes a first build
	defer cancel()
	cp, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range cp.components() {
				t.Logf("--- last lines of %s:\n%s", cp.LogPath(c), cp.LogTail(c, 20))
			}
		}
		cp.Stop()
	})
	return cp
}

// Namespace creates a namespace with a name derived from the test's, waits until the
// controller-manager has given it its "default" ServiceAccount (without it, pods are refused by
// admission), and deletes it in t.Cleanup. Tests that share one control plane stay apart this way.
func (cp *ControlPlane) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(t.Name())},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := cp.Client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	if err := cp.waitDefaultServiceAccount(ctx, ns.Name); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func (cp *ControlPlane) waitDefaultServiceAccount(ctx context.Context, ns string) error {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cp.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("waiting for serviceaccount %s/default: %w", ns, err)
	}
	return nil
}

// namespacePrefix turns a test name into a valid GenerateName prefix (DNS label, ≤ 63 with the
// 5 random characters the API server appends).
func namespacePrefix(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	p := strings.Trim(b.String(), "-")
	for strings.Contains(p, "--") {
		p = strings.ReplaceAll(p, "--", "-")
	}
	if len(p) > 50 {
		p = strings.TrimRight(p[:50], "-")
	}
	if p == "" {
		p = "test"
	}
	return p + "-"
}

// Shared is one control plane for the tests of a package: started on first use by Get, stopped by Close
// in TestMain. Tests stay apart through namespaces (Namespace).
type Shared struct {
	Options Options
	// Timeout bounds the start, a first build of the binaries included; 30 minutes when zero.
	Timeout time.Duration

	once sync.Once
	cp   *ControlPlane
	err  error
}

// Get returns the shared control plane, starting it on first use; a start that failed fails every test.
func (s *Shared) Get(t testing.TB) *ControlPlane {
	t.Helper()
	s.once.Do(func() {
		timeout := s.Timeout
		if timeout == 0 {
			timeout = 30 * time.Minute
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		s.cp, s.err = Start(ctx, s.Options)
	})
	if s.err != nil {
		t.Fatalf("starting the shared control plane: %v", s.err)
	}
	return s.cp
}

// Close stops the control plane if it was started, first printing the tail of every component's log
// to stderr when the tests failed.
func (s *Shared) Close(failed bool) {
	if s.cp == nil {
		return
	}
	if failed {
		for _, c := range s.cp.components() {
			fmt.Fprintf(os.Stderr, "--- last lines of %s:\n%s\n", c, s.cp.LogTail(c, 20))
		}
	}
	s.cp.Stop()
}

// components are the components whose logs a failure shows.
func (cp *ControlPlane) components() []string {
	c := []string{"kube-apiserver", "kube-controller-manager", "etcd"}
	if cp.kubeProxy != nil {
		c = append(c, "kube-proxy")
	}
	return c
}

package nested

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
)

// TestContainerInfoTTY: containers with stdin or tty are launched with a TTYInfo, without a window
// size (the client sends it when it attaches), so that Mesos gives them an I/O switchboard; others
// are not.
func TestContainerInfoTTY(t *testing.T) {
	for _, tc := range []struct {
		name      string
		container corev1.Container
		want      bool
	}{
		{"plain", corev1.Container{Name: "c", Image: "busybox"}, false},
		{"tty", corev1.Container{Name: "c", Image: "busybox", TTY: true}, true},
		{"stdin", corev1.Container{Name: "c", Image: "busybox", Stdin: true}, true},
		{"stdin without an image", corev1.Container{Name: "c", Stdin: true, StdinOnce: true}, true},
		{"no image", corev1.Container{Name: "c"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci := ContainerInfo(&tc.container, nil, nil, nil)
			got := ci.GetTTYInfo() != nil
			if got != tc.want {
				t.Fatalf("ContainerInfo(%+v) = %+v: TTYInfo set %v, want %v", tc.container, ci, got, tc.want)
			}
			if got && (ci.GetType() != mesos.ContainerInfo_MESOS || ci.TTYInfo.WindowSize != nil) {
				t.Errorf("ContainerInfo = %+v, want a MESOS container with an empty TTYInfo", ci)
			}
		})
	}
}

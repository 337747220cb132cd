package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestImageKeys(t *testing.T) {
	tests := []struct {
		image string
		want  []string
	}{
		{"nginx", []string{"nginx", "*"}},
		{"nginx:1.27", []string{"nginx:1.27", "nginx", "*"}},
		{"docker.io/library/nginx@sha256:abc", []string{"docker.io/library/nginx@sha256:abc", "docker.io/library/nginx", "nginx", "*"}},
		{"localhost:5000/team/app:v2", []string{"localhost:5000/team/app:v2", "localhost:5000/team/app", "*"}},
		{"localhost:5000/team/app", []string{"localhost:5000/team/app", "*"}},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, imageKeys(tt.image)); diff != "" {
				t.Errorf("imageKeys(%q) (-want +got):\n%s", tt.image, diff)
			}
		})
	}
}

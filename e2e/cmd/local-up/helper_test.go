package main

import (
	"os"
	"testing"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// TestMain hosts the launch helper, as local-up's main does: isolating agents re-execute the binary.
func TestMain(m *testing.M) {
	containerizer.MaybeRunHelper()
	os.Exit(m.Run())
}

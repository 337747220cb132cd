package containerizer

import (
	"os"
	"testing"
)

// TestMain lets the test binary serve as the launch helper (the launcher re-executes /proc/self/exe).
func TestMain(m *testing.M) {
	MaybeRunHelper()
	os.Exit(m.Run())
}

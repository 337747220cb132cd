package executor

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/kubemesos/kubemesos/executor/podsandbox"
)

// TestMain lets the test binary play the executor's binary as the pods' sandbox command (the
// in-process executors default to os.Executable() pod-sandbox).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "pod-sandbox" {
		if err := podsandbox.Run(context.Background(), os.Getenv("MESOS_SANDBOX"), os.Getenv("MESOS_CONTAINER_ID")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

package executor

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/kubemesos/kubemesos/executor/sandboxexec"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// TestMain lets the test binary play `kubemesos pod-sandbox`, the pods' sandbox executor the agent
// launches as a process (see simEnv), and the isolating agent's launch helper.
func TestMain(m *testing.M) {
	containerizer.MaybeRunHelper()
	if len(os.Args) > 1 && os.Args[1] == "pod-sandbox" {
		if err := sandboxexec.Run(context.Background(), sandboxexec.Config{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

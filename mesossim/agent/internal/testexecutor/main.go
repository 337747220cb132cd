// Command testexecutor runs the test executor of package testexec as a real executor process: it
// reads its configuration with mesos-go's executor/config.FromEnv, exactly as a production executor
// does, and exits with status 2 if the agent's environment is not accepted.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kubemesos/kubemesos/mesossim/agent/internal/testexec"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
)

func main() {
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "config.FromEnv:", err)
		os.Exit(2)
	}
	err = testexec.Run(context.Background(), cfg, testexec.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor:", err)
	}
	os.Exit(testexec.ExitCode(err))
}

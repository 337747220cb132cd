// Command pause is the image store's pause image: Kubernetes' pause.c in Go. It blocks until SIGINT or
// SIGTERM, then exits 0 after "Shutting down, got signal: <name>"; as a namespace's first process it
// reaps the zombies reparented to it. (`agnhost pause` would do, but is a 64 MB binary.)
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is upstream pause's, printed by -v as pause.c does.
const version = "3.10.2"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause.c %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		// psignal(3)'s format, as pause.c's sigdown prints it.
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %s\n", signalName(s.(syscall.Signal)))
		os.Exit(0)
	}
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "Interrupt"
	case syscall.SIGTERM:
		return "Terminated"
	}
	return s.String()
}

// Command mesos-diffcheck runs a fixed scenario (package internal/diffcheck) against the Mesos
// simulator and, given a master URL, against that Mesos master, and prints where they differ.
//
//	mesos-diffcheck                                      # the simulator alone; --out writes its observations
//	mesos-diffcheck --master http://leader.mesos:5050    # the simulator vs a real master; exit 1 on differences
//	mesos-diffcheck a.json b.json                        # compare two files written with --out
//
// The scenario registers frameworks named kubemesos-diffcheck, runs two small command tasks
// (0.1 cpus, 32 MB), and tears its frameworks down.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubemesos/kubemesos/internal/diffcheck"
)

type options struct {
	master     string
	out        string
	simOut     string
	user       string
	principal  string
	secretFile string
	timeout    time.Duration
	wait       time.Duration
	window     time.Duration
	allocation time.Duration
	verbose    bool
	files      []string
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("mesos-diffcheck", pflag.ContinueOnError)
	fs.StringVar(&o.master, "master", "", "URL of a Mesos master to compare the simulator with, e.g. http://leader.mesos:5050")
	fs.StringVar(&o.master, "against", "", "same as --master")
	fs.StringVar(&o.out, "out", "", "write the observations of the master (or, without --master, of the simulator) to this JSON file")
	fs.StringVar(&o.simOut, "sim-out", "", "write the simulator's observations to this JSON file")
	fs.StringVar(&o.user, "user", "nobody", "FrameworkInfo.user: the user the scenario's tasks run as")
	fs.StringVar(&o.principal, "principal", "", "Mesos principal for HTTP basic authentication (and FrameworkInfo.principal)")
	fs.StringVar(&o.secretFile, "secret-file", "", "file holding the principal's secret")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bound of one run of the scenario")
	fs.DurationVar(&o.wait, "wait", 30*time.Second, "bound of each wait for an event (an offer, a task update)")
	fs.DurationVar(&o.window, "filter-window", 3*time.Second, "how long to watch for offers a DECLINE filter must hold back")
	fs.DurationVar(&o.allocation, "sim-allocation-interval", time.Second, "the simulator's allocation interval (Mesos' default: 1s)")
	fs.BoolVar(&o.verbose, "verbose", false, "print the simulator's log to stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.files = fs.Args()
	switch {
	case len(o.files) != 0 && len(o.files) != 2:
		return nil, fmt.Errorf("want two observation files to compare, got %d arguments", len(o.files))
	case len(o.files) == 2 && o.master != "":
		return nil, errors.New("--master and two files exclude each other")
	}
	return o, nil
}

// run returns whether the compared runs differ.
func run(ctx context.Context, o *options, stdout, stderr io.Writer) (bool, error) {
	if len(o.files) == 2 {
		a, err := diffcheck.ReadReport(o.files[0])
		if err != nil {
			return false, err
		}
		b, err := diffcheck.ReadReport(o.files[1])
		if err != nil {
			return false, err
		}
		nameA, nameB := a.Target, b.Target
		if nameA == nameB {
			nameA, nameB = o.files[0], o.files[1]
		}
		diffs := diffcheck.Compare(a.Observations, b.Observations)
		return len(diffs) > 0, diffcheck.WriteDiff(stdout, nameA, nameB, diffs)
	}
	opts := diffcheck.Options{User: o.user, Timeout: o.timeout, Wait: o.wait, FilterWindow: o.window}
	// The simulator has no authentication: the credentials go to the master only.
	masterOpts := opts
	masterOpts.Principal = o.principal
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return false, fmt.Errorf("--secret-file: %w", err)
		}
		masterOpts.Secret = strings.TrimSpace(string(b))
	}
	var simLog io.Writer
	if o.verbose {
		simLog = stderr
	}
	sim, err := diffcheck.StartSimulator(o.allocation, simLog)
	if err != nil {
		return false, fmt.Errorf("starting the simulator: %w", err)
	}
	simObs, err := diffcheck.Run(ctx, sim.URL, opts)
	sim.Close()
	if err != nil {
		return false, err
	}
	simReport := diffcheck.Report{Target: "simulator", Observations: simObs}
	if o.simOut != "" {
		if err := diffcheck.WriteReport(o.simOut, simReport); err != nil {
			return false, err
		}
	}
	if o.master == "" {
		if o.out != "" {
			if err := diffcheck.WriteReport(o.out, simReport); err != nil {
				return false, err
			}
		}
		fmt.Fprintf(stdout, "%d observations of the simulator; --master URL compares them with a Mesos master\n", len(simObs))
		return false, nil
	}
	masterObs, err := diffcheck.Run(ctx, o.master, masterOpts)
	if err != nil {
		return false, err
	}
	if o.out != "" {
		if err := diffcheck.WriteReport(o.out, diffcheck.Report{Target: o.master, Observations: masterObs}); err != nil {
			return false, err
		}
	}
	diffs := diffcheck.Compare(simObs, masterObs)
	return len(diffs) > 0, diffcheck.WriteDiff(stdout, "simulator", o.master, diffs)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		os.Exit(0)
	}
	if err == nil {
		var differ bool
		differ, err = run(ctx, o, os.Stdout, os.Stderr)
		if err == nil && differ {
			os.Exit(1)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mesos-diffcheck:", err)
		os.Exit(2)
	}
}

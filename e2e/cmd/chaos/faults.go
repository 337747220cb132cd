package main

import (
	"context"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Fault kinds, in the order they are printed.
const (
	faultFrameworkKill   = "framework SIGKILL"
	faultLeaderPause     = "leader SIGSTOP past lease"
	faultExecutorKill    = "executor SIGKILL"
	faultAgentPartition  = "agent partition"
	faultMasterFailover  = "master failover"
	faultAPIServerOutage = "API-server outage"
)

var faultKinds = []string{faultFrameworkKill, faultLeaderPause, faultExecutorKill, faultAgentPartition, faultAgentRestart, faultMasterFailover, faultAPIServerOutage}

// fault is one planned injection: its kind, when (from the start of the phase) and its random pick
// (which agent or executor), fixed by the seed.
type fault struct {
	at   time.Duration
	kind string
	pick uint64
}

// planFaults spreads every planned fault uniformly over the first 90% of the phase (the rest lets
// the last ones play out while the churn still runs).
func planFaults(o options, rng *rand.Rand) []fault {
	span := o.duration * 9 / 10
	var out []fault
	add := func(kind string, n int) {
		for range n {
			out = append(out, fault{at: time.Duration(rng.Int64N(int64(span))), kind: kind, pick: rng.Uint64()})
		}
	}
	add(faultFrameworkKill, o.frameworkKills)
	add(faultLeaderPause, o.leaderPauses)
	add(faultExecutorKill, o.executorKills)
	add(faultAgentPartition, o.agentPartitions)
	add(faultMasterFailover, o.masterFailovers)
	if o.apiOutage > 0 {
		add(faultAPIServerOutage, 1)
	}
	// Drawn last, so that a seed plans the other kinds as it did before restarts existed.
	add(faultAgentRestart, o.agentRestarts)
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	return out
}

// inject runs the schedule until ctx ends and returns how many of each kind were injected. Faults
// that last (a pause, a partition, the outage) are healed on their own goroutines, so that others can
// come meanwhile.
func (w *world) inject(ctx context.Context, schedule []fault) map[string]int {
	start := time.Now()
	done := map[string]int{}
	var heal sync.WaitGroup
	defer heal.Wait()
	for _, f := range schedule {
		select {
		case <-ctx.Done():
			return done
		case <-time.After(time.Until(start.Add(f.at))):
		}
		log := w.log.WithFields(logrus.Fields{"fault": f.kind, "at": time.Since(start).Round(time.Millisecond)})
		switch f.kind {
		case faultFrameworkKill:
			r := w.leader(ctx, 10*time.Second)
			if r == nil {
				r = w.replicas[f.pick%uint64(len(w.replicas))]
			}
			log.WithField("replica", r.Name).Info("injecting")
			r.Signal(syscall.SIGKILL)
		case faultLeaderPause:
			r := w.leader(ctx, 10*time.Second)
			if r == nil {
				log.Info("no leader to pause: skipped")
				continue
			}
			log.WithField("replica", r.Name).Info("injecting")
			r.Signal(syscall.SIGSTOP)
			heal.Add(1)
			go func() {
				defer heal.Done()
				time.Sleep(4 * time.Second) // past the 2 s lease: the other replica takes over meanwhile
				r.Signal(syscall.SIGCONT)
			}()
		case faultExecutorKill:
			agents := w.sim.Agents()
			a := agents[f.pick%uint64(len(agents))]
			var killed bool
			for _, e := range a.Executors() {
				if e.Info.ExecutorID.Value == "kubemesos-executor" {
					err := w.sim.KillExecutor(a.ID().Value, e.FrameworkID.Value, e.Info.ExecutorID.Value)
					killed = err == nil
					log.WithError(err).WithField("agent", a.ID().Value).Info("injecting")
				}
			}
			if !killed {
				log.WithField("agent", a.ID().Value).Info("no kubelet executor on the agent: skipped")
				continue
			}
		case faultAgentPartition:
			agents := w.sim.Agents()
			a := agents[f.pick%uint64(len(agents))]
			if err := w.sim.PartitionAgent(a.ID().Value); err != nil {
				log.WithError(err).Info("partition: skipped")
				continue
			}
			log.WithField("agent", a.ID().Value).Info("injecting")
			heal.Add(1)
			go func() {
				defer heal.Done()
				time.Sleep(5 * time.Second)
				if err := w.sim.HealAgent(a.ID().Value); err != nil {
					w.log.WithError(err).WithField("agent", a.ID().Value).Warn("healing the partition")
				}
			}()
		case faultAgentRestart:
			w.restartAgent(f, log, &heal)
		case faultMasterFailover:
			log.Info("injecting")
			w.sim.FailoverMaster()
		case faultAPIServerOutage:
			pid := w.apiServerPID()
			log.WithFields(logrus.Fields{"pid": pid, "for": w.opts.apiOutage}).Info("injecting")
			_ = syscall.Kill(pid, syscall.SIGSTOP)
			heal.Add(1)
			go func() {
				defer heal.Done()
				time.Sleep(w.opts.apiOutage)
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}()
		}
		done[f.kind]++
	}
	<-ctx.Done()
	return done
}

// healAll undoes whatever fault may still hold (they heal themselves; this is the safety net).
func (w *world) healAll() {
	_ = syscall.Kill(w.apiServerPID(), syscall.SIGCONT)
	for _, r := range w.replicas {
		r.Signal(syscall.SIGCONT)
		r.Release()
	}
	for _, a := range w.sim.Agents() {
		_ = w.sim.HealAgent(a.ID().Value) // an agent not partitioned answers an error: fine
	}
}

func listenLocal() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func freePort() (int, error) {
	l, err := listenLocal()
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

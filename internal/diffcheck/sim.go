package diffcheck

import (
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim"
)

// SimAgents is the number of agents of the simulator the scenario runs against.
const SimAgents = 2

// Simulator is an in-process mesossim cluster configured like a default Mesos master.
type Simulator struct {
	*mesossim.Cluster
	dir string
}

// StartSimulator starts a master with SimAgents agents on a loopback port. allocation is the
// batch allocation interval (Mesos' default, 1s, when zero); log receives the simulator's log
// (nil: discarded).
func StartSimulator(allocation time.Duration, log io.Writer) (*Simulator, error) {
	if allocation <= 0 {
		allocation = time.Second
	}
	dir, err := os.MkdirTemp("", "mesos-diffcheck-")
	if err != nil {
		return nil, err
	}
	l := logrus.New()
	if log == nil {
		log = io.Discard
	}
	l.SetOutput(log)
	c, err := mesossim.StartCluster(mesossim.ClusterConfig{
		Agents:  SimAgents,
		WorkDir: dir,
		Master:  mesossim.Config{Log: l, AllocationInterval: allocation},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Simulator{Cluster: c, dir: dir}, nil
}

// Close stops the cluster and removes its sandboxes.
func (s *Simulator) Close() {
	s.Cluster.Close()
	os.RemoveAll(s.dir)
}

// Package schedbench is the logic of the scheduling-throughput benchmark (e2e/cmd/bench-scheduling,
// issue 13): latency percentiles, API request counts from the API server's metrics, process CPU and
// memory from /proc, a counting proxy for the framework's Mesos calls, the report (JSON, table) and
// its SVG chart. The command starts the systems; this package only measures and reports.
package schedbench

import (
	"math"
	"slices"
	"time"
)

// Percentiles of a latency distribution, in seconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	// N is how many samples there were (pods that reached the state).
	N int `json:"n"`
}

// Summarize computes nearest-rank percentiles (the smallest sample with at least p% of the samples at
// or below it), as clusterloader2's pod-startup measurement does; all zero without samples.
func Summarize(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	at := func(p float64) float64 {
		rank := int(math.Ceil(p / 100 * float64(len(s))))
		if rank < 1 {
			rank = 1
		}
		return s[rank-1].Seconds()
	}
	return Percentiles{P50: at(50), P90: at(90), P99: at(99), N: len(s)}
}

// Rate is count events per second over the span from the first start to the last event; 0 when the
// span is empty.
func Rate(count int, span time.Duration) float64 {
	if count == 0 || span <= 0 {
		return 0
	}
	return float64(count) / span.Seconds()
}

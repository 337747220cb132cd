package main

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadSampler keeps the highest 1-minute load average seen, sampled every 5 s.
type loadSampler struct {
	mu   sync.Mutex
	peak float64
}

func startLoadSampler(ctx context.Context) *loadSampler {
	s := &loadSampler{}
	s.sample()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *loadSampler) sample() {
	f := strings.Fields(readLoadAvg())
	if len(f) == 0 {
		return
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.peak = max(s.peak, v)
	s.mu.Unlock()
}

func (s *loadSampler) max() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readiness is what /readyz reports. The leader is ready once subscribed to Mesos with its informers
// synced. A standby (leader election on, not leading) is ready as soon as it serves: it has nothing to
// wait for until it leads, and a standby that never turned ready would stall every rolling update.
type readiness struct {
	electing   atomic.Bool // leader election is on
	leading    atomic.Bool
	subscribed atomic.Bool
	synced     atomic.Bool
}

func (r *readiness) ready() error {
	switch {
	case r.electing.Load() && !r.leading.Load():
		return nil
	case !r.synced.Load():
		return errors.New("informers not synced")
	case !r.subscribed.Load():
		return errors.New("not subscribed to Mesos")
	}
	return nil
}

// newHandler serves /healthz, /readyz, /metrics, the executor binary and, with profiling, pprof.
func newHandler(reg *prometheus.Registry, ready func() error, executor executorArtifact, profiling bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc(ExecutorPath, executor.serve)
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// serveHTTP serves h on l until ctx is cancelled.
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP on %s: %w", l.Addr(), err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	}
}

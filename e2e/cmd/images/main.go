// Command images builds (or finds in the cache) the simulated agents' image store, the local
// registry of `docker save` archives local-up gives them as --docker_registry, and prints its
// directory on stdout; its size, build time and images go to stderr.
//
//	go -C e2e run ./cmd/images
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubemesos/kubemesos/e2e/imagestore"
)

func main() {
	cacheDir := flag.String("cache-dir", "", "cache root (default $KUBEMESOS_CACHE_DIR or ~/.cache/kubemesos)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	s, err := imagestore.Ensure(ctx, imagestore.Options{CacheDir: *cacheDir, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	how := "built"
	if s.Cached {
		how = "cached"
	}
	fmt.Fprintf(os.Stderr, "image store: %s, %.1f MB; build time %s (this run %s: %s)\n",
		s.Dir, float64(s.Bytes)/(1<<20), s.BuildTime.Round(100*time.Millisecond), how, time.Since(start).Round(time.Millisecond))
	for _, n := range s.Names() {
		fmt.Fprintln(os.Stderr, "  "+n)
	}
	fmt.Println(s.Dir)
}

// Command kubebins builds (or finds in the cache) kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl and kube-proxy from the k8s.io/kubernetes release pinned in e2e/go.mod, and
// prints the directory that holds them. Run it before the e2e suite so the ~10 minute first build does
// not count against `go test`'s timeout:
//
//	go -C e2e run ./cmd/kubebins
//	export PATH="$(go -C e2e run ./cmd/kubebins -q):$PATH"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubemesos/kubemesos/e2e/kubebins"
)

func main() {
	cacheDir := flag.String("cache-dir", "", "cache root (default $KUBEMESOS_CACHE_DIR or ~/.cache/kubemesos)")
	quiet := flag.Bool("q", false, "do not list the binaries on stderr (a build still reports progress there)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bins, err := kubebins.Ensure(ctx, kubebins.Options{CacheDir: *cacheDir, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubebins:", err)
		os.Exit(1)
	}
	if !*quiet {
		for _, p := range []string{bins.KubeAPIServer, bins.KubeControllerManager, bins.KubeScheduler, bins.Kubectl, bins.KubeProxy} {
			fmt.Fprintln(os.Stderr, p)
		}
	}
	fmt.Println(bins.Dir)
}

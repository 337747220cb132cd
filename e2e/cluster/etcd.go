package cluster

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// startEtcd runs a single-member etcd inside this process on loopback ports chosen by the kernel.
// fsync is off: the data is thrown away with the control plane.
func startEtcd(ctx context.Context, dataDir, logPath string) (*embed.Etcd, string, error) {
	cfg := embed.NewConfig()
	cfg.Name = "kubemesos-e2e"
	cfg.Dir = dataDir
	cfg.UnsafeNoFsync = true
	cfg.Logger = "zap"
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{logPath}
	loopback := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{loopback}
	cfg.AdvertiseClientUrls = []url.URL{loopback}
	cfg.ListenPeerUrls = []url.URL{loopback}
	cfg.AdvertisePeerUrls = []url.URL{loopback}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("starting embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd not ready after 30s (log: %s)", logPath)
	case <-ctx.Done():
		e.Close()
		return nil, "", fmt.Errorf("waiting for embedded etcd: %w", ctx.Err())
	}
	if len(e.Clients) == 0 {
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd has no client listener")
	}
	return e, "http://" + e.Clients[0].Addr().String(), nil
}

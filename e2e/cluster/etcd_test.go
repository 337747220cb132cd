package cluster

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEmbeddedEtcd: the in-process etcd serves on the loopback port it reports, and two can run in
// one process side by side (parallel control planes in one test binary).
func TestEmbeddedEtcd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var urls []string
	for i := range 2 {
		dir := t.TempDir()
		e, url, err := startEtcd(ctx, filepath.Join(dir, "data"), filepath.Join(dir, "etcd.log"))
		if err != nil {
			t.Fatalf("etcd %d: %v", i, err)
		}
		t.Cleanup(e.Close)
		urls = append(urls, url)
	}
	if urls[0] == urls[1] {
		t.Fatalf("both etcds report %s", urls[0])
	}
	for i, url := range urls {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Put(ctx, "/which", url); err != nil {
			t.Fatalf("put to etcd %d: %v", i, err)
		}
	}
	for _, url := range urls {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := c.Get(ctx, "/which")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != url {
			t.Errorf("etcd at %s holds %v, want its own URL", url, resp.Kvs)
		}
	}
}

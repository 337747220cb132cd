package podsandbox

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkRelay is one port-forward connection's bytes through the sandbox's socket: 1 MiB to an
// echo server and back per op (b.SetBytes counts one way).
func BenchmarkRelay(b *testing.B) {
	dir := b.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = Serve(ctx, l, "bench")
	}()
	defer func() { cancel(); <-served }()
	echo, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	port := int32(echo.Addr().(*net.TCPAddr).Port)
	c, err := Dial(ctx, dir, port)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	back := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		go func() { _, _ = c.Write(buf) }()
		if _, err := io.ReadFull(c, back); err != nil {
			b.Fatal(err)
		}
	}
}

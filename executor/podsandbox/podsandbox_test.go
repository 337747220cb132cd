package podsandbox

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("PODSANDBOX_TEST_RUN"); dir != "" {
		if err := Run(context.Background(), dir, "test-sandbox"); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// longDir is a directory whose socket path exceeds sun_path (108 bytes), as Mesos sandboxes do.
func longDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func echoServer(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// freePort is a port nobody listens on (on either loopback).
func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return int32(port)
}

// The pod-sandbox process relays a connection to a port of its localhost through a socket deeper
// than sun_path, answers a closed port with containerd's text, and exits 0 on SIGTERM.
func TestRunRelaysAndExitsOnTERM(t *testing.T) {
	dir := longDir(t)
	if n := len(filepath.Join(dir, SocketName)); n <= 108 {
		t.Fatalf("socket path of %d bytes would fit sun_path", n)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PODSANDBOX_TEST_RUN="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		c   net.Conn
		err error
	)
	port := echoServer(t)
	for c == nil {
		if c, err = Dial(ctx, dir, port); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("Dial: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := io.WriteString(c, "hello through the sandbox"); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello through the sandbox" {
		t.Errorf("echo = %q, %v", got, err)
	}
	c.Close()

	closed := freePort(t)
	_, err = Dial(ctx, dir, closed)
	want := "failed to connect to localhost:" + strconv.Itoa(int(closed)) + ` inside namespace "test-sandbox", IPv4: dial tcp4 127.0.0.1:` + strconv.Itoa(int(closed)) + ": connect: connection refused IPv6 "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Dial to a closed port: %v\nwant prefix %q", err, want)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("pod-sandbox after SIGTERM: %v, want exit 0", err)
		}
	case <-ctx.Done():
		t.Fatal("pod-sandbox did not exit on SIGTERM")
	}
}

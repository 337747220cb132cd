// Package podsandbox is the pod side of `kubectl port-forward` and `kubemesos pod-sandbox`'s pause
// mode. A pod's sandbox (design P: its sandbox executor, package sandboxexec) carries port-forward
// connections into the pod's network namespace: it serves a unix socket, SocketName, in its sandbox
// directory, which the kubelet executor reaches on the host's filesystem, and connects each client to
// a port of the pod's localhost. A unix socket bound to a path is reachable from any network
// namespace. Started without an agent, `kubemesos pod-sandbox` is a pause process (Run): it serves the
// socket in $MESOS_SANDBOX and waits for SIGTERM, then exits 0.
//
// The protocol on a connection: the client writes "<port>\n"; the sandbox answers "ok\n" and then
// relays bytes both ways, or "error <text>\n" and closes.
package podsandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SocketName is the port-forward socket in the sandbox directory.
const SocketName = "portforward.sock"

// Run is the pod-sandbox process: it serves port-forward on SocketName in dir until SIGTERM or SIGINT
// (or ctx) ends it, then returns nil. id names the sandbox in error texts (the container ID).
func Run(ctx context.Context, dir, id string) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if os.Getpid() == 1 {
		// PID 1 of its own pid namespace reaps orphans, as pause does.
		go Reap(ctx)
	}
	l, err := Listen(dir)
	if err != nil {
		return err
	}
	return Serve(ctx, l, id)
}

// Listen binds SocketName in dir (replacing a stale socket of an earlier run).
func Listen(dir string) (net.Listener, error) {
	// The sandbox directory is usually deeper than a sun_path (108 bytes) allows: bind through the
	// directory's descriptor, as Dial connects.
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("pod-sandbox: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(fd)
	path := filepath.Join("/proc/self/fd", strconv.Itoa(fd), SocketName)
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("pod-sandbox: %w", err)
	}
	// The listener's path names a descriptor closed below: it must not unlink it on Close.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	return l, nil
}

// Reap reaps orphaned children until ctx ends; a process that is PID 1 of its namespace runs it.
func Reap(ctx context.Context) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			for {
				var ws unix.WaitStatus
				if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}

// Serve accepts port-forward connections on l until ctx ends (it closes l) and returns nil once
// every connection it relays has ended.
func Serve(ctx context.Context, l net.Listener, id string) error {
	return ServeNamed(ctx, l, func() string { return id })
}

// ServeNamed is Serve with the sandbox's name looked up per connection (a Mesos executor learns its
// container ID only once subscribed, after it started listening).
func ServeNamed(ctx context.Context, l net.Listener, id func() string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	go func() {
		<-ctx.Done()
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return fmt.Errorf("pod-sandbox: accepting: %w", err)
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			relay(c, id())
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

func relay(c net.Conn, id string) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	port, err := strconv.ParseUint(strings.TrimSpace(line), 10, 16)
	if err != nil || port == 0 {
		fmt.Fprintf(c, "error invalid port %q\n", strings.TrimSpace(line))
		return
	}
	target, err := DialLocalhost(int(port), id)
	if err != nil {
		fmt.Fprintf(c, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	defer target.Close()
	if _, err := io.WriteString(c, "ok\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		// What the client sent after its port line is buffered in r.
		_, _ = io.Copy(target, r)
		closeWrite(target)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(c, target)
		closeWrite(c)
		done <- struct{}{}
	}()
	<-done
	<-done
}

// DialLocalhost connects to port on localhost as containerd's portforward does in a sandbox's
// network namespace: IPv4 first, then IPv6, with its error text naming the sandbox id.
func DialLocalhost(port int, id string) (net.Conn, error) {
	addr := fmt.Sprintf("localhost:%d", port)
	conn, err4 := net.Dial("tcp4", addr)
	if err4 == nil {
		return conn, nil
	}
	conn, err6 := net.Dial("tcp6", addr)
	if err6 == nil {
		return conn, nil
	}
	return nil, fmt.Errorf("failed to connect to localhost:%d inside namespace %q, IPv4: %v IPv6 %v ", port, id, err4, err6)
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// Dial connects through the sandbox whose directory (on this host) is dir to port on the pod's
// localhost. The returned connection carries the port's bytes; an error is the sandbox's text.
func Dial(ctx context.Context, dir string, port int32) (net.Conn, error) {
	// Reach the socket through the directory's descriptor: its path may exceed sun_path.
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the pod sandbox directory: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(fd)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", filepath.Join("/proc/self/fd", strconv.Itoa(fd), SocketName))
	if err != nil {
		return nil, fmt.Errorf("connecting to the pod sandbox: %w", err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(deadline)
	}
	if _, err := fmt.Fprintf(c, "%d\n", port); err != nil {
		c.Close()
		return nil, fmt.Errorf("pod sandbox: %w", err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("pod sandbox: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	line = strings.TrimSuffix(line, "\n")
	if line != "ok" {
		c.Close()
		return nil, errors.New(strings.TrimPrefix(line, "error "))
	}
	return &bufferedConn{Conn: c, r: r}, nil
}

// bufferedConn reads what the handshake's reader buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes the connection (the forwarded port then reads end-of-file).
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

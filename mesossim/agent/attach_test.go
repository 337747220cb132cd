package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
)

// withTTY returns ci (a MESOS ContainerInfo when nil) with a TTYInfo.
func withTTY(ci *mesos.ContainerInfo) *mesos.ContainerInfo {
	if ci == nil {
		ci = &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}
	}
	ci.TTYInfo = &mesos.TTYInfo{}
	return ci
}

// sendInput sends ATTACH_CONTAINER_INPUT with the given records after the CONTAINER_ID one.
func (f *nestedFixture) sendInput(id mesos.ContainerID, records ...*agentapi.Call) error {
	calls := make(chan *agentapi.Call, len(records)+1)
	calls <- agentcalls.AttachContainerInput(id)
	for _, r := range records {
		calls <- r
	}
	close(calls)
	resp, err := f.api.Send(context.Background(), agentcalls.FromChan(calls))
	if resp != nil {
		resp.Close()
	}
	return err
}

// TestAttachNeedsASwitchboard: as IOSwitchboard::requiresServer, a nested container launched without
// tty_info (DEFAULT class) has no I/O switchboard: ATTACH_CONTAINER_OUTPUT and _INPUT fail with
// IOSwitchboard::_connect's text (500), while its output still reaches its sandbox's files.
func TestAttachNeedsASwitchboard(t *testing.T) {
	f := newNestedFixture(t)
	c := f.child("plain")
	if err := f.launch(c, shell("echo out; echo err >&2; sleep 30"), nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.AttachContainerOutput(c)))
	if !apierrors.Code(500).Matches(err) || !strings.Contains(err.Error(), "I/O switchboard server was disabled for this container") {
		t.Errorf("ATTACH_CONTAINER_OUTPUT without a TTY: %v, want 500 I/O switchboard server was disabled for this container", err)
	}
	err = f.sendInput(c, agentcalls.AttachContainerInputData([]byte("x")))
	if !apierrors.Code(500).Matches(err) || !strings.Contains(err.Error(), "I/O switchboard server was disabled for this container") {
		t.Errorf("ATTACH_CONTAINER_INPUT without a TTY: %v, want 500 I/O switchboard server was disabled for this container", err)
	}
	waitFor(t, "the output in the sandbox's files", func() bool {
		out, _ := os.ReadFile(filepath.Join(f.dir, "containers", "plain", "stdout"))
		errOut, _ := os.ReadFile(filepath.Join(f.dir, "containers", "plain", "stderr"))
		return string(out) == "out\n" && strings.HasSuffix(string(errOut), "err\n")
	})
}

// TestAttachInputToATerminal: a container launched with a TTY reads its input from its terminal,
// which echoes it and ends lines with "\r\n"; the output reaches attached clients (STDOUT) and the
// sandbox's stdout file; an empty DATA record does not close a terminal's input (the client sends
// EOT, ^D, instead); a second input connection while one is open is refused with 409; TTY_INFO sets
// the terminal's size.
func TestAttachInputToATerminal(t *testing.T) {
	f := newNestedFixture(t)
	c := f.child("term")
	script := `read a; echo "got:$a"; read b; echo "size:$(stty size)"; cat; echo "eof"`
	if err := f.launch(c, shell(script), withTTY(nil)); err != nil {
		t.Fatal(err)
	}
	resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.AttachContainerOutput(c)))
	if err != nil {
		t.Fatalf("ATTACH_CONTAINER_OUTPUT: %v", err)
	}
	defer resp.Close()

	// An input connection held open, then a second one.
	held := make(chan *agentapi.Call)
	heldDone := make(chan error, 1)
	go func() {
		resp, err := f.api.Send(context.Background(), agentcalls.FromChan(held))
		if resp != nil {
			resp.Close()
		}
		heldDone <- err
	}()
	held <- agentcalls.AttachContainerInput(c)
	held <- agentcalls.AttachContainerInputData([]byte("one\n"))
	waitFor(t, "the first input connection", func() bool {
		f.a.mu.Lock()
		defer f.a.mu.Unlock()
		return f.a.containers[containerKey(&c)].inputConnected
	})
	err = f.sendInput(c, agentcalls.AttachContainerInputData([]byte("x")))
	if !apierrors.Code(409).Matches(err) || !strings.Contains(err.Error(), "Multiple input connections are not allowed") {
		t.Errorf("a second input connection: %v, want 409 Multiple input connections are not allowed", err)
	}
	held <- agentcalls.AttachContainerInputData([]byte{}) // ignored: a terminal's input stays open
	close(held)
	if err := <-heldDone; err != nil {
		t.Fatalf("the first input connection: %v", err)
	}

	waitFor(t, "the answer to the first line", func() bool {
		b, _ := os.ReadFile(filepath.Join(f.dir, "containers", "term", "stdout"))
		return strings.Contains(string(b), "got:one")
	})
	tty := &mesos.TTYInfo{WindowSize: &mesos.TTYInfo_WindowSize{Rows: 33, Columns: 77}}
	if err := f.sendInput(c, agentcalls.AttachContainerInputTTY(tty), agentcalls.AttachContainerInputData([]byte("two\nthree\n\x04"))); err != nil {
		t.Fatalf("the second input: %v", err)
	}
	stdout, stderr := readOutput(t, decoderOf(resp))
	want := "one\r\ngot:one\r\ntwo\r\nthree\r\nsize:33 77\r\nthree\r\neof\r\n" // the terminal echoes input as it comes
	if diff := cmp.Diff([2]string{want, ""}, [2]string{stdout, stderr}); diff != "" {
		t.Errorf("attached output (-want +got):\n%s", diff)
	}
	waitFor(t, "the sandbox's stdout file", func() bool {
		b, _ := os.ReadFile(filepath.Join(f.dir, "containers", "term", "stdout"))
		return strings.HasSuffix(string(b), want)
	})
}

// TestAttachInputEOFWithoutTTY: without a TTY (a session's pipe), an empty DATA record closes the
// container's stdin, and TTY_INFO is refused as stout's setWindowSize refuses a pipe.
func TestAttachInputEOFWithoutTTY(t *testing.T) {
	f := newNestedFixture(t)
	c := f.child("sess")
	resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.LaunchNestedContainerSession(c, shell("cat; echo eof"), nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	tty := &mesos.TTYInfo{WindowSize: &mesos.TTYInfo_WindowSize{Rows: 1, Columns: 1}}
	err = f.sendInput(c, agentcalls.AttachContainerInputTTY(tty))
	if !apierrors.CodeMalformedRequest.Matches(err) || !strings.Contains(err.Error(), "Unable to set the window size: Inappropriate ioctl for device") {
		t.Errorf("TTY_INFO to a pipe: %v, want 400 Unable to set the window size: Inappropriate ioctl for device", err)
	}
	if err := f.sendInput(c, agentcalls.AttachContainerInputData([]byte("data\n")), agentcalls.AttachContainerInputData([]byte{})); err != nil {
		t.Fatal(err)
	}
	done := make(chan [2]string, 1)
	go func() {
		o, e := readOutput(t, decoderOf(resp))
		done <- [2]string{o, e}
	}()
	select {
	case got := <-done:
		if diff := cmp.Diff([2]string{"data\neof\n", ""}, got); diff != "" {
			t.Errorf("session output (-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end: its stdin was not closed")
	}
}

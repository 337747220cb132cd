package podworker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/executor/containerlogs"
)

// The kubelet's bounds of a termination message (k8s.io/kubernetes/pkg/kubelet/container).
const (
	// MaxTerminationMessageLength is what is read of the end of a termination message file.
	MaxTerminationMessageLength = 1024 * 4
	// MaxTerminationMessageLogLength and MaxTerminationMessageLogLines bound the end of the log that
	// FallbackToLogsOnError uses.
	MaxTerminationMessageLogLength = 1024 * 2
	MaxTerminationMessageLogLines  = 80
)

// outputReadLimit is how much of the end of each output file is read for the log fallback: enough
// for 80 lines of a chatty container, far more than the 2048 bytes kept.
const outputReadLimit = 64 << 10

// withTerminationMessage adds the attempt's termination message to its exit status as the kubelet's
// convertToKubeContainerStatus does: the content of the terminationMessagePath file (its last 4096
// bytes) or, with FallbackToLogsOnError, a failed exit and no (or an empty) file, the end of its log;
// a message of the runtime comes first, joined by ": ".
func withTerminationMessage(c *corev1.Container, h Handle, st ExitStatus) ExitStatus {
	fallbackToLogs := c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && st.ExitCode != 0
	msg, checkLogs := terminationMessage(c, h, fallbackToLogs)
	if checkLogs {
		msg = lastLogString(h)
	}
	if msg != "" {
		if st.Message != "" {
			st.Message += ": "
		}
		st.Message += msg
	}
	return st
}

// terminationMessage is the kubelet's getTerminationMessage: the message, or whether to read the logs.
func terminationMessage(c *corev1.Container, h Handle, fallbackToLogs bool) (string, bool) {
	if c.TerminationMessagePath == "" || h.TerminationMessagePath == "" {
		return "", fallbackToLogs
	}
	data, err := readAtMost(h.TerminationMessagePath, MaxTerminationMessageLength)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fallbackToLogs
		}
		return fmt.Sprintf("Error on reading termination log %s: %v", h.TerminationMessagePath, err), false
	}
	return string(data), fallbackToLogs && len(data) == 0
}

// readAtMost reads the last max bytes of a file (the kubelet's tail.ReadAtMost).
func readAtMost(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if size := fi.Size(); size > max {
		if _, err := f.Seek(size-max, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(f)
}

// lastLogString is the kubelet's readLastStringFromContainerLogs: the last 80 lines of the attempt's
// output, at most their last 2048 bytes. The runtime keeps stdout and stderr in two files without
// times, so stdout's lines come before stderr's, and the lines the Mesos launcher writes at the
// start of stderr are left out as they are from the container's log.
func lastLogString(h Handle) string {
	var out []byte
	for i, p := range []string{h.LogPath, h.StderrPath} {
		if p == "" {
			continue
		}
		data, err := readAtMost(p, outputReadLimit)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("Error on reading termination message from logs: %v", err)
		}
		if i == 1 {
			data = stripLauncherLines(data)
		}
		out = append(out, data...)
	}
	out = lastLines(out, MaxTerminationMessageLogLines)
	if len(out) > MaxTerminationMessageLogLength {
		out = out[len(out)-MaxTerminationMessageLogLength:]
	}
	return string(out)
}

// stripLauncherLines drops the launcher's lines from the start of stderr.
func stripLauncherLines(data []byte) []byte {
	for {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 || !containerlogs.IsLauncherLine(data[:nl]) {
			return data
		}
		data = data[nl+1:]
	}
}

// lastLines returns the last n lines of data (a last line without newline counts).
func lastLines(data []byte, n int) []byte {
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if data[i] == '\n' {
			n--
			if n == 0 {
				return data[i+1:]
			}
		}
	}
	return data
}

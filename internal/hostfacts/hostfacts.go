// Package hostfacts is what the executor tells the framework about the agent's host, as the kubelet
// reports its own machine in Node.status.nodeInfo: kernel, OS image, machine and boot IDs, OS and
// architecture. A Mesos agent advertises none of this (AgentInfo has hostname, resources and
// attributes), so the executor, which runs on the host, sends it in an executor MESSAGE (the public
// executor→scheduler channel, relayed by the agent and master) and the framework writes it on the Node.
package hostfacts

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind marks a MESSAGE as host facts, so the framework can tell them from anything else an executor
// might send one day.
const Kind = "kubemesos.io/host-facts/v1"

// Facts are the host's, as Node.status.nodeInfo names them.
type Facts struct {
	Kind            string `json:"kind"`
	KernelVersion   string `json:"kernelVersion"`
	OSImage         string `json:"osImage"`
	OperatingSystem string `json:"operatingSystem"`
	Architecture    string `json:"architecture"`
	MachineID       string `json:"machineID,omitempty"`
	BootID          string `json:"bootID,omitempty"`
}

// maxMessage bounds what Decode accepts: an executor MESSAGE is operator-visible traffic, and facts
// are a few hundred bytes.
const maxMessage = 4096

// Collect reads the facts of the host whose root filesystem is root ("/" in production), the files
// the kubelet's cadvisor reads: /etc/os-release's PRETTY_NAME, /etc/machine-id, the boot ID; the
// kernel release from uname(2) when root is "/" (else root's /proc/sys/kernel/osrelease).
func Collect(root string) Facts {
	f := Facts{Kind: Kind, OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH, OSImage: "Unknown"}
	if root == "/" {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			f.KernelVersion = unix.ByteSliceToString(u.Release[:])
		}
	} else {
		f.KernelVersion = readTrimmed(filepath.Join(root, "proc/sys/kernel/osrelease"))
	}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if name := prettyName(filepath.Join(root, p)); name != "" {
			f.OSImage = name
			break
		}
	}
	f.MachineID = readTrimmed(filepath.Join(root, "etc/machine-id"))
	f.BootID = readTrimmed(filepath.Join(root, "proc/sys/kernel/random/boot_id"))
	return f
}

// prettyName is os-release(5)'s PRETTY_NAME, unquoted; "" if the file or the key is missing.
func prettyName(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for s := bufio.NewScanner(bytes.NewReader(b)); s.Scan(); {
		if v, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Encode is the MESSAGE's data.
func (f Facts) Encode() []byte {
	b, _ := json.Marshal(f) // strings only: cannot fail
	return b
}

// ErrNotFacts says a MESSAGE is something else than host facts (not JSON, or another kind).
var ErrNotFacts = errors.New("not a host-facts message")

// Decode reads a MESSAGE's data. Data that is not host facts is ErrNotFacts; facts without the fields
// every host has (kernel, OS, architecture) are an error that says which.
func Decode(data []byte) (Facts, error) {
	if len(data) > maxMessage {
		return Facts{}, fmt.Errorf("%w: %d bytes", ErrNotFacts, len(data))
	}
	var f Facts
	if err := json.Unmarshal(data, &f); err != nil || f.Kind != Kind {
		return Facts{}, ErrNotFacts
	}
	var missing []string
	for name, v := range map[string]string{"kernelVersion": f.KernelVersion, "operatingSystem": f.OperatingSystem, "architecture": f.Architecture} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Facts{}, fmt.Errorf("host facts without %s", strings.Join(missing, ", "))
	}
	return f, nil
}

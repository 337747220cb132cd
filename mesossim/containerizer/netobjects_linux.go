//go:build linux

package containerizer

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// NetworkCounts are the host objects containers on CNI networks make and their cleanup must remove
// again; a test compares them before and after containers come and go.
type NetworkCounts struct {
	// NSHandles are network namespace handles (nsfs mounts) under <runtime_dir>/isolators/network/cni,
	// ContainerDirs the container directories there.
	NSHandles, ContainerDirs int
	// Veths are the host's veth links (every bridge's, not only the networks' of this runtime dir).
	Veths int
	// IPAMFiles are host-local's address reservations: files named by an IP under the IPAM data dir
	// or its network directories.
	IPAMFiles int
	// PortmapRules are the rules of portmap's nftables tables (ip and ip6 cni_hostport), MasqRules the
	// per-container rules of the bridge plugin's ipMasq (nftables backend: chain masq_checks of table
	// inet cni_plugins_masquerade).
	PortmapRules, MasqRules int
}

// NetworkObjects counts the CNI network objects on the host for an agent with runtimeDir
// (--runtime_dir) whose networks keep host-local's reservations under ipamDir (its "dataDir"; "" skips
// them). Missing directories and nftables tables count as none.
func NetworkObjects(runtimeDir, ipamDir string) (NetworkCounts, error) {
	var n NetworkCounts
	root := filepath.Join(runtimeDir, cniDir)
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	mounts, err := readMountInfo()
	if err != nil {
		return n, err
	}
	fstypes, err := mountTypes()
	if err != nil {
		return n, err
	}
	for _, m := range mounts {
		if strings.HasPrefix(m.target, root+"/") && fstypes[m.id] == "nsfs" {
			n.NSHandles++
		}
	}
	if entries, err := os.ReadDir(root); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				n.ContainerDirs++
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return n, err
	}
	links, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return n, err
	}
	for _, l := range links {
		if strings.HasPrefix(l.Name(), "veth") {
			n.Veths++
		}
	}
	if ipamDir != "" {
		n.IPAMFiles, err = countIPFiles(ipamDir, 2)
		if err != nil {
			return n, err
		}
	}
	for _, family := range []string{"ip", "ip6"} {
		c, err := nftRules(family, "cni_hostport", "")
		if err != nil {
			return n, err
		}
		n.PortmapRules += c
	}
	if n.MasqRules, err = nftRules("inet", "cni_plugins_masquerade", "masq_checks"); err != nil {
		return n, err
	}
	return n, nil
}

// mountTypes maps mount IDs to their filesystem type (the field after " - " in mountinfo).
func mountTypes() (map[int]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, line := range strings.Split(string(b), "\n") {
		var id int
		if _, err := fmt.Sscan(line, &id); err != nil {
			continue
		}
		if _, rest, ok := strings.Cut(line, " - "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				out[id] = f[0]
			}
		}
	}
	return out, nil
}

// countIPFiles counts files named by an IP address in dir and, depth levels down, its subdirectories.
func countIPFiles(dir string, depth int) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		switch {
		case e.IsDir() && depth > 1:
			c, err := countIPFiles(filepath.Join(dir, e.Name()), depth-1)
			if err != nil {
				return 0, err
			}
			n += c
		case !e.IsDir() && net.ParseIP(e.Name()) != nil:
			n++
		}
	}
	return n, nil
}

// nftRules counts the rules of an nftables table (or of one chain of it); no nft or no table is 0.
func nftRules(family, table, chain string) (int, error) {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return 0, nil
	}
	args := []string{"-a", "list", "table", family, table}
	if chain != "" {
		args = []string{"-a", "list", "chain", family, table, chain}
	}
	var stderr bytes.Buffer
	cmd := exec.Command(nft, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No such file or directory") {
			return 0, nil
		}
		return 0, fmt.Errorf("nft %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.TrimSpace(line)
		if !strings.Contains(l, "# handle") || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") ||
			strings.HasPrefix(l, "set ") || strings.HasPrefix(l, "map ") {
			continue
		}
		n++
	}
	return n, nil
}

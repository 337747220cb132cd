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
	"regexp"
	"strings"
)

// NetworkCounts are the host objects containers on CNI networks make and their cleanup must remove
// again; a test compares them before and after containers come and go.
type NetworkCounts struct {
	// NSHandles are network namespace handles (nsfs mounts) under <runtime_dir>/isolators/network/cni,
	// ContainerDirs the container directories there.
	NSHandles, ContainerDirs int
	// Veths are the host's veth links (with subnets: those on a bridge with an address in one).
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
// them). Missing directories and nftables tables count as none. Veths and nftables rules are the
// host's; given subnets (the networks' pod subnets), only the veths on their bridges and the rules
// naming an address in them count, so that other processes' containers do not.
func NetworkObjects(runtimeDir, ipamDir string, subnets ...*net.IPNet) (NetworkCounts, error) {
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
		if strings.HasPrefix(l.Name(), "veth") && (len(subnets) == 0 || onBridgeIn(l.Name(), subnets)) {
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
		c, err := nftRules(family, "cni_hostport", "", subnets)
		if err != nil {
			return n, err
		}
		n.PortmapRules += c
	}
	if n.MasqRules, err = nftRules("inet", "cni_plugins_masquerade", "masq_checks", subnets); err != nil {
		return n, err
	}
	return n, nil
}

// onBridgeIn reports whether a link's master is a bridge with an address in one of subnets.
func onBridgeIn(link string, subnets []*net.IPNet) bool {
	master, err := os.Readlink(filepath.Join("/sys/class/net", link, "master"))
	if err != nil {
		return false
	}
	br, err := net.InterfaceByName(filepath.Base(master))
	if err != nil {
		return false
	}
	addrs, _ := br.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && inSubnets(ipn.IP, subnets) {
			return true
		}
	}
	return false
}

func inSubnets(ip net.IP, subnets []*net.IPNet) bool {
	for _, s := range subnets {
		if s.Contains(ip) {
			return true
		}
	}
	return false
}

var ipv4Re = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)

// namesSubnet reports whether an nftables rule names an address in one of subnets.
func namesSubnet(rule string, subnets []*net.IPNet) bool {
	for _, m := range ipv4Re.FindAllString(rule, -1) {
		if ip := net.ParseIP(m); ip != nil && inSubnets(ip, subnets) {
			return true
		}
	}
	return false
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

// nftRules counts the rules of an nftables table (or of one chain of it), with subnets only those
// naming an address in one; no nft or no table is 0.
func nftRules(family, table, chain string, subnets []*net.IPNet) (int, error) {
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
		if len(subnets) > 0 && !namesSubnet(l, subnets) {
			continue
		}
		n++
	}
	return n, nil
}

package podnet

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// nftTable is an nftables table the pod network's plugins or kube-proxy program.
type nftTable struct{ family, name string }

// The tables of CNI's portmap (per address family) and of the bridge plugin's nftables ipMasq, and
// kube-proxy's (nftables mode).
var (
	portmapTables    = []nftTable{{"ip", "cni_hostport"}, {"ip6", "cni_hostport"}}
	masqueradeTables = []nftTable{{"inet", "cni_plugins_masquerade"}}
	// kubeProxyTable is kube-proxy's IPv4 table (pkg/proxy/nftables: kubeProxyTable).
	kubeProxyTable = nftTable{"ip", "kube-proxy"}
)

// nftRule is one rule of a table, with its chain and handle.
type nftRule struct {
	chain, text string
	handle      string
}

func nftPath() string {
	if p, err := exec.LookPath("nft"); err == nil {
		return p
	}
	return "/usr/sbin/nft" // root's PATH usually has it; a test's may not
}

// listRules lists a table's rules; a missing table (or no nft) has none.
func listRules(t nftTable) []nftRule {
	out, err := exec.Command(nftPath(), "-a", "list", "table", t.family, t.name).Output()
	if err != nil {
		return nil
	}
	return parseRules(string(out))
}

var handleRE = regexp.MustCompile(`\s# handle (\d+)\s*$`)

// parseRules reads `nft -a list table` output: the rules are the lines with a handle inside a chain
// that are not themselves a chain, set, map or table header.
func parseRules(listing string) []nftRule {
	var rules []nftRule
	chain := ""
	sc := bufio.NewScanner(strings.NewReader(listing))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	depth := 0 // 1 inside a table, 2 inside a chain/set/map
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "table "):
			depth = 1
			continue
		case strings.HasPrefix(line, "chain "):
			chain = strings.Fields(line)[1]
			depth = 2
			continue
		case strings.HasPrefix(line, "set "), strings.HasPrefix(line, "map "), strings.HasPrefix(line, "flowtable "):
			chain = ""
			depth = 2
			continue
		case line == "}":
			depth--
			if depth < 2 {
				chain = ""
			}
			continue
		}
		m := handleRE.FindStringSubmatch(line)
		if chain == "" || m == nil {
			continue
		}
		rules = append(rules, nftRule{chain: chain, text: strings.TrimSpace(line[:len(line)-len(m[0])]), handle: m[1]})
	}
	return rules
}

// deleteRules deletes the portmap and masquerade rules whose text matches re.
func deleteRules(re *regexp.Regexp) error {
	var errs []error
	for _, t := range append(append([]nftTable(nil), portmapTables...), masqueradeTables...) {
		for _, r := range listRules(t) {
			if !re.MatchString(r.text) {
				continue
			}
			out, err := exec.Command(nftPath(), "delete", "rule", t.family, t.name, r.chain, "handle", r.handle).CombinedOutput()
			if err != nil {
				errs = append(errs, fmt.Errorf("nft delete rule %s %s %s handle %s (%s): %w: %s", t.family, t.name, r.chain, r.handle, r.text, err, strings.TrimSpace(string(out))))
			}
		}
	}
	return errors.Join(errs...)
}

func countRules(tables []nftTable, re *regexp.Regexp) int {
	n := 0
	for _, t := range tables {
		for _, r := range listRules(t) {
			if re == nil || re.MatchString(r.text) {
				n++
			}
		}
	}
	return n
}

// Objects counts what containers on the pod network leave on the host. After every pod is gone,
// all but KubeProxyRules are 0; KubeProxyRules counts kube-proxy's whole table (Services), which
// depends only on the Services that exist.
type Objects struct {
	// NetnsHandles are network/cni's namespace handles (nsfs mounts) under the agents' runtime dirs.
	NetnsHandles int
	// Veths are the interfaces on the agents' bridges.
	Veths int
	// IPAMAddresses are host-local's allocations in the agents' dataDirs.
	IPAMAddresses int
	// PortmapRules and MasqueradeRules are the rules of portmap's cni_hostport tables and of the bridge
	// plugin's cni_plugins_masquerade table that name an agent's pod subnet or address.
	PortmapRules, MasqueradeRules int
	// KubeProxyRules are the rules of kube-proxy's table (ip kube-proxy).
	KubeProxyRules int
}

// Count counts the network objects of agents (see Objects).
func Count(agents ...*Agent) Objects {
	var o Objects
	for _, a := range agents {
		o.NetnsHandles += len(NetnsHandles(a))
		o.Veths += len(bridgePorts(a.Bridge))
		o.IPAMAddresses += ipamAddresses(a)
		re := a.ruleMatcher()
		o.PortmapRules += countRules(portmapTables, re)
		o.MasqueradeRules += countRules(masqueradeTables, re)
	}
	o.KubeProxyRules = countRules([]nftTable{kubeProxyTable}, nil)
	return o
}

// NetnsHandles are the paths of network/cni's namespace handles under the agents' runtime dirs
// (.../isolators/network/cni/<container ID>/ns): what Count's NetnsHandles counts, by name.
func NetnsHandles(agents ...*Agent) []string {
	var out []string
	for _, a := range agents {
		for _, m := range nsfsMounts() {
			if strings.HasPrefix(m, a.RuntimeDir+"/") {
				out = append(out, m)
			}
		}
	}
	return out
}

// ipamAddresses counts host-local's reservation files (named after the address) of the network.
func ipamAddresses(a *Agent) int {
	entries, err := os.ReadDir(filepath.Join(a.IPAMDir, NetworkName))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if a.Subnet.Contains(parseIP(e.Name())) {
			n++
		}
	}
	return n
}

// DeleteKubeProxyTable removes kube-proxy's tables (IPv4 and IPv6), as `kube-proxy --cleanup` would,
// when the kube-proxy of a control plane stops.
func DeleteKubeProxyTable() error {
	var errs []error
	for _, family := range []string{"ip", "ip6"} {
		if listTable(family, kubeProxyTable.name) {
			if out, err := exec.Command(nftPath(), "delete", "table", family, kubeProxyTable.name).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("nft delete table %s %s: %w: %s", family, kubeProxyTable.name, err, strings.TrimSpace(string(out))))
			}
		}
	}
	return errors.Join(errs...)
}

func listTable(family, name string) bool {
	return exec.Command(nftPath(), "list", "table", family, name).Run() == nil
}

// TableText is `nft list table <family> <name>` ("" if it does not exist), for tests and diagnostics.
func TableText(family, name string) string {
	out, err := exec.Command(nftPath(), "list", "table", family, name).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

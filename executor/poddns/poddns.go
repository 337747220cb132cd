// Package poddns computes a pod's /etc/resolv.conf, /etc/hosts and hostname the way the kubelet and
// its container runtime make them: the kubelet's dns.Configurer (pkg/kubelet/network/dns) decides the
// servers, searches and options by dnsPolicy and dnsConfig within the API's limits, containerd renders
// them (parseDNSOptions), and the kubelet's ensureHostsFile writes the managed hosts file
// (pkg/kubelet/kubelet_pods.go). Pure functions: the caller reads the host's files and writes the
// results.
//
// One difference: the kubelet merges options through a Go map, so their order in resolv.conf is
// random; here they keep the order in which they were first given.
package poddns

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// Limits of the API's validation (pkg/apis/core/validation) the kubelet enforces.
const (
	MaxDNSNameservers     = 3
	MaxDNSSearchPaths     = 32
	MaxDNSSearchListChars = 2048
)

// Config is the kubelet's DNS settings (--cluster-dns, --cluster-domain, --resolv-conf).
type Config struct {
	// ClusterDNS are the cluster DNS servers' IPs.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS domain ("cluster.local").
	ClusterDomain string
	// HostResolvConf is the content of --resolv-conf; nil when that flag is empty (the kubelet then
	// uses 127.0.0.1 and search "." for dnsPolicy Default).
	HostResolvConf []byte
	// NodeIsIPv6 picks ::1 over 127.0.0.1 for that case.
	NodeIsIPv6 bool
}

// Event is what the kubelet records while forming the configuration (Warning events).
type Event struct {
	// OnNode: the event is about the Node (else the pod).
	OnNode  bool
	Reason  string
	Message string
}

// DNSConfig is the CRI's DNSConfig.
type DNSConfig struct {
	Servers, Searches, Options []string
}

// ParseResolvConf reads nameservers, the last search line (without "." and trailing dots) and the
// options (a later option of the same name replaces an earlier one), as the kubelet does.
func ParseResolvConf(data []byte) (nameservers, searches, options []string, err error) {
	nameservers, searches, options = []string{}, []string{}, []string{}
	var errs []error
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		fields := strings.Fields(trimmed)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) >= 2 {
				nameservers = append(nameservers, fields[1])
			} else {
				errs = append(errs, errors.New("nameserver list is empty "))
			}
		case "search":
			searches = []string{}
			for _, s := range fields[1:] {
				if s != "." {
					searches = append(searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			options = appendOptions(options, fields[1:]...)
		}
	}
	return nameservers, searches, options, errors.Join(errs...)
}

// appendOptions adds options, an option replacing the one of the same name (before ':') in place.
func appendOptions(options []string, add ...string) []string {
	for _, o := range add {
		name, _, _ := strings.Cut(o, ":")
		replaced := false
		for i, old := range options {
			if n, _, _ := strings.Cut(old, ":"); n == name {
				options[i], replaced = o, true
				break
			}
		}
		if !replaced {
			options = append(options, o)
		}
	}
	return options
}

type dnsType int

const (
	dnsCluster dnsType = iota
	dnsHost
	dnsNone
)

// podDNSType is the kubelet's getPodDNSType: ClusterFirst on the host network is Default.
func podDNSType(pod *corev1.Pod) (dnsType, error) {
	switch pod.Spec.DNSPolicy {
	case corev1.DNSNone:
		return dnsNone, nil
	case corev1.DNSClusterFirstWithHostNet:
		return dnsCluster, nil
	case corev1.DNSClusterFirst, "":
		// The API server defaults an empty policy to ClusterFirst.
		if !pod.Spec.HostNetwork {
			return dnsCluster, nil
		}
		return dnsHost, nil
	case corev1.DNSDefault:
		return dnsHost, nil
	}
	return dnsCluster, fmt.Errorf("invalid DNSPolicy=%v", pod.Spec.DNSPolicy)
}

func omitDuplicates(strs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range strs {
		if !seen[s] {
			out = append(out, s)
			seen[s] = true
		}
	}
	return out
}

// PodDNS is the kubelet's Configurer.GetPodDNS: the pod's DNS servers, searches and options, and the
// events the kubelet records on the way.
func PodDNS(pod *corev1.Pod, cfg Config) (DNSConfig, []Event, error) {
	var dc DNSConfig
	var events []Event
	if cfg.HostResolvConf != nil {
		var err error
		dc.Servers, dc.Searches, dc.Options, err = ParseResolvConf(cfg.HostResolvConf)
		if err != nil {
			return DNSConfig{}, nil, fmt.Errorf("Encountered error while parsing resolv conf file. Error: %w", err)
		}
	}
	typ, err := podDNSType(pod)
	if err != nil {
		typ = dnsCluster // the kubelet logs it and falls back
	}
	switch typ {
	case dnsNone:
		dc = DNSConfig{}
	case dnsCluster:
		if len(cfg.ClusterDNS) != 0 {
			dc.Servers = append([]string{}, cfg.ClusterDNS...)
			dc.Searches = searchesForClusterFirst(dc.Searches, pod.Namespace, cfg.ClusterDomain)
			dc.Options = []string{"ndots:5"}
			break
		}
		msg := fmt.Sprintf("kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.", corev1.DNSClusterFirst, corev1.DNSDefault)
		events = append(events,
			Event{OnNode: true, Reason: "MissingClusterDNS", Message: msg},
			Event{Reason: "MissingClusterDNS", Message: fmt.Sprintf("pod: %q. %s", podDesc(pod), msg)})
		fallthrough
	case dnsHost:
		if cfg.HostResolvConf == nil {
			if cfg.NodeIsIPv6 {
				dc.Servers = append(dc.Servers, "::1")
			} else {
				dc.Servers = append(dc.Servers, "127.0.0.1")
			}
			dc.Searches = []string{"."}
		}
	}
	if d := pod.Spec.DNSConfig; d != nil {
		dc.Servers = omitDuplicates(append(dc.Servers, d.Nameservers...))
		dc.Searches = omitDuplicates(append(dc.Searches, d.Searches...))
		dc.Options = mergeDNSOptions(dc.Options, d.Options)
	}
	if len(dc.Servers) > MaxDNSNameservers {
		dc.Servers = dc.Servers[:MaxDNSNameservers]
		events = append(events, Event{Reason: "DNSConfigForming", Message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: " + strings.Join(dc.Servers, " ")})
	}
	var exceeded bool
	if dc.Searches, exceeded = searchFitsLimits(dc.Searches); exceeded {
		events = append(events, Event{Reason: "DNSConfigForming", Message: "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + strings.Join(dc.Searches, " ")})
	}
	return dc, events, nil
}

// podDesc is the kubelet's format.Pod: name_namespace(uid).
func podDesc(pod *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

func searchesForClusterFirst(hostSearch []string, namespace, domain string) []string {
	if domain == "" {
		return hostSearch
	}
	cluster := []string{namespace + ".svc." + domain, "svc." + domain, domain}
	return omitDuplicates(append(cluster, hostSearch...))
}

func mergeDNSOptions(existing []string, add []corev1.PodDNSConfigOption) []string {
	out := appendOptions([]string{}, existing...)
	for _, o := range add {
		opt := o.Name
		if o.Value != nil && *o.Value != "" {
			opt += ":" + *o.Value
		}
		out = appendOptions(out, opt)
	}
	return out
}

// searchFitsLimits is the kubelet's formDNSSearchFitsLimits.
func searchFitsLimits(search []string) ([]string, bool) {
	exceeded := false
	if len(search) > MaxDNSSearchPaths {
		search, exceeded = search[:MaxDNSSearchPaths], true
	}
	kept := search[:0:0]
	for _, s := range search {
		if len(s) > utilvalidation.DNS1123SubdomainMaxLength {
			exceeded = true
			continue
		}
		kept = append(kept, s)
	}
	search = kept
	if n := len(strings.Join(search, " ")); n > MaxDNSSearchListChars {
		cutNum, cutLen := 0, 0
		for i := len(search) - 1; i >= 0; i-- {
			cutLen += len(search[i]) + 1
			cutNum++
			if n-cutLen <= MaxDNSSearchListChars {
				break
			}
		}
		search, exceeded = search[:len(search)-cutNum], true
	}
	return search, exceeded
}

// ResolvConf renders a DNSConfig as containerd writes the sandbox's resolv.conf; an empty one is the
// host's file copied (hostResolvConf).
func ResolvConf(dc DNSConfig, hostResolvConf []byte) []byte {
	var b strings.Builder
	if len(dc.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dc.Searches, " "))
	}
	if len(dc.Servers) > 0 {
		fmt.Fprintf(&b, "nameserver %s\n", strings.Join(dc.Servers, "\nnameserver "))
	}
	if len(dc.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dc.Options, " "))
	}
	if b.Len() == 0 {
		return append([]byte{}, hostResolvConf...)
	}
	return []byte(b.String())
}

// HostnameAndDomain is the kubelet's GeneratePodHostNameAndDomain: hostnameOverride, else
// spec.hostname, else the pod's name (cut to 63 characters), and <subdomain>.<ns>.svc.<domain>.
func HostnameAndDomain(pod *corev1.Pod, clusterDomain string) (string, string, error) {
	if o := pod.Spec.HostnameOverride; o != nil {
		if msgs := utilvalidation.IsDNS1123Subdomain(*o); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod HostnameOverride %q is not a valid DNS subdomain: %s", *o, strings.Join(msgs, ";"))
		}
		h, err := truncateHostname(pod.Name, *o)
		return h, "", err
	}
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		if msgs := utilvalidation.IsDNS1123Label(pod.Spec.Hostname); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Hostname %q is not a valid DNS label: %s", pod.Spec.Hostname, strings.Join(msgs, ";"))
		}
		hostname = pod.Spec.Hostname
	}
	hostname, err := truncateHostname(pod.Name, hostname)
	if err != nil {
		return "", "", err
	}
	domain := ""
	if pod.Spec.Subdomain != "" {
		if msgs := utilvalidation.IsDNS1123Label(pod.Spec.Subdomain); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Subdomain %q is not a valid DNS label: %s", pod.Spec.Subdomain, strings.Join(msgs, ";"))
		}
		domain = fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	}
	return hostname, domain, nil
}

func truncateHostname(podName, hostname string) (string, error) {
	const maxLen = 63
	if len(hostname) <= maxLen {
		return hostname, nil
	}
	t := strings.TrimRight(hostname[:maxLen], "-.")
	if t == "" {
		return "", fmt.Errorf("hostname for pod %q was invalid: %q", podName, hostname)
	}
	return t, nil
}

// Headers of the kubelet's managed hosts files.
const (
	managedHostsHeader                = "# Kubernetes-managed hosts file.\n"
	managedHostsHeaderWithHostNetwork = "# Kubernetes-managed hosts file (host network).\n"
)

// Hosts is the kubelet's ensureHostsFile content: for a hostNetwork pod the node's hosts file
// (nodeHosts) under a header, else the managed file with localhost, the pod's IPs and hostname, then
// the hostAliases either way.
func Hosts(podIPs []string, hostname, domain string, aliases []corev1.HostAlias, hostNetwork bool, nodeHosts []byte) []byte {
	var b bytes.Buffer
	if hostNetwork {
		b.WriteString(managedHostsHeaderWithHostNetwork)
		b.Write(nodeHosts)
		b.Write(hostAliasEntries(aliases))
		return b.Bytes()
	}
	b.WriteString(managedHostsHeader)
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range podIPs {
		if domain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
	}
	b.Write(hostAliasEntries(aliases))
	return b.Bytes()
}

func hostAliasEntries(aliases []corev1.HostAlias) []byte {
	if len(aliases) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("\n# Entries added by HostAliases.\n")
	for _, a := range aliases {
		fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
	return b.Bytes()
}

package poddns

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Ported from the kubelet's TestParseResolvConf (options compared as sets: the kubelet's order is
// random).
func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		data                           string
		nameservers, searches, options []string
		isErr                          bool
	}{
		{"", nil, nil, nil, false},
		{" ", nil, nil, nil, false},
		{"\n", nil, nil, nil, false},
		{"\t\n\t", nil, nil, nil, false},
		{"#comment\n", nil, nil, nil, false},
		{" #comment\n", nil, nil, nil, false},
		{"#comment\n#comment", nil, nil, nil, false},
		{"#comment\nnameserver", nil, nil, nil, true},
		{"#comment\nnameserver\nsearch", nil, nil, nil, true},
		{"#comment\nnameserver 1.2.3.4\nsearch", []string{"1.2.3.4"}, nil, nil, false},
		{"nameserver 1.2.3.4", []string{"1.2.3.4"}, nil, nil, false},
		{" nameserver 1.2.3.4", []string{"1.2.3.4"}, nil, nil, false},
		{"\tnameserver 1.2.3.4", []string{"1.2.3.4"}, nil, nil, false},
		{"nameserver\t1.2.3.4", []string{"1.2.3.4"}, nil, nil, false},
		{"nameserver \t 1.2.3.4", []string{"1.2.3.4"}, nil, nil, false},
		{"nameserver 1.2.3.4\nnameserver 5.6.7.8", []string{"1.2.3.4", "5.6.7.8"}, nil, nil, false},
		{"nameserver 1.2.3.4 #comment", []string{"1.2.3.4"}, nil, nil, false},
		{"search ", nil, nil, nil, false},
		{"search .", nil, nil, nil, false},
		{"search . foo", nil, []string{"foo"}, nil, false},
		{"search foo .", nil, []string{"foo"}, nil, false},
		{"search foo .  bar", nil, []string{"foo", "bar"}, nil, false},
		{"search foo", nil, []string{"foo"}, nil, false},
		{"search foo bar", nil, []string{"foo", "bar"}, nil, false},
		{"search foo. bar", nil, []string{"foo", "bar"}, nil, false},
		{"search foo bar bat\n", nil, []string{"foo", "bar", "bat"}, nil, false},
		{"search foo\nsearch bar", nil, []string{"bar"}, nil, false},
		{"nameserver 1.2.3.4\nsearch foo bar", []string{"1.2.3.4"}, []string{"foo", "bar"}, nil, false},
		{"nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar", []string{"1.2.3.4", "5.6.7.8"}, []string{"bar"}, nil, false},
		{"#comment\nnameserver 1.2.3.4\n#comment\nsearch foo\ncomment", []string{"1.2.3.4"}, []string{"foo"}, nil, false},
		{"options ", nil, nil, nil, false},
		{"options ndots:5 attempts:2", nil, nil, []string{"ndots:5", "attempts:2"}, false},
		{"options ndots:1 ndots:5 attempts:2", nil, nil, []string{"ndots:5", "attempts:2"}, false},
		{"options ndots:1 edns0 attempts:2 single-request-reopen", nil, nil, []string{"edns0", "attempts:2", "single-request-reopen", "ndots:1"}, false},
		{"options ndots:1\noptions ndots:5 attempts:3", nil, nil, []string{"ndots:5", "attempts:3"}, false},
		{"options ndots:1 timeout:3 timeout:1 attempts:3\noptions ndots:5", nil, nil, []string{"ndots:5", "timeout:1", "attempts:3"}, false},
		{"options ndots:1 attempts:3\noptions ndots:1 attempts:3 ndots:5", nil, nil, []string{"ndots:5", "attempts:3"}, false},
		{"nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar\noptions ndots:5 attempts:4", []string{"1.2.3.4", "5.6.7.8"}, []string{"bar"}, []string{"ndots:5", "attempts:4"}, false},
	}
	sorted := func(s []string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		if s == nil {
			return []string{}
		}
		return s
	}
	for i, tt := range tests {
		ns, search, opts, err := ParseResolvConf([]byte(tt.data))
		if tt.isErr != (err != nil) {
			t.Errorf("[%d] %q: err = %v", i, tt.data, err)
			continue
		}
		if tt.isErr {
			continue
		}
		if !slices.Equal(ns, tt.nameservers) && !(len(ns) == 0 && len(tt.nameservers) == 0) {
			t.Errorf("[%d] %q nameservers %v, want %v", i, tt.data, ns, tt.nameservers)
		}
		if !slices.Equal(search, tt.searches) && !(len(search) == 0 && len(tt.searches) == 0) {
			t.Errorf("[%d] %q searches %v, want %v", i, tt.data, search, tt.searches)
		}
		if diff := cmp.Diff(sorted(tt.options), sorted(opts)); diff != "" {
			t.Errorf("[%d] %q options (-want +got):\n%s", i, tt.data, diff)
		}
	}
}

const hostResolv = "nameserver 192.0.2.53\nsearch example.org corp.example.org\noptions edns0\n"

func pod(ns string, hostNetwork bool, policy corev1.DNSPolicy, dc *corev1.PodDNSConfig) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "test_pod", Namespace: ns, UID: "uid-1"},
		Spec:       corev1.PodSpec{HostNetwork: hostNetwork, DNSPolicy: policy, DNSConfig: dc},
	}
}

// The resolv.conf of each policy, as containerd writes what the kubelet's GetPodDNS computes (cases
// from the kubelet's TestGetPodDNS and TestGetPodDNSCustom).
func TestResolvConfByPolicy(t *testing.T) {
	ndots3 := "3"
	custom := &corev1.PodDNSConfig{
		Nameservers: []string{"10.0.0.11"},
		Searches:    []string{"my.domain"},
		Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots3}, {Name: "debug"}},
	}
	cluster := Config{ClusterDNS: []string{"10.0.0.10"}, ClusterDomain: "cluster.local", HostResolvConf: []byte(hostResolv)}
	tests := []struct {
		name        string
		pod         *corev1.Pod
		cfg         Config
		want        string
		wantEvents  []Event
		wantErrText string
	}{
		{"ClusterFirst", pod("web", false, corev1.DNSClusterFirst, nil), cluster,
			"search web.svc.cluster.local svc.cluster.local cluster.local example.org corp.example.org\nnameserver 10.0.0.10\noptions ndots:5\n", nil, ""},
		{"empty policy is ClusterFirst", pod("web", false, "", nil), cluster,
			"search web.svc.cluster.local svc.cluster.local cluster.local example.org corp.example.org\nnameserver 10.0.0.10\noptions ndots:5\n", nil, ""},
		{"ClusterFirst on the host network is Default", pod("web", true, corev1.DNSClusterFirst, nil), cluster,
			"search example.org corp.example.org\nnameserver 192.0.2.53\noptions edns0\n", nil, ""},
		{"ClusterFirstWithHostNet", pod("web", true, corev1.DNSClusterFirstWithHostNet, nil), cluster,
			"search web.svc.cluster.local svc.cluster.local cluster.local example.org corp.example.org\nnameserver 10.0.0.10\noptions ndots:5\n", nil, ""},
		{"Default", pod("web", false, corev1.DNSDefault, nil), cluster,
			"search example.org corp.example.org\nnameserver 192.0.2.53\noptions edns0\n", nil, ""},
		{"Default without --resolv-conf", pod("web", false, corev1.DNSDefault, nil), Config{ClusterDNS: []string{"10.0.0.10"}},
			"search .\nnameserver 127.0.0.1\n", nil, ""},
		{"None without dnsConfig copies the host's file", pod("web", false, corev1.DNSNone, nil), cluster, hostResolv, nil, ""},
		{"None with dnsConfig", pod("web", false, corev1.DNSNone, &corev1.PodDNSConfig{
			Nameservers: []string{"203.0.113.1"}, Searches: []string{"my.domain", "second.domain"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots3}, {Name: "debug"}}}), cluster,
			"search my.domain second.domain\nnameserver 203.0.113.1\noptions ndots:3 debug\n", nil, ""},
		{"ClusterFirst with dnsConfig", pod("testNS", false, corev1.DNSClusterFirst, custom),
			Config{ClusterDNS: []string{"10.0.0.10"}, ClusterDomain: "kubernetes.io", HostResolvConf: []byte("nameserver 192.0.2.53\nsearch host.domain\n")},
			"search testNS.svc.kubernetes.io svc.kubernetes.io kubernetes.io host.domain my.domain\nnameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:3 debug\n", nil, ""},
		{"Default with dnsConfig", pod("testNS", false, corev1.DNSDefault, custom),
			Config{ClusterDNS: []string{"10.0.0.10"}, ClusterDomain: "kubernetes.io", HostResolvConf: []byte("nameserver 192.0.2.53\nsearch host.domain\n")},
			"search host.domain my.domain\nnameserver 192.0.2.53\nnameserver 10.0.0.11\noptions ndots:3 debug\n", nil, ""},
		{"ClusterFirst without cluster DNS falls back to Default", pod("web", false, corev1.DNSClusterFirst, nil),
			Config{ClusterDomain: "cluster.local", HostResolvConf: []byte(hostResolv)},
			"search example.org corp.example.org\nnameserver 192.0.2.53\noptions edns0\n", []Event{
				{OnNode: true, Reason: "MissingClusterDNS", Message: `kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`},
				{Reason: "MissingClusterDNS", Message: `pod: "test_pod_web(uid-1)". kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`},
			}, ""},
		{"too many nameservers", pod("web", false, corev1.DNSClusterFirst, &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}}), cluster,
			"search web.svc.cluster.local svc.cluster.local cluster.local example.org corp.example.org\nnameserver 10.0.0.10\nnameserver 10.0.0.11\nnameserver 10.0.0.12\noptions ndots:5\n",
			[]Event{{Reason: "DNSConfigForming", Message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.0.0.10 10.0.0.11 10.0.0.12"}}, ""},
		{"unparsable host file", pod("web", false, corev1.DNSDefault, nil), Config{HostResolvConf: []byte("nameserver\n")}, "", nil,
			"Encountered error while parsing resolv conf file. Error: nameserver list is empty "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc, events, err := PodDNS(tt.pod, tt.cfg)
			if tt.wantErrText != "" {
				if err == nil || err.Error() != tt.wantErrText {
					t.Fatalf("err = %v, want %q", err, tt.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(ResolvConf(dc, tt.cfg.HostResolvConf))); diff != "" {
				t.Errorf("resolv.conf (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, events); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// Ported from the kubelet's TestFormDNSSearchFitsLimits.
func TestSearchFitsLimits(t *testing.T) {
	domain := func(n int) string { return strings.Repeat("a", n) }
	var long []string
	for i := 0; i < MaxDNSSearchPaths+1; i++ {
		long = append(long, fmt.Sprintf("d%d", i))
	}
	tests := []struct {
		name     string
		in, want []string
		exceeded bool
	}{
		{"fits", []string{"1", "2"}, []string{"1", "2"}, false},
		{"too many paths", long, long[:MaxDNSSearchPaths], true},
		{"a domain over 253 chars", []string{"1", domain(254), "3"}, []string{"1", "3"}, true},
		{"line over 2048 chars", []string{domain(250), domain(250), domain(250), domain(250), domain(250), domain(250), domain(250), domain(250), domain(250)},
			[]string{domain(250), domain(250), domain(250), domain(250), domain(250), domain(250), domain(250), domain(250)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, exceeded := searchFitsLimits(slices.Clone(tt.in))
			if !slices.Equal(got, tt.want) || exceeded != tt.exceeded {
				t.Errorf("got %d paths exceeded=%v, want %d exceeded=%v", len(got), exceeded, len(tt.want), tt.exceeded)
			}
		})
	}
}

// Ported from the kubelet's TestManagedHostsFileContent and TestNodeHostsFileContent.
func TestHosts(t *testing.T) {
	header := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
	aliases := []corev1.HostAlias{{IP: "123.45.67.89", Hostnames: []string{"foo", "bar", "baz"}}, {IP: "456.78.90.123", Hostnames: []string{"park", "doo", "boo"}}}
	node := "127.0.0.1\tlocalhost\n192.0.2.2\tagent0\n"
	tests := []struct {
		name        string
		ips         []string
		host, dom   string
		aliases     []corev1.HostAlias
		hostNetwork bool
		want        string
	}{
		{"pod IP", []string{"123.45.67.89"}, "podFoo", "", nil, false, header + "123.45.67.89\tpodFoo\n"},
		{"subdomain", []string{"203.0.113.1"}, "podFoo", "domainFoo", nil, false, header + "203.0.113.1\tpodFoo.domainFoo\tpodFoo\n"},
		{"aliases", []string{"203.0.113.1"}, "podFoo", "domainFoo", aliases, false, header + "203.0.113.1\tpodFoo.domainFoo\tpodFoo\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\tbaz\n456.78.90.123\tpark\tdoo\tboo\n"},
		{"dual stack", []string{"203.0.113.1", "fd00::6"}, "podFoo", "domainFoo", nil, false, header + "203.0.113.1\tpodFoo.domainFoo\tpodFoo\nfd00::6\tpodFoo.domainFoo\tpodFoo\n"},
		{"host network", []string{"192.0.2.2"}, "agent0", "", nil, true, "# Kubernetes-managed hosts file (host network).\n" + node},
		{"host network with aliases", []string{"192.0.2.2"}, "agent0", "", aliases[:1], true, "# Kubernetes-managed hosts file (host network).\n" + node + "\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\tbaz\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, string(Hosts(tt.ips, tt.host, tt.dom, tt.aliases, tt.hostNetwork, []byte(node)))); diff != "" {
				t.Errorf("hosts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHostnameAndDomain(t *testing.T) {
	override := "my.host.example"
	long := strings.Repeat("a", 62) + "-b"
	tests := []struct {
		name           string
		spec           corev1.PodSpec
		podName        string
		host, dom, err string
	}{
		{"pod name", corev1.PodSpec{}, "web-0", "web-0", "", ""},
		{"hostname and subdomain", corev1.PodSpec{Hostname: "db", Subdomain: "svc1"}, "web-0", "db", "svc1.ns.svc.cluster.local", ""},
		{"override wins", corev1.PodSpec{Hostname: "db", Subdomain: "svc1", HostnameOverride: &override}, "web-0", override, "", ""},
		{"truncated without trailing dash", corev1.PodSpec{}, long, strings.Repeat("a", 62), "", ""},
		{"invalid hostname", corev1.PodSpec{Hostname: "Not_Valid"}, "web-0", "", "", `pod Hostname "Not_Valid" is not a valid DNS label`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tt.podName, Namespace: "ns"}, Spec: tt.spec}
			host, dom, err := HostnameAndDomain(p, "cluster.local")
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || host != tt.host || dom != tt.dom {
				t.Errorf("= %q %q %v, want %q %q", host, dom, err, tt.host, tt.dom)
			}
		})
	}
}

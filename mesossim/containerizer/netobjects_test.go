//go:build linux

package containerizer

import (
	"net"
	"testing"
)

// Rules count for a network when they name an address of its subnet (portmap's DNAT target, ipMasq's
// source), not for another network's or for the tables' fixed jumps.
func TestNamesSubnet(t *testing.T) {
	_, sn, _ := net.ParseCIDR("10.244.3.0/24")
	for rule, want := range map[string]bool{
		`ip daddr 10.251.0.1 tcp dport 18080 dnat to 10.244.3.2:8080 comment "x.sandbox" # handle 7`:         true,
		`ip saddr 10.244.3.2 ip daddr != 10.244.3.0/24 masquerade comment "12ab, net: kubemesos" # handle 9`: true,
		`ip daddr 10.251.0.1 tcp dport 18080 dnat to 10.244.4.2:8080 comment "y.sandbox" # handle 8`:         false,
		`jump hostip_hostports # handle 3`: false,
	} {
		if got := namesSubnet(rule, []*net.IPNet{sn}); got != want {
			t.Errorf("namesSubnet(%q) = %v, want %v", rule, got, want)
		}
	}
}

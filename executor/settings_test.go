package executor

import (
	"strings"
	"testing"
)

func TestValidateEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"none", nil, ""},
		{"known settings", map[string]string{"KUBEMESOS_LOG_LEVEL": "debug", "KUBEMESOS_KUBELET_ADDRESS": ":10250",
			"KUBEMESOS_SHUTDOWN_MARGIN": "2s", "KUBEMESOS_CONFIG": "/etc/kubemesos/executor.yaml"}, ""},
		{"turning the kubelet API off", map[string]string{"KUBEMESOS_KUBELET_ADDRESS": ""}, ""},
		{"typo", map[string]string{"KUBEMESOS_LOGLEVEL": "debug"}, "KUBEMESOS_LOGLEVEL is not a setting of the executor (one of "},
		{"framework setting", map[string]string{"KUBEMESOS_MASTER": "http://m:5050"}, "KUBEMESOS_MASTER is not a setting of the executor"},
		{"value the flag refuses", map[string]string{"KUBEMESOS_SHUTDOWN_MARGIN": "soon"}, `KUBEMESOS_SHUTDOWN_MARGIN="soon": `},
		{"value Validate refuses", map[string]string{"KUBEMESOS_LOG_LEVEL": "loud"}, "--log-level"},
		{"bad kubelet address", map[string]string{"KUBEMESOS_KUBELET_ADDRESS": "10250"}, `--kubelet-address "10250"`},
		{"cluster DNS", map[string]string{"KUBEMESOS_CLUSTER_DNS": "10.0.0.10,fd00::a", "KUBEMESOS_CLUSTER_DOMAIN": "corp.local",
			"KUBEMESOS_RESOLV_CONF": ""}, ""},
		{"cluster DNS not an IP", map[string]string{"KUBEMESOS_CLUSTER_DNS": "10.0.0.10,kube-dns"}, `--cluster-dns "10.0.0.10,kube-dns": "kube-dns" is not an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateEnv(tt.env)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateEnv = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ValidateEnv = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestKubeletListenAddress(t *testing.T) {
	for _, tt := range []struct{ addr, agentIP, want string }{
		{":0", "10.0.0.7", "10.0.0.7:0"},
		{":10250", "fd00::7", "[fd00::7]:10250"},
		{"0.0.0.0:10250", "10.0.0.7", "0.0.0.0:10250"},
		{"127.0.0.1:0", "10.0.0.7", "127.0.0.1:0"},
		{":0", "", ":0"},
	} {
		if got := kubeletListenAddress(tt.addr, tt.agentIP); got != tt.want {
			t.Errorf("kubeletListenAddress(%q, %q) = %q, want %q", tt.addr, tt.agentIP, got, tt.want)
		}
	}
}

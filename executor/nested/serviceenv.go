package nested

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceLinks are the kubelet's service environment variables of a pod (getServiceEnvVarMap with
// envvars.FromServices): for every Service of the pod's namespace with a cluster IP, <NAME>_SERVICE_HOST,
// <NAME>_SERVICE_PORT (and one per named port) and Docker's link variables <NAME>_PORT, <NAME>_PORT_<port>_<PROTO>
// (_PROTO, _PORT, _ADDR), when the pod's enableServiceLinks is unset or true. The kubelet also always adds the
// default namespace's "kubernetes" Service; here PodEnv.Base stands for it (KUBERNETES_SERVICE_HOST/PORT
// name the API server the executor uses), so it is left out.
func ServiceLinks(pod *corev1.Pod, services []corev1.Service) map[string]string {
	out := map[string]string{}
	if pod.Spec.EnableServiceLinks != nil && !*pod.Spec.EnableServiceLinks {
		return out
	}
	for i := range services {
		s := &services[i]
		if s.Namespace != pod.Namespace || (s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes") {
			continue
		}
		// v1helper.IsServiceIPSet: "ignore services where ClusterIP is "None" or empty".
		if s.Spec.ClusterIP == corev1.ClusterIPNone || s.Spec.ClusterIP == "" || len(s.Spec.Ports) == 0 {
			continue
		}
		prefix := envVarName(s.Name)
		out[prefix+"_SERVICE_HOST"] = s.Spec.ClusterIP
		out[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(s.Spec.Ports[0].Port))
		for _, sp := range s.Spec.Ports {
			if sp.Name != "" {
				out[prefix+"_SERVICE_PORT_"+envVarName(sp.Name)] = strconv.Itoa(int(sp.Port))
			}
		}
		for j, sp := range s.Spec.Ports {
			protocol := string(corev1.ProtocolTCP)
			if sp.Protocol != "" {
				protocol = string(sp.Protocol)
			}
			hostPort := net.JoinHostPort(s.Spec.ClusterIP, strconv.Itoa(int(sp.Port)))
			url := fmt.Sprintf("%s://%s", strings.ToLower(protocol), hostPort)
			if j == 0 {
				// "Docker special-cases the first port."
				out[prefix+"_PORT"] = url
			}
			pp := fmt.Sprintf("%s_PORT_%d_%s", prefix, sp.Port, strings.ToUpper(protocol))
			out[pp] = url
			out[pp+"_PROTO"] = strings.ToLower(protocol)
			out[pp+"_PORT"] = strconv.Itoa(int(sp.Port))
			out[pp+"_ADDR"] = s.Spec.ClusterIP
		}
	}
	return out
}

// envVarName is the kubelet's makeEnvVariableName.
func envVarName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

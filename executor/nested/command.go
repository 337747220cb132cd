package nested

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubemesos/kubemesos/executor/imageconfig"
	"github.com/kubemesos/kubemesos/executor/podworker"
)

// Lookup reads the ConfigMaps and Secrets that environment variables refer to (the executor implements
// it with its clientset). A nil Lookup makes such references an error.
type Lookup interface {
	ConfigMap(ctx context.Context, namespace, name string) (map[string]string, error)
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// ErrNotFound is what a Lookup returns (wrapped) for a ConfigMap or Secret that does not exist.
var ErrNotFound = errors.New("not found")

// PodEnv is what environment variables of a container may refer to besides the pod spec.
type PodEnv struct {
	HostIP string
	PodIP  string
	Lookup Lookup
	// Base variables every container gets first (lowest precedence), like the kubelet's
	// KUBERNETES_SERVICE_HOST/PORT that in-cluster clients need.
	Base map[string]string
	// Allocatable returns the status.allocatable of the pod's Node, the default of a limit a
	// container does not set in resourceFieldRef (nil: such limits fall back to the request).
	Allocatable func(ctx context.Context, nodeName string) (corev1.ResourceList, error)
	// Services lists the Services of a namespace, for the pods' service link variables
	// (ServiceLinks; nil: none).
	Services func(ctx context.Context, namespace string) ([]corev1.Service, error)
}

// Environment resolves a container's env and envFrom the way the kubelet does: envFrom first (in order,
// with prefixes), then env entries (later ones win), values expanded with $(VAR) against the variables
// defined before them, valueFrom with fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef.
// The pod's service link variables (ServiceLinks) come first, as the kubelet's serviceEnv, which
// envFrom and env override. The result is sorted by name for stable output.
func Environment(ctx context.Context, pod *corev1.Pod, c *corev1.Container, pe PodEnv) ([]mesos.Environment_Variable, error) {
	vars := map[string]string{}
	for k, v := range pe.Base {
		vars[k] = v
	}
	if pe.Services != nil && (pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks) {
		svcs, err := pe.Services(ctx, pod.Namespace)
		if err != nil {
			// The kubelet's makeEnvironmentVariables fails the same way.
			return nil, fmt.Errorf("container %s: listing the services of namespace %s for their environment variables: %w", c.Name, pod.Namespace, err)
		}
		for k, v := range ServiceLinks(pod, svcs) {
			vars[k] = v
		}
	}
	for _, from := range c.EnvFrom {
		data, optional, err := envFromSource(ctx, pod.Namespace, from, pe.Lookup)
		if err != nil {
			if optional && errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("container %s envFrom: %w", c.Name, err)
		}
		for k, v := range data {
			vars[from.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			vars[e.Name] = Expand(e.Value, vars)
			continue
		}
		v, err := valueFrom(ctx, pod, c, e.ValueFrom, pe)
		switch {
		case errors.Is(err, errOptionalMissing):
			continue
		case err != nil:
			return nil, fmt.Errorf("container %s env %s: %w", c.Name, e.Name, err)
		}
		vars[e.Name] = v
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]mesos.Environment_Variable, 0, len(names))
	for _, k := range names {
		v := vars[k]
		out = append(out, mesos.Environment_Variable{Name: k, Value: &v})
	}
	return out, nil
}

var errOptionalMissing = errors.New("optional reference missing")

func envFromSource(ctx context.Context, ns string, from corev1.EnvFromSource, l Lookup) (map[string]string, bool, error) {
	switch {
	case from.ConfigMapRef != nil:
		optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
		if l == nil {
			return nil, optional, errors.New("configMap references need an API client")
		}
		data, err := l.ConfigMap(ctx, ns, from.ConfigMapRef.Name)
		return data, optional, err
	case from.SecretRef != nil:
		optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
		if l == nil {
			return nil, optional, errors.New("secret references need an API client")
		}
		data, err := l.Secret(ctx, ns, from.SecretRef.Name)
		out := make(map[string]string, len(data))
		for k, v := range data {
			out[k] = string(v)
		}
		return out, optional, err
	}
	return nil, false, nil
}

func valueFrom(ctx context.Context, pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource, pe PodEnv) (string, error) {
	switch {
	case src.FieldRef != nil:
		return fieldValue(pod, src.FieldRef.FieldPath, pe)
	case src.ResourceFieldRef != nil:
		return resourceValue(ctx, pod, c, src.ResourceFieldRef, pe)
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		if pe.Lookup == nil {
			return "", errors.New("configMap references need an API client")
		}
		data, err := pe.Lookup.ConfigMap(ctx, pod.Namespace, ref.Name)
		return keyValue(data, err, ref.Key, ref.Optional, "configmap "+ref.Name)
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		if pe.Lookup == nil {
			return "", errors.New("secret references need an API client")
		}
		data, err := pe.Lookup.Secret(ctx, pod.Namespace, ref.Name)
		str := make(map[string]string, len(data))
		for k, v := range data {
			str[k] = string(v)
		}
		return keyValue(str, err, ref.Key, ref.Optional, "secret "+ref.Name)
	}
	return "", errors.New("unsupported valueFrom")
}

func keyValue(data map[string]string, err error, key string, optional *bool, what string) (string, error) {
	opt := optional != nil && *optional
	if err != nil {
		if opt && errors.Is(err, ErrNotFound) {
			return "", errOptionalMissing
		}
		return "", err
	}
	v, ok := data[key]
	if !ok {
		if opt {
			return "", errOptionalMissing
		}
		return "", fmt.Errorf("%s has no key %q", what, key)
	}
	return v, nil
}

// fieldValue implements the downward API fields allowed in env.
func fieldValue(pod *corev1.Pod, path string, pe PodEnv) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return pe.HostIP, nil
	case "status.podIP", "status.podIPs":
		return pe.PodIP, nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// podLevelLimit is the pod's spec.resources limit of a resource the downward API defaults to (cpu,
// memory: IsSupportedPodLevelResource), when set and not zero.
func podLevelLimit(pod *corev1.Pod, rn corev1.ResourceName) (resource.Quantity, bool) {
	if pod.Spec.Resources == nil || (rn != corev1.ResourceCPU && rn != corev1.ResourceMemory) {
		return resource.Quantity{}, false
	}
	q, ok := pod.Spec.Resources.Limits[rn]
	return q, ok && !q.IsZero()
}

func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

// resourceValue implements resourceFieldRef as the kubelet's containerResourceRuntimeValue: a limit
// the container does not set (or sets to zero) is the pod-level limit, else the Node's allocatable
// (kubelet_resources.go defaultPodLimitsForDownwardAPI, "If neither container-level nor pod-level
// resources limits are specified, it defaults to the node's allocatable resources"); without
// pe.Allocatable it falls back to the request. Unset requests give "0".
func resourceValue(ctx context.Context, pod *corev1.Pod, c *corev1.Container, ref *corev1.ResourceFieldSelector, pe PodEnv) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		found := false
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == ref.ContainerName {
				c, found = &pod.Spec.Containers[i], true
			}
		}
		if !found {
			return "", fmt.Errorf("resourceFieldRef: no container %q", ref.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	var q resource.Quantity
	switch kind {
	case "limits":
		rn := corev1.ResourceName(name)
		q = c.Resources.Limits[rn]
		if !q.IsZero() {
			break
		}
		if pl, ok := podLevelLimit(pod, rn); ok {
			q = pl
			break
		}
		if pe.Allocatable == nil {
			q = c.Resources.Requests[rn]
			break
		}
		alloc, err := pe.Allocatable(ctx, pod.Spec.NodeName)
		if err != nil {
			// The kubelet's "failed to find node object, expected a node".
			return "", fmt.Errorf("resourceFieldRef %s: the limit defaults to the allocatable of Node %q: %w", ref.Resource, pod.Spec.NodeName, err)
		}
		if a, ok := alloc[rn]; ok {
			q = a
		}
	case "requests":
		q = c.Resources.Requests[corev1.ResourceName(name)]
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	// Round up, as the kubelet's ExtractContainerResourceValue does.
	v := (q.MilliValue() + divisor.MilliValue() - 1) / divisor.MilliValue()
	if name == "cpu" && q.MilliValue() > 0 && v == 0 {
		v = 1
	}
	return strconv.FormatInt(v, 10), nil
}

// Expand replaces $(VAR) with vars[VAR] as Kubernetes does: $$ escapes a $, and references to
// undefined variables are left as they are.
func Expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// Command builds the Mesos CommandInfo of a container the way the kubelet and its runtime build the
// process: command and args expanded against env, then argv by Kubernetes' rule (command replaces
// the image's Entrypoint, args replace its Cmd; an Entrypoint of [""] counts as none). It always sends
// shell false, value argv[0] and arguments argv, so that Mesos' docker/runtime isolator, whose merge
// of arguments with Entrypoint/Cmd differs (without Entrypoint it appends args after Cmd[0]), takes
// the command as it is (its rows "sh=0 value=1").
//
// image is the image's config, nil when it could not be resolved. Then argv is known only with a
// command; without command and args the agent's merge equals Kubernetes' (Entrypoint + Cmd), so shell
// false without value or arguments leaves it to the agent; with args only they go to the agent as
// arguments, which is right only for an image with an Entrypoint (the caller warns).
//
// A workingDir is honoured by running argv through /bin/sh, which changes into it first: CommandInfo
// has no working directory. Without one, Mesos' docker/runtime isolator applies the image's
// WorkingDir itself (ContainerLaunchInfo.working_directory), so nothing is sent for it.
//
// CommandInfo.user is set by the caller (RunAs): the image's User (a name of the image's passwd,
// or uid[:gid]) cannot be expressed, as Mesos resolves the name in the agent host's user database.
//
// Errors are *podworker.CreateError: an empty argv (the runtime's "no command specified",
// CreateContainerError), a workingDir whose argv is unknown (CreateContainerConfigError).
func Command(c *corev1.Container, env []mesos.Environment_Variable, image *v1.Config) (*mesos.CommandInfo, error) {
	vars := make(map[string]string, len(env))
	for _, v := range env {
		vars[v.Name] = v.GetValue()
	}
	var command, args []string
	for _, a := range c.Command {
		command = append(command, Expand(a, vars))
	}
	for _, a := range c.Args {
		args = append(args, Expand(a, vars))
	}
	shell := false
	ci := &mesos.CommandInfo{Shell: &shell, Environment: &mesos.Environment{Variables: env}}
	var argv []string
	switch {
	case len(command) > 0:
		argv = append(command, args...)
	case image == nil && c.WorkingDir != "":
		return nil, &podworker.CreateError{Reason: podworker.ReasonCreateContainerConfigError, Message: fmt.Sprintf(
			"workingDir %s of container %s needs the command of image %q, whose config could not be resolved", c.WorkingDir, c.Name, c.Image)}
	case image == nil:
		ci.Arguments = args
		return ci, nil
	default:
		entrypoint := image.Entrypoint
		if len(entrypoint) == 1 && entrypoint[0] == "" {
			entrypoint = nil
		}
		if len(args) == 0 {
			args = image.Cmd
		}
		// Copied: image is shared with the resolver's cache.
		argv = append(append([]string{}, entrypoint...), args...)
	}
	if len(argv) == 0 {
		return nil, &podworker.CreateError{Reason: podworker.ReasonCreateContainerError, Message: fmt.Sprintf(
			"no command specified: container %s has no command or args and image %q no Entrypoint or Cmd", c.Name, c.Image)}
	}
	if c.WorkingDir != "" {
		sh := "/bin/sh"
		ci.Value = &sh
		ci.Arguments = append([]string{"sh", "-c", `cd "$1" && shift && exec "$@"`, "sh", c.WorkingDir}, argv...)
		return ci, nil
	}
	ci.Value = &argv[0]
	ci.Arguments = argv
	return ci, nil
}

// ContainerInfo is the Mesos container of an image with its volumes and LinuxInfo (nil with none of
// them); dockerConfig, when set, is the registry credentials the agent pulls the image with.
//
// A container with `tty` or `stdin` gets a TTYInfo: Mesos gives a container an I/O switchboard, the
// only way to attach to it (ATTACH_CONTAINER_INPUT/OUTPUT, `kubectl attach`), only with one
// (IOSwitchboard::requiresServer; LAUNCH_CONTAINER has no container class), and its switchboard then
// runs it on a pseudo-terminal. So a `stdin: true` container without `tty` sees a terminal too: its
// input is echoed and its lines end "\r\n", where a kubelet would give it pipes.
func ContainerInfo(c *corev1.Container, volumes []mesos.Volume, dockerConfig []byte, linux *mesos.LinuxInfo) *mesos.ContainerInfo {
	attachable := c.Stdin || c.TTY
	if c.Image == "" && len(volumes) == 0 && linux == nil && !attachable {
		return nil
	}
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Volumes: volumes, LinuxInfo: linux}
	if attachable {
		ci.TTYInfo = &mesos.TTYInfo{}
	}
	if c.Image != "" {
		img := &mesos.Image{
			Type:   mesos.Image_DOCKER.Enum(),
			Docker: &mesos.Image_Docker{Name: c.Image},
		}
		if imageconfig.PullPolicy(c) == corev1.PullAlways {
			// Mesos' docker store pulls again instead of using the image it has.
			cached := false
			img.Cached = &cached
		}
		if len(dockerConfig) > 0 {
			img.Docker.Config = &mesos.Secret{Type: mesos.Secret_VALUE, Value: &mesos.Secret_Value{Data: dockerConfig}}
		}
		ci.Mesos = &mesos.ContainerInfo_MesosInfo{Image: img}
	}
	return ci
}

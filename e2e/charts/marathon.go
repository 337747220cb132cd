package charts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// MarathonApp is the part of Marathon's AppDefinition (/v2/apps) that a framework package uses. Decoding
// with DecodeMarathonApp rejects any field outside it, so a misspelt field fails instead of being ignored.
type MarathonApp struct {
	ID                    string                    `json:"id"`
	Cmd                   *string                   `json:"cmd,omitempty"`
	Args                  []string                  `json:"args,omitempty"`
	User                  string                    `json:"user,omitempty"`
	Instances             *int                      `json:"instances,omitempty"`
	CPUs                  float64                   `json:"cpus"`
	Mem                   float64                   `json:"mem"`
	Disk                  float64                   `json:"disk"`
	Container             *MarathonContainer        `json:"container,omitempty"`
	Secrets               map[string]MarathonSecret `json:"secrets,omitempty"`
	Fetch                 []MarathonFetch           `json:"fetch,omitempty"`
	Networks              []MarathonNetwork         `json:"networks,omitempty"`
	PortDefinitions       []MarathonPortDefinition  `json:"portDefinitions,omitempty"`
	RequirePorts          bool                      `json:"requirePorts,omitempty"`
	Constraints           [][]string                `json:"constraints,omitempty"`
	Env                   map[string]MarathonEnv    `json:"env,omitempty"`
	HealthChecks          []MarathonHealthCheck     `json:"healthChecks,omitempty"`
	ReadinessChecks       []MarathonReadinessCheck  `json:"readinessChecks,omitempty"`
	UpgradeStrategy       *MarathonUpgradeStrategy  `json:"upgradeStrategy,omitempty"`
	Labels                map[string]string         `json:"labels,omitempty"`
	BackoffSeconds        *float64                  `json:"backoffSeconds,omitempty"`
	BackoffFactor         *float64                  `json:"backoffFactor,omitempty"`
	MaxLaunchDelaySeconds *float64                  `json:"maxLaunchDelaySeconds,omitempty"`
}

type MarathonContainer struct {
	Type    string           `json:"type"`
	Docker  *MarathonDocker  `json:"docker,omitempty"`
	Volumes []MarathonVolume `json:"volumes,omitempty"`
}

type MarathonDocker struct {
	Image          string `json:"image"`
	ForcePullImage bool   `json:"forcePullImage,omitempty"`
}

// MarathonVolume is a host path or a file-based secret volume.
type MarathonVolume struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath,omitempty"`
	Mode          string `json:"mode,omitempty"`
	Secret        string `json:"secret,omitempty"`
}

type MarathonSecret struct {
	Source string `json:"source"`
}

type MarathonFetch struct {
	URI        string `json:"uri"`
	Extract    bool   `json:"extract"`
	Executable bool   `json:"executable"`
	Cache      bool   `json:"cache"`
}

type MarathonNetwork struct {
	Mode string `json:"mode"`
	Name string `json:"name,omitempty"`
}

type MarathonPortDefinition struct {
	Port     int               `json:"port"`
	Protocol string            `json:"protocol,omitempty"`
	Name     string            `json:"name,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// MarathonEnv is an environment value: a string, or {"secret": "<name in secrets>"}.
type MarathonEnv struct {
	Value  string
	Secret string
}

func (e *MarathonEnv) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		return json.Unmarshal(data, &e.Value)
	}
	var ref struct {
		Secret string `json:"secret"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil {
		return fmt.Errorf("env value must be a string or {\"secret\": name}: %w", err)
	}
	e.Secret = ref.Secret
	return nil
}

func (e MarathonEnv) MarshalJSON() ([]byte, error) {
	if e.Secret != "" {
		return json.Marshal(map[string]string{"secret": e.Secret})
	}
	return json.Marshal(e.Value)
}

type MarathonHealthCheck struct {
	Protocol               string `json:"protocol"`
	Path                   string `json:"path,omitempty"`
	PortIndex              *int   `json:"portIndex,omitempty"`
	Port                   *int   `json:"port,omitempty"`
	Command                any    `json:"command,omitempty"`
	GracePeriodSeconds     int    `json:"gracePeriodSeconds,omitempty"`
	IntervalSeconds        int    `json:"intervalSeconds,omitempty"`
	TimeoutSeconds         int    `json:"timeoutSeconds,omitempty"`
	DelaySeconds           int    `json:"delaySeconds,omitempty"`
	MaxConsecutiveFailures int    `json:"maxConsecutiveFailures,omitempty"`
}

type MarathonReadinessCheck struct {
	Name                    string `json:"name"`
	Protocol                string `json:"protocol"`
	Path                    string `json:"path"`
	PortName                string `json:"portName"`
	IntervalSeconds         int    `json:"intervalSeconds,omitempty"`
	TimeoutSeconds          int    `json:"timeoutSeconds,omitempty"`
	HTTPStatusCodesForReady []int  `json:"httpStatusCodesForReady,omitempty"`
	PreserveLastResponse    bool   `json:"preserveLastResponse"`
}

type MarathonUpgradeStrategy struct {
	MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
	MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
}

// DecodeMarathonApp decodes one app definition, rejecting unknown fields.
func DecodeMarathonApp(data []byte) (*MarathonApp, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var app MarathonApp
	if err := dec.Decode(&app); err != nil {
		return nil, fmt.Errorf("decoding Marathon app: %w", err)
	}
	return &app, nil
}

var (
	// A Marathon path: segments of lowercase letters, digits, '-' and '.', not starting or ending in '-'.
	marathonIDSegment = regexp.MustCompile(`^(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$`)
	marathonPortName  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	envName           = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

var (
	healthProtocols    = []string{"HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP", "MESOS_COMMAND"}
	readinessProtocols = []string{"HTTP", "HTTPS"}
	constraintOps      = []string{"UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS"}
	networkModes       = []string{"host", "container", "container/bridge"}
)

// Validate checks the rules Marathon applies when an app is posted, for the fields MarathonApp has. It
// returns every violation, joined.
func (a *MarathonApp) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	id := strings.TrimPrefix(a.ID, "/")
	if id == "" {
		bad("id: required")
	}
	for _, seg := range strings.Split(id, "/") {
		if id != "" && !marathonIDSegment.MatchString(seg) {
			bad("id %q: segment %q must be lowercase letters, digits, '-' and '.'", a.ID, seg)
		}
	}
	if a.Cmd != nil && len(a.Args) > 0 {
		bad("cmd and args are mutually exclusive")
	}
	hasImage := a.Container != nil && a.Container.Docker != nil && a.Container.Docker.Image != ""
	if a.Cmd == nil && len(a.Args) == 0 && !hasImage {
		bad("one of cmd, args or a container image is required")
	}
	if len(a.Args) > 0 && !hasImage {
		bad("args without a container image have nothing to run")
	}
	if a.Instances != nil && *a.Instances < 0 {
		bad("instances %d: must be >= 0", *a.Instances)
	}
	if a.CPUs <= 0 {
		bad("cpus %v: must be > 0", a.CPUs)
	}
	if a.Mem < 0 || a.Disk < 0 {
		bad("mem %v / disk %v: must be >= 0", a.Mem, a.Disk)
	}

	usedSecrets := map[string]bool{}
	if c := a.Container; c != nil {
		if c.Type != "MESOS" && c.Type != "DOCKER" {
			bad("container.type %q: want MESOS or DOCKER", c.Type)
		}
		if c.Docker != nil && c.Docker.Image == "" {
			bad("container.docker.image: required")
		}
		seen := map[string]bool{}
		for i, v := range c.Volumes {
			if v.ContainerPath == "" {
				bad("container.volumes[%d].containerPath: required", i)
			}
			if seen[v.ContainerPath] {
				bad("container.volumes[%d].containerPath %q: used twice", i, v.ContainerPath)
			}
			seen[v.ContainerPath] = true
			if (v.HostPath == "") == (v.Secret == "") {
				bad("container.volumes[%d]: exactly one of hostPath or secret", i)
			}
			if v.Secret != "" {
				usedSecrets[v.Secret] = true
				if _, ok := a.Secrets[v.Secret]; !ok {
					bad("container.volumes[%d].secret %q: not defined in secrets", i, v.Secret)
				}
			}
			if v.HostPath != "" && v.Mode != "RO" && v.Mode != "RW" {
				bad("container.volumes[%d].mode %q: want RO or RW", i, v.Mode)
			}
		}
	}
	for name, s := range a.Secrets {
		if s.Source == "" {
			bad("secrets.%s.source: required", name)
		}
	}
	for name, e := range a.Env {
		if !envName.MatchString(name) {
			bad("env %q: not a valid variable name", name)
		}
		if e.Secret != "" {
			usedSecrets[e.Secret] = true
			if _, ok := a.Secrets[e.Secret]; !ok {
				bad("env %s: secret %q not defined in secrets", name, e.Secret)
			}
		}
	}
	for name := range a.Secrets {
		if !usedSecrets[name] {
			bad("secrets.%s: defined but never used", name)
		}
	}
	for i, f := range a.Fetch {
		if f.URI == "" {
			bad("fetch[%d].uri: required", i)
		}
	}

	hostNetwork := len(a.Networks) == 0
	for i, n := range a.Networks {
		if !slices.Contains(networkModes, n.Mode) {
			bad("networks[%d].mode %q: want one of %v", i, n.Mode, networkModes)
		}
		if n.Mode == "host" {
			hostNetwork = true
		}
	}
	if len(a.Networks) > 1 && hostNetwork {
		bad("networks: host networking excludes other networks")
	}
	portNames := map[string]bool{}
	for i, p := range a.PortDefinitions {
		if !hostNetwork {
			bad("portDefinitions need host networking")
		}
		if p.Port < 0 || p.Port > 65535 {
			bad("portDefinitions[%d].port %d: out of range", i, p.Port)
		}
		switch p.Protocol {
		case "", "tcp", "udp", "udp,tcp":
		default:
			bad("portDefinitions[%d].protocol %q: want tcp, udp or udp,tcp", i, p.Protocol)
		}
		if p.Name != "" {
			if !marathonPortName.MatchString(p.Name) {
				bad("portDefinitions[%d].name %q: invalid", i, p.Name)
			}
			if portNames[p.Name] {
				bad("portDefinitions[%d].name %q: used twice", i, p.Name)
			}
			portNames[p.Name] = true
		}
	}
	if a.RequirePorts && len(a.PortDefinitions) == 0 {
		bad("requirePorts without portDefinitions")
	}
	for i, c := range a.Constraints {
		if len(c) < 2 || len(c) > 3 {
			bad("constraints[%d] %v: want [field, operator(, value)]", i, c)
			continue
		}
		if !slices.Contains(constraintOps, c[1]) {
			bad("constraints[%d] operator %q: want one of %v", i, c[1], constraintOps)
		}
	}
	for i, h := range a.HealthChecks {
		if !slices.Contains(healthProtocols, h.Protocol) {
			bad("healthChecks[%d].protocol %q: want one of %v", i, h.Protocol, healthProtocols)
		}
		isHTTP := strings.Contains(h.Protocol, "HTTP")
		if isHTTP && !strings.HasPrefix(h.Path, "/") {
			bad("healthChecks[%d].path %q: an HTTP check needs an absolute path", i, h.Path)
		}
		if strings.HasSuffix(h.Protocol, "COMMAND") {
			if h.Command == nil {
				bad("healthChecks[%d]: a COMMAND check needs command", i)
			}
			continue
		}
		switch {
		case h.PortIndex != nil && h.Port != nil:
			bad("healthChecks[%d]: portIndex and port are mutually exclusive", i)
		case h.PortIndex != nil && (*h.PortIndex < 0 || *h.PortIndex >= len(a.PortDefinitions)):
			bad("healthChecks[%d].portIndex %d: the app has %d port(s)", i, *h.PortIndex, len(a.PortDefinitions))
		case h.PortIndex == nil && h.Port == nil && len(a.PortDefinitions) == 0:
			bad("healthChecks[%d]: no port to check", i)
		}
		if h.TimeoutSeconds > 0 && h.IntervalSeconds > 0 && h.TimeoutSeconds >= h.IntervalSeconds {
			bad("healthChecks[%d]: timeoutSeconds %d must be shorter than intervalSeconds %d", i, h.TimeoutSeconds, h.IntervalSeconds)
		}
	}
	for i, r := range a.ReadinessChecks {
		if !slices.Contains(readinessProtocols, r.Protocol) {
			bad("readinessChecks[%d].protocol %q: want HTTP or HTTPS", i, r.Protocol)
		}
		if !strings.HasPrefix(r.Path, "/") {
			bad("readinessChecks[%d].path %q: must be absolute", i, r.Path)
		}
		if !portNames[r.PortName] {
			bad("readinessChecks[%d].portName %q: no port definition has that name", i, r.PortName)
		}
		if r.TimeoutSeconds > 0 && r.IntervalSeconds > 0 && r.TimeoutSeconds >= r.IntervalSeconds {
			bad("readinessChecks[%d]: timeoutSeconds must be shorter than intervalSeconds", i)
		}
	}
	if u := a.UpgradeStrategy; u != nil {
		if u.MinimumHealthCapacity < 0 || u.MinimumHealthCapacity > 1 || u.MaximumOverCapacity < 0 || u.MaximumOverCapacity > 1 {
			bad("upgradeStrategy: capacities must be within [0, 1]")
		}
	}
	return errors.Join(errs...)
}

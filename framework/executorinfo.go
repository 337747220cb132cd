package framework

import (
	"maps"
	"slices"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// ExecutorShutdownGracePeriod is how long the agent lets the executor terminate its pods on SHUTDOWN
// before killing it. An agent's own default (--executor_shutdown_grace_period) is 5 s, far shorter than a
// pod's default 30 s grace period; the earlier bridge lost graceful termination to it. A constant, so
// that it never changes the executor's identity.
const ExecutorShutdownGracePeriod = 2 * time.Minute

// ExecutorSettings are the only inputs of the executor's identity (lesson #572 of the earlier bridge:
// never derive it from scheduler flags).
type ExecutorSettings struct {
	URI        string
	Kubeconfig string
	LogLevel   string
	// Env are the executor's own settings as KUBEMESOS_<FLAG> variables (--executor-env); they win
	// over LogLevel's KUBEMESOS_LOG_LEVEL.
	Env   map[string]string
	CPUs  float64
	MemMB float64
	// SandboxURI, when set, replaces the URI in the pods' sandbox executors: a cacheable one.
	SandboxURI *mesos.CommandInfo_URI
}

// The executor variables the framework sets from its own flags.
const (
	executorLogLevelVar   = "KUBEMESOS_LOG_LEVEL"
	executorKubeconfigVar = "KUBEMESOS_KUBECONFIG"
)

// NewExecutorInfo builds the ExecutorInfo of the kubemesos executor: CUSTOM, fetching the kubemesos
// binary from URI as an executable named kubemesos and running `./kubemesos executor` in the sandbox.
// Its resources carry no role: the launcher allocates them from an offer (see withExecutorResources).
func NewExecutorInfo(s ExecutorSettings) mesos.ExecutorInfo {
	shell := true
	executable, extract, cache := true, false, false
	output := "kubemesos"
	value := "./kubemesos executor"
	logLevel := s.LogLevel
	if v, ok := s.Env[executorLogLevelVar]; ok {
		logLevel = v
	}
	env := []mesos.Environment_Variable{envVar(executorLogLevelVar, logLevel)}
	if s.Kubeconfig != "" {
		env = append(env, envVar(executorKubeconfigVar, s.Kubeconfig))
	}
	// Sorted: the same settings must make the same ExecutorInfo (map order is random).
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if k != executorLogLevelVar && k != executorKubeconfigVar {
			env = append(env, envVar(k, s.Env[k]))
		}
	}
	name := "kubemesos executor"
	return mesos.ExecutorInfo{
		Type:       mesos.ExecutorInfo_CUSTOM,
		ExecutorID: mesos.ExecutorID{Value: ExecutorID},
		Name:       &name,
		Command: &mesos.CommandInfo{
			URIs: []mesos.CommandInfo_URI{{
				Value: s.URI, Executable: &executable, Extract: &extract, Cache: &cache, OutputFile: &output,
			}},
			Shell:       &shell,
			Value:       &value,
			Environment: &mesos.Environment{Variables: env},
		},
		Resources:           []mesos.Resource{scalar("cpus", s.CPUs), scalar("mem", s.MemMB)},
		ShutdownGracePeriod: &mesos.DurationInfo{Nanoseconds: int64(ExecutorShutdownGracePeriod)},
	}
}

func envVar(name, value string) mesos.Environment_Variable {
	v := value
	return mesos.Environment_Variable{Name: name, Value: &v}
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

package podtranslate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Task labels (docs/design.md): they let anyone reading Mesos state find the pod of a task.
const (
	LabelNamespace = "kubemesos.io/namespace"
	LabelName      = "kubemesos.io/name"
	LabelUID       = "kubemesos.io/uid"
	// LabelPodPhase may be set by the executor on the TaskStatus of a terminal update to the phase it
	// wrote (Succeeded or Failed), so that TASK_KILLED maps to the same phase (see PodStatusForTask).
	LabelPodPhase = "kubemesos.io/phase"
)

// TaskIDPrefix starts every kubemesos TaskID.
const TaskIDPrefix = "pod-"

// TaskID is the Mesos task ID of a pod: pod-<uid>. A pod's UID never repeats, so one pod can never be
// two live tasks.
func TaskID(pod *corev1.Pod) mesos.TaskID {
	return mesos.TaskID{Value: TaskIDPrefix + string(pod.UID)}
}

// PodUID recovers the pod UID from a kubemesos TaskID (for TaskStatus updates, which carry no pod
// labels: PodUID(status.TaskID)).
func PodUID(id mesos.TaskID) (types.UID, error) {
	uid, ok := strings.CutPrefix(id.Value, TaskIDPrefix)
	if !ok || uid == "" {
		return "", fmt.Errorf("task %q is not a kubemesos pod task", id.Value)
	}
	return types.UID(uid), nil
}

// Ref identifies the pod of a task.
type Ref struct {
	Namespace string
	Name      string
	UID       types.UID
}

// String is <namespace>/<name>, the task name.
func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// RefOf returns the pod's Ref.
func RefOf(pod *corev1.Pod) Ref {
	return Ref{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
}

// PodRefFromLabels reads the kubemesos.io/* labels of a task.
func PodRefFromLabels(l *mesos.Labels) (Ref, error) {
	var r Ref
	for _, lb := range l.GetLabels() {
		switch lb.Key {
		case LabelNamespace:
			r.Namespace = lb.GetValue()
		case LabelName:
			r.Name = lb.GetValue()
		case LabelUID:
			r.UID = types.UID(lb.GetValue())
		}
	}
	if r.Namespace == "" || r.Name == "" || r.UID == "" {
		return Ref{}, fmt.Errorf("task labels lack %s, %s or %s", LabelNamespace, LabelName, LabelUID)
	}
	return r, nil
}

// PodRef recovers the pod of a TaskInfo from its labels, checking them against the TaskID.
func PodRef(task mesos.TaskInfo) (Ref, error) {
	r, err := PodRefFromLabels(task.Labels)
	if err != nil {
		return Ref{}, fmt.Errorf("task %s: %w", task.TaskID.Value, err)
	}
	uid, err := PodUID(task.TaskID)
	if err != nil {
		return Ref{}, err
	}
	if uid != r.UID {
		return Ref{}, fmt.Errorf("task %s: label %s=%s does not match the task ID", task.TaskID.Value, LabelUID, r.UID)
	}
	return r, nil
}

// TaskInfo builds the Mesos task of a pod placed on agentID: TaskID pod-<uid>, name <ns>/<name>, the
// kubemesos.io labels, res (already carved from an offer by the placement code), the executor, the pod
// as JSON in data (see TaskData) and a kill policy with the pod's terminationGracePeriodSeconds.
// Nothing given is modified; the result shares nothing with the arguments. It is Options{}.TaskInfo
// (host mode).
func TaskInfo(pod *corev1.Pod, agentID mesos.AgentID, executor mesos.ExecutorInfo, res mesos.Resources) (mesos.TaskInfo, error) {
	return Options{}.TaskInfo(pod, agentID, executor, res)
}

// TaskInfo is the package's TaskInfo with these options: a pod that joins a CNI network (see
// Options.NetworkOf) also gets the label LabelPodNetwork naming it and LabelSandboxExecutor naming its
// sandbox executor (see SandboxExecutorInfo); its res is then only PodTaskDemand, the pod's resources
// being its sandbox task's.
func (o Options) TaskInfo(pod *corev1.Pod, agentID mesos.AgentID, executor mesos.ExecutorInfo, res mesos.Resources) (mesos.TaskInfo, error) {
	if pod == nil {
		return mesos.TaskInfo{}, errors.New("nil pod")
	}
	if pod.Namespace == "" || pod.Name == "" || pod.UID == "" {
		return mesos.TaskInfo{}, fmt.Errorf("pod %s/%s: namespace, name and uid are required", pod.Namespace, pod.Name)
	}
	if agentID.Value == "" {
		return mesos.TaskInfo{}, fmt.Errorf("pod %s/%s: empty agent ID", pod.Namespace, pod.Name)
	}
	if len(res) == 0 {
		// Mesos would answer TASK_ERROR "Task uses no resources".
		return mesos.TaskInfo{}, fmt.Errorf("pod %s/%s: no resources", pod.Namespace, pod.Name)
	}
	if executor.ExecutorID.Value == "" {
		return mesos.TaskInfo{}, fmt.Errorf("pod %s/%s: executor without ID", pod.Namespace, pod.Name)
	}
	data, err := TaskData(pod)
	if err != nil {
		return mesos.TaskInfo{}, err
	}
	ref := RefOf(pod)
	exec := proto.Clone(&executor).(*mesos.ExecutorInfo)
	labels := []mesos.Label{
		label(LabelNamespace, ref.Namespace),
		label(LabelName, ref.Name),
		label(LabelUID, string(ref.UID)),
	}
	var limits map[string]mesos.Value_Scalar
	if network := o.NetworkOf(pod); network != "" {
		labels = append(labels, label(LabelPodNetwork, network), label(LabelSandboxExecutor, SandboxExecutorID(pod.UID).Value))
	} else {
		limits = o.TaskLimits(pod, res) // on a sandbox, the sandbox task carries them
	}
	return mesos.TaskInfo{
		Name:       ref.String(),
		TaskID:     TaskID(pod),
		AgentID:    mesos.AgentID{Value: agentID.Value},
		Resources:  res.Clone(),
		Limits:     limits,
		Executor:   exec,
		KillPolicy: KillPolicy(gracePeriod(pod.Spec.TerminationGracePeriodSeconds)),
		Data:       data,
		Labels:     &mesos.Labels{Labels: labels},
	}, nil
}

func label(k, v string) mesos.Label { return mesos.Label{Key: k, Value: &v} }

// KillPolicy is a Mesos kill policy with the given grace period (negative counts as zero).
func KillPolicy(grace time.Duration) *mesos.KillPolicy {
	return &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: max(grace, 0).Nanoseconds()}}
}

// DeletionKillPolicy is the kill policy for KILLing the task of a deleted pod: the deletion's grace
// period (metadata.deletionGracePeriodSeconds) when set, else the pod's terminationGracePeriodSeconds.
func DeletionKillPolicy(pod *corev1.Pod) *mesos.KillPolicy {
	if s := pod.DeletionGracePeriodSeconds; s != nil {
		return KillPolicy(gracePeriod(s))
	}
	return KillPolicy(gracePeriod(pod.Spec.TerminationGracePeriodSeconds))
}

// gracePeriod defaults like the API server (30 s) when unset.
func gracePeriod(seconds *int64) time.Duration {
	if seconds == nil {
		return corev1.DefaultTerminationGracePeriodSeconds * time.Second
	}
	return time.Duration(max(*seconds, 0)) * time.Second
}

// TaskData is the pod as carried in TaskInfo.data: JSON with apiVersion v1 and kind Pod, without
// metadata.managedFields and status (the executor owns the status; both only make the task bigger).
func TaskData(pod *corev1.Pod) ([]byte, error) {
	p := pod.DeepCopy()
	p.APIVersion, p.Kind = "v1", "Pod"
	p.ManagedFields = nil
	p.Status = corev1.PodStatus{}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return b, nil
}

// PodFromTaskData decodes TaskInfo.data. Unknown fields are ignored (a newer framework may send fields
// an older executor does not know); a kind or apiVersion other than Pod/v1, or a pod without
// namespace, name or uid, is an error.
func PodFromTaskData(data []byte) (*corev1.Pod, error) {
	if len(data) == 0 {
		return nil, errors.New("decoding task data: empty")
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(data, pod); err != nil {
		return nil, fmt.Errorf("decoding task data: %w", err)
	}
	if (pod.Kind != "" && pod.Kind != "Pod") || (pod.APIVersion != "" && pod.APIVersion != "v1") {
		return nil, fmt.Errorf("decoding task data: got %s %s, want v1 Pod", pod.APIVersion, pod.Kind)
	}
	if pod.Namespace == "" || pod.Name == "" || pod.UID == "" {
		return nil, errors.New("decoding task data: pod namespace, name and uid are required")
	}
	return pod, nil
}

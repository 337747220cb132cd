package framework

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// State is what the framework must remember across restarts and failovers: the FrameworkID Mesos
// assigned (so a restarted framework resumes instead of orphaning its tasks) and the ExecutorInfo in use
// on each agent (so a running executor is never made "incompatible" by changed flags).
type State struct {
	FrameworkID string
	// FormerFrameworkIDs are FrameworkIDs Mesos removed the framework under (failover timeout passed,
	// teardown), newest last: Nodes marked with them are still the framework's.
	FormerFrameworkIDs []string
	// Executors maps agent ID to the ExecutorInfo last launched there.
	Executors map[string]mesos.ExecutorInfo
}

// StateStore loads and saves State.
type StateStore interface {
	Load(ctx context.Context) (State, error)
	Save(ctx context.Context, s State) error
}

const (
	frameworkIDKey        = "frameworkID"
	formerFrameworkIDsKey = "formerFrameworkIDs"
	executorsKey          = "executors"
	executorInfoKeyPrefix = "executorinfo."
	// legacyExecutorKeyPrefix is the one entry per agent that stores before issue 13 wrote; still read.
	legacyExecutorKeyPrefix = "executor."
)

// ConfigMapStore keeps State in the ConfigMap kubemesos-framework: data.frameworkID,
// data.formerFrameworkIDs (one per line), data.executors ("<agentID> <digest>" per line, sorted) and
// one binaryData entry "executorinfo.<digest>" per distinct protobuf ExecutorInfo. Agents share one
// ExecutorInfo unless the framework's executor settings changed while they ran, so a state of 5,000
// agents takes ~300 KB instead of one copy per agent, which passed a ConfigMap's 1 MiB at a few
// thousand agents (issue 13's 5,000-agent run).
type ConfigMapStore struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
}

var _ StateStore = (*ConfigMapStore)(nil)

// Load returns the stored state, or an empty State when the ConfigMap does not exist.
func (s *ConfigMapStore) Load(ctx context.Context) (State, error) {
	cm, err := s.Client.CoreV1().ConfigMaps(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return State{Executors: map[string]mesos.ExecutorInfo{}}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("reading state ConfigMap %s/%s: %w", s.Namespace, s.Name, err)
	}
	return decodeState(cm)
}

func decodeState(cm *corev1.ConfigMap) (State, error) {
	st := State{FrameworkID: cm.Data[frameworkIDKey], Executors: map[string]mesos.ExecutorInfo{}}
	for _, id := range strings.Split(cm.Data[formerFrameworkIDsKey], "\n") {
		if id != "" {
			st.FormerFrameworkIDs = append(st.FormerFrameworkIDs, id)
		}
	}
	decode := func(key string) (mesos.ExecutorInfo, error) {
		var info mesos.ExecutorInfo
		b, ok := cm.BinaryData[key]
		if !ok {
			return info, fmt.Errorf("state ConfigMap %s/%s has no %s", cm.Namespace, cm.Name, key)
		}
		if err := info.Unmarshal(b); err != nil {
			return info, fmt.Errorf("decoding %s of state ConfigMap %s/%s: %w", key, cm.Namespace, cm.Name, err)
		}
		return info, nil
	}
	for k := range cm.BinaryData {
		if agent, ok := strings.CutPrefix(k, legacyExecutorKeyPrefix); ok {
			info, err := decode(k)
			if err != nil {
				return State{}, err
			}
			st.Executors[agent] = info
		}
	}
	for _, line := range strings.Split(cm.Data[executorsKey], "\n") {
		if line == "" {
			continue
		}
		agent, digest, ok := strings.Cut(line, " ")
		if !ok {
			return State{}, fmt.Errorf("state ConfigMap %s/%s: malformed %s line %q", cm.Namespace, cm.Name, executorsKey, line)
		}
		// Decoded per agent: agents sharing a stored ExecutorInfo must not share its pointers.
		info, err := decode(executorInfoKeyPrefix + digest)
		if err != nil {
			return State{}, err
		}
		st.Executors[agent] = info
	}
	return st, nil
}

// encodeExecutors returns data.executors and the binaryData entries of the agents' ExecutorInfos,
// each distinct one stored once under its digest.
func encodeExecutors(executors map[string]mesos.ExecutorInfo) (string, map[string][]byte, error) {
	bin := map[string][]byte{}
	var lines []string
	for _, agent := range slices.Sorted(maps.Keys(executors)) {
		info := executors[agent]
		b, err := info.Marshal()
		if err != nil {
			return "", nil, fmt.Errorf("encoding executor info of agent %s: %w", agent, err)
		}
		sum := sha256.Sum256(b)
		digest := hex.EncodeToString(sum[:8])
		bin[executorInfoKeyPrefix+digest] = b
		lines = append(lines, agent+" "+digest)
	}
	return strings.Join(lines, "\n"), bin, nil
}

// Save replaces the stored state (creating the ConfigMap when needed), retrying on conflicts.
func (s *ConfigMapStore) Save(ctx context.Context, st State) error {
	data := map[string]string{}
	if st.FrameworkID != "" {
		data[frameworkIDKey] = st.FrameworkID
	}
	if len(st.FormerFrameworkIDs) > 0 {
		data[formerFrameworkIDsKey] = strings.Join(st.FormerFrameworkIDs, "\n")
	}
	executors, bin, err := encodeExecutors(st.Executors)
	if err != nil {
		return err
	}
	if executors != "" {
		data[executorsKey] = executors
	}
	cms := s.Client.CoreV1().ConfigMaps(s.Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, s.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace,
					Labels: map[string]string{"app.kubernetes.io/name": "kubemesos"}},
				Data: data, BinaryData: bin,
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), s.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if maps.Equal(cm.Data, data) && equalBinary(cm.BinaryData, bin) {
			return nil
		}
		cm = cm.DeepCopy()
		cm.Data, cm.BinaryData = data, bin
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("writing state ConfigMap %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

func equalBinary(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

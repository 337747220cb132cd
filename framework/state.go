package framework

import (
	"context"
	"fmt"
	"maps"
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
	executorKeyPrefix     = "executor."
)

// ConfigMapStore keeps State in the ConfigMap kubemesos-framework: data.frameworkID,
// data.formerFrameworkIDs (one per line), and one binaryData entry "executor.<agentID>" holding the
// protobuf ExecutorInfo per agent.
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
	for k, v := range cm.BinaryData {
		agent, ok := strings.CutPrefix(k, executorKeyPrefix)
		if !ok {
			continue
		}
		var info mesos.ExecutorInfo
		if err := info.Unmarshal(v); err != nil {
			return State{}, fmt.Errorf("decoding %s of state ConfigMap %s/%s: %w", k, cm.Namespace, cm.Name, err)
		}
		st.Executors[agent] = info
	}
	return st, nil
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
	bin := map[string][]byte{}
	for agent, info := range st.Executors {
		b, err := info.Marshal()
		if err != nil {
			return fmt.Errorf("encoding executor info of agent %s: %w", agent, err)
		}
		bin[executorKeyPrefix+agent] = b
	}
	cms := s.Client.CoreV1().ConfigMaps(s.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
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

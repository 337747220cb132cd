package executor

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// TestKubeletAPIServed: with --kubelet-address the executor serves the kubelet API, publishes its
// port on its Node once SUBSCRIBED, answers /healthz and refuses unauthenticated log requests.
func TestKubeletAPIServed(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	kube := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent0"}})
	master := &fakeMaster{}
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4}})
	done := make(chan error, 1)
	a, err := agent.New(agent.Config{
		ID: mesos.AgentID{Value: "agent-S0"}, Hostname: "agent0", Resources: res, WorkDir: t.TempDir(),
		Master: master, Log: log, ExecutorShutdownGracePeriod: 5 * time.Second,
		ExecutorHook: func(ctx context.Context, vars map[string]string) error {
			err := Run(ctx, Config{Getenv: func(k string) string { return vars[k] }, KubeClient: kube, Log: log,
				ShutdownMargin: time.Second, StatusFlushTimeout: time.Second, KubeletAddress: "127.0.0.1:0"})
			done <- err
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	master.mu.Lock()
	master.agent = a
	master.mu.Unlock()
	t.Cleanup(a.Stop)
	fid := mesos.FrameworkID{Value: "fw-1"}
	checkpoint := true
	fw := mesos.FrameworkInfo{ID: &fid, Name: "kubemesos", User: "root", Checkpoint: &checkpoint}
	exec := mesos.ExecutorInfo{Type: mesos.ExecutorInfo_CUSTOM, ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"},
		FrameworkID: &fid, Command: &mesos.CommandInfo{Value: strPtr("./kubemesos executor")}}
	pod := shPod("web", corev1.RestartPolicyNever, 30, "echo hi; sleep 600")
	if _, err := kube.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var taskRes mesos.Resources
	taskRes.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.1}})
	ti, err := podtranslate.TaskInfo(pod, a.ID(), exec, taskRes)
	if err != nil {
		t.Fatal(err)
	}
	a.Launch(fw, &exec, []mesos.TaskInfo{ti}, false)

	var port int32
	waitFor(t, "the kubelet port on the Node", func() bool {
		n, err := kube.CoreV1().Nodes().Get(context.Background(), "agent0", metav1.GetOptions{})
		port = n.Status.DaemonEndpoints.KubeletEndpoint.Port
		return err == nil && port != 0
	})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/containerLogs/default/web/main": http.StatusUnauthorized} {
		resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d%s", port, path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	a.ShutdownExecutor(fid, exec.ExecutorID)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the executor did not stop")
	}
}

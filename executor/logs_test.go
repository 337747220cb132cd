package executor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	authenticationv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// TestLogsTailOnTheSimulatedAgent: the simulated agent writes the Mesos launcher's lines into the
// stderr of a container with an image, as Mesos does; `kubectl logs --tail=5` (tailLines=5 at the
// executor's kubelet API) returns the five newest lines the container wrote, and no launcher line
// shows in its logs.
func TestLogsTailOnTheSimulatedAgent(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	kube := withReviews(t, fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent0"}}))
	master := &fakeMaster{}
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4}})
	done := make(chan error, 1)
	workDir := t.TempDir()
	a, err := agent.New(agent.Config{
		ID: mesos.AgentID{Value: "agent-S0"}, Hostname: "agent0", Resources: res, WorkDir: workDir,
		Master: master, Log: log, ExecutorShutdownGracePeriod: 5 * time.Second,
		ImageCommands: map[string]string{"*": "sleep 3600"},
		ExecutorHook: func(ctx context.Context, vars map[string]string) error {
			// The default --kubelet-address: the agent's IP (the simulated agent's is 127.0.0.1).
			err := Run(ctx, Config{Getenv: func(k string) string { return vars[k] }, KubeClient: kube, Log: log,
				ShutdownMargin: time.Second, StatusFlushTimeout: time.Second, KubeletAddress: DefaultConfig().KubeletAddress})
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
	pod := shPod("web", corev1.RestartPolicyNever, 30, `for i in $(seq 1 20); do echo line$i; done; sleep 600`)
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
	logs := func(query string) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/containerLogs/default/web/main%s", port, query), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("HTTP %d: %s", resp.StatusCode, b)
		}
		return string(b)
	}
	var all string
	waitFor(t, "the container's 20 lines in its log", func() bool {
		all = logs("")
		return strings.Contains(all, "line20\n")
	})

	// Mesos' launcher lines are in the container's stderr file...
	ex := a.Executors()
	if len(ex) != 1 {
		t.Fatalf("%d executors", len(ex))
	}
	// A host-network pod's containers are nested under the executor's container, in its sandbox.
	stderr, err := os.ReadFile(filepath.Join(ex[0].Directory, "containers", nested.ContainerID(pod, &pod.Spec.Containers[0], 0), "stderr"))
	if err != nil || !strings.Contains(string(stderr), "Marked '/' as rslave\n") {
		t.Fatalf("the simulated agent wrote no launcher line to the container's stderr: %q, %v", stderr, err)
	}
	// ...and not in its logs.
	var want strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&want, "line%d\n", i)
	}
	if all != want.String() {
		t.Errorf("logs = %q, want the container's 20 lines only", all)
	}
	if got := logs("?tailLines=5"); got != "line16\nline17\nline18\nline19\nline20\n" {
		t.Errorf("tailLines=5: %q, want the five newest lines", got)
	}

	a.ShutdownExecutor(fid, exec.ExecutorID)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the executor did not stop")
	}
}

// reviewingClient is a fake clientset whose TokenReviews and SubjectAccessReviews go to an HTTP
// server (the webhook authenticator and authorizer need a REST client, which the fake has not).
type reviewingClient struct {
	*fake.Clientset
	reviews kubernetes.Interface
}

func (c reviewingClient) AuthenticationV1() authenticationv1client.AuthenticationV1Interface {
	return c.reviews.AuthenticationV1()
}

func (c reviewingClient) AuthorizationV1() authorizationv1client.AuthorizationV1Interface {
	return c.reviews.AuthorizationV1()
}

// withReviews answers TokenReviews ("admin-token" is user admin) and SubjectAccessReviews (admin may).
func withReviews(t *testing.T, cs *fake.Clientset) kubernetes.Interface {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/apis/authentication.k8s.io/v1/tokenreviews":
			var tr authenticationv1.TokenReview
			if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: tr.Spec.Token == "admin-token",
				User: authenticationv1.UserInfo{Username: "admin"}}
			_ = json.NewEncoder(w).Encode(&tr)
		case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
			var sar authorizationv1.SubjectAccessReview
			if err := json.NewDecoder(r.Body).Decode(&sar); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			sar.Status.Allowed = sar.Spec.User == "admin"
			_ = json.NewEncoder(w).Encode(&sar)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(api.Close)
	reviews, err := kubernetes.NewForConfig(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	return reviewingClient{Clientset: cs, reviews: reviews}
}

// TestTaskEndedLogsReasonOnlyWhenSet: a terminal update without a reason is not logged with the
// enum's zero value (REASON_COMMAND_EXECUTOR_FAILED).
func TestTaskEndedLogsReasonOnlyWhenSet(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	e := &executorLoop{mcfg: config.Config{ExecutorID: "kubemesos-executor"}, clock: testingclock.NewFakeClock(time.Now()), log: log}
	for _, reason := range []*mesos.TaskStatus_Reason{nil, mesos.REASON_TASK_INVALID.Enum()} {
		hook.Reset()
		tk := &task{info: mesos.TaskInfo{TaskID: mesos.TaskID{Value: "pod-1"}}, log: log}
		e.finish(context.Background(), tk, mesos.TASK_FAILED, reason, "", nil, corev1.PodFailed)
		entry := hook.LastEntry()
		if entry == nil || entry.Message != "task ended" {
			t.Fatalf("last log entry %v, want the task's end", entry)
		}
		got, logged := entry.Data["reason"]
		switch {
		case reason == nil && logged:
			t.Errorf("no reason: logged reason=%v", got)
		case reason != nil && got != reason.String():
			t.Errorf("reason %s: logged reason=%v", reason, got)
		}
	}
}

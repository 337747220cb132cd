package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// podSummary is what the test expects of each pod the controllers create.
type podSummary struct {
	OwnerKind, OwnerName string
	Phase                corev1.PodPhase
	NodeName             string
}

// TestControllersCreatePendingPods: a Deployment and a Job created through the real API server make
// the controller-manager create a ReplicaSet and Pods; nothing schedules them, so they stay Pending
// on no node.
func TestControllersCreatePendingPods(t *testing.T) {
	cp := controlPlane(t)
	ns := cp.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	labels := map[string]string{"app": "web"}
	dep, err := cp.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	job, err := cp.Client.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "once"},
		Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "once", Image: "busybox", Command: []string{"true"}}},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating job: %v", err)
	}

	// The ReplicaSet the deployment controller creates.
	var rs appsv1.ReplicaSet
	poll(ctx, t, "a ReplicaSet owned by deployment web", func(ctx context.Context) (bool, error) {
		list, err := cp.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, r := range list.Items {
			if owner := metav1.GetControllerOf(&r); owner != nil && owner.UID == dep.UID {
				rs = r
				return true, nil
			}
		}
		return false, nil
	})

	want := []podSummary{
		{OwnerKind: "Job", OwnerName: job.Name, Phase: corev1.PodPending},
		{OwnerKind: "ReplicaSet", OwnerName: rs.Name, Phase: corev1.PodPending},
		{OwnerKind: "ReplicaSet", OwnerName: rs.Name, Phase: corev1.PodPending},
	}
	var got []podSummary
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		pods, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		got = summarize(pods.Items)
		return cmp.Equal(want, got), nil
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pods (-want +got) (wait: %v):\n%s", err, diff)
	}

	// The controllers also report what they did.
	poll(ctx, t, "deployment and job status", func(ctx context.Context) (bool, error) {
		d, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, dep.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		j, err := cp.Client.BatchV1().Jobs(ns).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.Replicas == 2 && d.Status.ReadyReplicas == 0 && j.Status.Active == 1, nil
	})
}

func summarize(pods []corev1.Pod) []podSummary {
	var out []podSummary
	for _, p := range pods {
		s := podSummary{Phase: p.Status.Phase, NodeName: p.Spec.NodeName}
		if owner := metav1.GetControllerOf(&p); owner != nil {
			s.OwnerKind, s.OwnerName = owner.Kind, owner.Name
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b podSummary) int {
		return strings.Compare(a.OwnerKind+"/"+a.OwnerName, b.OwnerKind+"/"+b.OwnerName)
	})
	return out
}

// TestIdentities: kubeconfigs for a ServiceAccount (TokenRequest) and for a client-CA-signed user
// authenticate as those identities, and RBAC, not the admin's rights, decides what they may do.
func TestIdentities(t *testing.T) {
	cp := controlPlane(t)
	ns := cp.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if _, err := cp.Client.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kubemesos"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating serviceaccount: %v", err)
	}
	saConfig, saPath, err := cp.ServiceAccountKubeconfig(ctx, ns, "kubemesos", 0)
	if err != nil {
		t.Fatal(err)
	}
	if saPath == "" {
		t.Error("no kubeconfig path for the serviceaccount")
	}
	userConfig, _, err := cp.UserKubeconfig("alice", "developers")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		config     *rest.Config
		wantUser   string
		wantGroups []string
	}{
		{
			name:       "serviceaccount token",
			config:     saConfig,
			wantUser:   "system:serviceaccount:" + ns + ":kubemesos",
			wantGroups: []string{"system:authenticated", "system:serviceaccounts", "system:serviceaccounts:" + ns},
		},
		{
			name:       "client certificate",
			config:     userConfig,
			wantUser:   "alice",
			wantGroups: []string{"developers", "system:authenticated"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := kubernetes.NewForConfigOrDie(tt.config)
			review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("whoami: %v", err)
			}
			groups := slices.Sorted(slices.Values(review.Status.UserInfo.Groups))
			if diff := cmp.Diff([]string{tt.wantUser}, []string{review.Status.UserInfo.Username}); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantGroups, groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}

			// Not allowed until a RoleBinding says so.
			_, err = client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if !apierrors.IsForbidden(err) {
				t.Fatalf("listing pods without a role: err = %v, want Forbidden", err)
			}
			subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: tt.wantUser}
			bindPodReader(ctx, t, cp.Client, ns, subject)
			poll(ctx, t, "RBAC to allow listing pods", func(ctx context.Context) (bool, error) {
				_, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if apierrors.IsForbidden(err) {
					return false, nil
				}
				return err == nil, err
			})
		})
	}
}

func bindPodReader(ctx context.Context, t *testing.T, admin kubernetes.Interface, ns string, subject rbacv1.Subject) {
	t.Helper()
	name := "pod-reader-" + strings.NewReplacer(":", "-").Replace(subject.Name)
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating role: %v", err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{subject},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating rolebinding: %v", err)
	}
}

// TestNodeLifecycleController: a Node that never reports status is marked Ready=Unknown and tainted
// unreachable (NoSchedule) by kube-controller-manager's node lifecycle controller — what will happen
// to a kubemesos Node whose agent goes silent. (The NoExecute taint that evicts pods is only added
// while some Node is healthy: with every Node not ready the controller enters "master disruption
// mode" and evicts nothing, so this test does not expect it.)
func TestNodeLifecycleController(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	name := fmt.Sprintf("silent-agent-%d", time.Now().UnixNano())
	if _, err := cp.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating node: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting node: %v", err)
		}
	})

	type nodeState struct {
		ReadyStatus      corev1.ConditionStatus
		ReadyReason      string
		UnreachableTaint bool
	}
	want := nodeState{ReadyStatus: corev1.ConditionUnknown, ReadyReason: "NodeStatusNeverUpdated", UnreachableTaint: true}
	var got nodeState
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := cp.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = nodeState{}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				got.ReadyStatus, got.ReadyReason = c.Status, c.Reason
			}
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == corev1.TaintNodeUnreachable && taint.Effect == corev1.TaintEffectNoSchedule {
				got.UnreachableTaint = true
			}
		}
		return cmp.Equal(want, got), nil
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("node (-want +got) (wait: %v):\n%s", err, diff)
	}
}

// poll checks cond every 200 ms until it holds, failing the test with what was awaited when ctx ends.
func poll(ctx context.Context, t *testing.T, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

package nested

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/executor/imageconfig"
	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

var (
	busybox = &v1.Config{Cmd: []string{"sh"}}
	nginx   = &v1.Config{Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"nginx", "-g", "daemon off;"}, WorkingDir: "/"}
	distro  = &v1.Config{Entrypoint: []string{"/app"}} // Entrypoint, empty Cmd
	blankEP = &v1.Config{Entrypoint: []string{""}, Cmd: []string{"/bin/true"}}
)

type commandCase struct {
	name  string
	c     corev1.Container
	image *v1.Config
	// want is the CommandInfo sent (without Environment); wantReason an expected CreateError.
	want       *mesos.CommandInfo
	wantReason string
	// k8sArgv is what a kubelet with containerd runs (nil: not comparable, see the case).
	k8sArgv []string
}

func commandCases() []commandCase {
	str := func(s string) *string { return &s }
	f := false
	exec := func(argv ...string) *mesos.CommandInfo {
		return &mesos.CommandInfo{Shell: &f, Value: str(argv[0]), Arguments: argv}
	}
	return []commandCase{
		{name: "command and args, expanded", image: nginx,
			c:    corev1.Container{Image: "nginx", Command: []string{"echo"}, Args: []string{"$(GREETING)", "there"}},
			want: exec("echo", "hi", "there"), k8sArgv: []string{"echo", "hi", "there"}},
		{name: "command only: the image's Cmd is dropped", image: nginx,
			c:    corev1.Container{Image: "nginx", Command: []string{"sleep", "10"}},
			want: exec("sleep", "10"), k8sArgv: []string{"sleep", "10"}},
		{name: "args only, with Entrypoint", image: nginx,
			c:    corev1.Container{Image: "nginx", Args: []string{"nginx", "-T"}},
			want: exec("/docker-entrypoint.sh", "nginx", "-T"), k8sArgv: []string{"/docker-entrypoint.sh", "nginx", "-T"}},
		{name: "args only, without Entrypoint: args[0] runs (issue 9)", image: busybox,
			c:    corev1.Container{Image: "busybox", Args: []string{"sleep", "3600"}},
			want: exec("sleep", "3600"), k8sArgv: []string{"sleep", "3600"}},
		{name: "neither, with Entrypoint", image: nginx,
			c:    corev1.Container{Image: "nginx"},
			want: exec("/docker-entrypoint.sh", "nginx", "-g", "daemon off;"), k8sArgv: []string{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}},
		{name: "neither, without Entrypoint", image: busybox,
			c:    corev1.Container{Image: "busybox"},
			want: exec("sh"), k8sArgv: []string{"sh"}},
		{name: "empty Cmd", image: distro,
			c:    corev1.Container{Image: "distroless"},
			want: exec("/app"), k8sArgv: []string{"/app"}},
		{name: "Entrypoint [\"\"] counts as none", image: blankEP,
			c:    corev1.Container{Image: "blank"},
			want: exec("/bin/true"), k8sArgv: []string{"/bin/true"}},
		{name: "no command anywhere", image: &v1.Config{},
			c: corev1.Container{Name: "main", Image: "scratch"}, wantReason: podworker.ReasonCreateContainerError},
		{name: "workingDir through sh with the image's argv", image: busybox,
			c:    corev1.Container{Image: "busybox", Args: []string{"ls"}, WorkingDir: "/tmp"},
			want: &mesos.CommandInfo{Shell: &f, Value: str("/bin/sh"), Arguments: []string{"sh", "-c", `cd "$1" && shift && exec "$@"`, "sh", "/tmp", "ls"}}},
		{name: "unresolved image, command: argv is known", image: nil,
			c:    corev1.Container{Image: "private", Command: []string{"run"}, Args: []string{"x"}},
			want: exec("run", "x")},
		{name: "unresolved image, neither: the agent's Entrypoint+Cmd equals Kubernetes'", image: nil,
			c:    corev1.Container{Image: "private"},
			want: &mesos.CommandInfo{Shell: &f}},
		{name: "unresolved image, args only: left to the agent", image: nil,
			c:    corev1.Container{Image: "private", Args: []string{"serve"}},
			want: &mesos.CommandInfo{Shell: &f, Arguments: []string{"serve"}}},
		{name: "unresolved image, workingDir without command", image: nil,
			c: corev1.Container{Image: "private", WorkingDir: "/srv"}, wantReason: podworker.ReasonCreateContainerConfigError},
	}
}

// TestCommand pins the CommandInfo sent for every row of Mesos' table that a container can reach.
func TestCommand(t *testing.T) {
	str := func(s string) *string { return &s }
	env := []mesos.Environment_Variable{{Name: "GREETING", Value: str("hi")}}
	for _, tt := range commandCases() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Command(&tt.c, env, tt.image)
			var ce *podworker.CreateError
			if tt.wantReason != "" {
				if !errors.As(err, &ce) || ce.Reason != tt.wantReason {
					t.Fatalf("err = %v, want a CreateError %s", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Environment = &mesos.Environment{Variables: env}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("command (-want +got):\n%s", diff)
			}
		})
	}
}

// mesosLaunchCommand is the argv the agent execs for a CommandInfo and the image's config: the
// simulated agent's DockerRuntimeIsolatorProcess::getLaunchCommand, then the launcher (a shell command
// runs as /bin/sh -c value, any other as its arguments).
func mesosLaunchCommand(ci *mesos.CommandInfo, cfg *v1.Config) ([]string, error) {
	var image v1.Config
	if cfg != nil {
		image = *cfg
	}
	cmd, err := containerizer.DockerRuntimeCommand(*ci, image)
	if err != nil {
		return nil, err
	}
	if cmd.GetShell() {
		return []string{"/bin/sh", "-c", cmd.GetValue()}, nil
	}
	return cmd.Arguments, nil
}

// TestCommandThroughMesosRuleIsKubernetes feeds the CommandInfo sent through Mesos' own merge: the
// argv the agent runs is Kubernetes', also where sending the container's args as they are (what the
// executor did before) ran something else.
func TestCommandThroughMesosRuleIsKubernetes(t *testing.T) {
	str := func(s string) *string { return &s }
	env := []mesos.Environment_Variable{{Name: "GREETING", Value: str("hi")}}
	for _, tt := range commandCases() {
		if tt.k8sArgv == nil {
			continue
		}
		ci, err := Command(&tt.c, env, tt.image)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, err := mesosLaunchCommand(ci, tt.image)
		if err != nil || !slices.Equal(got, tt.k8sArgv) {
			t.Errorf("%s: the agent runs %q (%v), Kubernetes %q", tt.name, got, err, tt.k8sArgv)
		}
	}
	f := false
	before, _ := mesosLaunchCommand(&mesos.CommandInfo{Shell: &f, Arguments: []string{"sleep", "3600"}}, busybox)
	if want := []string{"sh", "sleep", "3600"}; !slices.Equal(before, want) {
		t.Errorf("the mirror of Mesos' rule runs %q for busybox args [sleep 3600], want %q (what Mesos 1.12 ran)", before, want)
	}
}

func TestVerifyRunAsNonRoot(t *testing.T) {
	yes, no := true, false
	uid := func(v int64) *int64 { return &v }
	pod := func(podSC *corev1.PodSecurityContext) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"}, Spec: corev1.PodSpec{SecurityContext: podSC}}
	}
	suffix := ` (pod: "p_ns(u1)", container: main)`
	for _, tt := range []struct {
		name    string
		pod     *corev1.Pod
		sc      *corev1.SecurityContext
		image   *v1.Config
		wantMsg string
	}{
		{"not asked", pod(nil), nil, &v1.Config{}, ""},
		{"runAsNonRoot false", pod(nil), &corev1.SecurityContext{RunAsNonRoot: &no}, &v1.Config{}, ""},
		{"image without user runs as root", pod(nil), &corev1.SecurityContext{RunAsNonRoot: &yes}, &v1.Config{},
			"container has runAsNonRoot and image will run as root" + suffix},
		{"pod-level, image user 0:0", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes}), nil, &v1.Config{User: "0:0"},
			"container has runAsNonRoot and image will run as root" + suffix},
		{"numeric user", pod(nil), &corev1.SecurityContext{RunAsNonRoot: &yes}, &v1.Config{User: "65532:65532"}, ""},
		{"user name", pod(nil), &corev1.SecurityContext{RunAsNonRoot: &yes}, &v1.Config{User: "nginx"},
			"container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root" + suffix},
		{"runAsUser decides", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes}), &corev1.SecurityContext{RunAsUser: uid(1000)}, &v1.Config{}, ""},
		{"runAsUser 0", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: uid(0)}), nil, &v1.Config{User: "1000"},
			"container's runAsUser breaks non-root policy" + suffix},
		{"container overrides pod", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes}), &corev1.SecurityContext{RunAsNonRoot: &no}, &v1.Config{}, ""},
		{"invalid uid", pod(nil), &corev1.SecurityContext{RunAsNonRoot: &yes}, &v1.Config{User: "4294967296"},
			"container has runAsNonRoot and image has an invalid user id (4294967296). (Must be 1-(2147483647)): must be between 0 and 2147483647, inclusive" + suffix},
	} {
		c := &corev1.Container{Name: "main", Image: "img", SecurityContext: tt.sc}
		err := verifyRunAsNonRoot(tt.pod, c, tt.image, nil)
		var ce *podworker.CreateError
		switch {
		case tt.wantMsg == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantMsg != "" && (!errors.As(err, &ce) || ce.Reason != podworker.ReasonCreateContainerConfigError || ce.Message != tt.wantMsg):
			t.Errorf("%s: %v\nwant CreateContainerConfigError %q", tt.name, err, tt.wantMsg)
		}
	}
	c := &corev1.Container{Name: "main", Image: "img", SecurityContext: &corev1.SecurityContext{RunAsNonRoot: &yes}}
	if err := verifyRunAsNonRoot(pod(nil), c, nil, errors.New("registry unreachable")); err == nil || !strings.Contains(err.Error(), "cannot be verified: registry unreachable") {
		t.Errorf("unresolved image: %v", err)
	}
	// An agent without image provider refuses the launch itself, which the pod then shows.
	if err := verifyRunAsNonRoot(pod(nil), c, nil, fmt.Errorf("resolving: %w", imageconfig.ErrNoImageProvider)); err != nil {
		t.Errorf("no image provider: %v", err)
	}
}

func TestImagePullErrorClassifiesMesosFailures(t *testing.T) {
	for body, pull := range map[string]bool{
		"Failed to find archive for image 'busybox' at '/images/busybox.tar'":                                                true,
		"Unsupported container image type: DOCKER":                                                                           true,
		"Unexpected HTTP response '401 Unauthorized' when trying to get the manifest":                                        true,
		"Failed to perform 'curl' for 'https://registry-1.docker.io/v2/library/nope/manifests/latest': exited with status 6": true,
		"Repository 'busybox' does not exist in 'repositories'":                                                              true,
		"Failed to parse docker image 'a@b@c': Multiple '@' symbols found":                                                   true,
		"Failed to determine the launch command: No executable is found":                                                     false,
		"Expecting 'launch_container.container_id' to be present":                                                            false,
		"The provided ContainerInfo is not supported":                                                                        false,
	} {
		err := fmt.Errorf("wrapped: %w", apierrors.CodeMalformedRequest.Error(body))
		pe := imagePullError("busybox", err)
		if (pe != nil) != pull {
			t.Errorf("%q: pull error %v, want %v", body, pe != nil, pull)
			continue
		}
		if pe != nil && pe.Message != body {
			t.Errorf("message %q, want Mesos' %q", pe.Message, body)
		}
		if pe != nil && (pe.NodeMessage != "") != strings.HasPrefix(body, "Unsupported container image type") {
			t.Errorf("%q: node message %q", body, pe.NodeMessage)
		}
	}
	if imagePullError("busybox", apierrors.CodeMesosUnavailable.Error("Failed to find archive for image")) != nil {
		t.Error("a 503 is not a pull failure")
	}
}

// launchAgent answers LAUNCH_CONTAINER with a scripted status and body and records the calls.
type launchAgent struct {
	mu       sync.Mutex
	code     int
	body     string
	delay    time.Duration // before the answer
	launches []*agent.Call_LaunchContainer
}

func (a *launchAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var call agent.Call
	if err := call.Unmarshal(b); err != nil || call.GetType() != agent.Call_LAUNCH_CONTAINER {
		http.Error(w, "unexpected call", http.StatusNotImplemented)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.launches = append(a.launches, call.LaunchContainer)
	time.Sleep(a.delay)
	if a.code != 0 {
		http.Error(w, a.body, a.code)
	}
}

func (a *launchAgent) sent() []*agent.Call_LaunchContainer {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.launches)
}

type fakeImages map[string]*v1.Config

func (f fakeImages) Resolve(_ context.Context, _ *corev1.Pod, c *corev1.Container) (*v1.Config, error) {
	if cfg, ok := f[c.Image]; ok {
		return cfg, nil
	}
	return nil, fmt.Errorf("resolving image %q: GET https://registry.invalid/v2/: dial tcp: no such host", c.Image)
}

type recordedEvents struct {
	mu     sync.Mutex
	events []string
}

func (r *recordedEvents) record(_ *corev1.Pod, typ, reason, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, typ+" "+reason+": "+msg)
}

func startRuntime(t *testing.T, a *launchAgent, images ImageConfigs) (*Runtime, *recordedEvents) {
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	ev := &recordedEvents{}
	r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Images: images, Event: ev.record})
	ready(t, r, testPod(corev1.Container{}))
	return r, ev
}

func testPod(c corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "r1", UID: "u1"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
}

// Start launches `kubectl run r1 --image=busybox -- sleep 3600` as Kubernetes runs it, and asks
// Mesos to pull again for imagePullPolicy Always.
func TestStartSendsKubernetesCommand(t *testing.T) {
	a := &launchAgent{}
	r, ev := startRuntime(t, a, fakeImages{"busybox": busybox})
	c := corev1.Container{Name: "r1", Image: "busybox", Args: []string{"sleep", "3600"}, ImagePullPolicy: corev1.PullAlways}
	if _, err := r.Start(context.Background(), testPod(c), &c, 0); err != nil {
		t.Fatal(err)
	}
	sent := a.sent()
	if len(sent) != 1 {
		t.Fatalf("%d launches", len(sent))
	}
	cmd, img := sent[0].GetCommand(), sent[0].GetContainer().GetMesos().GetImage()
	if cmd.GetShell() || cmd.GetValue() != "sleep" || !slices.Equal(cmd.Arguments, []string{"sleep", "3600"}) || cmd.User != nil {
		t.Errorf("command %+v, want shell false, value sleep, arguments [sleep 3600], no user", cmd)
	}
	if img.GetDocker().GetName() != "busybox" || img.Cached == nil || img.GetCached() {
		t.Errorf("image %+v, want busybox with cached=false", img)
	}
	if len(ev.events) != 0 {
		t.Errorf("events %v", ev.events)
	}
	c.ImagePullPolicy = corev1.PullIfNotPresent
	if _, err := r.Start(context.Background(), testPod(c), &c, 1); err != nil {
		t.Fatal(err)
	}
	if img := a.sent()[1].GetContainer().GetMesos().GetImage(); img.Cached != nil {
		t.Errorf("IfNotPresent sent cached=%v, want it unset (Mesos' default true)", img.GetCached())
	}
}

// Mesos' pull failures become the kubelet's ErrImagePull with Mesos' message; an agent without
// image provider also gets a Node message naming the flags; other 400s stay launch errors.
func TestStartImagePullFailures(t *testing.T) {
	for _, tt := range []struct {
		body     string
		pull     bool
		nodeHint bool
	}{
		{"Failed to find archive for image 'busybox' at '/var/lib/images/busybox.tar'", true, false},
		{"Unsupported container image type: DOCKER", true, true},
		{"Failed to determine the launch command: No executable is found", false, false},
	} {
		a := &launchAgent{code: http.StatusBadRequest, body: tt.body}
		r, _ := startRuntime(t, a, fakeImages{"busybox": busybox})
		c := corev1.Container{Name: "r1", Image: "busybox", Command: []string{"true"}}
		_, err := r.Start(context.Background(), testPod(c), &c, 0)
		var pe *podworker.ImagePullError
		if errors.As(err, &pe) != tt.pull {
			t.Errorf("%q: %v, want pull error %v", tt.body, err, tt.pull)
			continue
		}
		if !tt.pull {
			continue
		}
		if pe.Image != "busybox" || pe.Message != tt.body {
			t.Errorf("pull error %+v, want Mesos' body", pe)
		}
		if tt.nodeHint != strings.Contains(pe.NodeMessage, "--image_providers=docker --isolation=...,docker/runtime,filesystem/linux") {
			t.Errorf("%q: node message %q", tt.body, pe.NodeMessage)
		}
	}
}

// runAsNonRoot with an image that runs as root fails like the kubelet, before anything is launched.
func TestStartRunAsNonRootLaunchesNothing(t *testing.T) {
	a := &launchAgent{}
	r, _ := startRuntime(t, a, fakeImages{"busybox": busybox})
	yes := true
	c := corev1.Container{Name: "r1", Image: "busybox", SecurityContext: &corev1.SecurityContext{RunAsNonRoot: &yes}}
	_, err := r.Start(context.Background(), testPod(c), &c, 0)
	var ce *podworker.CreateError
	want := `container has runAsNonRoot and image will run as root (pod: "r1_ns(u1)", container: r1)`
	if !errors.As(err, &ce) || ce.Reason != podworker.ReasonCreateContainerConfigError || ce.Message != want {
		t.Errorf("err = %v, want CreateContainerConfigError %q", err, want)
	}
	if n := len(a.sent()); n != 0 {
		t.Errorf("%d launches", n)
	}
}

// An image whose config cannot be resolved is still launched (the agent may pull it): without
// command and args silently, with args only under a warning event.
func TestStartUnresolvedImage(t *testing.T) {
	a := &launchAgent{}
	r, ev := startRuntime(t, a, fakeImages{})
	c := corev1.Container{Name: "web", Image: "private/web"}
	if _, err := r.Start(context.Background(), testPod(c), &c, 0); err != nil {
		t.Fatal(err)
	}
	c.Args = []string{"--port", "8080"}
	if _, err := r.Start(context.Background(), testPod(c), &c, 1); err != nil {
		t.Fatal(err)
	}
	sent := a.sent()
	if len(sent) != 2 || sent[0].GetCommand().Value != nil || sent[0].GetCommand().GetShell() || len(sent[0].GetCommand().Arguments) != 0 {
		t.Fatalf("launches %+v", sent)
	}
	if got := sent[1].GetCommand().Arguments; !slices.Equal(got, []string{"--port", "8080"}) {
		t.Errorf("arguments %q", got)
	}
	if len(ev.events) != 1 || !strings.HasPrefix(ev.events[0], `Warning InspectFailed: Failed to inspect image "private/web": resolving image "private/web": GET https://registry.invalid/v2/`) ||
		!strings.Contains(ev.events[0], "Mesos' docker/runtime rule") {
		t.Errorf("events %q", ev.events)
	}
}

// The pod's pull secrets reach the agent as Image.Docker.config, the docker config Mesos' registry
// puller authenticates with.
func TestStartPassesPullSecretsToMesos(t *testing.T) {
	a := &launchAgent{}
	srv := httptest.NewServer(a)
	defer srv.Close()
	lookup := fakeLookup{secrets: map[string]map[string][]byte{
		"ns/regcred": {corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com:5000":{"username":"u","password":"p"}}}`)},
		"ns/legacy":  {corev1.DockerConfigKey: []byte(`{"quay.io":{"auth":"cXVheTp4","email":"a@b"}}`)},
		"ns/opaque":  {"token": []byte("x")},
	}}
	r := hostRuntime(t, Config{AgentURL: srv.URL + "/api/v1", Env: PodEnv{Lookup: lookup}, Images: fakeImages{}})
	c := corev1.Container{Name: "app", Image: "registry.example.com:5000/team/app:v1", Command: []string{"app"}}
	pod := testPod(c)
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "missing"}, {Name: "opaque"}, {Name: "regcred"}, {Name: "legacy"}}
	ready(t, r, pod)
	if _, err := r.Start(context.Background(), pod, &c, 0); err != nil {
		t.Fatal(err)
	}
	pod.Spec.ImagePullSecrets = nil
	ready(t, r, pod)
	if _, err := r.Start(context.Background(), pod, &c, 1); err != nil {
		t.Fatal(err)
	}
	sent := a.sent()
	got := sent[0].GetContainer().GetMesos().GetImage().GetDocker().GetConfig()
	want := &mesos.Secret{Type: mesos.Secret_VALUE, Value: &mesos.Secret_Value{Data: []byte(
		`{"auths":{"quay.io":{"auth":"cXVheTp4"},"registry.example.com:5000":{"auth":"dTpw"}}}`)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("docker config (-want +got):\n%s", diff)
	}
	if cfg := sent[1].GetContainer().GetMesos().GetImage().GetDocker().GetConfig(); cfg != nil {
		t.Errorf("a pod without pull secrets sent %+v", cfg)
	}
}

type noProvider struct{}

func (noProvider) Resolve(context.Context, *corev1.Pod, *corev1.Container) (*v1.Config, error) {
	return nil, fmt.Errorf("resolving image: %w", imageconfig.ErrNoImageProvider)
}

// On an agent without image provider nothing is inspected or warned about: the launch goes to the
// agent, whose refusal is the pod's ErrImagePull.
func TestStartWithoutImageProviderLeavesItToTheAgent(t *testing.T) {
	a := &launchAgent{code: http.StatusBadRequest, body: "Unsupported container image type: DOCKER"}
	r, ev := startRuntime(t, a, noProvider{})
	yes := true
	c := corev1.Container{Name: "web", Image: "nginx", Args: []string{"-g", "daemon off;"}, SecurityContext: &corev1.SecurityContext{RunAsNonRoot: &yes}}
	_, err := r.Start(context.Background(), testPod(c), &c, 0)
	var pe *podworker.ImagePullError
	if !errors.As(err, &pe) || pe.NodeMessage == "" {
		t.Errorf("err = %v, want the agent's ErrImagePull with a Node message", err)
	}
	if len(a.sent()) != 1 || len(ev.events) != 0 {
		t.Errorf("launches %d, events %q; want one launch and no event", len(a.sent()), ev.events)
	}
}

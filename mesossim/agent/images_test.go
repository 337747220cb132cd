package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
)

// imageIsolation is what a Mesos agent with the docker image provider needs.
const imageIsolation = "filesystem/linux,docker/runtime"

// newImageFixture is newNestedFixture's agent with the docker image provider over registry, in process
// mode: these tests' archives are config-only (no shell to run in a provisioned rootfs), and what they
// check is the docker/runtime command rule, the same in both modes (provision_test.go runs images
// isolated).
func newImageFixture(t *testing.T, registry string, mutate func(*Config)) *nestedFixture {
	t.Helper()
	euid := geteuid
	geteuid = func() int { return 1000 }
	t.Cleanup(func() { geteuid = euid })
	return newNestedFixtureWith(t, func(c *Config) {
		c.ImageCommands = nil
		c.ImageProviders, c.DockerRegistry, c.Isolation = "docker", registry, imageIsolation
		if mutate != nil {
			mutate(c)
		}
	})
}

func newNestedFixtureWith(t *testing.T, mutate func(*Config)) *nestedFixture {
	t.Helper()
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) {
		c.ExecutorHook = hookExecutor
		mutate(c)
	})
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "executor running", func() bool { return len(m.states("t1")) == 1 })
	ex := a.Executors()[0]
	return &nestedFixture{a: a, m: m, parent: ex.ContainerID, dir: ex.Directory}
}

// postCall sends an agent API call as JSON and returns the status code and the body.
func postCall(t testing.TB, a *Agent, call *agentapi.Call, headers ...string) (int, string) {
	t.Helper()
	body, err := json.Marshal(call)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+a.Endpoint()+"/api/v1", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runNested launches a nested container and returns its exit status, stdout and stderr; or, when the
// launch fails, the status code and body of the failure.
func (f *nestedFixture) runNested(t *testing.T, id string, cmd *mesos.CommandInfo, ci *mesos.ContainerInfo) (code int, body string, status int32, stdout, stderr string) {
	t.Helper()
	c := f.child(id)
	code, body = postCall(t, f.a, agentcalls.LaunchNestedContainer(c, cmd, ci))
	if code != http.StatusOK {
		return code, body, 0, "", ""
	}
	code2, waitBody := postCall(t, f.a, agentcalls.WaitNestedContainer(c))
	var r agentapi.Response
	if err := json.Unmarshal([]byte(waitBody), &r); code2 != http.StatusOK || err != nil {
		t.Fatalf("WAIT_NESTED_CONTAINER: %d %s", code2, waitBody)
	}
	out, _ := os.ReadFile(filepath.Join(f.dir, "containers", id, "stdout"))
	errOut, _ := os.ReadFile(filepath.Join(f.dir, "containers", id, "stderr"))
	return code, body, r.WaitNestedContainer.GetExitStatus(), string(out), string(errOut)
}

// dumpArgv prints the argv of the shell running it (its /proc cmdline), one argument a line.
const dumpArgv = `tr '\0' '\n' < /proc/$$/cmdline`

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// TestDockerRuntimeTable runs one container for each cell of the table in Mesos'
// DockerRuntimeIsolatorProcess::getLaunchCommand (rows: shell, value, arguments; columns: the
// image's Entrypoint and Cmd) and checks the argv that ran, or Mesos' 400.
func TestDockerRuntimeTable(t *testing.T) {
	registry := t.TempDir()
	images := map[string]v1.Config{
		"e0c0": {},
		"e0c1": {Cmd: []string{"sh", "-c", dumpArgv, "cmdarg"}},
		"e1c0": {Entrypoint: []string{"sh", "-c", dumpArgv, "ep"}},
		"e1c1": {Entrypoint: []string{"sh", "-c", dumpArgv, "ep"}, Cmd: []string{"c1", "c2"}},
	}
	for name, cfg := range images {
		if err := imagearchive.Write(registry, name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	// A value runs as is: a script that prints its interpreter's argv (the kernel runs
	// "/bin/sh <script> <argv[1:]>").
	script := filepath.Join(t.TempDir(), "argv.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+dumpArgv+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := newImageFixture(t, registry, nil)

	no, yes := false, true
	userArgs := []string{"-c", dumpArgv, "u1"} // sh -c with these prints argv too
	const noExec = "Failed to determine the launch command: No executable is found"
	const noValue = "Failed to determine the launch command: Shell specified but no command value provided"
	type cell struct {
		argv []string
		err  string
	}
	rows := []struct {
		name  string
		cmd   mesos.CommandInfo
		cells map[string]cell // by image
	}{
		{"sh=0 value=0 argv=0", mesos.CommandInfo{Shell: &no}, map[string]cell{
			"e0c0": {err: noExec},
			"e0c1": {argv: []string{"sh", "-c", dumpArgv, "cmdarg"}},
			"e1c0": {argv: []string{"sh", "-c", dumpArgv, "ep"}},
			"e1c1": {argv: []string{"sh", "-c", dumpArgv, "ep", "c1", "c2"}},
		}},
		{"sh=0 value=0 argv=1", mesos.CommandInfo{Shell: &no, Arguments: userArgs}, map[string]cell{
			"e0c0": {err: noExec},
			"e0c1": {argv: []string{"sh", "-c", dumpArgv, "u1"}}, // Cmd[0] + arguments
			"e1c0": {argv: []string{"sh", "-c", dumpArgv, "ep", "-c", dumpArgv, "u1"}},
			"e1c1": {argv: []string{"sh", "-c", dumpArgv, "ep", "-c", dumpArgv, "u1"}}, // no Cmd
		}},
		{"sh=0 value=1 argv=0", mesos.CommandInfo{Shell: &no, Value: &script}, map[string]cell{
			"e0c0": {argv: []string{"/bin/sh", script}},
			"e0c1": {argv: []string{"/bin/sh", script}},
			"e1c0": {argv: []string{"/bin/sh", script}},
			"e1c1": {argv: []string{"/bin/sh", script}},
		}},
		{"sh=0 value=1 argv=1", mesos.CommandInfo{Shell: &no, Value: &script, Arguments: []string{"argv0", "u1", "u2"}}, map[string]cell{
			"e0c0": {argv: []string{"/bin/sh", script, "u1", "u2"}},
			"e0c1": {argv: []string{"/bin/sh", script, "u1", "u2"}},
			"e1c0": {argv: []string{"/bin/sh", script, "u1", "u2"}},
			"e1c1": {argv: []string{"/bin/sh", script, "u1", "u2"}},
		}},
		{"sh=1 value=0 argv=0", mesos.CommandInfo{Shell: &yes}, map[string]cell{
			"e0c0": {err: noValue}, "e0c1": {err: noValue}, "e1c0": {err: noValue}, "e1c1": {err: noValue},
		}},
		// shell defaults to true in CommandInfo: an unset shell is this row too.
		{"sh=1 value=0 argv=1", mesos.CommandInfo{Arguments: userArgs}, map[string]cell{
			"e0c0": {err: noValue}, "e0c1": {err: noValue}, "e1c0": {err: noValue}, "e1c1": {err: noValue},
		}},
		{"sh=1 value=1 argv=0", mesos.CommandInfo{Shell: &yes, Value: ptrTo(dumpArgv)}, map[string]cell{
			"e0c0": {argv: []string{"/bin/sh", "-c", dumpArgv}},
			"e0c1": {argv: []string{"/bin/sh", "-c", dumpArgv}},
			"e1c0": {argv: []string{"/bin/sh", "-c", dumpArgv}},
			"e1c1": {argv: []string{"/bin/sh", "-c", dumpArgv}},
		}},
		{"sh=1 value=1 argv=1", mesos.CommandInfo{Shell: &yes, Value: ptrTo(dumpArgv), Arguments: []string{"x", "y"}}, map[string]cell{
			"e0c0": {argv: []string{"/bin/sh", "-c", dumpArgv}},
			"e0c1": {argv: []string{"/bin/sh", "-c", dumpArgv}},
			"e1c0": {argv: []string{"/bin/sh", "-c", dumpArgv}},
			"e1c1": {argv: []string{"/bin/sh", "-c", dumpArgv}},
		}},
	}
	n := 0
	for _, row := range rows {
		for _, image := range []string{"e0c0", "e0c1", "e1c0", "e1c1"} {
			want := row.cells[image]
			t.Run(row.name+"/"+image, func(t *testing.T) {
				n++
				cmd := row.cmd
				code, body, status, stdout, stderr := f.runNested(t, fmt.Sprintf("c%d", n), &cmd, dockerImage(image))
				if want.err != "" {
					if code != http.StatusBadRequest || body != want.err {
						t.Errorf("launch = %d %q, want 400 %q", code, body, want.err)
					}
					return
				}
				if code != http.StatusOK || status != 0 {
					t.Fatalf("launch = %d %q, exit status %d, stderr %q", code, body, status, stderr)
				}
				argv := want.argv
				if f.a.Isolating() && len(argv) > 1 && argv[0] == "/bin/sh" && argv[1] == "-c" {
					// Mesos' launch helper execs a shell command as argv "sh" "-c" (os::Shell::arg0);
					// process mode runs /bin/sh as Go's exec.Command names it.
					argv = append([]string{"sh"}, argv[1:]...)
				}
				if diff := cmp.Diff(argv, lines(stdout)); diff != "" {
					t.Errorf("argv that ran (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// The busybox case a real Mesos 1.12 agent showed: Cmd ["sh"] with arguments ["sleep","3600"] and no
// value runs `sh sleep 3600`, which fails at once because there is no script file named sleep.
func TestDockerRuntimeBusyboxArgumentsAfterCmd0(t *testing.T) {
	registry := t.TempDir()
	if err := imagearchive.Write(registry, "busybox", v1.Config{Cmd: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	f := newImageFixture(t, registry, nil)
	no := false
	code, body, status, _, stderr := f.runNested(t, "r1", &mesos.CommandInfo{Shell: &no, Arguments: []string{"sleep", "3600"}}, dockerImage("busybox"))
	if code != http.StatusOK {
		t.Fatalf("launch = %d %q", code, body)
	}
	if status == 0 || !strings.Contains(stderr, "sleep") {
		t.Errorf("sh sleep 3600: exit status %d, stderr %q; want a failure to open 'sleep'", status, stderr)
	}
}

// The image's Env is the isolator's environment: above the agent's variables, below CommandInfo's.
// WorkingDir is a directory of the image's root filesystem, which the simulator does not provide:
// the sandbox stays the working directory.
func TestImageEnvironmentAndWorkingDir(t *testing.T) {
	registry := t.TempDir()
	cfg := v1.Config{
		Cmd:        []string{"sh", "-c", `echo "$A|$B|$C"; pwd`},
		Env:        []string{"A=image", "B=image", "NOEQUALS", "C=x=y"},
		WorkingDir: "/srv/not-on-this-host",
	}
	if err := imagearchive.Write(registry, "envimg:1", cfg); err != nil {
		t.Fatal(err)
	}
	f := newImageFixture(t, registry, nil)
	no, user := false, "user"
	cmd := &mesos.CommandInfo{Shell: &no, Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "B", Value: &user}}}}
	code, body, status, stdout, stderr := f.runNested(t, "env", cmd, dockerImage("envimg:1"))
	if code != http.StatusOK || status != 0 {
		t.Fatalf("launch = %d %q, status %d, stderr %q", code, body, status, stderr)
	}
	sandbox := filepath.Join(f.dir, "containers", "env")
	if want := "image|user|x=y\n" + sandbox + "\n"; stdout != want {
		t.Errorf("output = %q, want %q", stdout, want)
	}
}

func TestImageProvisioningFailuresAndFallback(t *testing.T) {
	registry := t.TempDir()
	if err := imagearchive.Write(registry, "busybox", v1.Config{Cmd: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	echo := mesos.CommandInfo{Value: ptrTo("echo ran")}

	t.Run("missing archive", func(t *testing.T) {
		f := newImageFixture(t, registry, nil)
		for _, name := range []string{"nginx", "docker.io/library/busybox:latest", "registry.example.com:5000/team/app:v1"} {
			code, body, _, _, _ := f.runNested(t, "m", &echo, dockerImage(name))
			want := "Failed to find archive for image '" + name + "' at '" + registry + "/" + name + ".tar'"
			if code != http.StatusBadRequest || body != want {
				t.Errorf("%s: launch = %d %q, want 400 %q", name, code, body, want)
			}
		}
	})

	t.Run("missing archive with an --image-command fallback", func(t *testing.T) {
		f := newImageFixture(t, registry, func(c *Config) { c.ImageCommands = map[string]string{"nginx": "echo fallback"} })
		code, body, _, stdout, _ := f.runNested(t, "fb", nil, dockerImage("nginx:1.27"))
		if code != http.StatusOK || stdout != "fallback\n" {
			t.Errorf("launch = %d %q, stdout %q; want the fallback command", code, body, stdout)
		}
		// The store wins over the fallback: busybox has an archive.
		f2 := newImageFixture(t, registry, func(c *Config) { c.ImageCommands = map[string]string{"*": "echo fallback"} })
		no := false
		code, body, _, _, _ = f2.runNested(t, "store", &mesos.CommandInfo{Shell: &no, Value: ptrTo("true")}, dockerImage("busybox"))
		if code != http.StatusOK {
			t.Errorf("busybox from the store: %d %q", code, body)
		}
	})

	t.Run("no image provider", func(t *testing.T) {
		f := newNestedFixtureWith(t, func(c *Config) { c.ImageCommands = map[string]string{"nginx": "echo fallback"} })
		code, body, _, _, _ := f.runNested(t, "u", &echo, dockerImage("busybox"))
		if want := "Unsupported container image type: DOCKER"; code != http.StatusBadRequest || body != want {
			t.Errorf("launch = %d %q, want 400 %q", code, body, want)
		}
		appc := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Mesos: &mesos.ContainerInfo_MesosInfo{
			Image: &mesos.Image{Type: mesos.Image_APPC.Enum(), Appc: &mesos.Image_Appc{Name: "busybox"}}}}
		if code, body, _, _, _ := f.runNested(t, "u2", &echo, appc); code != http.StatusBadRequest || body != "Unsupported container image type: APPC" {
			t.Errorf("appc launch = %d %q", code, body)
		}
		if code, body, _, stdout, _ := f.runNested(t, "fb", nil, dockerImage("nginx")); code != http.StatusOK || stdout != "fallback\n" {
			t.Errorf("fallback launch = %d %q, stdout %q", code, body, stdout)
		}
		if code, body, _, stdout, _ := f.runNested(t, "plain", &echo, nil); code != http.StatusOK || stdout != "ran\n" {
			t.Errorf("container without an image = %d %q, stdout %q", code, body, stdout)
		}
	})

	t.Run("standalone container and session", func(t *testing.T) {
		f := newImageFixture(t, registry, nil)
		missing := "Failed to find archive for image 'nosuch' at '" + registry + "/nosuch.tar'"
		code, body := postCall(t, f.a, agentcalls.LaunchContainer(mesos.ContainerID{Value: "standalone"}, &echo, dockerImage("nosuch"), nil))
		if code != http.StatusBadRequest || body != missing {
			t.Errorf("LAUNCH_CONTAINER = %d %q", code, body)
		}
		code, body = postCall(t, f.a, agentcalls.LaunchNestedContainerSession(f.child("s"), &echo, dockerImage("nosuch")),
			"Accept", "application/recordio", "Message-Accept", "application/json")
		if code != http.StatusBadRequest || body != missing {
			t.Errorf("LAUNCH_NESTED_CONTAINER_SESSION = %d %q", code, body)
		}
		no := false
		code, body = postCall(t, f.a, agentcalls.LaunchContainer(mesos.ContainerID{Value: "bb"}, &mesos.CommandInfo{Shell: &no}, dockerImage("busybox"), nil))
		if code != http.StatusOK {
			t.Errorf("LAUNCH_CONTAINER busybox = %d %q", code, body)
		}
	})

	t.Run("pulled images are cached unless cached is false", func(t *testing.T) {
		reg := t.TempDir()
		if err := imagearchive.Write(reg, "once", v1.Config{Cmd: []string{"echo", "cached"}}); err != nil {
			t.Fatal(err)
		}
		f := newImageFixture(t, reg, nil)
		no := false
		noCmd := &mesos.CommandInfo{Shell: &no}
		if code, body, _, stdout, _ := f.runNested(t, "p1", noCmd, dockerImage("once")); code != http.StatusOK || stdout != "cached\n" {
			t.Fatalf("first launch = %d %q %q", code, body, stdout)
		}
		if err := os.Remove(imagearchive.Path(reg, "once")); err != nil {
			t.Fatal(err)
		}
		if code, body, _, stdout, _ := f.runNested(t, "p2", noCmd, dockerImage("once")); code != http.StatusOK || stdout != "cached\n" {
			t.Errorf("cached launch = %d %q %q", code, body, stdout)
		}
		uncached := dockerImage("once")
		uncached.Mesos.Image.Cached = &no
		code, body, _, _, _ := f.runNested(t, "p3", noCmd, uncached)
		if want := "Failed to find archive for image 'once' at '" + reg + "/once.tar'"; code != http.StatusBadRequest || body != want {
			t.Errorf("uncached launch = %d %q, want 400 %q", code, body, want)
		}
	})
}

// TestImageFlagValidation: an agent refuses to start as Mesos' does (MesosContainerizer::create,
// Store::create), with its texts; the simulator adds its own refusal of registries it cannot reach.
func TestImageFlagValidation(t *testing.T) {
	const chain = "agent agent-S0: Failed to create a containerizer: Could not create MesosContainerizer: "
	const stores = chain + "Failed to create provisioner: Failed to create image stores: "
	for _, tc := range []struct {
		name                           string
		providers, registry, isolation string
		want                           string
	}{
		{"defaults", "", "", "", ""},
		{"docker", "docker", "/reg", imageIsolation, ""},
		{"upper case", "DOCKER", "/reg", "posix/cpu,posix/mem,filesystem/linux,docker/runtime", ""},
		{"no filesystem/linux", "docker", "/reg", "", chain + "The 'filesystem/linux' isolator must be enabled for container image support"},
		{"filesystem/linux before docker/runtime", "docker", "/reg", "docker/runtime", chain + "The 'filesystem/linux' isolator must be enabled for container image support"},
		{"no docker/runtime", "docker", "/reg", "filesystem/linux", "agent agent-S0: Docker runtime isolator has to be specified if 'DOCKER' is included in 'image_providers'. Please add 'docker/runtime' to '--isolation' flags"},
		{"registry URL (the default)", "docker", "", imageIsolation, stores + "Failed to create store for image type 'docker': the simulated agent cannot pull from 'https://registry-1.docker.io': --docker_registry must be a local directory of image archives (an absolute path)"},
		{"hdfs", "docker", "hdfs://nn:8020/archives", imageIsolation, stores + "Failed to create store for image type 'docker': the simulated agent cannot pull from 'hdfs://nn:8020/archives': --docker_registry must be a local directory of image archives (an absolute path)"},
		{"unknown type", "oci", "/reg", imageIsolation, stores + "Unknown image type 'oci'"},
		{"appc", "appc", "/reg", imageIsolation, stores + "Unsupported image type 'appc' (the simulated agent provisions only 'docker' images)"},
		{"duplicate isolator", "", "", "posix/cpu,posix/mem,posix/cpu", chain + "Duplicate entries found in --isolation flag '[ posix/cpu, posix/mem, posix/cpu ]'"},
		{"two filesystem isolators", "", "", "filesystem/posix,filesystem/linux", chain + "Using multiple filesystem isolators simultaneously is disallowed"},
		{"two network isolators", "", "", "network/cni,network/port_mapping,network/ports", chain + "Using multiple network isolators simultaneously is disallowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(Config{
				ID: mesos.AgentID{Value: "agent-S0"}, WorkDir: t.TempDir(), Master: &fakeMaster{}, Log: quietLog(),
				ImageProviders: tc.providers, DockerRegistry: tc.registry, Isolation: tc.isolation,
			})
			if a != nil {
				a.Stop()
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("New: %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestGetFlags: GET_FLAGS answers in Mesos' shape, flags sorted by name, an unset optional flag
// (image_providers) absent.
func TestGetFlags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   map[string]string
	}{
		{"defaults", nil, map[string]string{"docker_registry": "https://registry-1.docker.io", "isolation": "posix/cpu,posix/mem"}},
		{"docker provider", func(c *Config) {
			c.ImageProviders, c.DockerRegistry, c.Isolation = "docker", "/var/lib/images", imageIsolation
		}, map[string]string{"docker_registry": "/var/lib/images", "isolation": imageIsolation, "image_providers": "docker"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAgent(t, &fakeMaster{}, tc.mutate)
			code, body := postCall(t, a, &agentapi.Call{Type: agentapi.Call_GET_FLAGS})
			if code != http.StatusOK {
				t.Fatalf("GET_FLAGS = %d %s", code, body)
			}
			var resp struct {
				Type     string `json:"type"`
				GetFlags struct {
					Flags []struct {
						Name  string `json:"name"`
						Value string `json:"value"`
					} `json:"flags"`
				} `json:"get_flags"`
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Type != "GET_FLAGS" {
				t.Fatalf("GET_FLAGS body %s (%v)", body, err)
			}
			got := map[string]string{}
			var names []string
			for _, f := range resp.GetFlags.Flags {
				got[f.Name] = f.Value
				names = append(names, f.Name)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("flag %s = %q, want %q", k, got[k], v)
				}
			}
			if _, ok := got["image_providers"]; ok != (tc.want["image_providers"] != "") {
				t.Errorf("image_providers present = %v in %s", ok, body)
			}
			if got["work_dir"] == "" || got["executor_shutdown_grace_period"] != "5secs" {
				t.Errorf("flags = %v", got)
			}
			for i := 1; i < len(names); i++ {
				if names[i-1] >= names[i] {
					t.Errorf("flags not sorted by name: %v", names)
				}
			}
		})
	}
}

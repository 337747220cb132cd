package kubemesos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Issue 11's must-shows: the simulated agents are container hosts that behave as mesos-agent with the
// Mesos containerizer (isolating mode), checked through the real control plane.

// newIsolatingEnv is newEnv whose agents must isolate (skipped in process mode: the behaviours shown
// here are the Linux isolators').
func newIsolatingEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	if m := agentMode(); !m.Isolating {
		t.Skipf("the agents run %s", m)
	}
	return newEnv(t, opts)
}

func resources(cpu, mem string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}
}

// execIn runs a command in a pod's container through kubectl exec and returns its stdout.
func (e *env) execIn(ctx context.Context, pod, container string, cmd ...string) string {
	e.t.Helper()
	args := append([]string{"exec", pod, "-c", container, "--"}, cmd...)
	stdout, stderr, code, err := e.kubectl(ctx, args...)
	if err != nil || code != 0 {
		e.t.Fatalf("kubectl exec %s %q: exit %d, %v: %s", pod, cmd, code, err, stderr)
	}
	return stdout
}

// A ConfigMap at /cfg and a Secret at /etc/secret are readable at those paths, an emptyDir is shared by
// two containers of the pod, the containers see busybox's filesystem and not the host's, and kubectl
// exec enters the container's namespaces (its volumes, its pid 1).
func TestContainerHostFilesystemVolumesAndExec(t *testing.T) {
	e := newIsolatingEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"greeting": "hello from a configmap"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().Secrets(e.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sec"}, StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writer := container("echo written-by-writer > /shared/file; " + sleeper)
	writer.Name = "writer"
	reader := container(sleeper)
	reader.Name = "reader"
	reader.VolumeMounts = []corev1.VolumeMount{
		{Name: "cfg", MountPath: "/cfg"}, {Name: "sec", MountPath: "/etc/secret", ReadOnly: true}, {Name: "shared", MountPath: "/shared"}}
	writer.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "host", Labels: map[string]string{"app": "host"}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{writer, reader},
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			Volumes: []corev1.Volume{
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
				{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
	}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitRunningPods("app=host", 1, 2*time.Minute)

	if got := e.execIn(ctx, "host", "reader", "cat", "/cfg/greeting"); got != "hello from a configmap" {
		t.Errorf("/cfg/greeting = %q", got)
	}
	if got := e.execIn(ctx, "host", "reader", "cat", "/etc/secret/password"); got != "s3cret" {
		t.Errorf("/etc/secret/password = %q", got)
	}
	e.eventually("the writer's file in the reader's emptyDir", 30*time.Second, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "exec", "host", "-c", "reader", "--", "cat", "/shared/file")
		if err != nil || code != 0 {
			return false, fmt.Errorf("exit %d, %v: %s", code, err, stderr)
		}
		return stdout == "written-by-writer\n", fmt.Errorf("/shared/file = %q", stdout)
	})
	// The image's filesystem: busybox's binary, not the host's /etc/os-release.
	fs := e.execIn(ctx, "host", "reader", "sh", "-c", "ls /bin/busybox; test -e /etc/os-release && echo host-os-release; true")
	if fs != "/bin/busybox\n" {
		t.Errorf("the container's filesystem: %q, want busybox's /bin/busybox and no /etc/os-release", fs)
	}
	if _, err := os.Stat("/etc/os-release"); err != nil {
		t.Logf("the host has no /etc/os-release either: %v", err)
	}
	// exec enters the container's pid namespace: its pid 1 is the container's command.
	pid1 := e.execIn(ctx, "host", "reader", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline")
	if want := "sh -c " + sleeper + " "; pid1 != want {
		t.Errorf("pid 1 in the exec's namespace: %q, want the container's command %q", pid1, want)
	}
}

// runAsUser 1000 runs the container as uid 1000 (the executor sends the host user's name, which the
// agent resolves, as Mesos does); a busybox-based image without a command runs its own Cmd: pause's
// /pause, pid 1 of its pid namespace.
func TestContainerHostUserAndImageDefault(t *testing.T) {
	e := newIsolatingEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	if _, err := user.LookupId("1000"); err != nil {
		// Mesos resolves CommandInfo.user by name on the agent's host: uid 1000 needs a host user.
		if out, err := exec.Command("useradd", "-u", "1000", "-M", "-s", "/bin/false", "kubemesos-e2e").CombinedOutput(); err != nil {
			t.Fatalf("no host user with uid 1000 and useradd failed: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("userdel", "kubemesos-e2e").Run() })
	}
	u, _ := user.LookupId("1000")
	t.Logf("host user of uid 1000: %s", u.Username)

	id := container("id -u; " + sleeper)
	id.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000)}
	pause := corev1.Container{Name: "pause", Image: "registry.k8s.io/pause:3.10.2", Resources: resources("10m", "8Mi")}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "who", Labels: map[string]string{"app": "who"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{id, pause}, TerminationGracePeriodSeconds: ptr.To[int64](5)},
	}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitRunningPods("app=who", 1, 2*time.Minute)
	e.eventually("id -u in the logs", 30*time.Second, func(ctx context.Context) (bool, error) {
		b, err := e.kube.CoreV1().Pods(e.ns).GetLogs("who", &corev1.PodLogOptions{Container: "main"}).DoRaw(ctx)
		if err != nil {
			return false, err
		}
		return string(b) == "1000\n", fmt.Errorf("logs %q, want 1000", b)
	})
	// pause has no shell to exec: find its process on the host, in this env's executor's container (the
	// launch helper execs it a moment after the container is reported running).
	e.eventually("the pause image's default command /pause running", 30*time.Second, func(context.Context) (bool, error) {
		var found, all []string
		for _, p := range envProcesses(e) {
			all = append(all, fmt.Sprintf("%q %s", p.cmdline, p.cgroups["memory"]))
			if p.cmdline == "/pause" {
				found = append(found, fmt.Sprintf("pid %d nspid %v", p.pid, p.nspid))
				if p.nspid[len(p.nspid)-1] != 1 {
					return false, fatalf("/pause is pid %v in its namespaces, want pid 1 of its own", p.nspid)
				}
			}
		}
		return len(found) == 1, fmt.Errorf("/pause processes %v, want one (this env's container processes: %q)", found, all)
	})
}

// proc is a process of this env's containers.
type proc struct {
	pid     int
	cmdline string
	nspid   []int
	cgroups map[string]string // subsystem -> path
}

// executorContainerIDs are the container IDs of this env's executor runs.
func executorContainerIDs(e *env) map[string]bool {
	runs, _ := filepath.Glob(filepath.Join(e.dir, "mesos", "slaves", "*", "frameworks", "*", "executors", "*", "runs", "*"))
	ids := map[string]bool{}
	for _, r := range runs {
		if filepath.Base(r) != "latest" {
			ids[filepath.Base(r)] = true
		}
	}
	return ids
}

// envProcesses lists the processes in the cgroups of this env's executor containers (their nested
// containers' included).
func envProcesses(e *env) []proc {
	ids := executorContainerIDs(e)
	var out []proc
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		cg := procCgroups(pid)
		if !ids[executorOfCgroup(cg["memory"])] {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		p := proc{pid: pid, cmdline: strings.TrimSuffix(strings.ReplaceAll(string(b), "\x00", " "), " "), cgroups: cg}
		status, _ := os.ReadFile(filepath.Join("/proc", en.Name(), "status"))
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
				for _, f := range strings.Fields(rest) {
					n, _ := strconv.Atoi(f)
					p.nspid = append(p.nspid, n)
				}
			}
		}
		out = append(out, p)
	}
	return out
}

func procCgroups(pid int) map[string]string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, s := range strings.Split(parts[1], ",") {
			out[s] = parts[2]
		}
	}
	return out
}

// executorOfCgroup is the executor container ID in a cgroup path /mesos/<executor>[/mesos/<nested>...].
func executorOfCgroup(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) >= 2 && parts[0] == "mesos" {
		return parts[1]
	}
	return ""
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// vmRSS is a process's resident set size in bytes.
func vmRSS(pid int) uint64 {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// A container allocating past its 32Mi memory limit ends OOMKilled; a busy loop with a 100m cpu limit
// gets about 0.1 cpu by its cgroup's accounting. Also recorded: the executor's RSS and an idle
// container's memory usage (its cgroup's memory.usage_in_bytes).
func TestContainerHostLimits(t *testing.T) {
	e := newIsolatingEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	limited := func(name, script, cpu, mem string) corev1.Container {
		c := container(script)
		c.Name = name
		c.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
		}
		return c
	}
	// dd's 64 MiB block is one buffer it fills: past the limit.
	hog := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hog"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To[int64](5),
			Containers: []corev1.Container{limited("main", "dd if=/dev/zero of=/dev/null bs=64M count=1", "100m", "32Mi")}},
	}
	spin := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "spin", Labels: map[string]string{"app": "spin"}},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](5), Containers: []corev1.Container{
			limited("main", "while :; do :; done", "100m", "32Mi"),
			limited("idle", sleeper, "10m", "16Mi"),
		}},
	}
	for _, p := range []*corev1.Pod{hog, spin} {
		if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.eventually("the hog to end OOMKilled", 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "hog", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cs := range p.Status.ContainerStatuses {
			if tr := cs.State.Terminated; tr != nil {
				if tr.Reason != "OOMKilled" {
					return false, fatalf("the hog ended %s (exit %d): %s", tr.Reason, tr.ExitCode, tr.Message)
				}
				return true, nil
			}
		}
		return false, fmt.Errorf("hog: %s", containerSummary(p))
	})
	e.waitRunningPods("app=spin", 1, 2*time.Minute)

	// The processes are found by their command lines; a container is Running once its launch helper
	// is isolated, before it execs the command. The idle container's launcher gets little CPU (its
	// quota, and its cgroup's few cpu.shares when the host is contended: it took over 30 s to exec on
	// a loaded machine), so it is looked for only after the busy loop's measurement.
	find := func(what string, timeout time.Duration, match func(proc) bool) *proc {
		var found *proc
		e.eventually(what+"'s process", timeout, func(context.Context) (bool, error) {
			for _, p := range envProcesses(e) {
				if match(p) {
					found = &p
					return true, nil
				}
			}
			return false, errors.New("no such process yet")
		})
		return found
	}
	spinner := find("the busy loop", 2*time.Minute, func(p proc) bool { return p.cmdline == "sh -c while :; do :; done" })
	executor := find("the executor", time.Minute, func(p proc) bool {
		return strings.Contains(p.cmdline, "kubemesos") && strings.Contains(p.cmdline, "executor")
	})
	// The limit is the cgroup's CFS quota: 10 ms of every 100 ms period for 100m.
	cpuDir := filepath.Join("/sys/fs/cgroup/cpu", spinner.cgroups["cpu"])
	quota, errQ := readUint(filepath.Join(cpuDir, "cpu.cfs_quota_us"))
	period, errP := readUint(filepath.Join(cpuDir, "cpu.cfs_period_us"))
	if errQ != nil || errP != nil || quota != 10000 || period != 100000 {
		t.Errorf("the busy loop's cgroup %s: cfs quota %d us per %d us (%v, %v), want 10000 per 100000", cpuDir, quota, period, errQ, errP)
	}
	// Its usage by cpuacct, in 5 s windows: above the limit is a failure at once; below it the loop
	// may be starved, not limited (the /mesos hierarchy's share of 2 cores is split with every other
	// container on the host, e.g. another shard's 50 starting pods), so a window is measured again
	// until one comes near the limit.
	usage := filepath.Join("/sys/fs/cgroup/cpuacct", spinner.cgroups["cpuacct"], "cpuacct.usage")
	const window, tries = 5 * time.Second, 12
	var cpus float64
	for try := 1; ; try++ {
		u0, err := readUint(usage)
		if err != nil {
			t.Fatalf("the busy loop's cgroup %s: %v", usage, err)
		}
		start := time.Now()
		time.Sleep(window)
		u1, err := readUint(usage)
		if err != nil {
			t.Fatal(err)
		}
		cpus = float64(u1-u0) / float64(time.Since(start).Nanoseconds())
		t.Logf("busy loop with a 100m cpu limit: %.3f cpu over %v (cgroup %s)", cpus, window, spinner.cgroups["cpuacct"])
		if cpus > 0.2 {
			t.Fatalf("the busy loop used %.3f cpu, more than its 100m limit allows", cpus)
		}
		if cpus >= 0.07 {
			break
		}
		if try == tries {
			t.Fatalf("the busy loop never came near its 100m limit in %d windows of %v (last %.3f cpu)", tries, window, cpus)
		}
	}
	idle := find("the idle container", 3*time.Minute, func(p proc) bool { return p.cmdline == "sh -c "+sleeper })
	idleMem, err := readUint(filepath.Join("/sys/fs/cgroup/memory", idle.cgroups["memory"], "memory.usage_in_bytes"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("an idle busybox `sleep` container's memory (memory.usage_in_bytes of %s): %.1f MiB", idle.cgroups["memory"], float64(idleMem)/(1<<20))
	t.Logf("the executor's RSS: %.1f MiB (pid %d)", float64(vmRSS(executor.pid))/(1<<20), executor.pid)
	if limit, err := readUint(filepath.Join("/sys/fs/cgroup/memory", executor.cgroups["memory"], "memory.limit_in_bytes")); err == nil {
		t.Logf("the executor container's memory limit: %.1f MiB", float64(limit)/(1<<20))
	}
}

// residue counts what this env's containers leave on the host: mounts under its directory (the
// provisioner's rootfses, volumes), nested containers' cgroups (/sys/fs/cgroup/*/mesos/<executor>/mesos/*)
// and their processes.
type residue struct{ mounts, cgroups, procs int }

func (r residue) String() string {
	return fmt.Sprintf("%d mounts, %d nested cgroups, %d nested-container processes", r.mounts, r.cgroups, r.procs)
}

func countResidue(e *env) residue {
	var r residue
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 4 && strings.HasPrefix(fields[4], e.dir+"/") &&
				(strings.Contains(fields[4], "/provisioner/") || strings.Contains(fields[4], "/containers/")) {
				r.mounts++
			}
		}
		f.Close()
	}
	ids := executorContainerIDs(e)
	for id := range ids {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "mesos", id, "mesos", "*"))
		for _, d := range dirs {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				r.cgroups++
			}
		}
	}
	for _, p := range envProcesses(e) {
		if strings.Contains(strings.TrimPrefix(p.cgroups["memory"], "/mesos/"), "/mesos/") {
			r.procs++
		}
	}
	return r
}

// 200 pods created and deleted in batches of 50 on 3 agents leave no mount, cgroup or process behind.
func TestContainerHostChurnLeavesNothing(t *testing.T) {
	e := newIsolatingEnv(t, envOptions{})
	ctx := context.Background()
	before := countResidue(e)
	t.Logf("before: %s", before)
	const total, batch = 200, 50
	spec := podSpec(sleeper)
	// 32Mi: a container's launch briefly charges the launch helper (this Go test binary, ~20 MB) to
	// its cgroup, which counts towards the executor container's limit (executor + tasks' memory).
	spec.Containers[0].Resources = resources("20m", "32Mi")
	spec.TerminationGracePeriodSeconds = ptr.To[int64](2)
	var peak residue
	for b := 0; b < total/batch; b++ {
		label := map[string]string{"churn": strconv.Itoa(b)}
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for i := 0; i < batch; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("churn-%d-%d", b, i), Labels: label}, Spec: spec}
				if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		e.waitRunningPods(selector(label), batch, 3*time.Minute)
		if r := countResidue(e); r.procs > peak.procs {
			peak = r
		}
		if err := e.kube.CoreV1().Pods(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector(label)}); err != nil {
			t.Fatal(err)
		}
		e.eventually("batch deleted", 2*time.Minute, func(ctx context.Context) (bool, error) {
			pods, err := e.pods(ctx, selector(label))
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return err == nil && len(pods) == 0, err
		})
	}
	t.Logf("with a batch of %d running: %s", batch, peak)
	if peak.procs < batch {
		t.Errorf("counted %d nested-container processes with %d pods running: the count does not see them", peak.procs, batch)
	}
	var after residue
	e.eventually("nothing left of the containers", time.Minute, func(context.Context) (bool, error) {
		after = countResidue(e)
		return after == before, fmt.Errorf("after: %s", after)
	})
	t.Logf("after %d pods: %s", total, after)
}

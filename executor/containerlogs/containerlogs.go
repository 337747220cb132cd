// Package containerlogs keeps the log of every container attempt the executor runs in the format a CRI
// runtime writes for the kubelet (`<RFC3339Nano> stdout|stderr F|P <line>`, one file per attempt), so
// that `kubectl logs` gets what it gets from a kubelet: stdout and stderr interleaved in the order they
// were written, each line with the time it was written, and nothing the Mesos launcher wrote.
//
// Mesos keeps a nested container's output in two plain files of its sandbox (stdout and stderr) that
// carry no time, and the containerizer's launcher writes its own lines into stderr before the command
// runs (see IsLauncherLine). A follower per attempt reads both files as they grow (woken by inotify,
// with a periodic poll as the fallback) and appends each complete line, stamped with the time it saw
// it, to <executor sandbox>/logs/<pod UID>/<container ID>.log; once the attempt has ended it reads them
// a last time. The kubelet API serves these files with the kubelet's own reader (k8s.io/cri-client).
package containerlogs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

const (
	// Dir is the directory of the logs in the executor's sandbox.
	Dir = "logs"
	// DefaultMaxLineBytes is where a longer line is cut into partial (P) entries, as containerd does
	// with its default max_container_log_line_size.
	DefaultMaxLineBytes = 16 << 10
	// DefaultPollInterval is how often the files are read when inotify reports nothing.
	DefaultPollInterval = time.Second
)

// PodDir is where the logs of a pod's containers are kept.
func PodDir(sandbox string, podUID types.UID) string {
	return filepath.Join(sandbox, Dir, string(podUID))
}

// Path is the CRI log of one container attempt (its nested container ID).
func Path(sandbox string, podUID types.UID, containerID string) string {
	return filepath.Join(PodDir(sandbox, podUID), containerID+".log")
}

// Config configures a Manager.
type Config struct {
	// Sandbox is the executor's sandbox (MESOS_SANDBOX), where the logs are kept.
	Sandbox string
	// OutputDir is the nested container's sandbox where Mesos writes its stdout and stderr files
	// (package nested's Runtime.ContainerDir: under the pod's sandbox executor's or the kubelet
	// executor's sandbox); required.
	OutputDir func(podUID types.UID, containerID string) string
	// PollInterval is the fallback period of reads; DefaultPollInterval when 0.
	PollInterval time.Duration
	// MaxLineBytes cuts longer lines into partial entries; DefaultMaxLineBytes when 0.
	MaxLineBytes int
	// Clock times the entries and drives the polls; clock.RealClock{} when nil.
	Clock clock.WithTicker
	// Log is the logger; logrus.StandardLogger() when nil.
	Log logrus.FieldLogger
}

// Manager runs one follower per container attempt, driven by the pod statuses the executor computes.
type Manager struct {
	cfg     Config
	watcher *fsnotify.Watcher // nil: polls only

	mu        sync.Mutex
	followers map[string]*follower // by container ID, finished ones included until the pod is over
	byFile    map[string]*follower // watched output file → its follower
	closed    bool
	wg        sync.WaitGroup
}

// New returns a Manager; Close stops it.
func New(cfg Config) *Manager {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	m := &Manager{cfg: cfg, followers: map[string]*follower{}, byFile: map[string]*follower{}}
	// One inotify instance for all attempts: a user has only 128 of them by default.
	w, err := fsnotify.NewWatcher()
	if err != nil {
		cfg.Log.WithError(err).Warn("container logs: no inotify, the output files are polled every " + cfg.PollInterval.String())
		return m
	}
	m.watcher = w
	m.wg.Add(1)
	go m.dispatch()
	return m
}

// dispatch wakes the follower of a file that was written to.
func (m *Manager) dispatch() {
	defer m.wg.Done()
	for {
		select {
		case ev, ok := <-m.watcher.Events:
			if !ok {
				return
			}
			if !ev.Has(fsnotify.Write) {
				continue
			}
			m.mu.Lock()
			f := m.byFile[ev.Name]
			m.mu.Unlock()
			if f != nil {
				f.poke(ev.Name)
			}
		case err, ok := <-m.watcher.Errors:
			if !ok {
				return
			}
			m.cfg.Log.WithError(err).Debug("container logs: inotify error (the poll goes on)")
		}
	}
}

// Update follows the attempts in a pod's status: a running attempt is followed; an attempt that is
// no longer running gets its last read and its log is complete. done (the pod's last status, its
// Mesos task is over) ends every attempt of the pod but keeps their logs: the kubelet serves a
// terminated container's log until its pod is deleted (Forget).
//
// As the kubelet's container garbage collection (MaxPerPodContainer 1: the newest dead container of
// each container is kept, kuberuntime_gc.go evictContainers), only the logs of a container's current
// attempt and of the one before it (lastState.terminated) are kept; older ones are removed.
func (m *Manager) Update(pod *corev1.Pod, status corev1.PodStatus, done bool) {
	keep := map[string]bool{}
	// Ephemeral containers' logs too: `kubectl logs -c <debug container>` (and attach) read them.
	for _, list := range [][]corev1.ContainerStatus{status.InitContainerStatuses, status.ContainerStatuses, status.EphemeralContainerStatuses} {
		for _, cs := range list {
			if t := cs.LastTerminationState.Terminated; t != nil {
				prev := runtimeID(t.ContainerID)
				m.finish(pod.UID, cs.Name, prev)
				keep[prev] = true
			}
			id := runtimeID(cs.ContainerID)
			keep[id] = true
			switch {
			case id == "":
			case cs.State.Running != nil && !done:
				m.follow(pod.UID, cs.Name, id)
			default: // terminated, or waiting to restart after it
				m.finish(pod.UID, cs.Name, id)
			}
		}
	}
	m.evict(pod.UID, keep, func(name string) bool { return findStatus(status, name) })
	if done {
		m.finishPod(pod.UID)
	}
}

func findStatus(st corev1.PodStatus, name string) bool {
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for _, cs := range list {
			if cs.Name == name {
				return true
			}
		}
	}
	return false
}

// Forget ends the attempts of a deleted pod and removes their logs.
func (m *Manager) Forget(uid types.UID) {
	m.forgetPod(uid)
}

// evict removes the logs of a pod's attempts that are neither the current nor the previous one of a
// container the status lists.
func (m *Manager) evict(uid types.UID, keep map[string]bool, listed func(name string) bool) {
	m.mu.Lock()
	var old []*follower
	for id, f := range m.followers {
		if f.podUID == uid && f.name != "" && !keep[id] && listed(f.name) {
			old = append(old, f)
			delete(m.followers, id)
		}
	}
	m.mu.Unlock()
	for _, f := range old {
		f.finish()
		m.unwatch(f)
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.cfg.Log.WithError(err).WithField("file", f.path).Warn("container logs: removing an old attempt's log failed")
		}
	}
}

// finishPod makes the last read of every attempt of a pod whose task is over.
func (m *Manager) finishPod(uid types.UID) {
	m.mu.Lock()
	var mine []*follower
	for _, f := range m.followers {
		if f.podUID == uid {
			mine = append(mine, f)
		}
	}
	m.mu.Unlock()
	for _, f := range mine {
		f.finish()
		m.unwatch(f)
	}
}

// Finished tells whether the log of an attempt is complete (its follower made its last read). An
// attempt the Manager never saw counts as finished.
func (m *Manager) Finished(containerID string) bool {
	m.mu.Lock()
	f := m.followers[containerID]
	m.mu.Unlock()
	return f == nil || f.isFinished()
}

// Close ends every follower after a last read and stops watching.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	all := make([]*follower, 0, len(m.followers))
	for _, f := range m.followers {
		all = append(all, f)
	}
	m.mu.Unlock()
	for _, f := range all {
		f.finish()
	}
	if m.watcher != nil {
		m.watcher.Close()
	}
	m.wg.Wait()
}

// follow starts following an attempt unless it is already followed (or over).
func (m *Manager) follow(uid types.UID, name, id string) {
	if f := m.start(uid, name, id, true); f != nil {
		go func() {
			defer m.wg.Done()
			f.run(m.cfg.Clock, m.cfg.PollInterval)
		}()
	}
}

// finish makes the last read of an attempt (starting it first if it was never followed).
func (m *Manager) finish(uid types.UID, name, id string) {
	if id == "" {
		return
	}
	f := m.start(uid, name, id, false)
	if f != nil {
		f.finishUnstarted()
	} else {
		m.mu.Lock()
		f = m.followers[id]
		m.mu.Unlock()
		if f == nil {
			return
		}
		f.finish()
	}
	m.unwatch(f)
}

// start creates the follower and its log file; nil if it exists already or the Manager is closed.
// With run, the caller starts its goroutine (counted in m.wg).
func (m *Manager) start(uid types.UID, name, id string, run bool) *follower {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.followers[id] != nil {
		return nil
	}
	if run {
		m.wg.Add(1)
	}
	log := m.cfg.Log.WithField("containerID", id)
	path := Path(m.cfg.Sandbox, uid, id)
	out, err := createLog(path)
	if err != nil {
		// Without its log the attempt's output cannot be served; the kubelet API reports it as gone.
		log.WithError(err).Warn("container logs: cannot create the log")
	}
	dir := m.cfg.OutputDir(uid, id)
	f := newFollower(out, dir, m.cfg.Clock.Now, m.cfg.MaxLineBytes, log)
	f.onOpen = m.watch
	m.followers[id] = f
	f.podUID, f.name, f.path = uid, name, path
	return f
}

func createLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// watch asks inotify for writes to an output file the follower opened.
func (m *Manager) watch(path string, f *follower) {
	if m.watcher == nil {
		return
	}
	m.mu.Lock()
	m.byFile[path] = f
	m.mu.Unlock()
	if err := m.watcher.Add(path); err != nil {
		m.cfg.Log.WithError(err).WithField("file", path).Debug("container logs: not watched (polled)")
	}
}

func (m *Manager) unwatch(f *follower) {
	for _, s := range f.sources {
		m.mu.Lock()
		owned := m.byFile[s.path] == f
		if owned {
			delete(m.byFile, s.path)
		}
		m.mu.Unlock()
		if owned && m.watcher != nil {
			_ = m.watcher.Remove(s.path)
		}
	}
}

// forgetPod ends the pod's attempts and removes their logs.
func (m *Manager) forgetPod(uid types.UID) {
	m.mu.Lock()
	var mine []*follower
	for id, f := range m.followers {
		if f.podUID == uid {
			mine = append(mine, f)
			delete(m.followers, id)
		}
	}
	m.mu.Unlock()
	for _, f := range mine {
		f.finish()
		m.unwatch(f)
	}
	if err := os.RemoveAll(PodDir(m.cfg.Sandbox, uid)); err != nil {
		m.cfg.Log.WithError(err).WithField("podUID", uid).Warn("container logs: removing the pod's logs failed")
	}
}

// runtimeID strips the runtime scheme from a status' containerID ("mesos://abc" → "abc").
func runtimeID(containerID string) string {
	if _, id, ok := strings.Cut(containerID, "://"); ok {
		return id
	}
	return containerID
}

// follower merges one attempt's stdout and stderr files into its CRI log.
type follower struct {
	podUID  types.UID
	name    string   // the container's name in the pod
	path    string   // its CRI log
	out     *os.File // nil when the log could not be created
	sources [2]*source
	now     func() time.Time
	maxLine int
	log     logrus.FieldLogger
	onOpen  func(string, *follower)

	mu       sync.Mutex   // one read at a time
	first    atomic.Int32 // 1 + index in sources of the first file written to since the last read; 0: none
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	finished bool
}

// source is one output file of the attempt.
type source struct {
	path    string
	stream  string // "stdout" or "stderr", as in the CRI format
	f       *os.File
	partial []byte // read, not yet ended by a newline
	strip   bool   // still before the command's first line: launcher lines are dropped
	warned  bool   // a read error was logged
}

func newFollower(out *os.File, dir string, now func() time.Time, maxLine int, log logrus.FieldLogger) *follower {
	return &follower{
		out: out,
		sources: [2]*source{
			// stdout too: with a TTY the launcher writes to it (launcher.go).
			{path: filepath.Join(dir, "stdout"), stream: "stdout", strip: true},
			{path: filepath.Join(dir, "stderr"), stream: "stderr", strip: true},
		},
		now: now, maxLine: maxLine, log: log,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// poke wakes the follower for a write to the output file path.
func (f *follower) poke(path string) {
	for i, s := range f.sources {
		if s.path == path {
			f.first.CompareAndSwap(0, int32(i+1))
		}
	}
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run reads whenever woken or polled, until finish asks for the last read.
func (f *follower) run(clk clock.WithTicker, every time.Duration) {
	defer close(f.done)
	t := clk.NewTicker(every)
	defer t.Stop()
	f.read(false)
	for {
		select {
		case <-f.stop:
			f.read(true)
			return
		case <-f.wake:
		case <-t.C():
		}
		f.read(false)
	}
}

// finish stops a running follower after its last read and waits for it.
func (f *follower) finish() {
	f.stopOnce.Do(func() { close(f.stop) })
	<-f.done
}

// finishUnstarted makes the last read of a follower whose goroutine never ran.
func (f *follower) finishUnstarted() {
	f.stopOnce.Do(func() { close(f.stop) })
	f.read(true)
	close(f.done)
}

func (f *follower) isFinished() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished
}

// read appends what the files gained since the last read: first the file inotify reported written to
// first, else stdout (inotify wakes the follower on each write, so a read rarely sees both grow). last
// also writes an unended last line as a partial entry, as containerd does at the end of a stream, and
// closes everything.
func (f *follower) read(last bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished {
		return
	}
	var buf bytes.Buffer
	ts := f.now().UTC().Format(time.RFC3339Nano)
	order := f.sources
	if f.first.Swap(0) == 2 {
		order[0], order[1] = order[1], order[0]
	}
	for _, s := range order {
		if err := f.readSource(s, ts, &buf, last); err != nil && !s.warned {
			// Once: it would repeat at every poll.
			s.warned = true
			f.log.WithError(err).WithField("file", s.path).Warn("container logs: reading the output failed")
		}
	}
	f.flush(&buf)
	if last {
		f.finished = true
		for _, s := range f.sources {
			if s.f != nil {
				s.f.Close()
			}
		}
		if f.out != nil {
			f.out.Close()
		}
	}
}

const readChunk = 64 << 10

func (f *follower) readSource(s *source, ts string, buf *bytes.Buffer, last bool) error {
	if s.f == nil {
		file, err := os.Open(s.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not created yet (or the sandbox is gone)
		}
		if err != nil {
			return err
		}
		s.f = file
		if f.onOpen != nil {
			f.onOpen(s.path, f)
		}
	}
	chunk := make([]byte, readChunk)
	for {
		n, err := s.f.Read(chunk)
		if n > 0 {
			s.partial = append(s.partial, chunk[:n]...)
			f.lines(s, ts, buf)
			if buf.Len() >= readChunk {
				f.flush(buf)
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return err
		}
	}
	if last && len(s.partial) > 0 {
		f.entry(s, ts, "P", s.partial, buf)
		s.partial = nil
	}
	return nil
}

// lines turns the complete lines of s.partial into entries, and cuts what is left into partial
// entries while it is longer than maxLine.
func (f *follower) lines(s *source, ts string, buf *bytes.Buffer) {
	rest := s.partial
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		for i > f.maxLine {
			f.entry(s, ts, "P", rest[:f.maxLine], buf)
			rest, i = rest[f.maxLine:], i-f.maxLine
		}
		f.entry(s, ts, "F", rest[:i], buf)
		rest = rest[i+1:]
	}
	for len(rest) > f.maxLine {
		f.entry(s, ts, "P", rest[:f.maxLine], buf)
		rest = rest[f.maxLine:]
	}
	s.partial = append(s.partial[:0], rest...)
}

func (f *follower) entry(s *source, ts, tag string, line []byte, buf *bytes.Buffer) {
	if s.strip {
		if tag == "F" && IsLauncherLine(line) {
			return
		}
		s.strip = false
	}
	buf.WriteString(ts)
	buf.WriteByte(' ')
	buf.WriteString(s.stream)
	buf.WriteByte(' ')
	buf.WriteString(tag)
	buf.WriteByte(' ')
	buf.Write(line)
	buf.WriteByte('\n')
}

// flush appends whole entries with one write, so a reader never sees half of one.
func (f *follower) flush(buf *bytes.Buffer) {
	if buf.Len() == 0 {
		return
	}
	if f.out != nil {
		if _, err := f.out.Write(buf.Bytes()); err != nil {
			f.log.WithError(err).Warn("container logs: writing the log failed")
		}
	}
	buf.Reset()
}

package kubeletapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// logFiles are the output files of a nested container in its sandbox, in the order they are read.
var logFiles = []struct {
	name   string
	stream string
}{{"stdout", corev1.LogStreamStdout}, {"stderr", corev1.LogStreamStderr}}

// errBadLogRequest marks option errors (400).
var errBadLogRequest = errors.New("bad log request")

// parseLogOptions decodes the query as the kubelet does (PodLogOptions v1, the legacy "tail") and
// rejects what Mesos sandbox files cannot answer: they carry no timestamps, so timestamps, sinceTime
// and sinceSeconds cannot be honoured.
func parseLogOptions(q url.Values) (*corev1.PodLogOptions, error) {
	q = cloneValues(q)
	if tail := q.Get("tail"); tail != "" {
		q["tailLines"] = []string{tail}
		if tail == "all" {
			delete(q, "tailLines")
		}
	}
	opts, err := decodeLogOptions(q)
	if err != nil {
		return nil, fmt.Errorf("%w: unable to decode query: %v", errBadLogRequest, err)
	}
	switch {
	case opts.TailLines != nil && *opts.TailLines < 0:
		return nil, fmt.Errorf("%w: tailLines must be >= 0", errBadLogRequest)
	case opts.LimitBytes != nil && *opts.LimitBytes < 1:
		return nil, fmt.Errorf("%w: limitBytes must be >= 1", errBadLogRequest)
	case opts.Timestamps:
		return nil, fmt.Errorf("%w: timestamps are not available: Mesos sandbox logs do not record when a line was written", errBadLogRequest)
	case opts.SinceSeconds != nil || opts.SinceTime != nil:
		return nil, fmt.Errorf("%w: sinceSeconds/sinceTime are not available: Mesos sandbox logs do not record when a line was written", errBadLogRequest)
	case opts.Stream != nil && *opts.Stream != corev1.LogStreamAll && *opts.Stream != corev1.LogStreamStdout && *opts.Stream != corev1.LogStreamStderr:
		return nil, fmt.Errorf("%w: invalid stream type %q", errBadLogRequest, *opts.Stream)
	}
	return opts, nil
}

// decodeLogOptions decodes the v1 PodLogOptions query parameters the way the API's conversions do
// (a boolean is false only for "false" and "0").
func decodeLogOptions(q url.Values) (*corev1.PodLogOptions, error) {
	opts := &corev1.PodLogOptions{}
	boolean := func(name string) bool {
		v, ok := q[name]
		if !ok || len(v) == 0 {
			return false
		}
		switch strings.ToLower(v[0]) {
		case "false", "0":
			return false
		}
		return true
	}
	integer := func(name string) (*int64, error) {
		v := q.Get(name)
		if v == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &n, nil
	}
	opts.Follow, opts.Previous, opts.Timestamps = boolean("follow"), boolean("previous"), boolean("timestamps")
	var err error
	if opts.TailLines, err = integer("tailLines"); err != nil {
		return nil, err
	}
	if opts.LimitBytes, err = integer("limitBytes"); err != nil {
		return nil, err
	}
	if opts.SinceSeconds, err = integer("sinceSeconds"); err != nil {
		return nil, err
	}
	if v := q.Get("sinceTime"); v != "" {
		var t metav1.Time
		if err := t.UnmarshalQueryParameter(v); err != nil {
			return nil, fmt.Errorf("sinceTime: %w", err)
		}
		opts.SinceTime = &t
	}
	if v := q.Get("stream"); v != "" {
		opts.Stream = &v
	}
	return opts, nil
}

func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// serveLogs is GET /containerLogs/{namespace}/{pod}/{container}. stdout is written before stderr (the
// files carry no timestamps to interleave them); tailLines counts lines of that concatenation; follow
// polls the files until the attempt stops running and the client goes away.
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	log := s.log.WithFields(logrus.Fields{"pod": ns + "/" + pod, "container": container})
	opts, err := parseLogOptions(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ref, err := s.cfg.Pods.Container(ns, pod, container)
	if err != nil {
		writeLookupError(w, err)
		return
	}
	attempt := ref.Current
	if opts.Previous {
		attempt = ref.Previous
		if attempt == nil {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod), http.StatusBadRequest)
			return
		}
	}
	if attempt == nil {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, pod, ref.Waiting), http.StatusBadRequest)
		return
	}
	if _, err := os.Stat(attempt.LogDir); err != nil {
		http.Error(w, fmt.Sprintf("logs of container %q in pod %q are gone: the sandbox of Mesos container %s was removed", container, pod, attempt.ID), http.StatusNotFound)
		return
	}
	files := openLogFiles(attempt.LogDir, opts.Stream)
	defer files.close()
	if opts.TailLines != nil {
		if err := files.seekTail(*opts.TailLines); err != nil {
			http.Error(w, "reading logs: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	out := newFlushWriter(w, opts.LimitBytes)
	if err := files.copyNew(out); err != nil || out.full() || !opts.Follow || opts.Previous {
		return
	}
	ticker := s.clock.NewTicker(s.cfg.FollowPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ticker.C():
		}
		ended := !s.stillRunning(ns, pod, container, attempt.ID)
		if err := files.copyNew(out); err != nil || out.full() {
			return
		}
		if ended {
			log.Debug("followed container ended")
			return
		}
	}
}

// stillRunning tells whether the attempt id is still the running attempt of the container.
func (s *Server) stillRunning(ns, pod, container, id string) bool {
	ref, err := s.cfg.Pods.Container(ns, pod, container)
	return err == nil && ref.Current != nil && ref.Current.ID == id && ref.Current.Running
}

func writeLookupError(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrPodNotFound) || errors.Is(err, ErrContainerNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// logFile is one output file read from an offset on; a file that does not exist yet reads as empty.
type logFile struct {
	path   string
	f      *os.File
	offset int64
}

type logSet []*logFile

func openLogFiles(dir string, stream *string) logSet {
	var out logSet
	for _, lf := range logFiles {
		if stream != nil && *stream != corev1.LogStreamAll && *stream != lf.stream {
			continue
		}
		out = append(out, &logFile{path: filepath.Join(dir, lf.name)})
	}
	return out
}

func (ls logSet) close() {
	for _, l := range ls {
		if l.f != nil {
			l.f.Close()
		}
	}
}

func (l *logFile) open() bool {
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return false
		}
		l.f = f
	}
	return true
}

// seekTail positions the files so that what follows is the last n lines of their concatenation.
func (ls logSet) seekTail(n int64) error {
	remaining := n
	for i := len(ls) - 1; i >= 0; i-- {
		l := ls[i]
		if !l.open() {
			continue
		}
		off, got, err := tailOffset(l.f, remaining)
		if err != nil {
			return fmt.Errorf("%s: %w", l.path, err)
		}
		l.offset = off
		remaining -= got
	}
	return nil
}

// copyNew writes what was appended to each file since the last call.
func (ls logSet) copyNew(w *flushWriter) error {
	for _, l := range ls {
		if !l.open() {
			continue
		}
		n, err := io.Copy(w, io.NewSectionReader(l.f, l.offset, 1<<62))
		l.offset += n
		w.flush()
		if err != nil {
			return err
		}
		if w.full() {
			return nil
		}
	}
	return nil
}

// tailOffset returns where the last n lines of f begin and how many lines (≤ n) that covers. A last
// line without a newline counts as a line.
func tailOffset(f io.ReaderAt, n int64) (int64, int64, error) {
	size, err := sizeOf(f)
	if err != nil || n == 0 || size == 0 {
		return size, 0, err
	}
	const chunk = 32 << 10
	buf := make([]byte, chunk)
	var lines int64
	end := size
	// A trailing newline ends the last line rather than starting an empty one.
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return 0, 0, err
	}
	skipFinal := last[0] == '\n'
	for end > 0 {
		start := max(end-chunk, 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' {
				continue
			}
			pos := start + int64(i)
			if skipFinal && pos == size-1 {
				continue
			}
			lines++
			if lines == n {
				return pos + 1, lines, nil
			}
		}
		end = start
	}
	return 0, lines + 1, nil
}

func sizeOf(f io.ReaderAt) (int64, error) {
	if st, ok := f.(interface{ Stat() (os.FileInfo, error) }); ok {
		fi, err := st.Stat()
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	if r, ok := f.(*bytes.Reader); ok {
		return r.Size(), nil
	}
	return 0, errors.New("cannot tell the size of the log file")
}

// flushWriter writes to the response, flushes, and stops after limit bytes (if set).
type flushWriter struct {
	w       io.Writer
	f       http.Flusher
	limit   int64 // < 0: none
	written int64
}

func newFlushWriter(w http.ResponseWriter, limit *int64) *flushWriter {
	fw := &flushWriter{w: w, limit: -1}
	fw.f, _ = w.(http.Flusher)
	if limit != nil {
		fw.limit = *limit
	}
	return fw
}

// errLimit ends a copy once limitBytes were written.
var errLimit = errors.New("limitBytes reached")

func (fw *flushWriter) Write(p []byte) (int, error) {
	cut := false
	if fw.limit >= 0 && fw.written+int64(len(p)) > fw.limit {
		p = p[:fw.limit-fw.written]
		cut = true
	}
	n, err := fw.w.Write(p)
	fw.written += int64(n)
	if err == nil && cut {
		err = errLimit
	}
	return n, err
}

func (fw *flushWriter) full() bool { return fw.limit >= 0 && fw.written >= fw.limit }

func (fw *flushWriter) flush() {
	if fw.f != nil {
		fw.f.Flush()
	}
}

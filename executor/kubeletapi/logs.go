package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crilogs "k8s.io/cri-client/pkg/logs"
)

// errBadLogRequest marks option errors (400).
var errBadLogRequest = errors.New("bad log request")

// parseLogOptions decodes the query as the kubelet does (PodLogOptions v1, the legacy "tail") and
// checks it as the API server's validation does.
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
	case opts.SinceSeconds != nil && opts.SinceTime != nil:
		return nil, fmt.Errorf("%w: at most one of sinceTime or sinceSeconds may be specified", errBadLogRequest)
	case opts.SinceSeconds != nil && *opts.SinceSeconds < 1:
		return nil, fmt.Errorf("%w: sinceSeconds must be greater than 0", errBadLogRequest)
	case opts.Stream != nil && *opts.Stream != corev1.LogStreamAll && *opts.Stream != corev1.LogStreamStdout && *opts.Stream != corev1.LogStreamStderr:
		return nil, fmt.Errorf("%w: invalid stream type %q", errBadLogRequest, *opts.Stream)
	case opts.Stream != nil && *opts.Stream != corev1.LogStreamAll && opts.TailLines != nil:
		return nil, fmt.Errorf("%w: tailLines and specific stream are mutually exclusive for now", errBadLogRequest)
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

// serveLogs is GET /containerLogs/{namespace}/{pod}/{container}: the attempt's CRI log (package
// containerlogs writes it) read by the kubelet's own reader, so tailLines, limitBytes, sinceSeconds,
// sinceTime, timestamps, stream and follow behave as on a kubelet. Following ends once the attempt no
// longer runs and its log is read to the end.
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
	if _, err := os.Stat(attempt.LogPath); err != nil {
		log.WithError(err).Info("no log for the attempt")
		http.Error(w, fmt.Sprintf("logs of container %q in pod %q (Mesos container %s) are gone", container, pod, attempt.ID), http.StatusNotFound)
		return
	}
	lo := &crilogs.LogOptions{TailLines: opts.TailLines, LimitBytes: opts.LimitBytes, Follow: opts.Follow, Timestamp: opts.Timestamps}
	if opts.SinceSeconds != nil {
		lo.Since = s.clock.Now().Add(-time.Duration(*opts.SinceSeconds) * time.Second)
	}
	if opts.SinceTime != nil && opts.SinceTime.After(lo.Since) {
		lo.Since = opts.SinceTime.Time
	}
	w.Header().Set("Content-Type", "text/plain")
	out := &flushWriter{w: w}
	out.f, _ = w.(http.Flusher)
	stdout, stderr := io.Writer(out), io.Writer(out)
	if opts.Stream != nil {
		switch *opts.Stream {
		case corev1.LogStreamStdout:
			stderr = nil
		case corev1.LogStreamStderr:
			stdout = nil
		}
	}
	state := attemptState{running: func() bool { return s.stillRunning(ns, pod, container, attempt.ID) }}
	err = crilogs.ReadLogs(r.Context(), attempt.LogPath, attempt.ID, lo, state, stdout, stderr)
	switch {
	case err == nil:
		if !out.wrote {
			w.WriteHeader(http.StatusOK)
		}
	case r.Context().Err() != nil:
		log.WithError(err).Debug("log client went away")
	case !out.wrote:
		http.Error(w, "reading logs: "+err.Error(), http.StatusInternalServerError)
	default:
		log.WithError(err).Warn("reading logs")
	}
}

// attemptState answers the one question the kubelet's log reader asks the runtime while following:
// does the container still run (its log may grow)?
type attemptState struct {
	internalapi.RuntimeService // nil: crilogs.ReadLogs calls only ContainerStatus
	running                    func() bool
}

func (a attemptState) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	state := runtimeapi.ContainerState_CONTAINER_EXITED
	if a.running() {
		state = runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: id, State: state}}, nil
}

// stillRunning tells whether the attempt id is still the running attempt of the container. The
// executor updates the log (its last read) before the registry learns that the attempt ended, so a
// follower that sees it ended reads the complete log.
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

// flushWriter flushes every write to the client, as the kubelet's flushwriter does.
type flushWriter struct {
	w     io.Writer
	f     http.Flusher
	wrote bool
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	fw.wrote = true
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

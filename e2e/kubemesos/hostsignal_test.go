package kubemesos

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// hostSignals is an HTTP endpoint on the host through which a test and its containers talk in either
// agent mode: an isolated container sees its image's filesystem, not the test's files, but shares the
// host's network (the agents have no network isolator). GET /<name> records the request and answers the
// value the test set for name, else how many earlier requests of name there were. Containers call it
// with `wget -q -O - <url>` (busybox's wget in isolating mode, the host's in process mode).
type hostSignals struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   map[string]int
	values map[string]string
}

func newHostSignals(t testing.TB) *hostSignals {
	h := &hostSignals{seen: map[string]int{}, values: map[string]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		h.mu.Lock()
		n := h.seen[name]
		h.seen[name]++
		v, ok := h.values[name]
		h.mu.Unlock()
		if !ok {
			v = strconv.Itoa(n)
		}
		fmt.Fprint(w, v)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// get is the shell command that requests name and prints the answer.
func (h *hostSignals) get(name string) string {
	return "wget -q -O - " + h.srv.URL + "/" + name
}

func (h *hostSignals) set(name, value string) {
	h.mu.Lock()
	h.values[name] = value
	h.mu.Unlock()
}

func (h *hostSignals) count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[name]
}

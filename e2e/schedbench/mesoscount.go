package schedbench

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// MesosCounter is a reverse proxy in front of a Mesos master that counts the calls passing through
// it by API and type ("scheduler ACCEPT", "operator GET_AGENTS"): the framework's Mesos calls,
// when the framework's --master points at it.
type MesosCounter struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	calls map[string]int
}

// NewMesosCounter proxies to the master at target (http://host:port).
func NewMesosCounter(target string) (*MesosCounter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.FlushInterval = -1 // SUBSCRIBE's response is an event stream
	return &MesosCounter{proxy: p, calls: map[string]int{}}, nil
}

func (c *MesosCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	api := ""
	switch r.URL.Path {
	case "/api/v1/scheduler":
		api = "scheduler"
	case "/api/v1":
		api = "operator"
	}
	if api != "" && r.Method == http.MethodPost && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		c.count(api + " " + callType(api, r.Header.Get("Content-Type"), body))
	}
	c.proxy.ServeHTTP(w, r)
}

// callType decodes the call's type from its protobuf or JSON body ("UNKNOWN" if it cannot).
func callType(api, contentType string, body []byte) string {
	if strings.Contains(contentType, "json") {
		var v struct{ Type string }
		if json.Unmarshal(body, &v) == nil && v.Type != "" {
			return v.Type
		}
		return "UNKNOWN"
	}
	if api == "scheduler" {
		var call scheduler.Call
		if call.Unmarshal(body) == nil {
			return call.Type.String()
		}
		return "UNKNOWN"
	}
	var call master.Call
	if call.Unmarshal(body) == nil {
		return call.Type.String()
	}
	return "UNKNOWN"
}

func (c *MesosCounter) count(key string) {
	c.mu.Lock()
	c.calls[key]++
	c.mu.Unlock()
}

// Calls is a copy of the counts so far.
func (c *MesosCounter) Calls() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

// DiffCalls is after minus before, keys sorted into the map as they grew.
func DiffCalls(before, after map[string]int) map[string]int {
	out := map[string]int{}
	keys := make([]string, 0, len(after))
	for k := range after {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if d := after[k] - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

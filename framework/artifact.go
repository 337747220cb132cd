package framework

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// executorArtifact is the binary the framework serves to agents at ExecutorPath, and its SHA-256.
// The digest makes a URI that names one immutable binary (<executor URI>?sha256=<digest>), which
// agents may keep in their fetcher cache: every pod on the pod network starts a sandbox executor from
// this binary, and without the cache each would download it again.
type executorArtifact struct {
	path   string
	digest string // hex; "" when the binary could not be read
}

func newExecutorArtifact(path string) (executorArtifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return executorArtifact{path: path}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return executorArtifact{path: path}, err
	}
	return executorArtifact{path: path, digest: hex.EncodeToString(h.Sum(nil))}, nil
}

// digestParam is the query parameter naming the binary's SHA-256.
const digestParam = "sha256"

// pinned is uri naming this binary by digest.
func (a executorArtifact) pinned(uri string) string {
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + digestParam + "=" + a.digest
}

// serve answers GET and HEAD with the binary. A request naming another digest (an agent fetching for
// a launch decided by a framework binary since replaced) gets 404: a cached copy must never be a
// different binary from the one its URI names.
func (a executorArtifact) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if want := r.URL.Query().Get(digestParam); want != "" && want != a.digest {
		http.Error(w, fmt.Sprintf("executor binary sha256 %s is not served here (this framework serves %s)", want, a.digest), http.StatusNotFound)
		return
	}
	f, err := os.Open(a.path)
	if err != nil {
		http.Error(w, "executor binary unavailable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "executor binary unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "kubemesos", st.ModTime(), f)
}

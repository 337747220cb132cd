package replicas

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// bindingAuditPolicy records pods/binding creates only, with the API server's answer.
const bindingAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create"]
  resources:
  - group: ""
    resources: ["pods/binding"]
- level: None
`

// BindingAudit writes that policy into dir and returns the API server's flags for it and the path of
// the log it will write. Blocking mode: an event is written before the API server answers, so the log
// is complete for every Binding a client saw answered.
func BindingAudit(dir string) (args []string, logPath string, err error) {
	policy := filepath.Join(dir, "binding-audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(bindingAuditPolicy), 0o644); err != nil {
		return nil, "", fmt.Errorf("binding audit policy: %w", err)
	}
	logPath = filepath.Join(dir, "bindings-audit.log")
	return []string{"--audit-policy-file=" + policy, "--audit-log-path=" + logPath, "--audit-log-mode=blocking"}, logPath, nil
}

// ReadOptions tune ReadBindingCodes.
type ReadOptions struct {
	// TolerateCutLastLine drops a last line that does not parse: one the API server is still writing
	// (a reader racing a live server). Elsewhere such a line is an error.
	TolerateCutLastLine bool
	// MissingIsEmpty reads a log not written yet as empty (no Binding audited so far).
	MissingIsEmpty bool
}

// ReadBindingCodes reads the audit log at path: per pod name of namespace ns, the API server's answer
// codes to its Binding creates, in the log's order.
func ReadBindingCodes(path, ns string, opts ReadOptions) (map[string][]int, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) && opts.MissingIsEmpty {
		return map[string][]int{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBindingCodes(f, ns, opts)
}

func readBindingCodes(r io.Reader, ns string, opts ReadOptions) (map[string][]int, error) {
	out := map[string][]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	var bad error // a line that did not parse: an error unless it turns out to be the last one
	for sc.Scan() {
		if bad != nil {
			return nil, bad
		}
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev struct {
			Stage     string `json:"stage"`
			ObjectRef struct {
				Namespace, Name, Resource, Subresource string
			} `json:"objectRef"`
			ResponseStatus struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			bad = fmt.Errorf("audit log line %q: %w", line, err)
			continue
		}
		ref := ev.ObjectRef
		if ev.Stage == "ResponseComplete" && ref.Namespace == ns && ref.Resource == "pods" && ref.Subresource == "binding" {
			out[ref.Name] = append(out[ref.Name], ev.ResponseStatus.Code)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if bad != nil && !opts.TolerateCutLastLine {
		return nil, bad
	}
	return out, nil
}

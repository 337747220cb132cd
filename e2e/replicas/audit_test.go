package replicas

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func event(stage, ns, name, sub string, code int) string {
	return `{"kind":"Event","stage":"` + stage + `","verb":"create","objectRef":{"resource":"pods","namespace":"` + ns +
		`","name":"` + name + `","subresource":"` + sub + `"},"responseStatus":{"code":` + strconv.Itoa(code) + `}}`
}

func TestBindingCodesPerPodOfTheNamespace(t *testing.T) {
	log := strings.Join([]string{
		event("ResponseComplete", "ns", "a", "binding", 201),
		event("ResponseComplete", "ns", "a", "binding", 409),
		event("ResponseStarted", "ns", "b", "binding", 201),
		event("ResponseComplete", "other", "b", "binding", 201),
		event("ResponseComplete", "ns", "c", "status", 200),
		event("ResponseComplete", "ns", "b", "binding", 201),
	}, "\n") + "\n"
	got, err := readBindingCodes(strings.NewReader(log), "ns", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]int{"a": {201, 409}, "b": {201}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A half-written last line is dropped only when asked; one followed by another line is always an error.
func TestBindingCodesCutLine(t *testing.T) {
	full := event("ResponseComplete", "ns", "a", "binding", 201)
	cut := full[:len(full)/2]
	last := full + "\n" + cut
	if _, err := readBindingCodes(strings.NewReader(last), "ns", ReadOptions{}); err == nil {
		t.Error("a cut last line read without error by default")
	}
	got, err := readBindingCodes(strings.NewReader(last), "ns", ReadOptions{TolerateCutLastLine: true})
	if err != nil || !reflect.DeepEqual(got, map[string][]int{"a": {201}}) {
		t.Errorf("tolerated cut last line: %v, %v", got, err)
	}
	middle := cut + "\n" + full + "\n"
	if _, err := readBindingCodes(strings.NewReader(middle), "ns", ReadOptions{TolerateCutLastLine: true}); err == nil {
		t.Error("a bad line followed by another one was tolerated")
	}
}

func TestBindingAuditFilesAndMissingLog(t *testing.T) {
	dir := t.TempDir()
	args, logPath, err := BindingAudit(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--audit-policy-file=" + filepath.Join(dir, "binding-audit-policy.yaml"), "--audit-log-path=" + logPath, "--audit-log-mode=blocking"}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("args %v, want %v", args, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "binding-audit-policy.yaml")); err != nil || !strings.Contains(string(b), "pods/binding") {
		t.Fatalf("policy: %q, %v", b, err)
	}
	if _, err := ReadBindingCodes(logPath, "ns", ReadOptions{}); !os.IsNotExist(err) {
		t.Errorf("missing log: %v, want not-exist", err)
	}
	if got, err := ReadBindingCodes(logPath, "ns", ReadOptions{MissingIsEmpty: true}); err != nil || len(got) != 0 {
		t.Errorf("missing log as empty: %v, %v", got, err)
	}
	if err := os.WriteFile(logPath, []byte(event("ResponseComplete", "ns", "a", "binding", 201)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadBindingCodes(logPath, "ns", ReadOptions{}); err != nil || !reflect.DeepEqual(got, map[string][]int{"a": {201}}) {
		t.Errorf("log: %v, %v", got, err)
	}
}

package kubeletapi

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkTailOffset: the last 100 lines of a 64 MiB log file (read backwards from the end).
func BenchmarkTailOffset(b *testing.B) {
	path := filepath.Join(b.TempDir(), "stdout")
	line := strings.Repeat("x", 127) + "\n"
	if err := os.WriteFile(path, []byte(strings.Repeat(line, 64<<20/len(line))), 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.ResetTimer()
	for b.Loop() {
		if _, n, err := tailOffset(f, 100); err != nil || n != 100 {
			b.Fatalf("tailOffset = %d lines, %v", n, err)
		}
	}
}

// BenchmarkMesosExec: one exec (`cat` of a short stdin) as a nested container session on the
// simulated agent: launch, input, output, wait, remove.
func BenchmarkMesosExec(b *testing.B) {
	sp := newSimPod(b)
	m := sp.execer()
	for b.Loop() {
		var out bytes.Buffer
		code, err := m.Exec(context.Background(), ExecRequest{ContainerID: sp.container, Command: []string{"cat"},
			Stdin: strings.NewReader("ping"), Stdout: &out})
		if err != nil || code != 0 || out.String() != "ping" {
			b.Fatalf("exec = %d %q, %v", code, out.String(), err)
		}
	}
}

package recordio

import (
	"bytes"
	"errors"
	"testing"
)

// writes records every Write call and the flushes after it.
type writes struct {
	calls   []string
	flushed []int // len(calls) at each flush
	err     error
}

func (w *writes) Write(b []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.calls = append(w.calls, string(b))
	return len(b), nil
}

func TestWriteChunkIsOneWriteThenAFlush(t *testing.T) {
	w := &writes{}
	big := bytes.Repeat([]byte("x"), 70000)
	for _, rec := range [][]byte{[]byte(`{"type":"HEARTBEAT"}`), big} {
		if err := WriteChunk(w, func() { w.flushed = append(w.flushed, len(w.calls)) }, rec); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"20\n" + `{"type":"HEARTBEAT"}`, "70000\n" + string(big)}
	if len(w.calls) != 2 || w.calls[0] != want[0] || w.calls[1] != want[1] {
		t.Errorf("writes %.40q, want one per record: %.40q", w.calls, want)
	}
	if len(w.flushed) != 2 || w.flushed[0] != 1 || w.flushed[1] != 2 {
		t.Errorf("flushes after writes %v, want [1 2]", w.flushed)
	}
}

func TestWriteChunkStopsAtAWriteError(t *testing.T) {
	boom := errors.New("boom")
	flushed := false
	if err := WriteChunk(&writes{err: boom}, func() { flushed = true }, []byte("x")); !errors.Is(err, boom) || flushed {
		t.Errorf("err %v, flushed %v; want boom and no flush", err, flushed)
	}
}

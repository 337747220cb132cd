package chunked

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func reader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestReadChunk(t *testing.T) {
	r := reader("5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nTrailer: x\r\n\r\n")
	for _, want := range []string{"hello", "!"} {
		got, err := ReadChunk(r)
		if err != nil || string(got) != want {
			t.Fatalf("ReadChunk = %q, %v; want %q", got, err, want)
		}
	}
	if got, err := ReadChunk(r); err != io.EOF || got != nil {
		t.Fatalf("after the last chunk: %q, %v; want io.EOF itself", got, err)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"connection closed before the last chunk", "5\r\nhello\r\n", "reading chunk size: EOF"},
		{"size line without CR", "5\nhello\r\n", `chunk size line "5\n" does not end in CRLF`},
		{"size that is not hex", "zz\r\n", `chunk size "zz"`},
		{"chunk over the bound", "4000001\r\n", "chunk of 67108865 bytes: more than 67108864"},
		{"short chunk", "5\r\nhel", "reading 5-byte chunk: unexpected EOF"},
		{"data not followed by CRLF", "2\r\nhello", "chunk data not followed by CRLF"},
		{"trailer cut off", "0\r\nTrailer: x\r\n", "reading trailer: EOF"},
	} {
		r := reader(tc.in)
		if tc.name == "connection closed before the last chunk" {
			if _, err := ReadChunk(r); err != nil {
				t.Fatal(err)
			}
		}
		_, err := ReadChunk(r)
		if err == nil || err == io.EOF || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error starting %q", tc.name, err, tc.want)
		}
		if tc.name == "connection closed before the last chunk" && !errors.Is(err, io.EOF) {
			t.Errorf("%s: %v does not wrap io.EOF", tc.name, err)
		}
	}
}

func TestWritePostAndReadHead(t *testing.T) {
	var b bytes.Buffer
	h := http.Header{"Content-Type": {"application/json"}, "Accept": {"a", "b"}}
	if err := WritePost(&b, "h:1", "/api/v1", h, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	want := "POST /api/v1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\nAccept: a\r\nAccept: b\r\nContent-Type: application/json\r\n\r\n{}"
	if b.String() != want {
		t.Errorf("request %q, want %q", b.String(), want)
	}
	head, err := ReadHead(reader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nMesos-Stream-Id: s\r\n\r\n"))
	if err != nil || head.Proto != "HTTP/1.1" || head.Status != 200 || !head.Chunked() || head.Header.Get("Mesos-Stream-Id") != "s" {
		t.Errorf("ReadHead = %+v, %v", head, err)
	}
	if _, err := ReadHead(reader("HTTP/1.1 OK\r\n\r\n")); err == nil {
		t.Error("a status line without a code is accepted")
	}
}

package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func fileServer(t *testing.T) *httptest.Server {
	t.Helper()
	tgz := tarball(t, map[string]string{"app/hello.txt": "hello from tar\n"})
	mux := http.NewServeMux()
	mux.HandleFunc("/files/run.sh", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("#!/bin/sh\necho fetched\n")) })
	mux.HandleFunc("/files/app.tar.gz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(tgz) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestFetcher(t *testing.T) {
	srv := fileServer(t)
	local := filepath.Join(t.TempDir(), "local.txt")
	if err := os.WriteFile(local, []byte("local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	renamed := "renamed.txt"
	type file struct {
		Content string
		Mode    os.FileMode
	}
	tests := []struct {
		name    string
		uri     mesos.CommandInfo_URI
		want    map[string]file
		wantErr bool
	}{
		{name: "http, executable", uri: mesos.CommandInfo_URI{Value: srv.URL + "/files/run.sh", Executable: &yes},
			want: map[string]file{"run.sh": {"#!/bin/sh\necho fetched\n", 0o755}}},
		{name: "file:// with output_file", uri: mesos.CommandInfo_URI{Value: "file://" + local, OutputFile: &renamed},
			want: map[string]file{"renamed.txt": {"local\n", 0o644}}},
		{name: "absolute path", uri: mesos.CommandInfo_URI{Value: local},
			want: map[string]file{"local.txt": {"local\n", 0o644}}},
		{name: "tarball extracted by default", uri: mesos.CommandInfo_URI{Value: srv.URL + "/files/app.tar.gz"},
			want: map[string]file{"app/hello.txt": {"hello from tar\n", 0o644}}},
		{name: "tarball kept with extract=false", uri: mesos.CommandInfo_URI{Value: srv.URL + "/files/app.tar.gz", Extract: &no},
			want: map[string]file{"app/hello.txt": {}}},
		{name: "HTTP 404", uri: mesos.CommandInfo_URI{Value: srv.URL + "/missing"}, wantErr: true},
		{name: "relative path", uri: mesos.CommandInfo_URI{Value: "local.txt"}, wantErr: true},
		{name: "unsupported scheme", uri: mesos.CommandInfo_URI{Value: "hdfs://nn/x"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sandbox := t.TempDir()
			err := fetchAll(context.Background(), http.DefaultClient, []mesos.CommandInfo_URI{tc.uri}, sandbox, nil, "")
			if (err != nil) != tc.wantErr {
				t.Fatalf("fetchAll error = %v, wantErr %v", err, tc.wantErr)
			}
			got := map[string]file{}
			for name := range tc.want {
				st, err := os.Stat(filepath.Join(sandbox, name))
				if err != nil {
					got[name] = file{}
					continue
				}
				b, _ := os.ReadFile(filepath.Join(sandbox, name))
				got[name] = file{string(b), st.Mode().Perm()}
			}
			if diff := cmp.Diff(tc.want, got); len(tc.want) > 0 && diff != "" {
				t.Errorf("sandbox (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFetchedExecutableRunsAndFetchFailureFailsTheTask(t *testing.T) {
	srv := fileServer(t)
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	yes := true
	ok := commandTask("ok", "./run.sh > out.txt && grep -q fetched out.txt")
	ok.Command.URIs = []mesos.CommandInfo_URI{{Value: srv.URL + "/files/run.sh", Executable: &yes}}
	bad := commandTask("bad", "true")
	bad.Command.URIs = []mesos.CommandInfo_URI{{Value: srv.URL + "/missing"}}
	a.Launch(testFramework(false), nil, []mesos.TaskInfo{ok, bad}, false)
	waitFor(t, "both tasks done", func() bool { return len(m.states("ok")) == 3 && len(m.states("bad")) == 1 })
	if diff := cmp.Diff([]string{"TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"}, m.states("ok")); diff != "" {
		t.Errorf("ok states (-want +got):\n%s", diff)
	}
	u := m.updates("bad")[0]
	if u.GetState() != mesos.TASK_FAILED || u.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED || u.GetSource() != mesos.SOURCE_AGENT {
		t.Errorf("bad update = %v, want TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED, SOURCE_AGENT", u)
	}
}

package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubemesos/kubemesos/internal/diffcheck"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"simulator alone", nil, ""},
		{"master", []string{"--master", "http://leader.mesos:5050", "--out", "x.json"}, ""},
		{"against", []string{"--against", "http://leader.mesos:5050"}, ""},
		{"two files", []string{"a.json", "b.json"}, ""},
		{"one file", []string{"a.json"}, "two observation files"},
		{"files and master", []string{"--master", "http://m:5050", "a.json", "b.json"}, "exclude"},
		{"unknown flag", []string{"--nope"}, "unknown flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if (tc.wantErr == "") != (got == "") || !strings.Contains(got, tc.wantErr) {
				t.Errorf("error %q, want containing %q", got, tc.wantErr)
			}
		})
	}
	o, _ := parseFlags([]string{"--against", "http://m:5050"})
	if o.master != "http://m:5050" {
		t.Errorf("--against set master %q", o.master)
	}
}

func TestCompareFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	obs := []diffcheck.Observation{{Step: "10-scheduler-no-content-type", Key: "status", Value: "400"}}
	if err := diffcheck.WriteReport(a, diffcheck.Report{Target: "simulator", Observations: obs}); err != nil {
		t.Fatal(err)
	}
	obs[0].Value = "415"
	if err := diffcheck.WriteReport(b, diffcheck.Report{Target: "http://m:5050", Observations: obs}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	differ, err := run(context.Background(), &options{files: []string{a, b}}, &out, &out)
	if err != nil || !differ {
		t.Fatalf("differ %v, err %v", differ, err)
	}
	for _, want := range []string{"10-scheduler-no-content-type", "simulator:", "http://m:5050:", "400", "415"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// Two runs of the same target are told apart by their files.
	out.Reset()
	c := filepath.Join(dir, "c.json")
	if err := diffcheck.WriteReport(c, diffcheck.Report{Target: "simulator", Observations: obs}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(context.Background(), &options{files: []string{a, c}}, &out, &out); err != nil || !strings.Contains(out.String(), c+":") {
		t.Errorf("err %v, output lacks the file names:\n%s", err, out.String())
	}
	out.Reset()
	if differ, err := run(context.Background(), &options{files: []string{a, a}}, &out, &out); err != nil || differ {
		t.Errorf("a file differs from itself: %v %v\n%s", differ, err, out.String())
	}
}

// The simulator compared, through --master, with another simulator: no differences, and both
// runs' observations written.
func TestMasterAgainstSimulator(t *testing.T) {
	other, err := diffcheck.StartSimulator(200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	dir := t.TempDir()
	o := &options{master: other.URL, out: filepath.Join(dir, "master.json"), simOut: filepath.Join(dir, "sim.json"),
		user: "nobody", timeout: 2 * time.Minute, wait: 20 * time.Second, window: time.Second, allocation: 200 * time.Millisecond}
	var out strings.Builder
	differ, err := run(context.Background(), o, &out, &out)
	if err != nil || differ {
		t.Fatalf("differ %v, err %v:\n%s", differ, err, out.String())
	}
	for _, f := range []string{o.out, o.simOut} {
		r, err := diffcheck.ReadReport(f)
		if err != nil || len(r.Observations) < 100 {
			t.Errorf("%s: %d observations, err %v", f, len(r.Observations), err)
		}
	}
	if !strings.Contains(out.String(), "no differences") {
		t.Errorf("output %q", out.String())
	}
}

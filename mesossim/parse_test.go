package mesossim

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestParseResources(t *testing.T) {
	tests := []struct {
		in      string
		want    string // mesos.Resources.String()
		wantErr string
	}{
		{"cpus:4;mem:8192;disk:65536;ports:[31000-32000]", "cpus:4;mem:8192;disk:65536;ports:[31000-32000]", ""},
		{" cpus : 0.5 ; ports:[1-2, 5-9] ", "cpus:0.5;ports:[1-2,5-9]", ""},
		{"gpus(*):1", "gpus:1", ""},
		{"cpus(web):2", "cpus(reservations:[(STATIC,web)]):2", ""},
		{"zones:{a,b}", "zones:{a,b}", ""},
		{"cpus", "", "expected name:value"},
		{"cpus:four", "", "bad value"},
		{"cpus:-1", "", "negative"},
		{"ports:[9-1]", "", "bad range"},
		{"ports:[1-2", "", "unterminated"},
		{"cpus(web:2", "", "bad role"},
		{":3", "", "empty name"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseResources(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, strings.ReplaceAll(got.String(), " ", "")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAttributes(t *testing.T) {
	got, err := ParseAttributes("rack:r%d;level:3;ids:[1-4];zones:{a,b}", 7)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"rack": "r7", "level": 3.0, "ids": "[1-4]", "zones": "{a, b}"}
	if diff := cmp.Diff(want, attributesModel(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got[0].Type != mesos.TEXT {
		t.Errorf("rack type %v, want TEXT", got[0].Type)
	}
	for _, bad := range []string{"rack", "rack:", ":x", "ids:[2-1]"} {
		if _, err := ParseAttributes(bad, 0); err == nil {
			t.Errorf("ParseAttributes(%q) accepted", bad)
		}
	}
}

func TestParseWeights(t *testing.T) {
	got, err := ParseWeights("a=1, b=2.5,")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]float64{"a": 1, "b": 2.5}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"a", "a=x", "a=0", "=1"} {
		if _, err := ParseWeights(bad); err == nil {
			t.Errorf("ParseWeights(%q) accepted", bad)
		}
	}
}

func TestOmitNulls(t *testing.T) {
	in := `{"a":null,"b":[{"c":null,"d":18446744073709551615}],"e":{"f":null},"g":"null"}`
	got, err := omitNulls([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"b":[{"d":18446744073709551615}],"e":{},"g":"null"}`, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

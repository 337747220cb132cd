package agent

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestUpdateManagerOrdersAndDeduplicates(t *testing.T) {
	upd := func(id string, s mesos.TaskState) pendingUpdate {
		return pendingUpdate{status: mesos.TaskStatus{TaskID: mesos.TaskID{Value: "t"}, State: s.Enum(), UUID: []byte(id)}}
	}
	type step struct {
		add       *pendingUpdate
		ack       string
		wantHead  bool   // add: became head
		wantDup   bool   // add: duplicate
		wantAcked bool   // ack: accepted
		wantNext  string // ack: UUID of the new head ("" for none)
	}
	p := func(u pendingUpdate) *pendingUpdate { return &u }
	tests := []struct {
		name  string
		steps []step
	}{
		{"first update is head, later ones wait", []step{
			{add: p(upd("a", mesos.TASK_RUNNING)), wantHead: true},
			{add: p(upd("b", mesos.TASK_FINISHED))},
			{ack: "a", wantAcked: true, wantNext: "b"},
			{ack: "b", wantAcked: true},
		}},
		{"duplicate UUIDs are ignored", []step{
			{add: p(upd("a", mesos.TASK_RUNNING)), wantHead: true},
			{add: p(upd("a", mesos.TASK_RUNNING)), wantDup: true},
		}},
		{"acks of anything but the head are ignored", []step{
			{add: p(upd("a", mesos.TASK_RUNNING)), wantHead: true},
			{add: p(upd("b", mesos.TASK_FINISHED))},
			{ack: "b"},
			{ack: "x"},
			{ack: "a", wantAcked: true, wantNext: "b"},
			{ack: "a"},
		}},
		{"after the head is acked the next add is head", []step{
			{add: p(upd("a", mesos.TASK_STARTING)), wantHead: true},
			{ack: "a", wantAcked: true},
			{add: p(upd("b", mesos.TASK_RUNNING)), wantHead: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newUpdateManager()
			k := streamKey{"fw", "t"}
			for i, s := range tc.steps {
				if s.add != nil {
					head, dup := m.add(k, *s.add)
					if diff := cmp.Diff([2]bool{s.wantHead, s.wantDup}, [2]bool{head, dup}); diff != "" {
						t.Fatalf("step %d add (-want +got [head dup]):\n%s", i, diff)
					}
					continue
				}
				_, next, ok := m.ack(k, []byte(s.ack))
				gotNext := ""
				if next != nil {
					gotNext = string(next.status.UUID)
				}
				if diff := cmp.Diff([2]any{s.wantAcked, s.wantNext}, [2]any{ok, gotNext}); diff != "" {
					t.Fatalf("step %d ack %q (-want +got [acked next]):\n%s", i, s.ack, diff)
				}
			}
		})
	}
}

func TestUpdateManagerBackoffDoublesToMax(t *testing.T) {
	m := newUpdateManager()
	k := streamKey{"fw", "t"}
	m.add(k, pendingUpdate{status: mesos.TaskStatus{UUID: []byte("a")}})
	var got []time.Duration
	for i := 0; i < 5; i++ {
		got = append(got, m.nextBackoff(k, 10*time.Second, 60*time.Second))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 60 * time.Second, 60 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("backoff (-want +got):\n%s", diff)
	}
}

func TestFormatDurationLikeStout(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{5 * time.Second, "5secs"},
		{90 * time.Second, "90secs"}, // a whole number of a smaller unit, as stout prints it
		{15 * time.Minute, "15mins"},
		{2 * time.Hour, "2hrs"},
		{250 * time.Millisecond, "250ms"},
		{14 * 24 * time.Hour, "2weeks"},
	}
	for _, tc := range tests {
		if got := formatDuration(tc.in); got != tc.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDescribeWaitStatus(t *testing.T) {
	tests := []struct {
		status int32
		want   string
	}{
		{0, "exited with status 0"},
		{3 << 8, "exited with status 3"},
		{int32(syscall.SIGKILL), "terminated with signal Killed"},
		{-1, "unknown exit status"},
	}
	for _, tc := range tests {
		if got := describeWaitStatus(tc.status); got != tc.want {
			t.Errorf("describeWaitStatus(%d) = %q, want %q", tc.status, got, tc.want)
		}
	}
}

func TestAccepts(t *testing.T) {
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{"", mediaJSON, true},
		{"application/json", mediaJSON, true},
		{"application/x-protobuf", mediaJSON, false},
		{"*/*", mediaProtobuf, true},
		{"application/*", mediaRecordIO, true},
		{"text/html, application/json;q=0", mediaJSON, false},
		{"application/x-protobuf|application/recordio", mediaProtobuf, false},
		{"application/x-protobuf|application/recordio", mediaRecordIO, true},
	}
	for _, tc := range tests {
		h := map[string][]string{}
		if tc.header != "" {
			h["Accept"] = strings.Split(tc.header, "|") // "|" separates repeated header lines
		}
		if got := accepts(h, "Accept", tc.want); got != tc.ok {
			t.Errorf("accepts(%q, %q) = %v, want %v", tc.header, tc.want, got, tc.ok)
		}
	}
}

package execstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
)

// recordIO frames events as the agent's stream does: "<length>\n<protobuf>" per event.
func recordIO(t testing.TB, events ...*mesosexec.Event) []byte {
	var out []byte
	for _, e := range events {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, strconv.Itoa(len(b))+"\n"...), b...)
	}
	return out
}

// FuzzSubscriptionStream answers SUBSCRIBE with any body (a garbled or truncated RecordIO stream of
// events): Run must hand over what decodes, then end with an error, never panic or hang.
//
//	go test ./executor/execstream -run '^$' -fuzz '^FuzzSubscriptionStream$' -fuzztime 1000000x
func FuzzSubscriptionStream(f *testing.F) {
	sub := &mesosexec.Event{Type: mesosexec.Event_SUBSCRIBED, Subscribed: &mesosexec.Event_Subscribed{
		ExecutorInfo: mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "e"}}, FrameworkInfo: mesos.FrameworkInfo{User: "u", Name: "n"},
		AgentInfo: mesos.AgentInfo{Hostname: "h"}}}
	launch := &mesosexec.Event{Type: mesosexec.Event_LAUNCH, Launch: &mesosexec.Event_Launch{Task: mesos.TaskInfo{
		Name: "t", TaskID: mesos.TaskID{Value: "pod-u"}, AgentID: mesos.AgentID{Value: "a"}, Data: []byte(`{"metadata":{}}`)}}}
	kill := &mesosexec.Event{Type: mesosexec.Event_KILL, Kill: &mesosexec.Event_Kill{TaskID: mesos.TaskID{Value: "pod-u"}}}
	f.Add(recordIO(f, sub, launch, kill))
	f.Add(recordIO(f, sub)[:7])
	f.Add([]byte("99999999999999999999\n"))
	f.Add([]byte("-1\n"))
	f.Add([]byte("3\nabc"))
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(body)
	}))
	f.Cleanup(srv.Close)
	cli := httpcli.New(httpcli.Endpoint(srv.URL), httpcli.Do(httpcli.With(httpcli.Timeout(5*time.Second))))
	sender := calls.SenderWith(httpexec.NewSender(cli.Send, httpcli.Close(true)), calls.Framework("f"), calls.Executor("e"))
	f.Fuzz(func(t *testing.T, data []byte) {
		body = data // one request at a time: the fuzz function runs sequentially within a process
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ended := false
		Run(ctx, sender, calls.Subscribe(nil, nil), func(ev *mesosexec.Event, err error) bool {
			if ev == nil {
				ended = true
				if err == nil {
					t.Fatal("the stream ended without an error")
				}
			}
			return true
		})
		if !ended {
			t.Fatal("Run returned without reporting the end of the stream")
		}
		if ctx.Err() != nil {
			t.Fatalf("Run took the whole deadline over %d bytes", len(data))
		}
	})
}

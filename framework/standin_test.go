package framework

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
)

// runStandIn is a minimal in-process Mesos executor for the simulator's ExecutorHook: it answers
// LAUNCH with TASK_RUNNING and KILL with TASK_KILLED, and returns once every task it had is over and
// acknowledged (or on SHUTDOWN). It stands in for the kubelet and sandbox executors where a test
// is about the framework's side of Mesos (which tasks, on which executors, killed when) only.
func runStandIn(ctx context.Context, env map[string]string) error {
	endpoint := (&url.URL{Scheme: "http", Host: env["MESOS_AGENT_ENDPOINT"], Path: "/api/v1/executor"}).String()
	cli := httpcli.New(httpcli.Endpoint(endpoint), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
		httpcli.Do(httpcli.With(httpcli.Timeout(10*time.Second))))
	opts := mesosexec.CallOptions{calls.Framework(env["MESOS_FRAMEWORK_ID"]), calls.Executor(env["MESOS_EXECUTOR_ID"])}
	sender := calls.SenderWith(httpexec.NewSender(cli.Send), opts...)
	subscriber := calls.SenderWith(httpexec.NewSender(cli.Send, httpcli.Close(true)), opts...)

	resp, err := subscriber.Send(ctx, calls.NonStreaming(calls.Subscribe(nil, nil)))
	if err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { resp.Close() })
	defer stop()
	defer resp.Close()

	var mu sync.Mutex
	live := map[string]bool{}    // task ID → not terminal yet
	unacked := map[string]bool{} // uuid → sent, not acknowledged
	update := func(task mesos.TaskID, state mesos.TaskState) error {
		uuid := make([]byte, 16)
		_, _ = rand.Read(uuid)
		uuid[6], uuid[8] = uuid[6]&0x0f|0x40, uuid[8]&0x3f|0x80 // RFC 4122 version 4: the agent checks
		st := mesos.TaskStatus{TaskID: task, State: state.Enum(), Source: mesos.SOURCE_EXECUTOR.Enum(), UUID: uuid,
			ExecutorID: &mesos.ExecutorID{Value: env["MESOS_EXECUTOR_ID"]}, Timestamp: ptrFloat(float64(time.Now().UnixNano()) / 1e9)}
		mu.Lock()
		unacked[string(uuid)] = true
		mu.Unlock()
		return calls.SendNoData(ctx, sender, calls.NonStreaming(calls.Update(st)))
	}
	for {
		var ev mesosexec.Event
		if err := resp.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading events: %w", err)
		}
		switch ev.GetType() {
		case mesosexec.Event_LAUNCH:
			id := ev.GetLaunch().Task.TaskID
			live[id.Value] = true
			if err := update(id, mesos.TASK_RUNNING); err != nil {
				return err
			}
		case mesosexec.Event_KILL:
			id := ev.GetKill().TaskID
			if live[id.Value] {
				delete(live, id.Value)
				if err := update(id, mesos.TASK_KILLED); err != nil {
					return err
				}
			}
		case mesosexec.Event_ACKNOWLEDGED:
			mu.Lock()
			delete(unacked, string(ev.GetAcknowledged().UUID))
			done := len(live) == 0 && len(unacked) == 0
			mu.Unlock()
			if done {
				return nil
			}
		case mesosexec.Event_SHUTDOWN:
			return nil
		}
	}
}

func ptrFloat(f float64) *float64 { return &f }

// Package execstream reads one subscription of the Mesos v1 executor API, for the kubelet executor and
// the pod sandbox executor alike.
package execstream

import (
	"context"
	"fmt"

	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"

	"github.com/kubemesos/kubemesos/internal/mesosdecode"
)

// Run sends SUBSCRIBE and hands report every event, then the error that ended the stream (or the
// refused SUBSCRIBE), until report returns false; ending ctx closes the stream.
func Run(ctx context.Context, subscriber calls.Sender, sub *mesosexec.Call, report func(*mesosexec.Event, error) bool) {
	resp, err := subscriber.Send(ctx, calls.NonStreaming(sub))
	if err != nil {
		if resp != nil {
			resp.Close()
		}
		report(nil, fmt.Errorf("subscribing: %w", err))
		return
	}
	stop := context.AfterFunc(ctx, func() { resp.Close() })
	defer stop()
	defer resp.Close()
	for {
		var ev mesosexec.Event
		if err := mesosdecode.Decode(resp, &ev); err != nil { // a garbled event ends the stream, not the executor
			report(nil, err)
			return
		}
		if !report(&ev, nil) {
			return
		}
	}
}

package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
)

// agentWorkDir reads the agent's --work_dir (operator API GET_FLAGS), where the pods' standalone
// sandbox containers have their directories. The agent that just launched the executor answers; a
// short retry covers a call that fails in transit.
func agentWorkDir(ctx context.Context, agentURL string) (string, error) {
	cli := httpcli.New(
		httpcli.Endpoint(agentURL),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
		httpcli.Do(httpcli.With(httpcli.Timeout(10*time.Second))),
	)
	sender := httpagent.NewSender(cli.Send)
	var last error
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		dir, err := getWorkDir(ctx, sender)
		if err == nil {
			return dir, nil
		}
		last = err
		var apiErr *apierrors.Error
		if errors.As(err, &apiErr) && !apiErr.Temporary() {
			break // 401, 403: retrying does not help
		}
	}
	return "", fmt.Errorf("reading the agent's --work_dir (GET_FLAGS; with agent authorization the executor needs VIEW_FLAGS): %w", last)
}

func getWorkDir(ctx context.Context, s agentcalls.Sender) (string, error) {
	resp, err := s.Send(ctx, agentcalls.NonStreaming(agentcalls.GetFlags()))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		return "", err
	}
	var out agent.Response
	if err := resp.Decode(&out); err != nil {
		return "", fmt.Errorf("decoding GET_FLAGS: %w", err)
	}
	for _, f := range out.GetGetFlags().GetFlags() {
		if f.GetName() == "work_dir" && f.GetValue() != "" {
			return f.GetValue(), nil
		}
	}
	return "", fmt.Errorf("GET_FLAGS has no work_dir (%d flags)", len(out.GetGetFlags().GetFlags()))
}

package mesossim

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// FuzzSchedulerCall feeds arbitrary bodies to POST /api/v1/scheduler as JSON and protobuf: the master
// must answer with one of the statuses Mesos uses (never 500, never a panic) and keep serving.
func FuzzSchedulerCall(f *testing.F) {
	sub, _ := proto.Marshal(&scheduler.Call{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: &mesos.FrameworkInfo{User: "u", Name: "n"}}})
	acc, _ := proto.Marshal(&scheduler.Call{Type: scheduler.Call_ACCEPT, FrameworkID: &mesos.FrameworkID{Value: "x"}, Accept: &scheduler.Call_Accept{}})
	for _, seed := range [][]byte{
		sub, acc, {0xff, 0x01},
		[]byte(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","roles":["a","a"],"capabilities":[{"type":"MULTI_ROLE"}]}}}`),
		[]byte(`{"type":"ACCEPT","framework_id":{"value":"x"},"accept":{"offer_ids":[{"value":"o"}],"operations":[{"type":"LAUNCH"}]}}`),
		[]byte(`{"type":"ACKNOWLEDGE","framework_id":{"value":"x"},"acknowledge":{"uuid":"!!"}}`),
		[]byte(`{"type":3.5}`), []byte(`[]`), []byte(`null`),
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	m := NewMaster(Config{Log: quietLog()})
	f.Cleanup(m.Close)
	h := m.Handler()
	allowed := map[int]bool{200: true, 202: true, 400: true, 403: true, 406: true, 415: true, 501: true}
	f.Fuzz(func(t *testing.T, body []byte, asJSON bool) {
		ct := mediaProtobuf
		if asJSON {
			ct = mediaJSON
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a SUBSCRIBE stream ends at once
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/scheduler", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("status %d (%s) for %q", rec.Code, rec.Body.String(), body)
		}
	})
}

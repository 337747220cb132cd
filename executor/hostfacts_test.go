package executor

import (
	"testing"
	"time"

	"github.com/kubemesos/kubemesos/internal/hostfacts"
)

// Each subscription is followed by a MESSAGE with the host's facts for the framework's Node (the
// kubelet's nodeInfo), sent again after a resubscription, since a MESSAGE is never retried by Mesos.
func TestExecutorSendsHostFactsOnEverySubscription(t *testing.T) {
	h := startLoop(t, true)
	messages := func() [][]byte {
		h.api.mu.Lock()
		defer h.api.mu.Unlock()
		return append([][]byte(nil), h.api.messages...)
	}
	s1 := h.stream()
	s1.events <- subscribed()
	waitFor(t, "the first host-facts MESSAGE", func() bool { return len(messages()) == 1 })
	got, err := hostfacts.Decode(messages()[0])
	if err != nil {
		t.Fatalf("MESSAGE data %q: %v", messages()[0], err)
	}
	if want := hostfacts.Collect("/"); got != want {
		t.Errorf("host facts %+v, want this host's %+v", got, want)
	}

	close(s1.close)
	h.awaitRetryTimer()
	h.clk.Step(time.Second)
	s2 := h.stream()
	s2.events <- subscribed()
	waitFor(t, "the host-facts MESSAGE after resubscribing", func() bool { return len(messages()) == 2 })
}

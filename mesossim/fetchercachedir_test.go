package mesossim

import (
	"testing"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// The agents of one cluster share its WorkDir but not a fetcher cache directory: each empties its
// own when it starts and names its files c1, c2, … (a shared one let one agent rewrite the file
// another was copying into a sandbox).
func TestClusterAgentsOwnFetcherCacheDirs(t *testing.T) {
	dirs := map[int]string{}
	c, err := StartCluster(ClusterConfig{
		Master:  Config{Log: quietLog()},
		Agents:  3,
		WorkDir: t.TempDir(),
		AgentTweak: func(i int, cfg *agent.Config) {
			dirs[i] = cfg.FetcherCacheDir
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	seen := map[string]int{}
	for i, d := range dirs {
		if d == "" {
			t.Errorf("agent %d: no fetcher cache directory of its own (the agent's default, <work dir>/fetch, is the cluster's)", i)
			continue
		}
		if j, dup := seen[d]; dup {
			t.Errorf("agents %d and %d share fetcher cache directory %s", j, i, d)
		}
		seen[d] = i
	}
	if len(dirs) != 3 {
		t.Fatalf("AgentTweak saw %d agents, want 3", len(dirs))
	}
}

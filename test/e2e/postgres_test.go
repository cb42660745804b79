package e2e

import (
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/store/pgtest"
)

// TestFlowOnPostgres runs kkd on a PostgreSQL database: migrations applied by
// `kkd migrate up`, a flow with parent and child stages run by an agent, logs
// read back, and everything still there after kkd is killed and restarted.
func TestFlowOnPostgres(t *testing.T) {
	t.Parallel()
	db := pgtest.URL(t)

	migrate := func(sub string) string {
		p := start(t, nil, "kkd", "migrate", sub, "--db", db)
		<-p.done
		require.Zero(t, p.cmd.ProcessState.ExitCode(), "kkd migrate %s: %s", sub, p.Output())
		return p.Output()
	}
	require.Regexp(t, `(?m)^0001\s+init\s+pending$`, migrate("status"))
	require.Contains(t, migrate("up"), "applied 0003_job_network")
	require.Regexp(t, regexp.MustCompile(`(?m)^0003\s+job_network\s+\d{4}-`), migrate("status"))

	c := newCluster(t, "--db", db)
	c.ok("project", "create", "shop")
	c.ok("branch", "create", "shop/main")
	c.ok("stage", "apply", "shop/main", writeFile(t, "parent.py", parentStage))
	c.ok("stage", "apply", "shop/main", writeFile(t, "child.py", childStage), "--name", "child")
	c.startAgent("builder1")
	waitFor(t, 20*time.Second, "agent to be discovered", func() bool {
		return findAgent(c.agents(true), "builder1") != nil
	})
	c.ok("agent", "authorize", "builder1")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "shop/main", "--arg", "who=kraken")
	jobID := f.Runs[0].Jobs[0].ID
	waitFor(t, 60*time.Second, "flow to complete", func() bool { return c.flow(f.ID).State == "completed" })
	f = c.flow(f.ID)
	require.Len(t, f.Runs, 2, "the child stage must run after its parent")
	for _, r := range f.Runs {
		for _, j := range r.Jobs {
			require.Equal(t, "ok", j.Result, "job %s", j.Name)
		}
	}
	require.Contains(t, c.ok("job", "logs", strconv.FormatInt(jobID, 10)), "hello ci kraken")

	// The data is in PostgreSQL, not in the data dir.
	matches, err := filepath.Glob(filepath.Join(c.dataDir, "*.db"))
	require.NoError(t, err)
	require.Empty(t, matches, "no SQLite database in the data dir")

	c.restartKKD()
	var after []flowJSON
	c.okJSON(&after, "flow", "list", "shop/main")
	require.Len(t, after, 1)
	require.Contains(t, c.ok("job", "logs", strconv.FormatInt(jobID, 10)), "hello ci kraken")
	r := c.kk("flow", "run", "shop/main", "--wait")
	require.Equal(t, 0, r.code, "flow after restart: %s", r.stderr)
}

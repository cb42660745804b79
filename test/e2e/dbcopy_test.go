package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/store/pgtest"
)

// installationView is what kk shows of a flow: the flow with its runs and
// jobs, each job's log, the runs' test results and the flow's artifacts
// (including the bytes of one, fetched from the blob store).
func installationView(t *testing.T, c *cluster, flowID int64) map[string]string {
	t.Helper()
	id := strconv.FormatInt(flowID, 10)
	view := map[string]string{
		"flow":      c.ok("flow", "show", id, "-o", "json"),
		"artifacts": c.ok("artifacts", "list", "flow/"+id, "-o", "json"),
	}
	f := c.flow(flowID)
	for _, r := range f.Runs {
		rid := strconv.FormatInt(r.ID, 10)
		view["results "+r.Name] = c.ok("run", "results", rid, "-o", "json")
		for _, j := range r.Jobs {
			view["logs "+r.Name+"/"+j.Name] = c.ok("job", "logs", strconv.FormatInt(j.ID, 10))
		}
	}
	var arts []artifactJSON
	c.okJSON(&arts, "artifacts", "list", "flow/"+id)
	require.NotEmpty(t, arts)
	for _, a := range arts {
		if a.Path == "out/app.bin" {
			dst := filepath.Join(t.TempDir(), "app.bin")
			c.ok("artifacts", "get", strconv.FormatInt(a.ID, 10), "-O", dst)
			b, err := os.ReadFile(dst)
			require.NoError(t, err)
			view["artifact out/app.bin"] = string(b)
		}
	}
	return view
}

// TestDBCopySQLiteToPostgres: an installation that ran flows on SQLite
// (logs, JUnit results, artifacts, caches) is copied with `kkd db copy`; kkd
// started on PostgreSQL with the same data dir shows the same flows, logs,
// results and artifacts, accepts the same API token and runs new flows.
func TestDBCopySQLiteToPostgres(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	build, deploy := toolsStages(toolsRepo(t), `{"agents_group": "all", "system": "any", "config": "default"}`)
	c.ok("project", "create", "moving")
	c.ok("branch", "create", "moving/main")
	c.ok("stage", "apply", "moving/main", writeFile(t, "build.py", build), "--name", "build")
	c.ok("stage", "apply", "moving/main", writeFile(t, "deploy.py", deploy), "--name", "deploy")
	agent := c.authorizedAgent("mover")
	runToolsFlows(t, c, "moving/main")
	var flows []flowJSON
	c.okJSON(&flows, "flow", "list", "moving/main")
	require.Len(t, flows, 2)
	before := map[int64]map[string]string{}
	for _, f := range flows {
		before[f.ID] = installationView(t, c, f.ID)
		require.Contains(t, before[f.ID]["logs build/build"], "hello from the repo")
		require.Contains(t, before[f.ID]["results build"], "app.core::test_add")
	}

	agent.kill(syscall.SIGTERM)
	c.kkd.kill(syscall.SIGTERM)
	pgURL := pgtest.URL(t)
	cmd := exec.Command(filepath.Join(binDir, "kkd"), "db", "copy", "--from", "sqlite://"+filepath.Join(c.dataDir, "kk.db"), "--to", pgURL)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "kkd db copy: %s", out)
	t.Logf("kkd db copy:\n%s", out)
	require.Contains(t, string(out), "log_chunks")
	require.Contains(t, string(out), "--storage")

	c.extra = append(c.extra, "--db", pgURL)
	c.startKKD(strings.TrimPrefix(c.url, "http://"))
	for id, want := range before {
		require.Equal(t, want, installationView(t, c, id), "flow %d on PostgreSQL", id)
	}
	require.NotContains(t, c.kkd.Output(), "admin password", "the copied admin user is kept: no new one")

	// The copied installation goes on: the agent comes back with its
	// credential (same work dir), a new flow gets the next number and
	// restores the copied cache.
	start(t, nil, "kkagent", agent.cmd.Args[1:]...)
	r := c.kk("flow", "run", "moving/main", "--wait", "-o", "json")
	require.Equal(t, 0, r.code, "flow after the copy: %s %s", r.stdout, r.stderr)
	c.okJSON(&flows, "flow", "list", "moving/main")
	require.Len(t, flows, 3)
	newest := flows[0]
	for _, f := range flows {
		if f.ID > newest.ID {
			newest = f
		}
	}
	for _, run := range c.flow(newest.ID).Runs {
		if run.Name == "build" {
			log := c.ok("job", "logs", strconv.FormatInt(run.Jobs[0].ID, 10))
			require.Contains(t, log, "cache-hit lib-of-flow-1", "the cache saved on SQLite is found on PostgreSQL")
		}
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/store/pgtest"
)

// outageStage is a stage of n jobs that each print "line 1".."line lines",
// one every interval seconds.
func outageStage(n, lines int, interval string) string {
	var jobs []string
	for i := 1; i <= n; i++ {
		jobs = append(jobs, fmt.Sprintf(`{
            "name": "count%d",
            "timeout": 600,
            "steps": [{"tool": "shell", "script": """
i=1
while [ $i -le %d ]; do echo "line $i"; i=$((i+1)); sleep %s; done
"""}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }`, i, lines, interval))
	}
	return "def stage(ctx):\n    return {\n        \"parent\": \"root\",\n        \"jobs\": [" + strings.Join(jobs, ", ") + "],\n    }\n"
}

// attemptJSON is the part of `kk job show -o json` this test checks.
type attemptJSON struct {
	State   string `json:"state"`
	Result  string `json:"result"`
	Attempt int    `json:"attempt"`
}

// TestPostgresOutage stops PostgreSQL for a while under a running flow: kk
// reports the outage clearly, /healthz says so, and once the server is back
// every job completes exactly once with its whole log, without a restart of
// kkd.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	const jobs, lines = 3, 40
	pg := pgtest.NewCluster(t)
	c := newCluster(t, "--db", pg.URL()+"&connect_timeout=2")
	c.ok("project", "create", "outage")
	c.ok("branch", "create", "outage/main")
	c.ok("stage", "apply", "outage/main", writeFile(t, "count.py", outageStage(jobs, lines, "0.5")))
	c.authorizedAgent("a1")
	c.authorizedAgent("a2")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "outage/main")
	require.Len(t, f.Runs, 1)
	require.Len(t, f.Runs[0].Jobs, jobs)
	first := strconv.FormatInt(f.Runs[0].Jobs[0].ID, 10)
	waitFor(t, 60*time.Second, "a job to print", func() bool {
		return strings.Contains(c.ok("job", "logs", first), "line 3")
	})

	pg.Stop(t)
	stopped := time.Now()
	// kk fails clearly for as long as the database is down (about 10 s).
	calls := 0
	waitFor(t, 60*time.Second, "10 s of outage", func() bool {
		r := c.kk("flow", "show", strconv.FormatInt(f.ID, 10))
		require.Equal(t, 1, r.code, "kk during the outage: %s%s", r.stdout, r.stderr)
		require.Contains(t, r.stderr, "database unreachable")
		require.Contains(t, r.stderr, pg.Addr())
		require.Contains(t, r.stderr, "retries by itself")
		require.NotContains(t, r.stderr, "internal server error")
		calls++
		return time.Since(stopped) > 10*time.Second
	})
	require.Positive(t, calls)
	status, body := c.rawRequest(http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "%s", body)
	require.Contains(t, string(body), "database unreachable")

	pg.Start(t)
	waitFor(t, 30*time.Second, "kkd to see the database again", func() bool {
		status, _ := c.rawRequest(http.MethodGet, "/healthz", "", nil)
		return status == http.StatusOK
	})
	waitFor(t, 120*time.Second, "flow to complete", func() bool { return c.flow(f.ID).State == "completed" })

	f = c.flow(f.ID)
	for _, j := range f.Runs[0].Jobs {
		id := strconv.FormatInt(j.ID, 10)
		var a attemptJSON
		require.NoError(t, json.Unmarshal([]byte(c.ok("job", "show", id, "-o", "json")), &a))
		require.Equal(t, "ok", a.Result, "job %s", j.Name)
		require.Equal(t, 1, a.Attempt, "job %s ran once: not requeued for heartbeats lost in the outage", j.Name)
		checkCount(t, c.ok("job", "logs", id), lines, true)
	}

	select {
	case <-c.kkd.done:
		t.Fatalf("kkd exited during the outage:\n%s", c.kkd.Output())
	default:
	}
	out := c.kkd.Output()
	require.Equal(t, 1, strings.Count(out, "database unreachable; kkd keeps serving"), "the outage is logged once:\n%s", out)
	require.Contains(t, out, "database reachable again")
	require.NotContains(t, out, "lease expired", "no job lost its lease")
}

package e2e

import (
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

const retentionStage = `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "build",
            "timeout": 120,
            "steps": [
                {"tool": "shell", "cmd": "mkdir -p out && echo app-$KK_FLOW_SEQ > out/app.bin && echo logged-$KK_FLOW_SEQ"},
                {"tool": "artifacts", "source": "out/**"},
            ],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

type retentionReport struct {
	Flows         int      `json:"flows"`
	Jobs          int      `json:"jobs"`
	Logs          int      `json:"logs"`
	LogBytes      int64    `json:"log_bytes"`
	Artifacts     int      `json:"artifacts"`
	ArtifactBytes int64    `json:"artifact_bytes"`
	OrphanBlobs   int      `json:"orphan_blobs"`
	Errors        []string `json:"errors"`
}

// blobFiles returns the blob keys under prefix of the cluster's file:// store.
func (c *cluster) blobFiles(prefix string) map[string]bool {
	c.t.Helper()
	root := filepath.Join(c.dataDir, "blobs")
	out := map[string]bool{}
	_ = filepath.WalkDir(filepath.Join(root, prefix), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	return out
}

// runFlow runs a flow of the branch to completion and returns it with its job.
func (c *cluster) runFlow(branch string) (flowJSON, jobJSON) {
	c.t.Helper()
	var f flowJSON
	c.okJSON(&f, "flow", "run", branch, "--wait")
	f = c.flow(f.ID)
	require.Equal(c.t, "completed", f.State)
	j := f.Runs[0].Jobs[0]
	require.Equal(c.t, "ok", j.Result)
	key := fmt.Sprintf("logs/%d.gz", j.ID)
	waitFor(c.t, 20*time.Second, "the log of job "+strconv.FormatInt(j.ID, 10)+" to be archived", func() bool { return c.blobFiles("logs")[key] })
	return f, j
}

func TestRetention(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.authorizedAgent("ret-agent")
	c.ok("project", "create", "ret")
	c.ok("branch", "create", "ret/main")
	c.ok("stage", "apply", "ret/main", writeFile(t, "build.py", retentionStage))
	c.ok("project", "create", "gone")
	c.ok("branch", "create", "gone/main")
	c.ok("stage", "apply", "gone/main", writeFile(t, "build.py", retentionStage))

	old, _ := c.runFlow("ret/main")       // older than the flows are kept
	middle, mj := c.runFlow("ret/main")   // older than its logs and artifacts are kept
	fresh, fj := c.runFlow("ret/main")    // kept whole
	goneFlow, _ := c.runFlow("gone/main") // its project is deleted: its blobs are orphans
	var arts []artifactJSON
	c.okJSON(&arts, "artifacts", "list", strconv.FormatInt(goneFlow.ID, 10))
	require.Len(t, arts, 1)
	before := c.blobFiles("")
	c.ok("project", "delete", "gone")

	r := c.kk("branch", "set", "ret/main", "--keep-logs", "soon")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `"soon" is not a retention`)
	require.Contains(t, c.ok("branch", "set", "ret/main", "--keep-logs", "20d", "--keep-artifacts", "3w"),
		"flows 90d (default), logs 20d, artifacts 21d")

	// Backdate: the old flow finished 100 days ago, the middle one 25.
	db, err := sql.Open("sqlite", filepath.Join(c.dataDir, "kk.db"))
	require.NoError(t, err)
	defer db.Close()
	day := int64(24 * time.Hour / time.Millisecond)
	for id, days := range map[int64]int64{old.ID: 100, middle.ID: 25} {
		_, err := db.Exec(`UPDATE flows SET finished = finished - ? WHERE id = ?`, days*day, id)
		require.NoError(t, err)
	}
	// The deleted project's blobs are older than the GC's grace of a day.
	twoDaysAgo := time.Now().Add(-48 * time.Hour)
	for key := range before {
		if !c.blobFiles("")[key] {
			continue
		}
		require.NoError(t, os.Chtimes(filepath.Join(c.dataDir, "blobs", key), twoDaysAgo, twoDaysAgo))
	}

	var rep retentionReport
	c.okJSON(&rep, "retention", "run")
	require.Empty(t, rep.Errors)
	require.Equal(t, 1, rep.Flows, "the old flow")
	require.Equal(t, 1, rep.Jobs)
	require.Equal(t, 1, rep.Logs, "the middle flow's job log")
	require.Greater(t, rep.LogBytes, int64(0))
	require.Equal(t, 2, rep.Artifacts, "the old and the middle flow's artifact")
	require.Greater(t, rep.ArtifactBytes, int64(0))
	require.Equal(t, 2, rep.OrphanBlobs, "the deleted project's artifact and log")

	r = c.kk("flow", "show", strconv.FormatInt(old.ID, 10))
	require.NotEqual(t, 0, r.code, "the old flow is gone")
	require.Equal(t, "completed", c.flow(middle.ID).State, "the middle flow stays")
	c.okJSON(&arts, "artifacts", "list", strconv.FormatInt(middle.ID, 10))
	require.Empty(t, arts)
	r = c.kk("job", "logs", strconv.FormatInt(mj.ID, 10))
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "was deleted by retention")
	c.okJSON(&arts, "artifacts", "list", strconv.FormatInt(fresh.ID, 10))
	require.Len(t, arts, 1, "the fresh flow keeps its artifact")
	require.Contains(t, c.ok("job", "logs", strconv.FormatInt(fj.ID, 10)), "logged-3")

	after := c.blobFiles("")
	require.Len(t, after, 2, "only the fresh flow's artifact and log are left: %v", after)
	require.True(t, after[fmt.Sprintf("logs/%d.gz", fj.ID)])
	for key := range after {
		require.True(t, before[key])
	}
	table := c.ok("retention", "run")
	require.Contains(t, table, "Flows deleted:")
	require.Contains(t, c.kkd.Output(), "retention done")
}

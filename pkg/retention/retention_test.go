package retention_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/retention"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

type fixture struct {
	t      *testing.T
	ctx    context.Context
	st     *sqlite.Store
	blobs  blob.Store
	branch ci.Branch
	agent  ci.Agent
	n      int
}

func newFixture(t *testing.T) *fixture {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	bs, err := blob.OpenDir(t.TempDir())
	require.NoError(t, err)
	p := ci.Project{Name: "p"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	a, err := st.RegisterAgent(ctx, ci.Agent{UUID: "u", Name: "a"}, time.Now())
	require.NoError(t, err)
	a, err = st.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(t, err)
	return &fixture{t: t, ctx: ctx, st: st, blobs: bs, branch: b, agent: a}
}

func (f *fixture) put(key, data string) {
	f.t.Helper()
	_, err := f.blobs.Put(f.ctx, key, strings.NewReader(data), int64(len(data)))
	require.NoError(f.t, err)
}

func (f *fixture) has(key string) bool {
	_, err := f.blobs.Stat(f.ctx, key)
	return err == nil
}

// flow makes a flow with one job that logged, has an archived log and an
// artifact; done completes it.
func (f *fixture) flow(done bool) (ci.Flow, ci.Job, store.Artifact) {
	f.t.Helper()
	f.n++
	fl := ci.Flow{BranchID: f.branch.ID, Kind: ci.FlowCI}
	require.NoError(f.t, f.st.CreateFlow(f.ctx, &fl))
	r := ci.Run{FlowID: fl.ID, StageName: "build", State: ci.RunInProgress}
	j := &ci.Job{Name: "j", Group: ci.GroupAll, System: ci.SystemAny, Executor: ci.ExecutorLocal, Timeout: 60,
		Steps: []ci.Step{{Tool: "shell", Fields: map[string]any{"tool": "shell", "cmd": "x"}}}}
	require.NoError(f.t, f.st.CreateRun(f.ctx, &r, []*ci.Job{j}))
	job, err := f.st.ClaimJob(f.ctx, j.ID, f.agent.ID, time.Minute)
	require.NoError(f.t, err)
	_, err = f.st.AppendLog(f.ctx, ci.LogChunk{JobID: job.ID, Attempt: job.Attempt, Data: []byte("0123456789")})
	require.NoError(f.t, err)
	key := fmt.Sprintf("artifacts/%d/a.bin", job.ID)
	f.put(key, "artifact")
	a := store.Artifact{JobID: job.ID, Path: "a.bin", Size: 8, SHA256: strings.Repeat("a", 64), BlobKey: key}
	_, err = f.st.CreateArtifact(f.ctx, &a, job.Attempt)
	require.NoError(f.t, err)
	if done {
		_, _, err = f.st.CompleteJob(f.ctx, job.ID, 0, ci.JobOK, "", time.Now())
		require.NoError(f.t, err)
		f.put(logs.ArchiveKey(job.ID), "archived")
		_, _, err = f.st.CompleteRunIfDone(f.ctx, r.ID, time.Now())
		require.NoError(f.t, err)
		_, _, err = f.st.CompleteFlowIfDone(f.ctx, fl.ID, time.Now())
		require.NoError(f.t, err)
	}
	return fl, job, a
}

func (f *fixture) enforcer(after time.Duration) *retention.Enforcer {
	return retention.New(retention.Config{Store: f.st, Blobs: f.blobs, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Now().Add(after) }, Batch: 1})
}

func TestRetentionByAge(t *testing.T) {
	f := newFixture(t)
	var done []ci.Flow
	var jobs []ci.Job
	var arts []store.Artifact
	for range 3 {
		fl, j, a := f.flow(true)
		done, jobs, arts = append(done, fl), append(jobs, j), append(arts, a)
	}
	running, rj, ra := f.flow(false)
	day := 24 * time.Hour

	rep, err := f.enforcer(29 * day).Run(f.ctx)
	require.NoError(t, err)
	require.Equal(t, retention.Report{Seconds: rep.Seconds}, rep, "nothing is old enough")

	rep, err = f.enforcer(31 * day).Run(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Logs, "logs older than 30 days, in batches of 1")
	require.Equal(t, int64(3*(10+len("archived"))), rep.LogBytes)
	require.Equal(t, 3, rep.Artifacts)
	require.Equal(t, int64(3*8), rep.ArtifactBytes)
	require.Zero(t, rep.Flows)
	for i := range done {
		require.False(t, f.has(logs.ArchiveKey(jobs[i].ID)))
		require.False(t, f.has(arts[i].BlobKey))
		_, err := f.st.GetFlow(f.ctx, done[i].ID)
		require.NoError(t, err)
	}
	require.True(t, f.has(ra.BlobKey), "a running flow keeps its artifacts")

	// A branch keeping its flows 7 days: they go at once, with what is left.
	_, err = f.st.SetBranchRetention(f.ctx, f.branch.ID, ci.Retention{KeepFlowsDays: 7})
	require.NoError(t, err)
	rep, err = f.enforcer(31 * day).Run(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Flows)
	require.Equal(t, 3, rep.Jobs)
	for _, fl := range done {
		_, err := f.st.GetFlow(f.ctx, fl.ID)
		require.ErrorIs(t, err, ci.ErrNotFound)
	}
	_, err = f.st.GetFlow(f.ctx, running.ID)
	require.NoError(t, err, "a flow in progress is never deleted")
	_, err = f.st.GetJob(f.ctx, rj.ID)
	require.NoError(t, err)
}

func TestBlobGCAndCaches(t *testing.T) {
	f := newFixture(t)
	_, j, a := f.flow(true)
	f.put("artifacts/999/orphan.bin", "orphan!")
	f.put(logs.ArchiveKey(j.ID+1000), "orphan log")
	f.put("logs/not-an-archive", "x")
	e := store.CacheEntry{Key: "deps", Size: 5, SHA256: strings.Repeat("c", 64), BlobKey: "caches/1/1/deps", Expires: time.Now().Add(2 * time.Hour)}
	f.put(e.BlobKey, "cache")
	_, running, _ := f.flow(false)
	_, err := f.st.PutCache(f.ctx, running.ID, running.Attempt, &e)
	require.NoError(t, err)

	rep, err := f.enforcer(time.Hour).Run(f.ctx)
	require.NoError(t, err)
	require.Zero(t, rep.OrphanBlobs, "blobs younger than a day are left alone (an upload writes the blob first)")
	require.Zero(t, rep.Caches)

	rep, err = f.enforcer(27 * time.Hour).Run(f.ctx) // caches expired, blobs old enough
	require.NoError(t, err)
	require.Equal(t, 1, rep.Caches)
	require.Equal(t, int64(5), rep.CacheBytes)
	require.False(t, f.has(e.BlobKey))
	require.Equal(t, 2, rep.OrphanBlobs)
	require.Equal(t, int64(len("orphan!")+len("orphan log")), rep.OrphanBytes)
	require.False(t, f.has("artifacts/999/orphan.bin"))
	require.False(t, f.has(logs.ArchiveKey(j.ID+1000)))
	require.True(t, f.has("logs/not-an-archive"), "not ours")
	require.True(t, f.has(a.BlobKey), "referenced")
	require.True(t, f.has(logs.ArchiveKey(j.ID)), "the log of a job that exists")
}

func TestRetentionDeliveries(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"a", "b", "c"} {
		d := store.Delivery{ProjectID: f.branch.ProjectID, Forge: "github", DeliveryID: id, Event: "push", Outcome: "no_branch"}
		require.NoError(t, f.st.RecordDelivery(f.ctx, &d))
	}
	day := 24 * time.Hour

	rep, err := f.enforcer(29 * day).Run(f.ctx)
	require.NoError(t, err)
	require.Zero(t, rep.Deliveries, "deliveries are kept 30 days, long after forges redeliver")
	ds, err := f.st.ListDeliveries(f.ctx, f.branch.ProjectID, 0)
	require.NoError(t, err)
	require.Len(t, ds, 3)

	rep, err = f.enforcer(31 * day).Run(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Deliveries, "in batches of 1")
	ds, err = f.st.ListDeliveries(f.ctx, f.branch.ProjectID, 0)
	require.NoError(t, err)
	require.Empty(t, ds)
}

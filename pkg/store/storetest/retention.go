package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// finishedFlow creates a flow of the branch with one run of stage "build"
// and one job that logged data and stored an artifact at path, and, when
// finished is not zero, completes job, run and flow at that time.
func (f *fx) finishedFlow(branchID int64, finished time.Time, data, path string) (ci.Flow, ci.Job, store.Artifact) {
	f.t.Helper()
	fl := f.flow(branchID, ci.FlowCI)
	r := f.run(fl.ID, "build", newJob("compile", 1))
	jobs, err := f.s.ListJobs(f.ctx, r.ID)
	require.NoError(f.t, err)
	j := f.claim(jobs[0].ID, f.agent(f.unique("agent"), true).ID)
	started := now()
	if !finished.IsZero() {
		started = finished.Add(-time.Minute)
	}
	require.NoError(f.t, f.s.StartJob(f.ctx, j.ID, j.Attempt, started))
	_, err = f.s.AppendLog(f.ctx, chunk(j, 0, 0, data))
	require.NoError(f.t, err)
	a := f.createArtifact(j, path)
	if !finished.IsZero() {
		_, changed, err := f.s.CompleteJob(f.ctx, j.ID, 0, ci.JobOK, "", finished)
		require.NoError(f.t, err)
		require.True(f.t, changed)
		_, changed, err = f.s.CompleteRunIfDone(f.ctx, r.ID, finished)
		require.NoError(f.t, err)
		require.True(f.t, changed)
		_, changed, err = f.s.CompleteFlowIfDone(f.ctx, fl.ID, finished)
		require.NoError(f.t, err)
		require.True(f.t, changed)
	}
	return fl, f.job(j.ID), a
}

func retentionCases() []testCase {
	return []testCase{
		{"branch retention settings", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			require.Equal(t, ci.Retention{}, b.Retention)
			got, err := s.SetBranchRetention(f.ctx, b.ID, ci.Retention{KeepFlowsDays: 10, KeepLogsDays: 3, KeepArtifactsDays: 5})
			require.NoError(t, err)
			require.Equal(t, ci.Retention{KeepFlowsDays: 10, KeepLogsDays: 3, KeepArtifactsDays: 5}, got.Retention)
			again, err := s.GetBranch(f.ctx, b.ID)
			require.NoError(t, err)
			require.Equal(t, got.Retention, again.Retention)
			_, err = s.SetBranchRetention(f.ctx, b.ID, ci.Retention{KeepLogsDays: -1})
			require.ErrorIs(t, err, ci.ErrInvalid)
			_, err = s.SetBranchRetention(f.ctx, b.ID+1000, ci.Retention{})
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.Equal(t, ci.Retention{KeepFlowsDays: 10, KeepLogsDays: 30, KeepArtifactsDays: 30}, ci.Retention{KeepFlowsDays: 10}.Effective())
		}},
		{"delete old flows", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			old := now().Add(-100 * 24 * time.Hour)
			f1, j1, a1 := f.finishedFlow(b.ID, old, "hello", "a.txt")
			f2, j2, _ := f.finishedFlow(b.ID, old.Add(time.Hour), "x", "b.txt")
			fresh, _, _ := f.finishedFlow(b.ID, now(), "y", "c.txt")
			running, _, _ := f.finishedFlow(b.ID, time.Time{}, "z", "d.txt")
			other, _, _ := f.finishedFlow(f.newBranch().ID, old, "w", "e.txt")
			cutoff := now().Add(-90 * 24 * time.Hour)

			p, err := s.DeleteFlowsBefore(f.ctx, b.ID, cutoff, 1)
			require.NoError(t, err)
			require.Equal(t, 1, p.Flows, "the limit holds")
			require.Equal(t, []int64{j1.ID}, p.JobIDs, "oldest first")
			require.Len(t, p.Artifacts, 1)
			require.Equal(t, a1.BlobKey, p.Artifacts[0].BlobKey)
			require.Equal(t, int64(len("hello")), p.LogBytes)
			_, err = s.GetFlow(f.ctx, f1.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetJob(f.ctx, j1.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetArtifact(f.ctx, a1.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)

			p, err = s.DeleteFlowsBefore(f.ctx, b.ID, cutoff, 0)
			require.NoError(t, err)
			require.Equal(t, 1, p.Flows)
			require.Equal(t, []int64{j2.ID}, p.JobIDs)
			_, err = s.GetFlow(f.ctx, f2.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)

			p, err = s.DeleteFlowsBefore(f.ctx, b.ID, cutoff, 0)
			require.NoError(t, err)
			require.Zero(t, p.Flows)
			for _, id := range []int64{fresh.ID, running.ID, other.ID} {
				_, err := s.GetFlow(f.ctx, id)
				require.NoError(t, err, "flow %d is kept", id)
			}
			// A flow in progress is never deleted, however old its start.
			p, err = s.DeleteFlowsBefore(f.ctx, b.ID, now().Add(time.Hour), 0)
			require.NoError(t, err)
			require.Equal(t, 1, p.Flows)
			_, err = s.GetFlow(f.ctx, running.ID)
			require.NoError(t, err)
		}},
		{"purge old logs", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			old := now().Add(-40 * 24 * time.Hour)
			_, j1, _ := f.finishedFlow(b.ID, old, "abcdef", "a.txt")
			_, j2, _ := f.finishedFlow(b.ID, now(), "new", "b.txt")
			_, j3, _ := f.finishedFlow(b.ID, time.Time{}, "running", "c.txt")
			has, err := s.JobsWithLogs(f.ctx, []int64{j1.ID, j2.ID, j3.ID, j3.ID + 1000})
			require.NoError(t, err)
			require.Equal(t, map[int64]bool{j1.ID: true, j2.ID: true, j3.ID: true}, has)

			ids, size, err := s.PurgeLogsBefore(f.ctx, b.ID, now().Add(-30*24*time.Hour), 0)
			require.NoError(t, err)
			require.Equal(t, []int64{j1.ID}, ids)
			require.Equal(t, int64(6), size)
			require.Empty(t, f.readAll(j1.ID))
			require.True(t, f.job(j1.ID).LogsPurged)
			require.False(t, f.job(j2.ID).LogsPurged)
			require.Len(t, f.readAll(j2.ID), 1)
			has, err = s.JobsWithLogs(f.ctx, []int64{j1.ID, j2.ID})
			require.NoError(t, err)
			require.Equal(t, map[int64]bool{j2.ID: true}, has)

			ids, _, err = s.PurgeLogsBefore(f.ctx, b.ID, now().Add(-30*24*time.Hour), 0)
			require.NoError(t, err)
			require.Empty(t, ids, "a purged log is not purged again")
			ids, _, err = s.PurgeLogsBefore(f.ctx, b.ID, now().Add(time.Hour), 0)
			require.NoError(t, err)
			require.Equal(t, []int64{j2.ID}, ids, "never the log of a flow in progress")
			_, err = s.GetJob(f.ctx, j1.ID)
			require.NoError(t, err, "the job itself stays")
		}},
		{"delete old artifacts and referenced blobs", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			old := now().Add(-40 * 24 * time.Hour)
			fl, _, a1 := f.finishedFlow(b.ID, old, "x", "old.txt")
			_, _, a2 := f.finishedFlow(b.ID, now(), "y", "new.txt")
			_, _, a3 := f.finishedFlow(b.ID, time.Time{}, "z", "run.txt")
			ref, err := s.ReferencedBlobs(f.ctx, []string{a1.BlobKey, a2.BlobKey, "artifacts/none"})
			require.NoError(t, err)
			require.Equal(t, map[string]bool{a1.BlobKey: true, a2.BlobKey: true}, ref)

			gone, err := s.DeleteArtifactsBefore(f.ctx, b.ID, now().Add(-30*24*time.Hour), 0)
			require.NoError(t, err)
			require.Len(t, gone, 1)
			require.Equal(t, a1.ID, gone[0].ID)
			require.Equal(t, a1.BlobKey, gone[0].BlobKey)
			_, err = s.GetArtifact(f.ctx, a1.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetFlow(f.ctx, fl.ID)
			require.NoError(t, err, "the flow stays")
			ref, err = s.ReferencedBlobs(f.ctx, []string{a1.BlobKey, a2.BlobKey, a3.BlobKey})
			require.NoError(t, err)
			require.Equal(t, map[string]bool{a2.BlobKey: true, a3.BlobKey: true}, ref)

			e := &store.CacheEntry{Key: "deps", Size: 1, SHA256: sha('c'), BlobKey: "caches/deps-1", Expires: now().Add(time.Hour)}
			j := f.claimed(1)
			_, err = s.PutCache(f.ctx, j.ID, j.Attempt, e)
			require.NoError(t, err)
			ref, err = s.ReferencedBlobs(f.ctx, []string{"caches/deps-1", "caches/other"})
			require.NoError(t, err)
			require.Equal(t, map[string]bool{"caches/deps-1": true}, ref)
		}},
		{"job history", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			base := now().Add(-time.Hour)
			var want []int64
			for i := range 3 {
				_, j, _ := f.finishedFlow(b.ID, base.Add(time.Duration(i)*time.Minute), "x", "a.txt")
				want = append([]int64{j.ID}, want...)
			}
			f.finishedFlow(f.newBranch().ID, base, "x", "a.txt") // another branch
			q := store.JobHistoryQuery{BranchID: b.ID, Stage: "build", Name: "compile", Group: ci.GroupAll, System: ci.SystemAny,
				Results: []ci.JobResult{ci.JobOK, ci.JobTimeout}}
			got, err := s.ListJobHistory(f.ctx, q, 10)
			require.NoError(t, err)
			ids := make([]int64, len(got))
			for i, j := range got {
				ids[i] = j.ID
				require.NotNil(t, j.Started)
				require.NotNil(t, j.Finished)
			}
			require.Equal(t, want, ids, "newest first, this branch only")
			got, err = s.ListJobHistory(f.ctx, q, 2)
			require.NoError(t, err)
			require.Len(t, got, 2)
			q.Results = []ci.JobResult{ci.JobFailed}
			got, err = s.ListJobHistory(f.ctx, q, 10)
			require.NoError(t, err)
			require.Empty(t, got)
			q.Results, q.Name = []ci.JobResult{ci.JobOK}, "other"
			got, err = s.ListJobHistory(f.ctx, q, 10)
			require.NoError(t, err)
			require.Empty(t, got)
		}},
		{"active runs", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			f.finishedFlow(b.ID, now(), "x", "a.txt")
			fl, _, _ := f.finishedFlow(b.ID, time.Time{}, "x", "a.txt")
			runs, err := s.ListActiveRuns(f.ctx)
			require.NoError(t, err)
			require.Len(t, runs, 1)
			require.Equal(t, fl.ID, runs[0].FlowID)
			require.NotNil(t, runs[0].Started)
		}},
		{"stage from repo", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			plain := ci.Stage{BranchID: b.ID, Name: "plain", Enabled: true, Code: "x", Parent: "root"}
			require.NoError(t, s.PutStage(f.ctx, &plain))
			repo := &ci.StageRepo{URL: "https://example.com/r.git", Branch: "main", Path: ".kk/build.py", TokenSecret: "tok", RefreshSeconds: 600}
			st := ci.Stage{BranchID: b.ID, Name: "build", Enabled: true, Code: "v1", Schema: []byte(`{"parent":"root"}`), Parent: "root", Repo: repo}
			require.NoError(t, s.PutStage(f.ctx, &st))
			got, err := s.GetStage(f.ctx, st.ID)
			require.NoError(t, err)
			require.Equal(t, repo, got.Repo)
			got2, err := s.GetStage(f.ctx, plain.ID)
			require.NoError(t, err)
			require.Nil(t, got2.Repo)

			list, err := s.ListRepoStages(f.ctx)
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, st.ID, list[0].ID)

			prev := got.Updated
			at := now()
			got.Code, got.Schema = "v2", []byte(`{"parent":"root","jobs":[]}`)
			got.Repo.Version, got.Repo.Refreshed = "abc123", &at
			require.NoError(t, s.UpdateStageRepo(f.ctx, &got, prev))
			require.True(t, got.Updated.After(prev))
			again, err := s.GetStage(f.ctx, st.ID)
			require.NoError(t, err)
			require.Equal(t, "v2", again.Code)
			require.JSONEq(t, `{"parent":"root","jobs":[]}`, string(again.Schema))
			require.Equal(t, "abc123", again.Repo.Version)
			requireTime(t, at, again.Repo.Refreshed)
			require.True(t, again.Updated.Equal(got.Updated))

			// A refresh based on an old read is stale.
			stale := again
			stale.Code = "v0"
			err = s.UpdateStageRepo(f.ctx, &stale, prev)
			require.ErrorIs(t, err, ci.ErrConflict)
			// So is one of a stage that is no longer repo-backed.
			plainAgain := ci.Stage{BranchID: b.ID, Name: "build", Enabled: true, Code: "file", Parent: "root"}
			require.NoError(t, s.PutStage(f.ctx, &plainAgain))
			err = s.UpdateStageRepo(f.ctx, &again, plainAgain.Updated)
			require.ErrorIs(t, err, ci.ErrConflict)
			got3, err := s.GetStage(f.ctx, st.ID)
			require.NoError(t, err)
			require.Nil(t, got3.Repo)
			require.Equal(t, "file", got3.Code)
			again.ID += 1000
			err = s.UpdateStageRepo(f.ctx, &again, again.Updated)
			require.True(t, errors.Is(err, ci.ErrNotFound), "%v", err)
		}},
	}
}

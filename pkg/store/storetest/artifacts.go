package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// sha is a valid-looking sha256 for tests.
func sha(c byte) string { return strings.Repeat(string(c), 64) }

func artifact(jobID int64, path string) *store.Artifact {
	return &store.Artifact{JobID: jobID, Path: path, Size: int64(len(path)), SHA256: sha('a'), BlobKey: "artifacts/" + path}
}

// createArtifact records an artifact of job j's current attempt.
func (f *fx) createArtifact(j ci.Job, path string) store.Artifact {
	f.t.Helper()
	a := artifact(j.ID, path)
	replaced, err := f.s.CreateArtifact(f.ctx, a, j.Attempt)
	require.NoError(f.t, err)
	require.Empty(f.t, replaced)
	return *a
}

func artifactPaths(as []store.Artifact) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = fmt.Sprintf("%d:%s", a.JobID, a.Path)
	}
	return out
}

func artifactCases() []testCase {
	return []testCase{
		{"create get list", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			a := f.createArtifact(j, "dist/app.tar.gz")
			require.NotZero(t, a.ID)
			require.Equal(t, j.RunID, a.RunID)
			require.Equal(t, j.FlowID, a.FlowID)
			require.Equal(t, "build", a.Stage)
			requireRecent(t, a.Created)

			got, err := s.GetArtifact(f.ctx, a.ID)
			require.NoError(t, err)
			require.Equal(t, a, got)

			b := artifact(j.ID, "report/index.html")
			b.Public, b.ReportEntry = true, true
			_, err = s.CreateArtifact(f.ctx, b, j.Attempt)
			require.NoError(t, err)
			got, err = s.GetArtifact(f.ctx, b.ID)
			require.NoError(t, err)
			require.True(t, got.Public)
			require.True(t, got.ReportEntry)

			list, err := s.ListJobArtifacts(f.ctx, j.ID)
			require.NoError(t, err)
			require.Equal(t, []string{
				fmt.Sprintf("%d:dist/app.tar.gz", j.ID), fmt.Sprintf("%d:report/index.html", j.ID),
			}, artifactPaths(list))

			_, err = s.GetArtifact(f.ctx, 424242)
			require.ErrorIs(t, err, ci.ErrNotFound)
			byPath, err := s.GetJobArtifact(f.ctx, j.ID, "report/index.html")
			require.NoError(t, err)
			require.Equal(t, b.ID, byPath.ID)
			_, err = s.GetJobArtifact(f.ctx, j.ID, "report")
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"lists by run and flow", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			r1 := f.run(fl.ID, "build", newJob("a", 1), newJob("b", 1))
			r2 := f.run(fl.ID, "test", newJob("c", 1))
			jobs1, err := s.ListJobs(f.ctx, r1.ID)
			require.NoError(t, err)
			jobs2, err := s.ListJobs(f.ctx, r2.ID)
			require.NoError(t, err)
			for _, j := range append(jobs1, jobs2...) {
				_, err := s.CreateArtifact(f.ctx, artifact(j.ID, "z-"+j.Name), 0)
				require.NoError(t, err)
				_, err = s.CreateArtifact(f.ctx, artifact(j.ID, "a-"+j.Name), 0)
				require.NoError(t, err)
			}
			a, b, c := jobs1[0].ID, jobs1[1].ID, jobs2[0].ID

			run1, err := s.ListRunArtifacts(f.ctx, r1.ID)
			require.NoError(t, err)
			require.Equal(t, []string{
				fmt.Sprintf("%d:a-a", a), fmt.Sprintf("%d:z-a", a), fmt.Sprintf("%d:a-b", b), fmt.Sprintf("%d:z-b", b),
			}, artifactPaths(run1))

			flow, err := s.ListFlowArtifacts(f.ctx, fl.ID)
			require.NoError(t, err)
			require.Equal(t, []string{
				fmt.Sprintf("%d:a-c", c), fmt.Sprintf("%d:z-c", c), // newest run first
				fmt.Sprintf("%d:a-a", a), fmt.Sprintf("%d:z-a", a), fmt.Sprintf("%d:a-b", b), fmt.Sprintf("%d:z-b", b),
			}, artifactPaths(flow))
			require.Equal(t, "test", flow[0].Stage)

			empty, err := s.ListFlowArtifacts(f.ctx, 424242)
			require.NoError(t, err)
			require.NotNil(t, empty)
			require.Empty(t, empty)
		}},
		{"same path replaces and keeps the id", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			first := f.createArtifact(j, "out.txt")
			again := artifact(j.ID, "out.txt")
			again.BlobKey, again.Size, again.SHA256 = "artifacts/other", 99, sha('b')
			replaced, err := s.CreateArtifact(f.ctx, again, j.Attempt)
			require.NoError(t, err)
			require.Equal(t, first.BlobKey, replaced)
			require.Equal(t, first.ID, again.ID)
			got, err := s.GetArtifact(f.ctx, first.ID)
			require.NoError(t, err)
			require.Equal(t, int64(99), got.Size)
			require.Equal(t, "artifacts/other", got.BlobKey)
			list, err := s.ListJobArtifacts(f.ctx, j.ID)
			require.NoError(t, err)
			require.Len(t, list, 1)
		}},
		{"create is fenced", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			_, err := s.CreateArtifact(f.ctx, artifact(j.ID, "x"), j.Attempt+1)
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			_, err = s.CreateArtifact(f.ctx, artifact(424242, "x"), 1)
			require.ErrorIs(t, err, ci.ErrNotFound)
			f.complete(j.ID, ci.JobOK)
			_, err = s.CreateArtifact(f.ctx, artifact(j.ID, "x"), j.Attempt)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "the attempt is over once the job completed")
			list, err := s.ListJobArtifacts(f.ctx, j.ID)
			require.NoError(t, err)
			require.Empty(t, list, "a stale write stores nothing")
		}},
		{"invalid artifacts", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			tests := []struct {
				name string
				edit func(a *store.Artifact)
			}{
				{"empty path", func(a *store.Artifact) { a.Path = "" }},
				{"no blob key", func(a *store.Artifact) { a.BlobKey = "" }},
				{"bad sha", func(a *store.Artifact) { a.SHA256 = "abc" }},
				{"negative size", func(a *store.Artifact) { a.Size = -1 }},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					a := artifact(j.ID, "p")
					tc.edit(a)
					_, err := s.CreateArtifact(f.ctx, a, j.Attempt)
					require.ErrorIs(t, err, ci.ErrInvalid)
				})
			}
		}},
		{"deleting the project removes artifacts and caches", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			a := f.createArtifact(j, "x")
			e := &store.CacheEntry{Key: "k", Size: 1, SHA256: sha('c'), BlobKey: "caches/k", Expires: now().Add(time.Hour)}
			_, err := s.PutCache(f.ctx, j.ID, j.Attempt, e)
			require.NoError(t, err)
			fl, err := s.GetFlow(f.ctx, j.FlowID)
			require.NoError(t, err)
			b, err := s.GetBranch(f.ctx, fl.BranchID)
			require.NoError(t, err)
			require.NoError(t, s.DeleteProject(f.ctx, b.ProjectID))
			_, err = s.GetArtifact(f.ctx, a.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)
			caches, err := s.ListCaches(f.ctx, b.ID)
			require.NoError(t, err)
			require.Empty(t, caches)
			expired, err := s.DeleteExpiredCaches(f.ctx, now().Add(24*time.Hour), 0)
			require.NoError(t, err)
			require.Empty(t, expired, "no orphaned cache rows")
		}},
	}
}

func cacheCases() []testCase {
	entry := func(key string, expires time.Time) *store.CacheEntry {
		return &store.CacheEntry{Key: key, Size: 3, SHA256: sha('c'), BlobKey: "caches/" + key, Expires: expires}
	}
	return []testCase{
		{"put get list replace", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			exp := now().Add(time.Hour)
			e := entry("deps", exp)
			replaced, err := s.PutCache(f.ctx, j.ID, j.Attempt, e)
			require.NoError(t, err)
			require.Empty(t, replaced)
			require.NotZero(t, e.BranchID)
			requireRecent(t, e.Created)
			fl, err := s.GetFlow(f.ctx, j.FlowID)
			require.NoError(t, err)
			require.Equal(t, fl.BranchID, e.BranchID, "caches are scoped to the job's branch")

			got, err := s.GetCache(f.ctx, e.BranchID, "deps", now())
			require.NoError(t, err)
			require.Equal(t, *e, got)

			again := entry("deps", exp.Add(time.Hour))
			again.BlobKey = "caches/deps-2"
			replaced, err = s.PutCache(f.ctx, j.ID, j.Attempt, again)
			require.NoError(t, err)
			require.Equal(t, "caches/deps", replaced)
			got, err = s.GetCache(f.ctx, e.BranchID, "deps", now())
			require.NoError(t, err)
			require.Equal(t, "caches/deps-2", got.BlobKey)

			_, err = s.PutCache(f.ctx, j.ID, j.Attempt, entry("another", exp))
			require.NoError(t, err)
			list, err := s.ListCaches(f.ctx, e.BranchID)
			require.NoError(t, err)
			require.Len(t, list, 2)
			require.Equal(t, "another", list[0].Key)
			require.Equal(t, "deps", list[1].Key)

			_, err = s.GetCache(f.ctx, e.BranchID, "missing", now())
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"scoped to the branch", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j1, j2 := f.claimed(1), f.claimed(1)
			e := entry("k", now().Add(time.Hour))
			_, err := s.PutCache(f.ctx, j1.ID, j1.Attempt, e)
			require.NoError(t, err)
			fl2, err := s.GetFlow(f.ctx, j2.FlowID)
			require.NoError(t, err)
			require.NotEqual(t, e.BranchID, fl2.BranchID)
			_, err = s.GetCache(f.ctx, fl2.BranchID, "k", now())
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"expired entries are not served and are deleted", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			t0 := now()
			for i, d := range []time.Duration{time.Minute, 2 * time.Minute, time.Hour} {
				_, err := s.PutCache(f.ctx, j.ID, j.Attempt, entry(fmt.Sprintf("k%d", i), t0.Add(d)))
				require.NoError(t, err)
			}
			fl, err := s.GetFlow(f.ctx, j.FlowID)
			require.NoError(t, err)
			_, err = s.GetCache(f.ctx, fl.BranchID, "k0", t0.Add(time.Minute))
			require.ErrorIs(t, err, ci.ErrNotFound, "expired at its expiry")
			_, err = s.GetCache(f.ctx, fl.BranchID, "k0", t0.Add(time.Minute-time.Millisecond))
			require.NoError(t, err)

			later := t0.Add(30 * time.Minute)
			gone, err := s.DeleteExpiredCaches(f.ctx, later, 1)
			require.NoError(t, err)
			require.Len(t, gone, 1)
			require.Equal(t, "k0", gone[0].Key)
			require.Equal(t, "caches/k0", gone[0].BlobKey)
			gone, err = s.DeleteExpiredCaches(f.ctx, later, 0)
			require.NoError(t, err)
			require.Len(t, gone, 1)
			require.Equal(t, "k1", gone[0].Key)
			list, err := s.ListCaches(f.ctx, fl.BranchID)
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, "k2", list[0].Key)
		}},
		{"put is fenced", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			_, err := s.PutCache(f.ctx, j.ID, j.Attempt+1, entry("k", now().Add(time.Hour)))
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			_, err = s.PutCache(f.ctx, 424242, 1, entry("k", now().Add(time.Hour)))
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.PutCache(f.ctx, j.ID, j.Attempt, &store.CacheEntry{Key: "", SHA256: sha('c'), BlobKey: "x"})
			require.ErrorIs(t, err, ci.ErrInvalid)
			fl, err := s.GetFlow(f.ctx, j.FlowID)
			require.NoError(t, err)
			list, err := s.ListCaches(f.ctx, fl.BranchID)
			require.NoError(t, err)
			require.Empty(t, list)
		}},
	}
}

func logArchiveCases() []testCase {
	return []testCase{
		{"delete logs of a completed job", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(2)
			other := f.claimed(1)
			for _, c := range []ci.LogChunk{chunk(j, 0, 0, "a"), chunk(j, 1, 0, "b"), chunk(other, 0, 0, "c")} {
				_, err := s.AppendLog(f.ctx, c)
				require.NoError(t, err)
			}
			require.ErrorIs(t, s.DeleteLogs(f.ctx, j.ID), ci.ErrConflict, "a running job's log may still grow")
			require.Len(t, f.readAll(j.ID), 2)
			ids, err := s.ListArchivableLogs(f.ctx, 0, 0)
			require.NoError(t, err)
			require.Empty(t, ids)

			f.complete(j.ID, ci.JobOK)
			f.complete(other.ID, ci.JobOK)
			ids, err = s.ListArchivableLogs(f.ctx, 0, 0)
			require.NoError(t, err)
			require.Equal(t, []int64{j.ID, other.ID}, ids)
			ids, err = s.ListArchivableLogs(f.ctx, j.ID, 1)
			require.NoError(t, err)
			require.Equal(t, []int64{other.ID}, ids)

			require.NoError(t, s.DeleteLogs(f.ctx, j.ID))
			require.Empty(t, f.readAll(j.ID))
			require.Len(t, f.readAll(other.ID), 1, "other jobs keep their chunks")
			require.NoError(t, s.DeleteLogs(f.ctx, j.ID), "idempotent")
			ids, err = s.ListArchivableLogs(f.ctx, 0, 0)
			require.NoError(t, err)
			require.Equal(t, []int64{other.ID}, ids)
			require.ErrorIs(t, s.DeleteLogs(f.ctx, 424242), ci.ErrNotFound)
		}},
	}
}

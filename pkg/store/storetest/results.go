package storetest

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// resultJob creates a run of stage in the flow with one job of the group and
// system and returns the job.
func (f *fx) resultJob(flowID int64, stage, name, group, system string) ci.Job {
	f.t.Helper()
	j := newJob(name, 1)
	j.Group, j.System = group, system
	f.run(flowID, stage, j)
	return f.job(j.ID)
}

// tests builds results from name/status pairs.
func tests(pairs ...string) []ci.TestResult {
	var out []ci.TestResult
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, ci.TestResult{Name: pairs[i], Status: ci.TestStatus(pairs[i+1])})
	}
	return out
}

// analysed stores the results (server side), completes the job ok and
// saves an analysis with the given age for every result and issue.
func (f *fx) analysed(j ci.Job, results []ci.TestResult, issues []ci.Issue, age int) {
	f.t.Helper()
	require.NoError(f.t, f.s.PutResults(f.ctx, j.ID, 0, 0, results, issues))
	f.complete(j.ID, ci.JobOK)
	f.saveAnalysis(j.ID, age)
}

func (f *fx) saveAnalysis(jobID int64, age int) {
	f.t.Helper()
	rs, err := f.s.ListJobResults(f.ctx, jobID)
	require.NoError(f.t, err)
	is, err := f.s.ListJobIssues(f.ctx, jobID)
	require.NoError(f.t, err)
	var ra []store.ResultAnalysis
	for _, r := range rs {
		ra = append(ra, store.ResultAnalysis{ID: r.ID, Change: ci.ChangeNoChange, Age: age, Instability: 1, Relevancy: 2})
	}
	var ia []store.IssueAnalysis
	for _, i := range is {
		ia = append(ia, store.IssueAnalysis{ID: i.ID, Age: age})
	}
	require.NoError(f.t, f.s.SaveAnalysis(f.ctx, jobID, ra, ia, now()))
}

// noise returns n pseudo-random letters (seeded, so the same every time).
func noise(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

func resultNames(rs []ci.TestResult) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func resultCases() []testCase {
	return []testCase{
		{"put upserts by name", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			j := f.resultJob(fl.ID, "build", "unit", ci.GroupAll, "debian-12")
			a := f.agent("a1", true)
			f.claim(j.ID, a.ID)
			require.NoError(t, s.PutResults(f.ctx, j.ID, 1, 0, tests("t1", "not-run", "t2", "not-run"), nil))
			vals := map[string]ci.TestValue{"ms": {Value: 1.5, Iterations: 3}}
			require.NoError(t, s.PutResults(f.ctx, j.ID, 1, 0, []ci.TestResult{
				{Name: "t1", Status: ci.TestPassed, Duration: 0.25, Values: vals, Cmd: "go test -run t1"},
				{Name: "t2", Status: ci.TestFailed, Message: "boom"},
			}, nil))
			rs, err := s.ListJobResults(f.ctx, j.ID)
			require.NoError(t, err)
			require.Len(t, rs, 2)
			require.Equal(t, "t1", rs[0].Name)
			require.Equal(t, ci.TestPassed, rs[0].Status)
			require.Equal(t, vals, rs[0].Values)
			require.Equal(t, "go test -run t1", rs[0].Cmd)
			require.InDelta(t, 0.25, rs[0].Duration, 1e-9)
			require.Equal(t, ci.TestFailed, rs[1].Status)
			require.Equal(t, "boom", rs[1].Message)
			require.Equal(t, j.Name, rs[1].JobName)
			require.Equal(t, j.RunID, rs[1].RunID)
			require.Equal(t, fl.ID, rs[1].FlowID)
			require.Equal(t, ci.FlowCI, rs[1].FlowKind)
			require.False(t, rs[1].Analyzed)
			requireRecent(t, rs[1].Created)
		}},
		{"put is fenced and validated", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.resultJob(f.newFlow().ID, "build", "unit", ci.GroupAll, ci.SystemAny)
			a := f.agent("a1", true)
			f.claim(j.ID, a.ID)
			require.ErrorIs(t, s.PutResults(f.ctx, j.ID, 2, 0, tests("t1", "passed"), nil), ci.ErrStaleAttempt)
			require.ErrorIs(t, s.PutResults(f.ctx, j.ID, 1, 0, tests("t1", "passed", "t2", "bogus"), nil), ci.ErrInvalid)
			require.ErrorIs(t, s.PutResults(f.ctx, j.ID, 1, 0, tests("", "passed"), nil), ci.ErrInvalid)
			require.ErrorIs(t, s.PutResults(f.ctx, j.ID, 1, 0, nil, []ci.Issue{{Path: "", Type: "error"}}), ci.ErrInvalid)
			require.ErrorIs(t, s.PutResults(f.ctx, 999999, 0, 0, tests("t1", "passed"), nil), ci.ErrNotFound)
			rs, err := s.ListJobResults(f.ctx, j.ID)
			require.NoError(t, err)
			require.Empty(t, rs, "nothing was stored")
			f.complete(j.ID, ci.JobOK)
			require.ErrorIs(t, s.PutResults(f.ctx, j.ID, 1, 0, tests("t1", "passed"), nil), ci.ErrStaleAttempt)
		}},
		{"issues are stored once and a new attempt starts afresh", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.resultJob(f.newFlow().ID, "build", "lint", ci.GroupAll, ci.SystemAny)
			a := f.agent("a1", true)
			f.claim(j.ID, a.ID)
			iss := []ci.Issue{{Path: "a.py", Line: 3, Type: "error", Symbol: "E1", Message: "bad"}, {Path: "a.py", Line: 1, Type: "warning", Symbol: "W1"}}
			require.NoError(t, s.PutResults(f.ctx, j.ID, 1, 0, tests("t1", "failed"), iss))
			require.NoError(t, s.PutResults(f.ctx, j.ID, 1, 0, tests("t1", "failed"), iss)) // resent batch
			got, err := s.ListJobIssues(f.ctx, j.ID)
			require.NoError(t, err)
			require.Len(t, got, 2)
			require.Equal(t, 1, got[0].Line)
			require.Equal(t, "E1", got[1].Symbol)
			_, _, err = s.FailAttempt(f.ctx, store.AttemptFailure{JobID: j.ID, Attempt: 1, At: now(), Outcome: ci.JobAgentLost, Retry: true})
			require.NoError(t, err)
			f.claim(j.ID, a.ID)
			require.NoError(t, s.PutResults(f.ctx, j.ID, 2, 0, tests("t2", "passed"), nil))
			rs, err := s.ListJobResults(f.ctx, j.ID)
			require.NoError(t, err)
			require.Equal(t, []string{"t2"}, resultNames(rs))
			got, err = s.ListJobIssues(f.ctx, j.ID)
			require.NoError(t, err)
			require.Empty(t, got)
		}},
		{"a batch may repeat a test or an issue", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.resultJob(f.newFlow().ID, "build", "unit", ci.GroupAll, ci.SystemAny)
			// The longest fields the server accepts (path, symbol 1 KiB, message
			// 4 KiB), hard to compress: together more than an index entry holds.
			long := ci.Issue{Path: noise(1, 1024), Line: 7, Type: "error", Symbol: noise(2, 1024), Message: noise(3, 4096)}
			iss := []ci.Issue{long, {Path: "a.go", Line: 1, Type: "error"}, long}
			require.NoError(t, s.PutResults(f.ctx, j.ID, 0, 0, tests("t1", "not-run", "t2", "passed", "t1", "failed"), iss))
			rs, err := s.ListJobResults(f.ctx, j.ID)
			require.NoError(t, err)
			require.Equal(t, []string{"t1", "t2"}, resultNames(rs))
			require.Equal(t, ci.TestFailed, rs[0].Status, "the last result of a name in a batch wins")
			got, err := s.ListJobIssues(f.ctx, j.ID)
			require.NoError(t, err)
			require.Len(t, got, 2)
			require.Equal(t, "a.go", got[0].Path)
			require.Equal(t, long.Message, got[1].Message)
			long.Message += "!"
			require.NoError(t, s.PutResults(f.ctx, j.ID, 0, 0, nil, []ci.Issue{long}))
			got, err = s.ListJobIssues(f.ctx, j.ID)
			require.NoError(t, err)
			require.Len(t, got, 3, "another message is another issue")
		}},
		{"ci history by branch, group, system and flow order", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			var ci1 []ci.Job
			for i := range 4 {
				fl := f.flow(b.ID, ci.FlowCI)
				j := f.resultJob(fl.ID, "tests", "unit", "g1", "debian-12")
				status := "passed"
				if i%2 == 1 {
					status = "failed"
				}
				f.analysed(j, tests("t1", status), nil, i)
				ci1 = append(ci1, j)
				// Noise: other system, a DEV flow, an unanalysed job.
				f.analysed(f.resultJob(fl.ID, "other", "unit", "g1", "ubuntu-24.04"), tests("t1", "error"), nil, 0)
			}
			dev := f.flow(b.ID, ci.FlowDEV)
			f.analysed(f.resultJob(dev.ID, "tests", "unit", "g1", "debian-12"), tests("t1", "error"), nil, 0)
			unanalysed := f.flow(b.ID, ci.FlowCI)
			uj := f.resultJob(unanalysed.ID, "tests", "unit", "g1", "debian-12")
			require.NoError(t, s.PutResults(f.ctx, uj.ID, 0, 0, tests("t1", "error"), nil))
			f.complete(uj.ID, ci.JobOK)
			// The current job in the newest flow.
			cur := f.resultJob(f.flow(b.ID, ci.FlowCI).ID, "tests", "unit", "g1", "debian-12")
			require.NoError(t, s.PutResults(f.ctx, cur.ID, 0, 0, tests("t1", "passed", "t-new", "passed"), nil))

			h, err := s.CIHistory(f.ctx, cur.ID, 3)
			require.NoError(t, err)
			require.NotContains(t, h, "t-new")
			require.Len(t, h["t1"], 3)
			require.Equal(t, ci1[3].ID, h["t1"][0].JobID, "newest first")
			require.Equal(t, ci1[1].ID, h["t1"][2].JobID)
			require.Equal(t, ci.TestFailed, h["t1"][0].Status)
			require.Equal(t, 3, h["t1"][0].Age)
			require.True(t, h["t1"][0].Analyzed)

			// History of an older job only looks back.
			h, err = s.CIHistory(f.ctx, ci1[1].ID, 10)
			require.NoError(t, err)
			require.Len(t, h["t1"], 1)
			require.Equal(t, ci1[0].ID, h["t1"][0].JobID)

			base, err := s.CIBaseline(f.ctx, cur.ID)
			require.NoError(t, err)
			require.Equal(t, ci1[3].ID, base["t1"].JobID)
			_, err = s.CIHistory(f.ctx, cur.ID, 0)
			require.ErrorIs(t, err, ci.ErrInvalid)
		}},
		{"previous issues come from the last ok CI job of the stage", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			okJob := f.resultJob(f.flow(b.ID, ci.FlowCI).ID, "lint", "pylint", ci.GroupAll, ci.SystemAny)
			f.analysed(okJob, nil, []ci.Issue{{Path: "a.py", Line: 10, Type: "error", Symbol: "E1"}}, 2)
			failed := f.resultJob(f.flow(b.ID, ci.FlowCI).ID, "lint", "pylint", ci.GroupAll, ci.SystemAny)
			require.NoError(t, s.PutResults(f.ctx, failed.ID, 0, 0, nil, []ci.Issue{{Path: "b.py", Line: 1, Type: "error"}}))
			f.complete(failed.ID, ci.JobFailed)
			f.saveAnalysis(failed.ID, 0)
			other := f.resultJob(f.flow(b.ID, ci.FlowCI).ID, "other-stage", "pylint", ci.GroupAll, ci.SystemAny)
			f.analysed(other, nil, []ci.Issue{{Path: "c.py", Line: 1, Type: "error"}}, 0)
			cur := f.resultJob(f.flow(b.ID, ci.FlowCI).ID, "lint", "pylint", ci.GroupAll, ci.SystemAny)
			prev, found, err := s.PreviousIssues(f.ctx, cur.ID)
			require.NoError(t, err)
			require.True(t, found)
			require.Len(t, prev, 1)
			require.Equal(t, "a.py", prev[0].Path)
			require.Equal(t, 2, prev[0].Age)
			_, found, err = s.PreviousIssues(f.ctx, okJob.ID)
			require.NoError(t, err)
			require.False(t, found)
		}},
		{"analysis is saved once and counted", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			j := f.resultJob(fl.ID, "build", "unit", ci.GroupAll, ci.SystemAny)
			require.NoError(t, s.PutResults(f.ctx, j.ID, 0, 0, tests("a", "passed", "b", "failed", "c", "not-run"),
				[]ci.Issue{{Path: "x.go", Line: 1, Type: "error"}, {Path: "x.go", Line: 9, Type: "error"}}))
			c, err := s.RunResultCounts(f.ctx, j.RunID)
			require.NoError(t, err)
			require.Equal(t, ci.RunResultCounts{TestsTotal: 3, TestsPassed: 1, TestsNotRun: 1, IssuesTotal: 2}, c)
			pending, err := s.PendingAnalysis(f.ctx, j.RunID)
			require.NoError(t, err)
			require.Empty(t, pending, "the job is not completed")
			f.complete(j.ID, ci.JobFailed)
			runs, err := s.ListRunsToAnalyze(f.ctx)
			require.NoError(t, err)
			require.Empty(t, runs, "the run is not completed")
			_, _, err = s.CompleteRunIfDone(f.ctx, j.RunID, now())
			require.NoError(t, err)
			pending, err = s.PendingAnalysis(f.ctx, j.RunID)
			require.NoError(t, err)
			require.Len(t, pending, 1)
			runs, err = s.ListRunsToAnalyze(f.ctx)
			require.NoError(t, err)
			require.Equal(t, []int64{j.RunID}, runs)

			rs, err := s.ListJobResults(f.ctx, j.ID)
			require.NoError(t, err)
			is, err := s.ListJobIssues(f.ctx, j.ID)
			require.NoError(t, err)
			ra := []store.ResultAnalysis{
				{ID: rs[0].ID, Change: ci.ChangeFix}, {ID: rs[1].ID, Change: ci.ChangeRegr, Instability: 4, Relevancy: 6},
				{ID: rs[2].ID, Change: ci.ChangeNew},
			}
			require.ErrorIs(t, s.SaveAnalysis(f.ctx, j.ID, []store.ResultAnalysis{{ID: rs[0].ID, Change: "bogus"}}, nil, now()), ci.ErrInvalid)
			require.ErrorIs(t, s.SaveAnalysis(f.ctx, j.ID, []store.ResultAnalysis{{ID: 999999, Change: ci.ChangeNew}}, nil, now()), ci.ErrNotFound)
			require.NoError(t, s.SaveAnalysis(f.ctx, j.ID, ra, []store.IssueAnalysis{{ID: is[0].ID, Age: 0}, {ID: is[1].ID, Age: 3}}, now()))
			require.ErrorIs(t, s.SaveAnalysis(f.ctx, j.ID, ra, nil, now()), ci.ErrConflict)
			c, err = s.RunResultCounts(f.ctx, j.RunID)
			require.NoError(t, err)
			require.Equal(t, ci.RunResultCounts{TestsTotal: 3, TestsPassed: 1, TestsNotRun: 1, New: 1, Regr: 1, Fix: 1,
				IssuesTotal: 2, IssuesNew: 1, Analyzed: true}, c)
			runs, err = s.ListRunsToAnalyze(f.ctx)
			require.NoError(t, err)
			require.Empty(t, runs)
			newOnly, err := s.ListRunIssues(f.ctx, j.RunID, store.IssueFilter{NewOnly: true})
			require.NoError(t, err)
			require.Len(t, newOnly, 1)
			require.True(t, newOnly[0].New())
			_, err = s.RunResultCounts(f.ctx, 999999)
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"run results filter and sort", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			j1, j2 := newJob("unit", 1), newJob("integ", 1)
			r := f.run(fl.ID, "tests", j1, j2)
			require.NoError(t, s.PutResults(f.ctx, j1.ID, 0, 0, tests("pkg/a::z", "passed", "pkg/b::y", "failed", "x", "error"), nil))
			require.NoError(t, s.PutResults(f.ctx, j2.ID, 0, 0, tests("pkg/a::w", "failed"), nil))
			f.complete(j1.ID, ci.JobOK)
			f.complete(j2.ID, ci.JobOK)
			rs, err := s.ListJobResults(f.ctx, j1.ID)
			require.NoError(t, err)
			require.NoError(t, s.SaveAnalysis(f.ctx, j1.ID, []store.ResultAnalysis{
				{ID: rs[0].ID, Change: ci.ChangeNew, Relevancy: 3}, {ID: rs[1].ID, Change: ci.ChangeRegr, Relevancy: 6, Instability: 5},
				{ID: rs[2].ID, Change: ci.ChangeNoChange, Relevancy: 3, Instability: 2},
			}, nil, now()))
			for _, tc := range []struct {
				name string
				f    store.ResultFilter
				want []string
			}{
				{"default", store.ResultFilter{}, []string{"pkg/b::y", "pkg/a::z", "x", "pkg/a::w"}},
				{"by name", store.ResultFilter{Sort: "name"}, []string{"pkg/a::w", "pkg/a::z", "pkg/b::y", "x"}},
				{"by status", store.ResultFilter{Sort: "status"}, []string{"pkg/a::w", "pkg/b::y", "x", "pkg/a::z"}},
				{"status", store.ResultFilter{Status: ci.TestFailed}, []string{"pkg/b::y", "pkg/a::w"}},
				{"change", store.ResultFilter{Change: ci.ChangeRegr}, []string{"pkg/b::y"}},
				{"instability", store.ResultFilter{MinInstability: 2}, []string{"pkg/b::y", "x"}},
				{"glob", store.ResultFilter{Name: "pkg/*", Sort: "name"}, []string{"pkg/a::w", "pkg/a::z", "pkg/b::y"}},
				{"glob ?", store.ResultFilter{Name: "pkg/?::[wz]"}, []string{}},
				{"job id", store.ResultFilter{JobID: j2.ID}, []string{"pkg/a::w"}},
				{"job name", store.ResultFilter{JobName: "unit", Sort: "name"}, []string{"pkg/a::z", "pkg/b::y", "x"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got, err := s.ListRunResults(f.ctx, r.ID, tc.f)
					require.NoError(t, err)
					require.Equal(t, tc.want, resultNames(got))
				})
			}
			_, err = s.ListRunResults(f.ctx, r.ID, store.ResultFilter{Sort: "age"})
			require.ErrorIs(t, err, ci.ErrInvalid)
			// A rerun covers j2: its results leave the run's list.
			_, err = s.RerunJob(f.ctx, j2.ID)
			require.NoError(t, err)
			got, err := s.ListRunResults(f.ctx, r.ID, store.ResultFilter{Sort: "name"})
			require.NoError(t, err)
			require.Equal(t, []string{"pkg/a::z", "pkg/b::y", "x"}, resultNames(got))
		}},
		{"test history of a branch", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			var ids []int64
			for i, kind := range []ci.FlowKind{ci.FlowCI, ci.FlowDEV, ci.FlowCI} {
				j := f.resultJob(f.flow(b.ID, kind).ID, "tests", "unit", ci.GroupAll, ci.SystemAny)
				st := "passed"
				if i == 1 {
					st = "failed"
				}
				require.NoError(t, s.PutResults(f.ctx, j.ID, 0, 0, tests("t1", st, "t2", "passed"), nil))
				ids = append(ids, j.ID)
			}
			h, err := s.TestHistory(f.ctx, b.ID, "t1", "", 0)
			require.NoError(t, err)
			require.Len(t, h, 3)
			require.Equal(t, ids[2], h[0].JobID)
			require.Equal(t, ci.FlowDEV, h[1].FlowKind)
			h, err = s.TestHistory(f.ctx, b.ID, "t1", ci.FlowCI, 1)
			require.NoError(t, err)
			require.Len(t, h, 1)
			require.Equal(t, ids[2], h[0].JobID)
			h, err = s.TestHistory(f.ctx, b.ID, "nope", "", 0)
			require.NoError(t, err)
			require.Empty(t, h)
			_, err = s.TestHistory(f.ctx, 999999, "t1", "", 0)
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"adjacent ci runs order the analysis", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			j1 := f.resultJob(f.flow(b.ID, ci.FlowCI).ID, "tests", "unit", ci.GroupAll, ci.SystemAny)
			f.resultJob(f.flow(b.ID, ci.FlowDEV).ID, "tests", "unit", ci.GroupAll, ci.SystemAny)
			manual := ci.Run{FlowID: f.flow(b.ID, ci.FlowCI).ID, StageName: "tests", State: ci.RunManual}
			require.NoError(t, s.CreateRun(f.ctx, &manual, nil))
			j3 := f.resultJob(f.flow(b.ID, ci.FlowCI).ID, "tests", "unit", ci.GroupAll, ci.SystemAny)
			_, found, err := s.AdjacentCIRun(f.ctx, j1.RunID, false)
			require.NoError(t, err)
			require.False(t, found)
			prev, found, err := s.AdjacentCIRun(f.ctx, j3.RunID, false)
			require.NoError(t, err)
			require.True(t, found, "manual and DEV runs are skipped")
			require.Equal(t, j1.RunID, prev.RunID)
			require.False(t, prev.Processed)
			next, found, err := s.AdjacentCIRun(f.ctx, j1.RunID, true)
			require.NoError(t, err)
			require.True(t, found)
			require.Equal(t, j3.RunID, next.RunID)
			f.complete(j1.ID, ci.JobOK)
			_, _, err = s.CompleteRunIfDone(f.ctx, j1.RunID, now())
			require.NoError(t, err)
			prev, _, err = s.AdjacentCIRun(f.ctx, j3.RunID, false)
			require.NoError(t, err)
			require.Equal(t, ci.RunCompleted, prev.State)
			require.False(t, prev.Processed, "completed, not analysed")
			f.saveAnalysis(j1.ID, 0)
			prev, _, err = s.AdjacentCIRun(f.ctx, j3.RunID, false)
			require.NoError(t, err)
			require.True(t, prev.Processed)
		}},
		{"data documents compare and swap", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			b, err := s.GetBranch(f.ctx, fl.BranchID)
			require.NoError(t, err)
			for _, sc := range []store.DataScope{{Kind: "flow", OwnerID: fl.ID}, {Kind: "branch", OwnerID: b.ID}, {Kind: "branch-ci", OwnerID: b.ID}, {Kind: "branch-dev", OwnerID: b.ID}, {Kind: "project", OwnerID: b.ProjectID}} {
				t.Run(sc.Kind, func(t *testing.T) {
					doc, v, err := s.GetData(f.ctx, sc)
					require.NoError(t, err)
					require.Nil(t, doc)
					require.Zero(t, v)
					v1, err := s.PutData(f.ctx, sc, json.RawMessage(`{"a":1}`), 0)
					require.NoError(t, err)
					_, err = s.PutData(f.ctx, sc, json.RawMessage(`{"a":2}`), 0)
					require.ErrorIs(t, err, ci.ErrConflict)
					v2, err := s.PutData(f.ctx, sc, json.RawMessage(`{"a":3,"kind":"`+sc.Kind+`"}`), v1)
					require.NoError(t, err)
					_, err = s.PutData(f.ctx, sc, json.RawMessage(`{}`), v1)
					require.ErrorIs(t, err, ci.ErrConflict)
					doc, v, err = s.GetData(f.ctx, sc)
					require.NoError(t, err)
					require.Equal(t, v2, v)
					require.JSONEq(t, `{"a":3,"kind":"`+sc.Kind+`"}`, string(doc))
					_, err = s.PutData(f.ctx, sc, json.RawMessage(`{`), v2)
					require.ErrorIs(t, err, ci.ErrInvalid)
				})
			}
			_, _, err = s.GetData(f.ctx, store.DataScope{Kind: "flow", OwnerID: 999999})
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.PutData(f.ctx, store.DataScope{Kind: "project", OwnerID: 999999}, json.RawMessage(`{}`), 0)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, _, err = s.GetData(f.ctx, store.DataScope{Kind: "stage", OwnerID: 1})
			require.ErrorIs(t, err, ci.ErrInvalid)
		}},
		{"update data retries lost races", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			sc := store.DataScope{Kind: "flow", OwnerID: fl.ID}
			errs := parallel(8, func(int) error {
				_, err := store.UpdateData(f.ctx, s, sc, func(doc json.RawMessage) (json.RawMessage, error) {
					var n struct{ N int }
					if doc != nil {
						if err := json.Unmarshal(doc, &n); err != nil {
							return nil, err
						}
					}
					n.N++
					return json.Marshal(n)
				})
				return err
			})
			requireNoErrors(t, errs)
			doc, _, err := s.GetData(f.ctx, sc)
			require.NoError(t, err)
			require.JSONEq(t, `{"N":8}`, string(doc))
		}},
		{"deleting a project leaves no results or data", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			b, err := s.GetBranch(f.ctx, fl.BranchID)
			require.NoError(t, err)
			j := f.resultJob(fl.ID, "tests", "unit", ci.GroupAll, ci.SystemAny)
			f.analysed(j, tests("t1", "passed"), []ci.Issue{{Path: "a", Line: 1, Type: "error"}}, 0)
			_, err = s.PutData(f.ctx, store.DataScope{Kind: "flow", OwnerID: fl.ID}, json.RawMessage(`{}`), 0)
			require.NoError(t, err)
			_, err = s.PutData(f.ctx, store.DataScope{Kind: "project", OwnerID: b.ProjectID}, json.RawMessage(`{}`), 0)
			require.NoError(t, err)
			require.NoError(t, s.DeleteProject(f.ctx, b.ProjectID))
			rs, err := s.ListJobResults(f.ctx, j.ID)
			require.NoError(t, err)
			require.Empty(t, rs)
			is, err := s.ListJobIssues(f.ctx, j.ID)
			require.NoError(t, err)
			require.Empty(t, is)
			_, _, err = s.GetData(f.ctx, store.DataScope{Kind: "flow", OwnerID: fl.ID})
			require.ErrorIs(t, err, ci.ErrNotFound)
			// A new project reusing the IDs starts without data.
			p2 := f.project()
			doc, _, err := s.GetData(f.ctx, store.DataScope{Kind: "project", OwnerID: p2.ID})
			require.NoError(t, err)
			require.Nil(t, doc)
		}},
	}
}

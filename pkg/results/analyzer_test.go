package results

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

type env struct {
	t      *testing.T
	ctx    context.Context
	st     store.Store
	a      *Analyzer
	branch ci.Branch
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	p := ci.Project{Name: "p"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	return &env{t: t, ctx: ctx, st: st, a: New(Config{Store: st}), branch: b}
}

// flow starts a flow of kind with a run of stage "tests" and one job.
func (e *env) flow(kind ci.FlowKind) *ci.Job {
	e.t.Helper()
	f := ci.Flow{BranchID: e.branch.ID, Kind: kind}
	require.NoError(e.t, e.st.CreateFlow(e.ctx, &f))
	j := &ci.Job{Name: "unit", Group: "all", System: "debian-12", Executor: "local", Steps: []ci.Step{{Tool: "shell"}}}
	r := ci.Run{FlowID: f.ID, StageName: "tests", State: ci.RunInProgress}
	require.NoError(e.t, e.st.CreateRun(e.ctx, &r, []*ci.Job{j}))
	return j
}

// finish stores the job's results and issues, completes it and its run.
func (e *env) finish(j *ci.Job, result ci.JobResult, tests []ci.TestResult, issues ...ci.Issue) {
	e.t.Helper()
	require.NoError(e.t, e.st.PutResults(e.ctx, j.ID, 0, 0, tests, issues))
	_, _, err := e.st.CompleteJob(e.ctx, j.ID, 0, result, "", time.Now())
	require.NoError(e.t, err)
	_, changed, err := e.st.CompleteRunIfDone(e.ctx, j.RunID, time.Now())
	require.NoError(e.t, err)
	require.True(e.t, changed)
}

// drain analyses what the queue holds, as the worker would.
func (e *env) drain() {
	e.t.Helper()
	for {
		id, ok := e.a.pop()
		if !ok {
			return
		}
		_, err := e.a.AnalyzeRun(e.ctx, id)
		require.NoError(e.t, err)
	}
}

func (e *env) analyze(j *ci.Job) Outcome {
	e.t.Helper()
	o, err := e.a.AnalyzeRun(e.ctx, j.RunID)
	require.NoError(e.t, err)
	return o
}

type got struct {
	Change      ci.TestChange
	Instability int
	Age         int
}

func (e *env) results(j *ci.Job) map[string]got {
	e.t.Helper()
	rs, err := e.st.ListJobResults(e.ctx, j.ID)
	require.NoError(e.t, err)
	out := map[string]got{}
	for _, r := range rs {
		require.True(e.t, r.Analyzed, "result %s of job %d", r.Name, j.ID)
		out[r.Name] = got{r.Change, r.Instability, r.Age}
	}
	return out
}

func res(pairs ...ci.TestStatus) []ci.TestResult {
	return []ci.TestResult{{Name: "t1", Status: pairs[0]}, {Name: "t2", Status: pairs[1]}}
}

// wantCI is the analysis of three CI flows where t1 fails in the second.
var wantCI = []map[string]got{
	{"t1": {ci.ChangeNew, 0, 0}, "t2": {ci.ChangeNew, 0, 0}},
	{"t1": {ci.ChangeRegr, 1, 0}, "t2": {ci.ChangeNoChange, 0, 1}},
	{"t1": {ci.ChangeFix, 2, 0}, "t2": {ci.ChangeNoChange, 0, 2}},
}

func TestCIRunsInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	statuses := [][2]ci.TestStatus{{P, P}, {F, P}, {P, P}}
	var jobs []*ci.Job
	for _, s := range statuses {
		j := e.flow(ci.FlowCI)
		e.finish(j, ci.JobOK, res(s[0], s[1]))
		require.Equal(t, Analyzed, e.analyze(j))
		jobs = append(jobs, j)
	}
	for i, j := range jobs {
		assert.Equal(t, wantCI[i], e.results(j), "flow %d", i+1)
	}
	c, err := e.st.RunResultCounts(e.ctx, jobs[1].RunID)
	require.NoError(t, err)
	assert.Equal(t, ci.RunResultCounts{TestsTotal: 2, TestsPassed: 1, NoChange: 1, Regr: 1, Analyzed: true}, c)
}

// TestCIRunsOutOfOrder completes concurrent flows in reverse order: the
// analysis waits for the earlier runs and ends up the same as in order.
func TestCIRunsOutOfOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	j1, j2, j3 := e.flow(ci.FlowCI), e.flow(ci.FlowCI), e.flow(ci.FlowCI)
	assert.Equal(t, NotCompleted, e.analyze(j3))
	e.finish(j3, ci.JobOK, res(P, P))
	assert.Equal(t, Waiting, e.analyze(j3))
	e.finish(j2, ci.JobOK, res(F, P))
	assert.Equal(t, Waiting, e.analyze(j2))
	e.drain()
	e.finish(j1, ci.JobOK, res(P, P))
	// Only j1's completion is announced: the chain follows by itself.
	e.a.Enqueue(j1.RunID)
	e.drain()
	for i, j := range []*ci.Job{j1, j2, j3} {
		assert.Equal(t, wantCI[i], e.results(j), "flow %d", i+1)
	}
}

// TestWaitingRunPullsItsPredecessor: a completed predecessor that was never
// announced (e.g. its jobs failed before they ran) is analysed first.
func TestWaitingRunPullsItsPredecessor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	j1, j2 := e.flow(ci.FlowCI), e.flow(ci.FlowCI)
	e.finish(j1, ci.JobOK, res(P, P))
	e.finish(j2, ci.JobOK, res(F, P))
	assert.Equal(t, Waiting, e.analyze(j2))
	e.drain()
	assert.Equal(t, wantCI[1], e.results(j2))
}

func TestDEVComparedWithCI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dev0 := e.flow(ci.FlowDEV)
	e.finish(dev0, ci.JobOK, res(F, P))
	require.Equal(t, Analyzed, e.analyze(dev0))
	assert.Equal(t, map[string]got{"t1": {ci.ChangeNew, 0, 0}, "t2": {ci.ChangeNew, 0, 0}}, e.results(dev0))
	for _, s := range [][2]ci.TestStatus{{P, F}, {P, P}} {
		j := e.flow(ci.FlowCI)
		e.finish(j, ci.JobOK, res(s[0], s[1]))
		require.Equal(t, Analyzed, e.analyze(j))
	}
	dev := e.flow(ci.FlowDEV)
	e.finish(dev, ci.JobFailed, res(F, P))
	// A DEV run never waits, also not for an unfinished CI flow.
	e.flow(ci.FlowCI)
	require.Equal(t, Analyzed, e.analyze(dev))
	assert.Equal(t, map[string]got{"t1": {ci.ChangeRegr, 0, 1}, "t2": {ci.ChangeNoChange, 1, 0}}, e.results(dev))
}

func TestIssueAgesAcrossFlows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e1 := ci.Issue{Path: "a.py", Line: 10, Type: "error", Symbol: "E1"}
	w1 := ci.Issue{Path: "a.py", Line: 30, Type: "warning", Symbol: "W1"}
	ages := func(j *ci.Job) map[int]int {
		is, err := e.st.ListJobIssues(e.ctx, j.ID)
		require.NoError(t, err)
		out := map[int]int{}
		for _, i := range is {
			require.True(t, i.Analyzed)
			out[i.Line] = i.Age
		}
		return out
	}
	j1 := e.flow(ci.FlowCI)
	e.finish(j1, ci.JobOK, nil, e1, w1)
	e.analyze(j1)
	assert.Equal(t, map[int]int{10: 0, 30: 0}, ages(j1))
	// A failed job is no baseline for the next one.
	jf := e.flow(ci.FlowCI)
	e.finish(jf, ci.JobFailed, nil, e1)
	e.analyze(jf)
	assert.Equal(t, map[int]int{10: 1}, ages(jf))
	j2 := e.flow(ci.FlowCI)
	moved := e1
	moved.Line = 13
	far := w1
	far.Line = 40
	e.finish(j2, ci.JobOK, nil, moved, far)
	e.analyze(j2)
	assert.Equal(t, map[int]int{13: 1, 40: 0}, ages(j2))
	c, err := e.st.RunResultCounts(e.ctx, j2.RunID)
	require.NoError(t, err)
	assert.Equal(t, 2, c.IssuesTotal)
	assert.Equal(t, 1, c.IssuesNew)
}

// TestStartSweepsAndWorkerRuns: runs completed while no analyzer ran are
// analysed after Start; announcements are handled by the worker.
func TestStartSweepsAndWorkerRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	j1, j2 := e.flow(ci.FlowCI), e.flow(ci.FlowCI)
	e.finish(j1, ci.JobOK, res(P, P))
	e.finish(j2, ci.JobOK, res(F, P))
	ctx, cancel := context.WithCancel(e.ctx)
	require.NoError(t, e.a.Start(ctx))
	analysed := func(j *ci.Job) func() bool {
		return func() bool {
			c, err := e.st.RunResultCounts(e.ctx, j.RunID)
			return err == nil && c.Analyzed
		}
	}
	require.Eventually(t, analysed(j2), 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, wantCI[1], e.results(j2))
	j3 := e.flow(ci.FlowCI)
	e.finish(j3, ci.JobOK, res(P, P))
	e.a.Enqueue(j3.RunID)
	require.Eventually(t, analysed(j3), 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, wantCI[2], e.results(j3))
	cancel()
	<-e.a.Done()
}

// TestProcessedAfterAnalysis: the worker reports a run once its analysis is
// done (the end notifications wait for it); a CI run that must wait for its
// predecessor is reported only after the predecessor.
func TestProcessedAfterAnalysis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	processed := make(chan int64, 10)
	e.a = New(Config{Store: e.st, Processed: func(id int64) { processed <- id }})
	j1, j2 := e.flow(ci.FlowCI), e.flow(ci.FlowCI)
	e.finish(j2, ci.JobOK, res(P, P))
	ctx, cancel := context.WithCancel(e.ctx)
	defer func() { cancel(); <-e.a.Done() }()
	require.NoError(t, e.a.Start(ctx))
	e.a.Enqueue(j2.RunID) // waits: j1's run is not completed
	e.finish(j1, ci.JobOK, res(P, F))
	e.a.Enqueue(j1.RunID)
	next := func() int64 {
		select {
		case id := <-processed:
			return id
		case <-time.After(10 * time.Second):
			t.Fatal("no run reported as processed")
			return 0
		}
	}
	require.Equal(t, j1.RunID, next())
	require.Equal(t, j2.RunID, next())
	c, err := e.st.RunResultCounts(e.ctx, j2.RunID)
	require.NoError(t, err)
	require.True(t, c.Analyzed, "reported after the analysis was saved")
}

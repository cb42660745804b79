package engine_test

import (
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/store"
)

type recordingAnalyzer struct {
	mu   sync.Mutex
	runs []int64
}

func (r *recordingAnalyzer) Enqueue(runID int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, runID)
}

func (r *recordingAnalyzer) got() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.runs...)
}

// withAnalyzer replaces the fixture's engine by one that reports completed
// runs to a recording analyzer.
func withAnalyzer(f *fixture) *recordingAnalyzer {
	rec := &recordingAnalyzer{}
	log := slog.New(slog.DiscardHandler)
	f.eng = engine.New(engine.Config{Store: f.st, Hub: notify.New(), Dispatcher: scheduler.New(scheduler.Config{Store: f.st, Logger: log}),
		Logger: log, Results: rec})
	return rec
}

func TestCompletedRunsGoToTheAnalyzer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := withAnalyzer(f)
	f.stage("build", stageCode("root", "", job("compile", "all")))
	fl := f.flow(nil)
	run := f.runs(fl.ID)["build"]
	jobs, err := f.st.ListJobs(f.ctx, run.ID)
	require.NoError(t, err)
	require.Empty(t, rec.got(), "the run is not completed")
	_, err = f.eng.CompleteJob(f.ctx, jobs[0].ID, 0, ci.JobOK, "")
	require.NoError(t, err)
	assert.Equal(t, []int64{run.ID}, rec.got())
	// A run that completes without jobs (its group does not exist) too.
	f.stage("other", stageCode("root", "", job("x", "no-such-group")))
	fl = f.flow(nil)
	assert.Contains(t, rec.got(), f.runs(fl.ID)["other"].ID)
}

func TestStagesSeeScopeData(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	put := func(kind string, owner int64, doc string) {
		_, err := f.st.PutData(f.ctx, store.DataScope{Kind: kind, OwnerID: owner}, json.RawMessage(doc), 0)
		require.NoError(t, err)
	}
	put("branch", f.branch.ID, `{"b": "branch"}`)
	put("branch-ci", f.branch.ID, `{"c": "ci"}`)
	put("branch-dev", f.branch.ID, `{"d": "dev"}`)
	put("project", f.project.ID, `{"p": "proj"}`)
	code := `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{"name": "j", "steps": [{"tool": "shell", "cmd": "echo %s %s %s %s %s #{branch.data_ci.c}" % (
            ctx.branch.data.b, ctx.branch.data_ci.c, ctx.branch.data_dev.d, ctx.project_data.p, ctx.flow.data.f or "none")}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}],
    }
`
	f.stage("build", code)
	fl := f.flow(nil)
	jobs, err := f.st.ListJobs(f.ctx, f.runs(fl.ID)["build"].ID)
	require.NoError(t, err)
	assert.Equal(t, "echo branch ci dev proj none ci", jobs[0].Steps[0].Fields["cmd"])

	// Flow data written by the first stage is seen by a child stage.
	put("flow", fl.ID, `{"f": "flowdata"}`)
	child := `def stage(ctx):
    return {
        "parent": "build",
        "jobs": [{"name": "k", "steps": [{"tool": "shell", "cmd": "echo " + (ctx.flow.data.f or "none")}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}],
    }
`
	f.stage("deploy", child)
	_, err = f.eng.CompleteJob(f.ctx, jobs[0].ID, 0, ci.JobOK, "")
	require.NoError(t, err)
	kids, err := f.st.ListJobs(f.ctx, f.runs(fl.ID)["deploy"].ID)
	require.NoError(t, err)
	assert.Equal(t, "echo flowdata", kids[0].Steps[0].Fields["cmd"])
}

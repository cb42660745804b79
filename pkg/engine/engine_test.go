package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

// fixture is an engine on a real SQLite store with one project and branch.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	st      store.Store
	hub     *notify.Hub
	eng     *engine.Engine
	project ci.Project
	branch  ci.Branch
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, 0)
}

// newFixtureWith is newFixture with an engine that gives jobs maxAttempts
// attempts (0: the default).
func newFixtureWith(t *testing.T, maxAttempts int) *fixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	p := ci.Project{Name: "proj"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main", RepoBranch: "master"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	hub := notify.New()
	disp := scheduler.New(scheduler.Config{Store: st, Logger: log})
	eng := engine.New(engine.Config{Store: st, Hub: hub, Dispatcher: disp, Logger: log, MaxAttempts: maxAttempts})
	return &fixture{t: t, ctx: ctx, st: st, hub: hub, eng: eng, project: p, branch: b}
}

// stage evaluates code as `kk stage apply` does and stores it.
func (f *fixture) stage(name, code string) ci.Stage {
	f.t.Helper()
	c := schema.Context{IsCI: true, Project: f.project.Name, Branch: f.branch.Name, BranchName: f.branch.RepoBranch, Stage: name}
	sch, err := f.eng.EvalStage(f.ctx, name+".py", []byte(code), c)
	require.NoError(f.t, err)
	raw, err := json.Marshal(sch)
	require.NoError(f.t, err)
	s := ci.Stage{BranchID: f.branch.ID, Name: name, Enabled: true, Code: code, Schema: raw, Parent: sch.Parent}
	require.NoError(f.t, f.st.PutStage(f.ctx, &s))
	return s
}

// stageCode is a stage with the given parent, extra top-level keys and jobs.
func stageCode(parent, extra string, jobs ...string) string {
	return fmt.Sprintf(`def stage(ctx):
    return {
        "parent": %q,
        %s
        "jobs": [%s],
    }
`, parent, extra, strings.Join(jobs, ", "))
}

// job is a one-step job running in group on any system.
func job(name, group string) string {
	return fmt.Sprintf(`{"name": %q, "steps": [{"tool": "shell", "cmd": "echo %s"}],
            "environments": [{"agents_group": %q, "system": "any", "config": "default"}]}`, name, name, group)
}

func (f *fixture) flow(args map[string]string) ci.Flow {
	f.t.Helper()
	fl, err := f.eng.CreateFlow(f.ctx, f.branch, ci.FlowCI, args)
	require.NoError(f.t, err)
	return fl
}

func (f *fixture) getFlow(id int64) ci.Flow {
	f.t.Helper()
	fl, err := f.st.GetFlow(f.ctx, id)
	require.NoError(f.t, err)
	return fl
}

func (f *fixture) getRun(id int64) ci.Run {
	f.t.Helper()
	r, err := f.st.GetRun(f.ctx, id)
	require.NoError(f.t, err)
	return r
}

func (f *fixture) getJob(id int64) ci.Job {
	f.t.Helper()
	j, err := f.st.GetJob(f.ctx, id)
	require.NoError(f.t, err)
	return j
}

// runs returns the flow's runs by stage name.
func (f *fixture) runs(flowID int64) map[string]ci.Run {
	f.t.Helper()
	rs, err := f.st.ListRuns(f.ctx, flowID)
	require.NoError(f.t, err)
	out := map[string]ci.Run{}
	for _, r := range rs {
		_, dup := out[r.StageName]
		require.False(f.t, dup, "two runs of stage %s", r.StageName)
		out[r.StageName] = r
	}
	return out
}

// jobs returns the run's jobs that are not covered.
func (f *fixture) jobs(runID int64) []ci.Job {
	f.t.Helper()
	all, err := f.st.ListJobs(f.ctx, runID)
	require.NoError(f.t, err)
	var out []ci.Job
	for _, j := range all {
		if !j.Covered {
			out = append(out, j)
		}
	}
	return out
}

// finish completes every open job of the run with result through the engine.
func (f *fixture) finish(runID int64, result ci.JobResult) {
	f.t.Helper()
	for _, j := range f.jobs(runID) {
		if j.State != ci.JobCompleted {
			_, err := f.eng.CompleteJob(f.ctx, j.ID, 0, result, "")
			require.NoError(f.t, err)
		}
	}
}

// agent registers and authorizes an agent in group all.
func (f *fixture) agent(name string) ci.Agent {
	f.t.Helper()
	a, err := f.st.RegisterAgent(f.ctx, ci.Agent{UUID: "uuid-" + name, Name: name, HostInfo: ci.HostInfo{System: "debian-12"}}, time.Now())
	require.NoError(f.t, err)
	a, err = f.st.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(f.t, err)
	return a
}

func (f *fixture) claim(jobID, agentID int64) ci.Job {
	f.t.Helper()
	j, err := f.st.ClaimJob(f.ctx, jobID, agentID, time.Minute)
	require.NoError(f.t, err)
	return j
}

func TestEngine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"flow with two root stages and a child", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("compile", "all")))
			f.stage("lint", stageCode("root", "", job("vet", "all"), job("fmt", "all")))
			f.stage("test", stageCode("build", "", job("unit", "all")))
			fl := f.flow(nil)
			require.Equal(t, ci.FlowInProgress, fl.State)
			require.Equal(t, ci.FlowCI, fl.Kind)
			runs := f.runs(fl.ID)
			require.Len(t, runs, 2)
			require.Contains(t, runs, "build")
			require.Contains(t, runs, "lint")
			for name, n := range map[string]int{"build": 1, "lint": 2} {
				r := runs[name]
				require.Equal(t, ci.RunInProgress, r.State)
				require.Equal(t, "flow", r.Reason)
				jobs := f.jobs(r.ID)
				require.Len(t, jobs, n)
				for _, j := range jobs {
					require.Equal(t, ci.JobQueued, j.State)
					require.Equal(t, ci.GroupAll, j.Group)
					require.Len(t, j.Steps, 1)
				}
			}

			f.finish(runs["build"].ID, ci.JobOK)
			runs = f.runs(fl.ID)
			require.Equal(t, ci.RunCompleted, runs["build"].State)
			require.Contains(t, runs, "test", "the child starts when its parent completes ok")
			require.Equal(t, "parent", runs["test"].Reason)
			require.Len(t, f.jobs(runs["test"].ID), 1)
			require.Equal(t, ci.FlowInProgress, f.getFlow(fl.ID).State)

			f.finish(runs["lint"].ID, ci.JobOK)
			require.Equal(t, ci.FlowInProgress, f.getFlow(fl.ID).State)
			f.finish(runs["test"].ID, ci.JobOK)
			got := f.getFlow(fl.ID)
			require.Equal(t, ci.FlowCompleted, got.State)
			require.NotNil(t, got.Finished)
		}},
		{"unknown args are rejected and nothing is created", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", `"parameters": [{"name": "greeting", "type": "string", "default": "hello"}],`, job("compile", "all")))
			_, err := f.eng.CreateFlow(f.ctx, f.branch, ci.FlowCI, map[string]string{"greeting": "hi", "colour": "red"})
			require.ErrorIs(t, err, ci.ErrInvalid)
			require.Contains(t, err.Error(), "colour")
			require.Contains(t, err.Error(), "greeting", "the message lists the known parameters")
			flows, err := f.st.ListFlows(f.ctx, f.branch.ID, store.ListFlowsOpts{})
			require.NoError(t, err)
			require.Empty(t, flows)
			queued, err := f.st.ListQueuedJobs(f.ctx, 0)
			require.NoError(t, err)
			require.Empty(t, queued)
		}},
		{"invalid flow kind and branch without stages are rejected", func(t *testing.T, f *fixture) {
			_, err := f.eng.CreateFlow(f.ctx, f.branch, ci.FlowCI, nil)
			require.ErrorIs(t, err, ci.ErrInvalid)
			require.Contains(t, err.Error(), "kk stage apply")
			f.stage("build", stageCode("root", "", job("compile", "all")))
			_, err = f.eng.CreateFlow(f.ctx, f.branch, "nightly", nil)
			require.ErrorIs(t, err, ci.ErrInvalid)
		}},
		{"parameter defaults and overrides reach step fields", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", `"parameters": [{"name": "greeting", "type": "string", "default": "hello"}],`,
				`{"name": "greet", "steps": [{"tool": "shell", "cmd": "echo #{args.greeting} " + (ctx.args.greeting or "none")}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}`))
			for _, tc := range []struct {
				name string
				args map[string]string
				want string
			}{
				{"default", nil, "echo hello hello"},
				{"override", map[string]string{"greeting": "hi"}, "echo hi hi"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					fl := f.flow(tc.args)
					r := f.runs(fl.ID)["build"]
					jobs := f.jobs(r.ID)
					require.Len(t, jobs, 1)
					require.Equal(t, tc.want, jobs[0].Steps[0].Fields["cmd"])
					require.Equal(t, strings.Fields(tc.want)[1], fl.Args["greeting"])
				})
			}
		}},
		{"manual stage waits until started", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("compile", "all")))
			f.stage("deploy", stageCode("root", `"triggers": {"manual": True},`, job("ship", "all")))
			fl := f.flow(nil)
			runs := f.runs(fl.ID)
			deploy := runs["deploy"]
			require.Equal(t, ci.RunManual, deploy.State)
			require.Empty(t, f.jobs(deploy.ID))

			_, err := f.eng.StartRun(f.ctx, runs["build"].ID)
			require.ErrorIs(t, err, ci.ErrConflict, "only manual runs start")

			started, err := f.eng.StartRun(f.ctx, deploy.ID)
			require.NoError(t, err)
			require.Equal(t, ci.RunInProgress, started.State)
			jobs := f.jobs(deploy.ID)
			require.Len(t, jobs, 1)
			require.Equal(t, ci.JobQueued, jobs[0].State)
			require.Equal(t, "ship", jobs[0].Name)

			_, err = f.eng.StartRun(f.ctx, deploy.ID)
			require.ErrorIs(t, err, ci.ErrConflict, "a started run cannot start again")

			f.finish(runs["build"].ID, ci.JobOK)
			require.Equal(t, ci.FlowInProgress, f.getFlow(fl.ID).State, "the started manual run keeps the flow open")
			f.finish(deploy.ID, ci.JobOK)
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
		}},
		{"manual child stage waits after its parent", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("compile", "all")))
			f.stage("deploy", stageCode("build", `"triggers": {"manual": True},`, job("ship", "all")))
			fl := f.flow(nil)
			require.NotContains(t, f.runs(fl.ID), "deploy")
			f.finish(f.runs(fl.ID)["build"].ID, ci.JobOK)
			deploy := f.runs(fl.ID)["deploy"]
			require.Equal(t, ci.RunManual, deploy.State)
			require.Empty(t, f.jobs(deploy.ID))
		}},
		{"schema that raises at run time completes the run with a note", func(t *testing.T, f *fixture) {
			f.stage("build", `def stage(ctx):
    if ctx.flow.id:
        fail("boom at run time")
    return {"parent": "root", "jobs": [`+job("compile", "all")+`]}
`)
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			require.Equal(t, ci.RunCompleted, r.State)
			require.Contains(t, r.Note, "schema error")
			require.Contains(t, r.Note, "boom at run time")
			require.Zero(t, r.JobsTotal)
			require.Empty(t, f.jobs(r.ID))
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
		}},
		{"job in a group that does not exist completes with no_agents", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("compile", "gpu"), job("docs", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			jobs := f.jobs(r.ID)
			require.Len(t, jobs, 2)
			require.Equal(t, ci.JobCompleted, jobs[0].State)
			require.Equal(t, ci.JobNoAgents, jobs[0].Result)
			require.Contains(t, jobs[0].Message, "kk group create gpu")
			require.Equal(t, ci.StepSkipped, jobs[0].Steps[0].Status)
			require.Equal(t, ci.JobQueued, jobs[1].State)
			f.finish(r.ID, ci.JobOK)
			r = f.getRun(r.ID)
			require.Equal(t, ci.RunCompleted, r.State)
			require.Equal(t, 1, r.JobsError)
			require.Equal(t, 2, r.JobsTotal)
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
		}},
		{"cancel of a queued job completes it at once", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("compile", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			j := f.jobs(r.ID)[0]
			got, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			require.Equal(t, ci.JobCompleted, got.State)
			require.Equal(t, ci.JobCancelled, got.Result)
			require.Equal(t, "cancelled by user", got.Message)
			require.Nil(t, got.CancelRequested, "nothing left to request")
			require.Equal(t, ci.RunCompleted, f.getRun(r.ID).State)
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)

			again, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err, "cancelling a completed job is a no-op")
			require.Equal(t, ci.JobCancelled, again.Result)
		}},
		{"cancel of an assigned job is requested from its agent", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("compile", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			a := f.agent("builder")
			j := f.claim(f.jobs(r.ID)[0].ID, a.ID)

			wake, unsubscribe := f.hub.Subscribe(engine.CancelKey(j.ID))
			defer unsubscribe()
			before := time.Now()
			got, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			require.Equal(t, ci.JobAssigned, got.State, "the agent stops the job and reports it")
			require.NotNil(t, got.CancelRequested, "the request is stored with the job")
			at := *got.CancelRequested
			require.False(t, at.Before(before.Add(-time.Second)))
			require.Equal(t, at, *f.getJob(j.ID).CancelRequested)
			select {
			case <-wake:
			default:
				t.Fatal("the cancel was not signalled to the agent's heartbeat")
			}

			_, err = f.eng.RerunJob(f.ctx, j.ID)
			require.ErrorIs(t, err, ci.ErrConflict)
			require.ErrorContains(t, err, "is being cancelled", "a rerun while the agent stops the job says so")

			_, err = f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			require.Equal(t, at, *f.getJob(j.ID).CancelRequested, "a repeated cancel keeps the first request time")
			select {
			case <-wake:
				t.Fatal("a repeated cancel signals nothing new")
			default:
			}

			done, err := f.eng.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobCancelled, "stopped")
			require.NoError(t, err)
			require.Equal(t, ci.JobCancelled, done.Result)
			require.Equal(t, ci.RunCompleted, f.getRun(r.ID).State)
			require.Zero(t, func() int64 { a, _ := f.st.GetAgent(f.ctx, a.ID); return a.JobID }(), "the agent is free again")
		}},
		{"cancel of a completed job changes nothing", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("compile", "all")))
			fl := f.flow(nil)
			a := f.agent("builder")
			j := f.claim(f.jobs(f.runs(fl.ID)["build"].ID)[0].ID, a.ID)
			done, err := f.eng.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobOK, "")
			require.NoError(t, err)
			wake, unsubscribe := f.hub.Subscribe(engine.CancelKey(j.ID))
			defer unsubscribe()
			got, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			require.Equal(t, done, got)
			require.Equal(t, done, f.getJob(j.ID))
			select {
			case <-wake:
				t.Fatal("nothing to signal")
			default:
			}
		}},
		{"cancel of a manual run closes it", func(t *testing.T, f *fixture) {
			f.stage("deploy", stageCode("root", `"triggers": {"manual": True},`, job("ship", "all")))
			f.stage("notify", stageCode("deploy", "", job("mail", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["deploy"]
			require.Equal(t, ci.RunManual, r.State)
			got, err := f.eng.CancelRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, ci.RunCompleted, got.State)
			r = f.getRun(r.ID)
			require.Equal(t, ci.RunCompleted, r.State)
			require.NotEmpty(t, r.Note)
			require.Empty(t, f.jobs(r.ID))
			require.NotContains(t, f.runs(fl.ID), "notify", "a cancelled run starts no children")
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
			_, err = f.eng.StartRun(f.ctx, r.ID)
			require.ErrorIs(t, err, ci.ErrConflict)
		}},
		{"cancel of a run cancels queued and running jobs", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all"), job("b", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			jobs := f.jobs(r.ID)
			running := f.claim(jobs[0].ID, f.agent("builder").ID)
			_, err := f.eng.CancelRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, ci.JobCancelled, f.getJob(jobs[1].ID).Result)
			require.NotNil(t, f.getJob(running.ID).CancelRequested)
			require.Equal(t, ci.RunInProgress, f.getRun(r.ID).State)
			_, err = f.eng.CompleteJob(f.ctx, running.ID, running.Attempt, ci.JobCancelled, "")
			require.NoError(t, err)
			require.Equal(t, ci.RunCompleted, f.getRun(r.ID).State)
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
		}},
		{"child starts only after the parent completes ok", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all"), job("b", "all")))
			f.stage("test", stageCode("build", "", job("unit", "all")))
			for _, tc := range []struct {
				name   string
				second ci.JobResult
				child  bool
			}{
				{"parent ok", ci.JobOK, true},
				{"parent failed", ci.JobFailed, false},
				{"parent job cancelled", ci.JobCancelled, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					fl := f.flow(nil)
					jobs := f.jobs(f.runs(fl.ID)["build"].ID)
					_, err := f.eng.CompleteJob(f.ctx, jobs[0].ID, 0, ci.JobOK, "")
					require.NoError(t, err)
					require.NotContains(t, f.runs(fl.ID), "test", "the child waits for the whole parent run")
					_, err = f.eng.CompleteJob(f.ctx, jobs[1].ID, 0, tc.second, "")
					require.NoError(t, err)
					runs := f.runs(fl.ID)
					require.Equal(t, ci.RunCompleted, runs["build"].State)
					if !tc.child {
						require.NotContains(t, runs, "test")
						require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
						return
					}
					require.Contains(t, runs, "test")
					require.Equal(t, ci.RunInProgress, runs["test"].State)
					require.Equal(t, ci.FlowInProgress, f.getFlow(fl.ID).State)
				})
			}
		}},
		{"child with parent trigger false does not start", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all")))
			f.stage("test", stageCode("build", `"triggers": {"parent": False},`, job("unit", "all")))
			fl := f.flow(nil)
			f.finish(f.runs(fl.ID)["build"].ID, ci.JobOK)
			require.NotContains(t, f.runs(fl.ID), "test")
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
		}},
		{"concurrent completions start the child once", func(t *testing.T, f *fixture) {
			var jobs []string
			for i := range 12 {
				jobs = append(jobs, job(fmt.Sprintf("j%d", i), "all"))
			}
			f.stage("build", stageCode("root", "", jobs...))
			f.stage("test", stageCode("build", "", job("unit", "all")))
			fl := f.flow(nil)
			var wg sync.WaitGroup
			for _, j := range f.jobs(f.runs(fl.ID)["build"].ID) {
				wg.Go(func() {
					if _, err := f.eng.CompleteJob(f.ctx, j.ID, 0, ci.JobOK, ""); err != nil {
						t.Errorf("complete job %d: %v", j.ID, err)
					}
				})
			}
			wg.Wait()
			runs, err := f.st.ListRuns(f.ctx, fl.ID)
			require.NoError(t, err)
			require.Len(t, runs, 2, "one run of build, one of test")
		}},
		{"rerun job covers the old job and reopens run and flow", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all"), job("b", "all")))
			f.stage("test", stageCode("build", "", job("unit", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			jobs := f.jobs(r.ID)
			_, err := f.eng.CompleteJob(f.ctx, jobs[0].ID, 0, ci.JobOK, "")
			require.NoError(t, err)
			_, err = f.eng.CompleteJob(f.ctx, jobs[1].ID, 0, ci.JobFailed, "")
			require.NoError(t, err)
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
			require.Equal(t, 1, f.getRun(r.ID).JobsError)

			_, err = f.eng.RerunJob(f.ctx, jobs[0].ID+jobs[1].ID+100)
			require.ErrorIs(t, err, ci.ErrNotFound)

			nj, err := f.eng.RerunJob(f.ctx, jobs[1].ID)
			require.NoError(t, err)
			require.NotEqual(t, jobs[1].ID, nj.ID)
			require.Equal(t, ci.JobQueued, nj.State)
			require.Equal(t, "b", nj.Name)
			require.Len(t, nj.Steps, 1)
			require.Equal(t, ci.StepPending, nj.Steps[0].Status)
			require.True(t, f.getJob(jobs[1].ID).Covered)
			require.Equal(t, ci.RunInProgress, f.getRun(r.ID).State)
			require.Equal(t, ci.FlowInProgress, f.getFlow(fl.ID).State)

			_, err = f.eng.RerunJob(f.ctx, nj.ID)
			require.ErrorIs(t, err, ci.ErrConflict, "a queued job cannot be rerun")

			_, err = f.eng.CompleteJob(f.ctx, nj.ID, 0, ci.JobOK, "")
			require.NoError(t, err)
			r = f.getRun(r.ID)
			require.Equal(t, ci.RunCompleted, r.State)
			require.Zero(t, r.JobsError)
			require.Equal(t, 2, r.JobsTotal)
			require.Contains(t, f.runs(fl.ID), "test", "the fixed parent starts its child")
		}},
		{"rerun of a job whose group is gone completes its run", func(t *testing.T, f *fixture) {
			g := ci.Group{Name: "gpu"}
			require.NoError(t, f.st.CreateGroup(f.ctx, &g))
			f.stage("build", stageCode("root", "", job("cuda", "gpu")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			f.finish(r.ID, ci.JobFailed)
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
			require.NoError(t, f.st.DeleteGroup(f.ctx, g.ID))

			nj, err := f.eng.RerunJob(f.ctx, f.jobs(r.ID)[0].ID)
			require.NoError(t, err)
			require.Equal(t, ci.JobCompleted, nj.State)
			require.Equal(t, ci.JobNoAgents, nj.Result)
			require.Equal(t, ci.RunCompleted, f.getRun(r.ID).State, "the run does not hang in progress")
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
		}},
		{"rerun run queues fresh jobs and covers the old ones", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all"), job("b", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			old := f.jobs(r.ID)
			f.finish(r.ID, ci.JobFailed)
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)

			got, err := f.eng.RerunRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, ci.RunInProgress, got.State)
			require.Equal(t, ci.FlowInProgress, f.getFlow(fl.ID).State)
			for _, j := range old {
				require.True(t, f.getJob(j.ID).Covered)
			}
			fresh := f.jobs(r.ID)
			require.Len(t, fresh, 2)
			for _, j := range fresh {
				require.Equal(t, ci.JobQueued, j.State)
				require.Zero(t, j.Attempt)
			}
			r = f.getRun(r.ID)
			require.Equal(t, 2, r.JobsTotal)
			require.Zero(t, r.JobsError)

			f.finish(r.ID, ci.JobOK)
			r = f.getRun(r.ID)
			require.Equal(t, ci.RunCompleted, r.State)
			require.Zero(t, r.JobsError)
			require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
		}},
		{"rerun run with a running job cancels it and keeps the run open", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all"), job("b", "all")))
			f.stage("test", stageCode("build", "", job("unit", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			old := f.jobs(r.ID)
			_, err := f.eng.CompleteJob(f.ctx, old[0].ID, 0, ci.JobOK, "")
			require.NoError(t, err)
			running := f.claim(old[1].ID, f.agent("builder").ID)

			_, err = f.eng.RerunRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.NotNil(t, f.getJob(running.ID).CancelRequested, "the old running job is asked to stop")
			require.True(t, f.getJob(running.ID).Covered)
			// The agent confirms the cancel: the covered job is no error of the run.
			_, err = f.eng.CompleteJob(f.ctx, running.ID, running.Attempt, ci.JobCancelled, "")
			require.NoError(t, err)
			r = f.getRun(r.ID)
			require.Equal(t, ci.RunInProgress, r.State)
			require.Nil(t, f.getFlow(fl.ID).Finished, "the flow never completed during the rerun")
			require.Len(t, f.jobs(r.ID), 2)

			f.finish(r.ID, ci.JobOK)
			r = f.getRun(r.ID)
			require.Equal(t, ci.RunCompleted, r.State)
			require.Zero(t, r.JobsError)
			require.Contains(t, f.runs(fl.ID), "test")
		}},
		{"rerun run cancels its old queued job", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all"), job("b", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			old := f.jobs(r.ID)
			_, err := f.eng.CompleteJob(f.ctx, old[0].ID, 0, ci.JobOK, "")
			require.NoError(t, err)
			_, err = f.eng.RerunRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, ci.JobCancelled, f.getJob(old[1].ID).Result)
			require.Nil(t, f.getRun(r.ID).Finished, "the run was not completed by cancelling its old job")
			require.Nil(t, f.getFlow(fl.ID).Finished)
			require.Zero(t, f.getRun(r.ID).JobsError)
		}},
		{"rerun run keeps the old jobs when the stage no longer evaluates", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			old := f.jobs(r.ID)[0]
			f.stage("build", `def stage(ctx):
    if ctx.flow.id:
        fail("broken")
    return {"parent": "root", "jobs": [`+job("a", "all")+`]}
`)
			_, err := f.eng.RerunRun(f.ctx, r.ID)
			require.ErrorIs(t, err, ci.ErrInvalid)
			require.Contains(t, err.Error(), "broken")
			j := f.getJob(old.ID)
			require.Equal(t, ci.JobQueued, j.State, "a failed rerun leaves the run alone")
			require.False(t, j.Covered)
		}},
		{"rerun of a manual run starts it", func(t *testing.T, f *fixture) {
			f.stage("deploy", stageCode("root", `"triggers": {"manual": True},`, job("ship", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["deploy"]
			got, err := f.eng.RerunRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, ci.RunInProgress, got.State)
			require.Len(t, f.jobs(r.ID), 1)
		}},
		{"flow and run labels come from their templates", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root",
				`"parameters": [{"name": "ver", "type": "string", "default": "1.0"}],
        "flow_label": "demo-#{flow.seq.own}-#{args.ver}",
        "run_label": "build-#{run.seq.own}",`, job("a", "all")))
			f.stage("test", stageCode("root", "", job("t", "all")))
			first := f.flow(nil)
			require.Equal(t, "demo-1-1.0", first.Label)
			second := f.flow(map[string]string{"ver": "2.0"})
			require.Equal(t, "demo-2-2.0", second.Label)
			require.Equal(t, "build-1", f.runs(first.ID)["build"].Label)
			require.Equal(t, "build-2", f.runs(second.ID)["build"].Label)
			require.Equal(t, "2", f.runs(second.ID)["test"].Label, "without run_label the label is the run's seq")
		}},
		{"labels default to the sequence numbers", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", "", job("a", "all")))
			require.Equal(t, "1", f.flow(nil).Label)
			fl := f.flow(nil)
			require.Equal(t, "2", fl.Label)
			require.Equal(t, "2", f.runs(fl.ID)["build"].Label)
		}},
		{"run that fails to evaluate still gets a label", func(t *testing.T, f *fixture) {
			f.stage("build", `def stage(ctx):
    if ctx.flow.id:
        fail("boom")
    return {"parent": "root", "jobs": [`+job("a", "all")+`]}
`)
			fl := f.flow(nil)
			require.Equal(t, "1", f.runs(fl.ID)["build"].Label)
		}},
		{"trigger data is stored and visible in ctx", func(t *testing.T, f *fixture) {
			f.stage("build", `def stage(ctx):
    t = ctx.flow.trigger
    cmd = "echo " + (t.after if t else "none")
    return {"parent": "root", "flow_label": "pr-#{flow.trigger.pull_request.number}",
            "jobs": [{"name": "a", "steps": [{"tool": "shell", "cmd": cmd}],
                      "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}]}
`)
			trig := json.RawMessage(`{"after":"0123456789abcdef0123456789abcdef01234567","pull_request":{"number":7}}`)
			fl, err := f.eng.CreateFlowWith(f.ctx, f.branch, ci.FlowDEV, engine.FlowOptions{TriggerData: trig})
			require.NoError(t, err)
			require.JSONEq(t, string(trig), string(f.getFlow(fl.ID).TriggerData))
			require.Equal(t, "pr-7", fl.Label)
			jobs := f.jobs(f.runs(fl.ID)["build"].ID)
			require.Len(t, jobs, 1)
			require.Equal(t, "echo 0123456789abcdef0123456789abcdef01234567", jobs[0].Steps[0].Fields["cmd"])

			_, err = f.eng.CreateFlowWith(f.ctx, f.branch, ci.FlowCI, engine.FlowOptions{TriggerData: json.RawMessage(`[1]`)})
			require.ErrorIs(t, err, ci.ErrInvalid, "trigger data must be an object")
		}},
		{"dev flows count separately", func(t *testing.T, f *fixture) {
			f.stage("build", stageCode("root", `"flow_label": "#{flow.kind}-#{flow.seq.own}",`, job("a", "all")))
			ci1 := f.flow(nil)
			dev, err := f.eng.CreateFlow(f.ctx, f.branch, ci.FlowDEV, nil)
			require.NoError(t, err)
			require.Equal(t, ci.FlowDEV, dev.Kind)
			require.Equal(t, "CI-1", ci1.Label)
			require.Equal(t, "DEV-1", dev.Label)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newFixture(t))
		})
	}
}

// TestFailAttempt drives the retry policy: infrastructure failures are
// retried until the job had MaxAttempts attempts, a pending cancel is never
// retried, and the final message names every attempt.
func TestFailAttempt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxAttempts int
		failure     engine.Failure
		detail      string
		failures    int // attempts that fail in a row, each on a new agent
		cancel      bool
		state       ci.JobState
		result      ci.JobResult
		outcome     ci.JobResult // of the last failed attempt
		reason      string       // of the last failed attempt
		message     []string     // parts of the job's message
	}{
		{name: "lost agent is retried", maxAttempts: 3, failure: engine.LeaseExpired, failures: 1,
			state: ci.JobQueued, outcome: ci.JobAgentLost, reason: "agent a1 lost contact (its lease expired)"},
		{name: "lost on every attempt gives up", maxAttempts: 3, failure: engine.LeaseExpired, failures: 3,
			state: ci.JobCompleted, result: ci.JobAgentLost, outcome: ci.JobAgentLost, reason: "agent a3 lost contact (its lease expired)",
			message: []string{"agent a3 lost contact", "gave up after 3 attempts (kkd --job-retries 2)",
				"#1 agent a1 lost contact (its lease expired); #2 agent a2 lost contact"}},
		{name: "agent error is retried", maxAttempts: 3, failure: engine.AgentError, detail: "docker daemon unreachable", failures: 1,
			state: ci.JobQueued, outcome: ci.JobError, reason: "agent a1 reported an error: docker daemon unreachable"},
		{name: "agent error on every attempt fails with error", maxAttempts: 2, failure: engine.AgentError, detail: "kkagent stopped", failures: 2,
			state: ci.JobCompleted, result: ci.JobError, outcome: ci.JobError, reason: "agent a2 reported an error: kkagent stopped",
			message: []string{"gave up after 2 attempts (kkd --job-retries 1)", "#1 agent a1 reported an error: kkagent stopped"}},
		{name: "restarted agent is retried", maxAttempts: 3, failure: engine.AgentRestarted, failures: 1,
			state: ci.JobQueued, outcome: ci.JobAgentLost, reason: "agent a1 restarted and lost its copy of the job"},
		{name: "retries off", maxAttempts: 1, failure: engine.LeaseExpired, failures: 1,
			state: ci.JobCompleted, result: ci.JobAgentLost, outcome: ci.JobAgentLost, reason: "agent a1 lost contact (its lease expired)",
			message: []string{"job retries are off (kkd --job-retries 0)"}},
		{name: "pending cancel is not retried", maxAttempts: 3, failure: engine.AgentError, detail: "stopped", failures: 1, cancel: true,
			state: ci.JobCompleted, result: ci.JobCancelled, outcome: ci.JobError, reason: "agent a1 reported an error: stopped",
			message: []string{"cancelled by user; agent a1 reported an error: stopped"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixtureWith(t, tc.maxAttempts)
			require.Equal(t, tc.maxAttempts, f.eng.MaxAttempts())
			f.stage("build", stageCode("root", "", job("compile", "all")))
			fl := f.flow(nil)
			r := f.runs(fl.ID)["build"]
			id := f.jobs(r.ID)[0].ID
			var got ci.Job
			for i := 1; i <= tc.failures; i++ {
				j := f.claim(id, f.agent(fmt.Sprintf("a%d", i)).ID)
				require.Equal(t, i, j.Attempt)
				if tc.cancel {
					_, err := f.eng.CancelJob(f.ctx, id)
					require.NoError(t, err)
				}
				if tc.failure == engine.LeaseExpired {
					_, err := f.st.RenewLease(f.ctx, id, j.Attempt, time.Now().Add(-time.Second))
					require.NoError(t, err)
				}
				wake, unsubscribe := f.hub.Subscribe(engine.CancelKey(id))
				var outcome store.FailOutcome
				var err error
				got, outcome, err = f.eng.FailAttempt(f.ctx, id, j.Attempt, tc.failure, tc.detail)
				unsubscribe()
				require.NoError(t, err)
				require.NotEqual(t, store.FailNone, outcome)
				select {
				case <-wake:
				default:
					t.Fatal("the old attempt's held heartbeat was not woken")
				}
				_, _, err = f.eng.FailAttempt(f.ctx, id, j.Attempt, tc.failure, tc.detail)
				require.ErrorIs(t, err, ci.ErrStaleAttempt, "an attempt fails once")
			}
			require.Equal(t, got, f.getJob(id))
			require.Equal(t, tc.state, got.State)
			require.Equal(t, tc.result, got.Result)
			for _, part := range tc.message {
				require.Contains(t, got.Message, part)
			}
			if tc.state == ci.JobQueued {
				require.Empty(t, got.Message)
				require.Equal(t, ci.RunInProgress, f.getRun(r.ID).State)
			} else {
				require.Equal(t, ci.RunCompleted, f.getRun(r.ID).State, "the run advances")
				require.Equal(t, ci.FlowCompleted, f.getFlow(fl.ID).State)
			}
			history, err := f.st.ListJobAttempts(f.ctx, id)
			require.NoError(t, err)
			require.Len(t, history, tc.failures)
			last := history[len(history)-1]
			require.Equal(t, tc.outcome, last.Outcome)
			require.Equal(t, tc.reason, last.Message)
		})
	}
}

// TestFailAttemptRenewedLease: a lease renewed after the watchdog saw it
// expire keeps the attempt alive.
func TestFailAttemptRenewedLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.stage("build", stageCode("root", "", job("compile", "all")))
	fl := f.flow(nil)
	j := f.claim(f.jobs(f.runs(fl.ID)["build"].ID)[0].ID, f.agent("a1").ID)
	got, outcome, err := f.eng.FailAttempt(f.ctx, j.ID, j.Attempt, engine.LeaseExpired, "")
	require.NoError(t, err)
	require.Equal(t, store.FailNone, outcome)
	require.Equal(t, ci.JobAssigned, got.State)
	require.Equal(t, j.Attempt, f.getJob(j.ID).Attempt)

	// Other failures do not depend on the lease.
	_, outcome, err = f.eng.FailAttempt(f.ctx, j.ID, j.Attempt, engine.AgentRestarted, "")
	require.NoError(t, err)
	require.Equal(t, store.FailRequeued, outcome)
}

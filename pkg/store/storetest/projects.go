package storetest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

func projectCases() []testCase {
	return []testCase{
		{"create get list", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			for _, name := range []string{"zeta", "alpha", "mid"} {
				p := ci.Project{Name: name, Description: "about " + name}
				require.NoError(t, s.CreateProject(ctx, &p))
				require.NotZero(t, p.ID)
				requireRecent(t, p.Created)

				got, err := s.GetProject(ctx, p.ID)
				require.NoError(t, err)
				require.Equal(t, p, got)
				got, err = s.GetProjectByName(ctx, name)
				require.NoError(t, err)
				require.Equal(t, p, got)
			}
			list, err := s.ListProjects(ctx)
			require.NoError(t, err)
			require.Equal(t, []string{"alpha", "mid", "zeta"}, projectNames(list))
		}},
		{"duplicate name conflicts", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			require.NoError(t, s.CreateProject(ctx, &ci.Project{Name: "p"}))
			require.ErrorIs(t, s.CreateProject(ctx, &ci.Project{Name: "p"}), ci.ErrConflict)
		}},
		{"empty name is invalid", func(t *testing.T, s store.Store) {
			require.ErrorIs(t, s.CreateProject(t.Context(), &ci.Project{}), ci.ErrInvalid)
		}},
		{"not found", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			_, err := s.GetProject(ctx, 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetProjectByName(ctx, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.ErrorIs(t, s.DeleteProject(ctx, 42), ci.ErrNotFound)
		}},
		{"empty list", func(t *testing.T, s store.Store) {
			list, err := s.ListProjects(t.Context())
			require.NoError(t, err)
			require.Empty(t, list)
		}},
		{"delete cascades to everything below", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			c := f.tree()
			other := f.tree() // another project, untouched

			require.NoError(t, s.DeleteProject(f.ctx, c.project.ID))
			c.requireGone(t, s, true)
			other.requireThere(t, s)
			// The agent that was running a job of the project is free again.
			require.Zero(t, f.getAgent(c.agent.ID).JobID)
		}},
	}
}

func branchCases() []testCase {
	return []testCase{
		{"create get list", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			for _, name := range []string{"release", "main", "dev"} {
				b := ci.Branch{ProjectID: p.ID, Name: name, RepoBranch: "repo-" + name,
					Env: map[string]string{"A": "1", "NAME": name}}
				require.NoError(t, s.CreateBranch(f.ctx, &b))
				require.NotZero(t, b.ID)
				requireRecent(t, b.Created)

				got, err := s.GetBranch(f.ctx, b.ID)
				require.NoError(t, err)
				require.Equal(t, b, got)
				got, err = s.GetBranchByName(f.ctx, p.ID, name)
				require.NoError(t, err)
				require.Equal(t, b, got)
			}
			list, err := s.ListBranches(f.ctx, p.ID)
			require.NoError(t, err)
			names := make([]string, 0, len(list))
			for _, b := range list {
				names = append(names, b.Name)
			}
			require.Equal(t, []string{"dev", "main", "release"}, names)
		}},
		{"nil env round trips", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			got, err := s.GetBranch(f.ctx, b.ID)
			require.NoError(t, err)
			require.Empty(t, got.Env)
		}},
		{"duplicate name conflicts within a project only", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p1, p2 := f.project(), f.project()
			require.NoError(t, s.CreateBranch(f.ctx, &ci.Branch{ProjectID: p1.ID, Name: "main"}))
			require.ErrorIs(t, s.CreateBranch(f.ctx, &ci.Branch{ProjectID: p1.ID, Name: "main"}), ci.ErrConflict)
			require.NoError(t, s.CreateBranch(f.ctx, &ci.Branch{ProjectID: p2.ID, Name: "main"}))
		}},
		{"missing project", func(t *testing.T, s store.Store) {
			err := s.CreateBranch(t.Context(), &ci.Branch{ProjectID: 42, Name: "main"})
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"not found", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			_, err := s.GetBranch(f.ctx, 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetBranchByName(f.ctx, p.ID, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.ErrorIs(t, s.DeleteBranch(f.ctx, 42), ci.ErrNotFound)
		}},
		{"delete cascades to everything below", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			c := f.tree()
			sibling := f.branch(c.project.ID)
			require.NoError(t, s.DeleteBranch(f.ctx, c.branch.ID))
			c.requireGone(t, s, false)
			_, err := s.GetProject(f.ctx, c.project.ID)
			require.NoError(t, err)
			_, err = s.GetBranch(f.ctx, sibling.ID)
			require.NoError(t, err)
			require.Zero(t, f.getAgent(c.agent.ID).JobID)
		}},
		{"sequences restart in a recreated branch", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			b := ci.Branch{ProjectID: p.ID, Name: "main"}
			require.NoError(t, s.CreateBranch(f.ctx, &b))
			f.flow(b.ID, ci.FlowCI)
			f.flow(b.ID, ci.FlowCI)
			require.NoError(t, s.DeleteBranch(f.ctx, b.ID))
			b = ci.Branch{ProjectID: p.ID, Name: "main"}
			require.NoError(t, s.CreateBranch(f.ctx, &b))
			fl := f.flow(b.ID, ci.FlowCI)
			require.EqualValues(t, 1, fl.Seq)
		}},
	}
}

func stageCases() []testCase {
	return []testCase{
		{"put inserts then replaces", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			st := ci.Stage{BranchID: b.ID, Name: "build", Enabled: true, Code: "def stage(ctx): pass",
				Schema: json.RawMessage(`{"parent":"root","jobs":[]}`), Parent: "root"}
			require.NoError(t, s.PutStage(f.ctx, &st))
			require.NotZero(t, st.ID)
			requireRecent(t, st.Created)
			require.Equal(t, st.Created, st.Updated)
			got, err := s.GetStage(f.ctx, st.ID)
			require.NoError(t, err)
			require.Equal(t, st, got)

			again := ci.Stage{BranchID: b.ID, Name: "build", Enabled: false, Code: "new code",
				Schema: json.RawMessage(`{"parent":"test"}`), Parent: "test"}
			require.NoError(t, s.PutStage(f.ctx, &again))
			require.Equal(t, st.ID, again.ID)
			require.Equal(t, st.Created, again.Created)
			require.False(t, again.Updated.Before(st.Updated))
			got, err = s.GetStageByName(f.ctx, b.ID, "build")
			require.NoError(t, err)
			require.Equal(t, again, got)
			require.JSONEq(t, `{"parent":"test"}`, string(got.Schema))
			require.Equal(t, "new code", got.Code)
			require.False(t, got.Enabled)
		}},
		{"list ordered by name", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			for _, name := range []string{"test", "build", "deploy"} {
				require.NoError(t, s.PutStage(f.ctx, &ci.Stage{BranchID: b.ID, Name: name, Enabled: true}))
			}
			other := f.newBranch()
			require.NoError(t, s.PutStage(f.ctx, &ci.Stage{BranchID: other.ID, Name: "other"}))
			list, err := s.ListStages(f.ctx, b.ID)
			require.NoError(t, err)
			var names []string
			for _, st := range list {
				names = append(names, st.Name)
			}
			require.Equal(t, []string{"build", "deploy", "test"}, names)
		}},
		{"invalid schema json", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			err := s.PutStage(f.ctx, &ci.Stage{BranchID: b.ID, Name: "x", Schema: json.RawMessage(`{`)})
			require.ErrorIs(t, err, ci.ErrInvalid)
		}},
		{"missing branch", func(t *testing.T, s store.Store) {
			err := s.PutStage(t.Context(), &ci.Stage{BranchID: 42, Name: "build"})
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"not found", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			_, err := s.GetStage(f.ctx, 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetStageByName(f.ctx, b.ID, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.ErrorIs(t, s.DeleteStage(f.ctx, 42), ci.ErrNotFound)
		}},
		{"delete keeps runs and their stage name", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			st := ci.Stage{BranchID: b.ID, Name: "build", Enabled: true}
			require.NoError(t, s.PutStage(f.ctx, &st))
			fl := f.flow(b.ID, ci.FlowCI)
			r := ci.Run{FlowID: fl.ID, StageID: st.ID, StageName: st.Name, State: ci.RunInProgress}
			require.NoError(t, s.CreateRun(f.ctx, &r, []*ci.Job{newJob("j", 1)}))
			got, err := s.GetRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, st.ID, got.StageID)

			require.NoError(t, s.DeleteStage(f.ctx, st.ID))
			_, err = s.GetStage(f.ctx, st.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)
			got, err = s.GetRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, "build", got.StageName)
			jobs, err := s.ListJobs(f.ctx, r.ID)
			require.NoError(t, err)
			require.Len(t, jobs, 1)
		}},
	}
}

func projectNames(ps []ci.Project) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// tree is a project with one of everything below it.
type tree struct {
	project ci.Project
	branch  ci.Branch
	stage   ci.Stage
	flow    ci.Flow
	run     ci.Run
	jobs    []*ci.Job
	agent   ci.Agent
}

// tree builds a project, branch, stage, flow, run with two jobs (one claimed
// by an agent, with logs and an attempt history, the other queued).
func (f *fx) tree() tree {
	f.t.Helper()
	var c tree
	c.project = f.project()
	c.branch = f.branch(c.project.ID)
	c.stage = ci.Stage{BranchID: c.branch.ID, Name: "build", Enabled: true}
	require.NoError(f.t, f.s.PutStage(f.ctx, &c.stage))
	c.flow = f.flow(c.branch.ID, ci.FlowCI)
	c.jobs = []*ci.Job{newJob("a", 2), newJob("b", 1)}
	c.run = ci.Run{FlowID: c.flow.ID, StageID: c.stage.ID, StageName: c.stage.Name, State: ci.RunInProgress}
	require.NoError(f.t, f.s.CreateRun(f.ctx, &c.run, c.jobs))
	c.agent = f.agent(f.unique("agent"), true)
	j := f.claim(c.jobs[0].ID, c.agent.ID)
	_, err := f.s.AppendLog(f.ctx, ci.LogChunk{JobID: j.ID, Attempt: j.Attempt, Step: 0, Seq: 0, Data: []byte("hello")})
	require.NoError(f.t, err)
	return c
}

func (c tree) requireGone(t *testing.T, s store.Store, project bool) {
	t.Helper()
	ctx := t.Context()
	if project {
		_, err := s.GetProject(ctx, c.project.ID)
		require.ErrorIs(t, err, ci.ErrNotFound)
	}
	_, err := s.GetBranch(ctx, c.branch.ID)
	require.ErrorIs(t, err, ci.ErrNotFound)
	_, err = s.GetStage(ctx, c.stage.ID)
	require.ErrorIs(t, err, ci.ErrNotFound)
	_, err = s.GetFlow(ctx, c.flow.ID)
	require.ErrorIs(t, err, ci.ErrNotFound)
	_, err = s.GetRun(ctx, c.run.ID)
	require.ErrorIs(t, err, ci.ErrNotFound)
	for _, j := range c.jobs {
		_, err = s.GetJob(ctx, j.ID)
		require.ErrorIs(t, err, ci.ErrNotFound)
		logs, err := s.ReadLogs(ctx, j.ID, -1, -1, store.LogPos{}, 0)
		require.NoError(t, err)
		require.Empty(t, logs)
		attempts, err := s.ListJobAttempts(ctx, j.ID)
		require.NoError(t, err)
		require.Empty(t, attempts)
	}
	jobs, err := s.ListJobs(ctx, c.run.ID)
	require.NoError(t, err)
	require.Empty(t, jobs)
	queued, err := s.ListQueuedJobs(ctx, 0)
	require.NoError(t, err)
	for _, q := range queued {
		require.NotEqual(t, c.run.ID, q.RunID)
	}
	active, err := s.ListActiveJobs(ctx)
	require.NoError(t, err)
	for _, a := range active {
		require.NotEqual(t, c.run.ID, a.RunID)
	}
}

func (c tree) requireThere(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetProject(ctx, c.project.ID)
	require.NoError(t, err)
	_, err = s.GetStage(ctx, c.stage.ID)
	require.NoError(t, err)
	_, err = s.GetFlow(ctx, c.flow.ID)
	require.NoError(t, err)
	jobs, err := s.ListJobs(ctx, c.run.ID)
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	logs, err := s.ReadLogs(ctx, c.jobs[0].ID, -1, -1, store.LogPos{}, 0)
	require.NoError(t, err)
	require.Len(t, logs, 1)
	attempts, err := s.ListJobAttempts(ctx, c.jobs[0].ID)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
}

package watchdog_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
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
	"github.com/kraken-go/kk/pkg/watchdog"
)

// clock is a settable clock shared by the engine and the watchdog.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

const (
	lease        = time.Minute
	cancelGrace  = 15 * time.Second
	timeoutGrace = time.Minute
	jobTimeout   = 120 // seconds, set by the stage
)

// fixture is a watchdog, engine and dispatcher on a real SQLite store, with a
// flow whose stage has two jobs.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	clock *clock
	eng   *engine.Engine
	disp  *scheduler.Dispatcher
	wd    *watchdog.Watchdog
	flow  ci.Flow
	run   ci.Run
	jobs  []ci.Job
	agent ci.Agent
}

const stageCode = `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "build",
            "timeout": 120,
            "steps": [{"tool": "shell", "cmd": "make"}, {"tool": "shell", "cmd": "make check"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }, {
            "name": "docs",
            "steps": [{"tool": "shell", "cmd": "make docs"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

func newFixture(t *testing.T, maxAttempts int) *fixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	clk := &clock{now: time.Now()}
	disp := scheduler.New(scheduler.Config{Store: st, Logger: log, Lease: lease})
	eng := engine.New(engine.Config{Store: st, Hub: notify.New(), Dispatcher: disp, Logger: log, Now: clk.Now, MaxAttempts: maxAttempts})
	wd := watchdog.New(watchdog.Config{
		Store: st, Engine: eng, Dispatcher: disp, Logger: log, Now: clk.Now,
		CancelGrace: cancelGrace, TimeoutGrace: timeoutGrace,
	})

	p := ci.Project{Name: "proj"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main", RepoBranch: "main"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	sch, err := eng.EvalStage(ctx, "build.py", []byte(stageCode), schema.Context{IsCI: true, Project: p.Name, Branch: b.Name, Stage: "build"})
	require.NoError(t, err)
	raw, err := json.Marshal(sch)
	require.NoError(t, err)
	require.NoError(t, st.PutStage(ctx, &ci.Stage{BranchID: b.ID, Name: "build", Enabled: true, Code: stageCode, Schema: raw, Parent: sch.Parent}))
	fl, err := eng.CreateFlow(ctx, b, ci.FlowCI, nil)
	require.NoError(t, err)
	runs, err := st.ListRuns(ctx, fl.ID)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	jobs, err := st.ListJobs(ctx, runs[0].ID)
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	require.Equal(t, jobTimeout, jobs[0].Timeout)

	a, err := st.RegisterAgent(ctx, ci.Agent{UUID: "uuid-1", Name: "builder", HostInfo: ci.HostInfo{System: "debian-12"}}, time.Now())
	require.NoError(t, err)
	a, err = st.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(t, err)
	return &fixture{t: t, ctx: ctx, st: st, clock: clk, eng: eng, disp: disp, wd: wd, flow: fl, run: runs[0], jobs: jobs, agent: a}
}

// claim gives the job to the fixture's agent, as the dispatcher does.
func (f *fixture) claim(jobID int64) ci.Job {
	f.t.Helper()
	j, err := f.st.ClaimJob(f.ctx, jobID, f.agent.ID, lease)
	require.NoError(f.t, err)
	return j
}

// start claims the job and reports it, and its first step, running at the
// fixture clock's time.
func (f *fixture) start(jobID int64) ci.Job {
	f.t.Helper()
	j := f.claim(jobID)
	now := f.clock.Now()
	require.NoError(f.t, f.st.StartJob(f.ctx, jobID, j.Attempt, now))
	require.NoError(f.t, f.st.UpdateStep(f.ctx, jobID, j.Attempt, ci.Step{Index: 0, Status: ci.StepRunning, Started: &now}))
	return f.job(jobID)
}

// renew extends the job's lease far beyond the test's clock, so only the
// check under test applies.
func (f *fixture) renew(j ci.Job) {
	f.t.Helper()
	_, err := f.st.RenewLease(f.ctx, j.ID, j.Attempt, f.clock.Now().Add(24*time.Hour))
	require.NoError(f.t, err)
}

// expire moves the clock past the job's lease.
func (f *fixture) expire(jobID int64) {
	f.t.Helper()
	j := f.job(jobID)
	require.NotNil(f.t, j.LeaseUntil)
	f.clock.Set(j.LeaseUntil.Add(time.Second))
}

func (f *fixture) job(id int64) ci.Job {
	f.t.Helper()
	j, err := f.st.GetJob(f.ctx, id)
	require.NoError(f.t, err)
	return j
}

func (f *fixture) getRun() ci.Run {
	f.t.Helper()
	r, err := f.st.GetRun(f.ctx, f.run.ID)
	require.NoError(f.t, err)
	return r
}

func (f *fixture) getFlow() ci.Flow {
	f.t.Helper()
	fl, err := f.st.GetFlow(f.ctx, f.flow.ID)
	require.NoError(f.t, err)
	return fl
}

func TestWatchdog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxAttempts int
		run         func(t *testing.T, f *fixture)
	}{
		{"expired lease requeues the job and fences the old attempt", 3, func(t *testing.T, f *fixture) {
			j := f.start(f.jobs[0].ID)
			require.Equal(t, 1, j.Attempt)
			_, err := f.st.AppendLog(f.ctx, ci.LogChunk{JobID: j.ID, Attempt: j.Attempt, Step: 0, Seq: 0, Data: []byte("building\n")})
			require.NoError(t, err)

			f.clock.Set(j.LeaseUntil.Add(-time.Second))
			f.wd.Check(f.ctx)
			require.Equal(t, ci.JobRunning, f.job(j.ID).State, "a live lease is left alone")

			f.expire(j.ID)
			f.wd.Check(f.ctx)
			got := f.job(j.ID)
			require.Equal(t, ci.JobQueued, got.State)
			require.Equal(t, 1, got.Attempt, "the attempt is kept: the next claim makes it 2")
			require.Zero(t, got.AgentID)
			require.Nil(t, got.LeaseUntil)
			for _, st := range got.Steps {
				require.Equal(t, ci.StepPending, st.Status)
			}
			a, err := f.st.GetAgent(f.ctx, f.agent.ID)
			require.NoError(t, err)
			require.Zero(t, a.JobID, "the lost agent's job is released")
			history, err := f.st.ListJobAttempts(f.ctx, j.ID)
			require.NoError(t, err)
			require.Len(t, history, 1)
			require.Equal(t, ci.JobAgentLost, history[0].Outcome)
			require.Equal(t, "agent builder lost contact (its lease expired)", history[0].Message)
			logs, err := f.st.ReadLogs(f.ctx, j.ID, -1, -1, store.LogPos{}, 0)
			require.NoError(t, err)
			require.Len(t, logs, 1, "the lost attempt's log is kept")

			// Every write of the lost attempt is rejected.
			_, err = f.st.RenewLease(f.ctx, j.ID, 1, time.Now().Add(time.Hour))
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			require.ErrorIs(t, f.st.StartJob(f.ctx, j.ID, 1, time.Now()), ci.ErrStaleAttempt)
			require.ErrorIs(t, f.st.UpdateStep(f.ctx, j.ID, 1, ci.Step{Index: 0, Status: ci.StepOK}), ci.ErrStaleAttempt)
			_, err = f.eng.CompleteJob(f.ctx, j.ID, 1, ci.JobOK, "")
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			require.Equal(t, ci.JobQueued, f.job(j.ID).State)

			again := f.claim(j.ID)
			require.Equal(t, 2, again.Attempt)
			_, err = f.eng.CompleteJob(f.ctx, j.ID, 1, ci.JobOK, "")
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "the old attempt stays fenced after the new claim")
			_, err = f.eng.CompleteJob(f.ctx, j.ID, 2, ci.JobOK, "")
			require.NoError(t, err)
		}},
		{"expired lease is rechecked only once per attempt", 3, func(t *testing.T, f *fixture) {
			j := f.claim(f.jobs[0].ID)
			f.expire(j.ID)
			f.wd.Check(f.ctx)
			f.wd.Check(f.ctx)
			got := f.job(j.ID)
			require.Equal(t, ci.JobQueued, got.State)
			require.Equal(t, 1, got.Attempt)
		}},
		{"after MaxAttempts the job fails with agent_lost and the run advances", 2, func(t *testing.T, f *fixture) {
			other, err := f.eng.CompleteJob(f.ctx, f.jobs[1].ID, 0, ci.JobOK, "")
			require.NoError(t, err)
			require.Equal(t, ci.JobOK, other.Result)

			for attempt := 1; attempt <= 2; attempt++ {
				j := f.start(f.jobs[0].ID)
				require.Equal(t, attempt, j.Attempt)
				f.expire(j.ID)
				f.wd.Check(f.ctx)
			}
			got := f.job(f.jobs[0].ID)
			require.Equal(t, ci.JobCompleted, got.State)
			require.Equal(t, ci.JobAgentLost, got.Result)
			require.Contains(t, got.Message, "gave up after 2 attempts (kkd --job-retries 1)")
			require.Equal(t, ci.StepSkipped, got.Steps[1].Status)
			r := f.getRun()
			require.Equal(t, ci.RunCompleted, r.State)
			require.Equal(t, 1, r.JobsError)
			require.Equal(t, ci.FlowCompleted, f.getFlow().State)
			a, err := f.st.GetAgent(f.ctx, f.agent.ID)
			require.NoError(t, err)
			require.Zero(t, a.JobID)
		}},
		{"expired lease of a job being cancelled completes it cancelled", 3, func(t *testing.T, f *fixture) {
			j := f.start(f.jobs[0].ID)
			_, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			f.expire(j.ID)
			f.wd.Check(f.ctx)
			got := f.job(j.ID)
			require.Equal(t, ci.JobCompleted, got.State)
			require.Equal(t, ci.JobCancelled, got.Result)
			require.Contains(t, got.Message, "cancelled by user; agent builder lost contact")
		}},
		{"unconfirmed cancel completes after CancelGrace", 3, func(t *testing.T, f *fixture) {
			j := f.start(f.jobs[0].ID)
			requested := f.clock.Now()
			_, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			f.renew(j)

			f.clock.Set(requested.Add(cancelGrace - time.Second))
			f.wd.Check(f.ctx)
			require.Equal(t, ci.JobRunning, f.job(j.ID).State, "the agent still has time to confirm")

			f.clock.Set(requested.Add(cancelGrace + time.Second))
			f.wd.Check(f.ctx)
			got := f.job(j.ID)
			require.Equal(t, ci.JobCompleted, got.State)
			require.Equal(t, ci.JobCancelled, got.Result)
			require.Equal(t, ci.StepCancelled, got.Steps[0].Status, "a running step is cancelled")
			_, err = f.eng.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobOK, "")
			require.NoError(t, err, "a late completion of the same attempt is an idempotent no-op")
			require.Equal(t, ci.JobCancelled, f.job(j.ID).Result)
		}},
		{"cancel confirmed by the agent is not completed again", 3, func(t *testing.T, f *fixture) {
			j := f.start(f.jobs[0].ID)
			_, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			_, err = f.eng.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobCancelled, "stopped by the agent")
			require.NoError(t, err)
			f.clock.Set(f.clock.Now().Add(cancelGrace + time.Minute))
			f.wd.Check(f.ctx)
			require.Equal(t, "stopped by the agent", f.job(j.ID).Message)
		}},
		{"cancel of a deleted job is gone with it", 3, func(t *testing.T, f *fixture) {
			j := f.start(f.jobs[0].ID)
			_, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			fl := f.getFlow()
			b, err := f.st.GetBranch(f.ctx, fl.BranchID)
			require.NoError(t, err)
			require.NoError(t, f.st.DeleteProject(f.ctx, b.ProjectID))
			f.clock.Set(f.clock.Now().Add(cancelGrace + time.Second))
			f.wd.Check(f.ctx)
			active, err := f.st.ListActiveJobs(f.ctx)
			require.NoError(t, err)
			require.Empty(t, active)
		}},
		{"cancel requested before a restart of kkd is completed by the new watchdog", 3, func(t *testing.T, f *fixture) {
			j := f.start(f.jobs[0].ID)
			requested := f.clock.Now()
			_, err := f.eng.CancelJob(f.ctx, j.ID)
			require.NoError(t, err)
			f.renew(j)
			// A new kkd on the same database: nothing is kept in memory.
			log := slog.New(slog.DiscardHandler)
			disp := scheduler.New(scheduler.Config{Store: f.st, Logger: log, Lease: lease})
			eng := engine.New(engine.Config{Store: f.st, Hub: notify.New(), Dispatcher: disp, Logger: log, Now: f.clock.Now})
			wd := watchdog.New(watchdog.Config{Store: f.st, Engine: eng, Dispatcher: disp, Logger: log, Now: f.clock.Now, CancelGrace: cancelGrace})
			f.clock.Set(requested.Add(cancelGrace + time.Second))
			wd.Check(f.ctx)
			got := f.job(j.ID)
			require.Equal(t, ci.JobCompleted, got.State)
			require.Equal(t, ci.JobCancelled, got.Result)
		}},
		{"expired lease with retries off fails at once", 1, func(t *testing.T, f *fixture) {
			j := f.start(f.jobs[0].ID)
			f.expire(j.ID)
			f.wd.Check(f.ctx)
			got := f.job(j.ID)
			require.Equal(t, ci.JobAgentLost, got.Result)
			require.Contains(t, got.Message, "job retries are off")
		}},
		{"job past timeout plus grace fails with server_timeout", 3, func(t *testing.T, f *fixture) {
			j := f.start(f.jobs[0].ID)
			require.NotNil(t, j.Started)
			f.renew(j)
			limit := time.Duration(jobTimeout)*time.Second + timeoutGrace

			f.clock.Set(j.Started.Add(limit - time.Second))
			f.wd.Check(f.ctx)
			require.Equal(t, ci.JobRunning, f.job(j.ID).State, "the agent enforces the timeout first")

			f.clock.Set(j.Started.Add(limit + time.Second))
			f.wd.Check(f.ctx)
			got := f.job(j.ID)
			require.Equal(t, ci.JobCompleted, got.State)
			require.Equal(t, ci.JobServerTimeout, got.Result)
			require.Equal(t, ci.StepError, got.Steps[0].Status, "the running step is marked as an error")
			require.Equal(t, ci.StepSkipped, got.Steps[1].Status)
			require.Equal(t, ci.JobQueued, f.job(f.jobs[1].ID).State, "queued jobs have no timeout")
		}},
		{"assigned job that never starts times out from its assignment", 3, func(t *testing.T, f *fixture) {
			j := f.claim(f.jobs[0].ID)
			require.NotNil(t, j.Assigned)
			f.renew(j)
			f.clock.Set(j.Assigned.Add(time.Duration(jobTimeout)*time.Second + timeoutGrace + time.Second))
			f.wd.Check(f.ctx)
			require.Equal(t, ci.JobServerTimeout, f.job(j.ID).Result)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newFixture(t, tc.maxAttempts))
		})
	}
}

func TestStartExtendsLeases(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	running := f.start(f.jobs[0].ID)
	// The server was down: the lease ran out long ago.
	_, err := f.st.RenewLease(f.ctx, running.ID, running.Attempt, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	restart := time.Now().Add(time.Minute)
	f.clock.Set(restart)

	ctx, cancel := context.WithCancel(f.ctx)
	require.NoError(t, f.wd.Start(ctx))
	got := f.job(running.ID)
	require.NotNil(t, got.LeaseUntil)
	require.WithinDuration(t, restart.Add(2*lease), *got.LeaseUntil, time.Second, "agents get two lease periods to reconnect")
	require.Equal(t, ci.JobRunning, got.State)
	require.Equal(t, 1, got.Attempt, "extending is not a new attempt")
	require.Equal(t, ci.JobQueued, f.job(f.jobs[1].ID).State)
	require.Nil(t, f.job(f.jobs[1].ID).LeaseUntil, "queued jobs get no lease")

	// The loop's checks see the extended lease as live.
	f.wd.Check(f.ctx)
	require.Equal(t, ci.JobRunning, f.job(running.ID).State)

	cancel()
	select {
	case <-f.wd.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("watchdog loop did not stop")
	}
}

func TestLoopRequeuesExpiredJobs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	log := slog.New(slog.DiscardHandler)
	wd := watchdog.New(watchdog.Config{
		Store: f.st, Engine: f.eng, Dispatcher: f.disp, Logger: log, Now: f.clock.Now, Interval: 10 * time.Millisecond,
	})
	j := f.claim(f.jobs[0].ID)
	ctx, cancel := context.WithCancel(f.ctx)
	defer func() {
		cancel()
		<-wd.Done()
	}()
	require.NoError(t, wd.Start(ctx))
	// Start extended the lease to clock+RestartGrace (two leases); move past it.
	f.clock.Set(f.clock.Now().Add(2*lease + time.Second))
	deadline := time.Now().Add(10 * time.Second)
	for f.job(j.ID).State != ci.JobQueued {
		require.True(t, time.Now().Before(deadline), "the loop did not requeue the expired job")
		<-time.After(5 * time.Millisecond) // poll interval; the state is re-read
	}
}

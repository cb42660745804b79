package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

func jobCases() []testCase {
	return []testCase{
		{"not found", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			_, err := s.GetJob(ctx, 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, _, err = s.CompleteJob(ctx, 42, 0, ci.JobOK, "", now())
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, _, err = s.FailAttempt(ctx, store.AttemptFailure{JobID: 42, Attempt: 1, At: now(), Outcome: ci.JobAgentLost, Retry: true})
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, _, err = s.RequestCancel(ctx, 42, now(), "")
			require.ErrorIs(t, err, ci.ErrNotFound)
			attempts, err := s.ListJobAttempts(ctx, 42)
			require.NoError(t, err)
			require.Empty(t, attempts)
			_, err = s.RerunJob(ctx, 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.ErrorIs(t, s.StartJob(ctx, 42, 1, now()), ci.ErrNotFound)
			_, err = s.RenewLease(ctx, 42, 1, now())
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.ErrorIs(t, s.UpdateStep(ctx, 42, 1, ci.Step{Status: ci.StepOK}), ci.ErrNotFound)
			jobs, err := s.ListJobs(ctx, 42)
			require.NoError(t, err)
			require.Empty(t, jobs)
		}},
		{"complete settles steps per result", func(t *testing.T, s store.Store) {
			tests := []struct {
				result  ci.JobResult
				running ci.StepStatus
			}{
				{ci.JobCancelled, ci.StepCancelled},
				{ci.JobTimeout, ci.StepTimeout},
				{ci.JobFailed, ci.StepError},
				{ci.JobError, ci.StepError},
				{ci.JobAgentLost, ci.StepError},
				{ci.JobServerTimeout, ci.StepError},
				{ci.JobOK, ci.StepError},
			}
			parent := newFx(t, s)
			for _, tc := range tests {
				t.Run(string(tc.result), func(t *testing.T) {
					f := parent.sub(t)
					_, jobs := f.queued(1, 4)
					a := f.agent(f.unique("agent"), true)
					j := f.claim(jobs[0].ID, a.ID)
					require.NoError(t, s.StartJob(f.ctx, j.ID, j.Attempt, now()))
					start := now()
					exit := 0
					require.NoError(t, s.UpdateStep(f.ctx, j.ID, j.Attempt, ci.Step{Index: 0, Status: ci.StepOK,
						ExitCode: &exit, Started: &start, Finished: &start}))
					require.NoError(t, s.UpdateStep(f.ctx, j.ID, j.Attempt, ci.Step{Index: 1, Status: ci.StepRunning,
						Started: &start}))

					at := now().Add(time.Second)
					done, changed, err := s.CompleteJob(f.ctx, j.ID, j.Attempt, tc.result, "why", at)
					require.NoError(t, err)
					require.True(t, changed)
					require.Equal(t, ci.JobCompleted, done.State)
					require.Equal(t, tc.result, done.Result)
					require.Equal(t, "why", done.Message)
					requireTime(t, at, done.Finished)
					require.Nil(t, done.LeaseUntil)
					require.Equal(t, a.ID, done.AgentID, "the job remembers its agent")
					var statuses []ci.StepStatus
					for _, st := range done.Steps {
						statuses = append(statuses, st.Status)
					}
					require.Equal(t, []ci.StepStatus{ci.StepOK, tc.running, ci.StepSkipped, ci.StepSkipped}, statuses)
					require.Equal(t, &exit, done.Steps[0].ExitCode)
					requireTime(t, at, done.Steps[1].Finished)
					require.Equal(t, done, f.job(j.ID))
					require.Zero(t, f.getAgent(a.ID).JobID, "the agent is free")
				})
			}
		}},
		{"complete is idempotent", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			a := f.agent("a", true)
			j := f.claim(jobs[0].ID, a.ID)
			at := now()
			first, changed, err := s.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobFailed, "step failed", at)
			require.NoError(t, err)
			require.True(t, changed)

			again, changed, err := s.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobOK, "retry", at.Add(time.Minute))
			require.NoError(t, err)
			require.False(t, changed)
			require.Equal(t, first, again, "the first completion stands")
			_, changed, err = s.CompleteJob(f.ctx, j.ID, 0, ci.JobCancelled, "", now())
			require.NoError(t, err)
			require.False(t, changed)
			require.Equal(t, first, f.job(j.ID))
		}},
		{"concurrent completion has one winner", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			a := f.agent("a", true)
			j := f.claim(jobs[0].ID, a.ID)
			const n = 10
			changed := make([]bool, n)
			requireNoErrors(t, parallel(n, func(i int) error {
				var err error
				attempt := j.Attempt
				if i%2 == 0 {
					attempt = 0 // server side (watchdog) racing the agent
				}
				_, changed[i], err = s.CompleteJob(f.ctx, j.ID, attempt, ci.JobOK, "", now())
				return err
			}))
			require.Equal(t, 1, count(changed))
		}},
		{"server side completion of a queued job", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r, jobs := f.queued(1, 2)
			done := f.complete(jobs[0].ID, ci.JobNoAgents)
			require.Equal(t, ci.JobCompleted, done.State)
			require.Zero(t, done.Attempt)
			require.Equal(t, ci.StepSkipped, done.Steps[0].Status)
			require.Equal(t, ci.StepSkipped, done.Steps[1].Status)
			run, err := s.GetRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, 1, run.JobsError, "counters follow completions")
		}},
		{"invalid result", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 0)
			_, _, err := s.CompleteJob(f.ctx, jobs[0].ID, 0, "", "", now())
			require.ErrorIs(t, err, ci.ErrInvalid)
			_, _, err = s.CompleteJob(f.ctx, jobs[0].ID, 0, "great", "", now())
			require.ErrorIs(t, err, ci.ErrInvalid)
		}},
		{"rerun job", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r, jobs := f.queued(2, 2)
			f.complete(jobs[0].ID, ci.JobOK)
			f.complete(jobs[1].ID, ci.JobFailed)
			run, changed, err := s.CompleteRunIfDone(f.ctx, r.ID, now())
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, 1, run.JobsError)
			_, changed, err = s.CompleteFlowIfDone(f.ctx, r.FlowID, now())
			require.NoError(t, err)
			require.True(t, changed)

			fresh, err := s.RerunJob(f.ctx, jobs[1].ID)
			require.NoError(t, err)
			require.NotEqual(t, jobs[1].ID, fresh.ID)
			require.Equal(t, ci.JobQueued, fresh.State)
			require.Equal(t, r.ID, fresh.RunID)
			require.Equal(t, r.FlowID, fresh.FlowID)
			require.Equal(t, jobs[1].Name, fresh.Name)
			require.Equal(t, jobs[1].Group, fresh.Group)
			require.Equal(t, jobs[1].System, fresh.System)
			require.Equal(t, jobs[1].Executor, fresh.Executor)
			require.Equal(t, jobs[1].Timeout, fresh.Timeout)
			require.Zero(t, fresh.Attempt)
			require.Empty(t, fresh.Result)
			require.Len(t, fresh.Steps, 2)
			for i, st := range fresh.Steps {
				require.Equal(t, ci.StepPending, st.Status)
				require.Equal(t, fresh.ID, st.JobID)
				require.Equal(t, jobs[1].Steps[i].Fields, st.Fields)
				require.Equal(t, jobs[1].Steps[i].Tool, st.Tool)
			}
			require.Equal(t, fresh, f.job(fresh.ID))
			require.True(t, f.job(jobs[1].ID).Covered)

			run, err = s.GetRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, ci.RunInProgress, run.State)
			require.Nil(t, run.Finished)
			require.Zero(t, run.JobsError, "the covered failure no longer counts")
			fl, err := s.GetFlow(f.ctx, r.FlowID)
			require.NoError(t, err)
			require.Equal(t, ci.FlowInProgress, fl.State)

			_, err = s.RerunJob(f.ctx, jobs[1].ID)
			require.ErrorIs(t, err, ci.ErrConflict, "a covered job was rerun already")
			_, err = s.RerunJob(f.ctx, fresh.ID)
			require.ErrorIs(t, err, ci.ErrConflict, "not completed")

			f.complete(fresh.ID, ci.JobOK)
			run, changed, err = s.CompleteRunIfDone(f.ctx, r.ID, now())
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, 2, run.JobsTotal)
			require.Zero(t, run.JobsError)
		}},
		{"list active and expired jobs", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(4, 1)
			a1, a2, a3 := f.agent("a1", true), f.agent("a2", true), f.agent("a3", true)
			short := f.claim(jobs[0].ID, a1.ID) // lease: one minute
			renewed := f.claim(jobs[1].ID, a2.ID)
			require.NoError(t, s.StartJob(f.ctx, renewed.ID, renewed.Attempt, now()))
			until := now().Add(time.Hour)
			got, err := s.RenewLease(f.ctx, renewed.ID, renewed.Attempt, until)
			require.NoError(t, err)
			requireTime(t, until, got.LeaseUntil)
			done := f.claim(jobs[2].ID, a3.ID)
			f.complete(done.ID, ci.JobOK)
			// jobs[3] stays queued.

			active, err := s.ListActiveJobs(f.ctx)
			require.NoError(t, err)
			require.Equal(t, []int64{short.ID, renewed.ID}, jobIDs(active))

			expired, err := s.ListExpiredJobs(f.ctx, now())
			require.NoError(t, err)
			require.Empty(t, expired)
			expired, err = s.ListExpiredJobs(f.ctx, now().Add(2*time.Minute))
			require.NoError(t, err)
			require.Equal(t, []int64{short.ID}, jobIDs(expired))
			expired, err = s.ListExpiredJobs(f.ctx, now().Add(2*time.Hour))
			require.NoError(t, err)
			require.Equal(t, []int64{short.ID, renewed.ID}, jobIDs(expired), "soonest expired first")
			expired, err = s.ListExpiredJobs(f.ctx, *short.LeaseUntil)
			require.NoError(t, err)
			require.Empty(t, expired, "a lease ending exactly now has not expired")
		}},
	}
}

func claimCases() []testCase {
	return []testCase{
		{"claim assigns the job to the agent", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 2)
			a := f.agent("a", true)
			before := now()
			j, err := s.ClaimJob(f.ctx, jobs[0].ID, a.ID, 30*time.Second)
			require.NoError(t, err)
			require.Equal(t, ci.JobAssigned, j.State)
			require.Equal(t, 1, j.Attempt)
			require.Equal(t, a.ID, j.AgentID)
			require.NotNil(t, j.Assigned)
			requireRecent(t, *j.Assigned)
			require.False(t, j.Assigned.Before(before))
			requireTime(t, j.Assigned.Add(30*time.Second), j.LeaseUntil)
			require.Len(t, j.Steps, 2)
			require.Equal(t, j, f.job(j.ID))
			require.Equal(t, j.ID, f.getAgent(a.ID).JobID)

			queued, err := s.ListQueuedJobs(f.ctx, 0)
			require.NoError(t, err)
			require.Empty(t, queued)
		}},
		{"claim refusals", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(3, 0)
			busy := f.agent("busy", true)
			f.claim(jobs[0].ID, busy.ID)
			disabled := f.agent("disabled", true)
			_, err := s.UpdateAgent(f.ctx, disabled.ID, store.AgentUpdate{Disabled: new(true)})
			require.NoError(t, err)
			discovered := f.agent("discovered", false)
			idle := f.agent("idle", true)

			tests := []struct {
				name  string
				job   int64
				agent int64
				want  error
			}{
				{"busy agent", jobs[1].ID, busy.ID, ci.ErrConflict},
				{"disabled agent", jobs[1].ID, disabled.ID, ci.ErrConflict},
				{"unauthorized agent", jobs[1].ID, discovered.ID, ci.ErrConflict},
				{"job already claimed", jobs[0].ID, idle.ID, ci.ErrConflict},
				{"missing job", 4242, idle.ID, ci.ErrNotFound},
				{"missing agent", jobs[1].ID, 4242, ci.ErrNotFound},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					_, err := s.ClaimJob(f.ctx, tc.job, tc.agent, time.Minute)
					require.ErrorIs(t, err, tc.want)
				})
			}
			// Nothing changed: the job is still queued at attempt 0, the idle
			// agent still idle.
			j := f.job(jobs[1].ID)
			require.Equal(t, ci.JobQueued, j.State)
			require.Zero(t, j.Attempt)
			require.Zero(t, f.getAgent(idle.ID).JobID)

			f.complete(jobs[2].ID, ci.JobCancelled)
			_, err = s.ClaimJob(f.ctx, jobs[2].ID, idle.ID, time.Minute)
			require.ErrorIs(t, err, ci.ErrConflict, "completed job")
			_, err = s.ClaimJob(f.ctx, jobs[1].ID, idle.ID, 0)
			require.ErrorIs(t, err, ci.ErrInvalid, "no lease")
		}},
		{"claim several jobs in one call", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(4, 2)
			a1 := f.agent("a1", true)
			a2 := f.agent("a2", true)
			a3 := f.agent("a3", true)
			discovered := f.agent("discovered", false)
			busy := f.agent("busy", true)
			f.claim(jobs[3].ID, busy.ID)

			res, err := s.ClaimJobs(f.ctx, []store.Claim{
				{JobID: jobs[2].ID, AgentID: a1.ID},         // ok (order is not the job order)
				{JobID: jobs[0].ID, AgentID: a2.ID},         // ok
				{JobID: jobs[0].ID, AgentID: a3.ID},         // the job went to a2 just before
				{JobID: jobs[1].ID, AgentID: a1.ID},         // a1 got jobs[2] just before
				{JobID: jobs[1].ID, AgentID: discovered.ID}, // unauthorized
				{JobID: jobs[3].ID, AgentID: a3.ID},         // already assigned
				{JobID: 4242, AgentID: a3.ID},               // missing job
				{JobID: jobs[1].ID, AgentID: 4242},          // missing agent
			}, 30*time.Second)
			require.NoError(t, err)
			require.Len(t, res, 8)
			for i, want := range []error{nil, nil, ci.ErrConflict, ci.ErrConflict, ci.ErrConflict, ci.ErrConflict, ci.ErrNotFound, ci.ErrNotFound} {
				if want == nil {
					require.NoError(t, res[i].Err, "claim %d", i)
				} else {
					require.ErrorIs(t, res[i].Err, want, "claim %d", i)
				}
			}
			for _, c := range []struct {
				r     store.ClaimResult
				job   int64
				agent int64
			}{{res[0], jobs[2].ID, a1.ID}, {res[1], jobs[0].ID, a2.ID}} {
				require.Equal(t, c.job, c.r.Job.ID)
				require.Equal(t, ci.JobAssigned, c.r.Job.State)
				require.Equal(t, 1, c.r.Job.Attempt)
				require.Equal(t, c.agent, c.r.Job.AgentID)
				require.Len(t, c.r.Job.Steps, 2)
				require.Equal(t, c.r.Job, f.job(c.job))
				require.Equal(t, c.job, f.getAgent(c.agent).JobID)
				hist, err := s.ListJobAttempts(f.ctx, c.job)
				require.NoError(t, err)
				require.Len(t, hist, 1)
				require.Equal(t, c.agent, hist[0].AgentID)
			}
			// The refused claims changed nothing.
			j := f.job(jobs[1].ID)
			require.Equal(t, ci.JobQueued, j.State)
			require.Zero(t, j.Attempt)
			require.Zero(t, f.getAgent(a3.ID).JobID)
			require.Zero(t, f.getAgent(discovered.ID).JobID)
			require.Equal(t, 1, f.job(jobs[3].ID).Attempt)

			res, err = s.ClaimJobs(f.ctx, nil, time.Minute)
			require.NoError(t, err)
			require.Empty(t, res)
			_, err = s.ClaimJobs(f.ctx, []store.Claim{{JobID: jobs[1].ID, AgentID: a3.ID}}, 0)
			require.ErrorIs(t, err, ci.ErrInvalid, "no lease")
		}},
		{"queue is FIFO by run creation then job id", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			// A manual run created first gets its jobs last, yet they come first.
			manual := ci.Run{FlowID: fl.ID, StageName: "first", State: ci.RunManual}
			require.NoError(t, s.CreateRun(f.ctx, &manual, nil))
			second := f.run(fl.ID, "second", newJob("s1", 0), newJob("s2", 0))
			third := f.run(f.newFlow().ID, "third", newJob("t1", 0))
			mj := []*ci.Job{newJob("m1", 0), newJob("m2", 0)}
			_, err := s.StartRun(f.ctx, manual.ID, mj, now())
			require.NoError(t, err)

			secondJobs, err := s.ListJobs(f.ctx, second.ID)
			require.NoError(t, err)
			thirdJobs, err := s.ListJobs(f.ctx, third.ID)
			require.NoError(t, err)
			want := []int64{mj[0].ID, mj[1].ID, secondJobs[0].ID, secondJobs[1].ID, thirdJobs[0].ID}

			queued, err := s.ListQueuedJobs(f.ctx, 0)
			require.NoError(t, err)
			require.Equal(t, want, jobIDs(queued))
			for _, q := range queued {
				require.Nil(t, q.Steps, "queued jobs come without steps")
			}
			queued, err = s.ListQueuedJobs(f.ctx, 3)
			require.NoError(t, err)
			require.Equal(t, want[:3], jobIDs(queued))
			// Pages: after a job comes the rest of the queue in the same
			// order, also across runs whose jobs have lower ids.
			for i, q := range queued {
				next, err := s.ListQueuedJobsAfter(f.ctx, q.RunID, q.ID, 2)
				require.NoError(t, err)
				require.Equal(t, want[i+1:min(i+3, len(want))], jobIDs(next), "after %d", q.ID)
			}
			last := f.job(want[len(want)-1])
			next, err := s.ListQueuedJobsAfter(f.ctx, last.RunID, last.ID, 0)
			require.NoError(t, err)
			require.Empty(t, next)

			a := f.agent("a", true)
			f.claim(want[0], a.ID)
			queued, err = s.ListQueuedJobs(f.ctx, 0)
			require.NoError(t, err)
			require.Equal(t, want[1:], jobIDs(queued))
		}},
		{"racing claims never give a job twice", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			const nJobs, nAgents, nWorkers = 30, 5, 20
			_, jobs := f.queued(nJobs, 1)
			index := map[int64]int{}
			for i, j := range jobs {
				index[j.ID] = i
			}
			agents := make([]ci.Agent, nAgents)
			holding := make([]atomic.Int32, nAgents)
			for i := range agents {
				agents[i] = f.agent(fmt.Sprintf("agent-%d", i), true)
			}
			claims := make([]atomic.Int32, nJobs)
			var doubleHold atomic.Int32

			errs := parallel(nWorkers, func(w int) error {
				ai := w % nAgents
				agent := agents[ai]
				for {
					queued, err := s.ListQueuedJobs(f.ctx, 0)
					if err != nil {
						return err
					}
					if len(queued) == 0 {
						return nil
					}
					for _, q := range queued {
						j, err := s.ClaimJob(f.ctx, q.ID, agent.ID, time.Minute)
						if errors.Is(err, ci.ErrConflict) {
							continue
						}
						if err != nil {
							return err
						}
						claims[index[j.ID]].Add(1)
						if holding[ai].Add(1) != 1 {
							doubleHold.Add(1)
						}
						holding[ai].Add(-1)
						_, changed, err := s.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobOK, "", now())
						if err != nil {
							return err
						}
						if !changed {
							return fmt.Errorf("job %d was already completed", j.ID)
						}
						break
					}
				}
			})
			requireNoErrors(t, errs)
			require.Zero(t, doubleHold.Load(), "an agent held two jobs at once")
			for i := range claims {
				require.EqualValues(t, 1, claims[i].Load(), "claims of job %d", jobs[i].ID)
				j := f.job(jobs[i].ID)
				require.Equal(t, ci.JobCompleted, j.State)
				require.Equal(t, 1, j.Attempt)
			}
			for _, a := range agents {
				require.Zero(t, f.getAgent(a.ID).JobID)
			}
		}},
	}
}

func fencingCases() []testCase {
	return []testCase{
		{"start job", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			require.ErrorIs(t, s.StartJob(f.ctx, jobs[0].ID, 0, now()), ci.ErrConflict, "queued job")
			a := f.agent("a", true)
			j := f.claim(jobs[0].ID, a.ID)
			at := now()
			require.NoError(t, s.StartJob(f.ctx, j.ID, j.Attempt, at))
			got := f.job(j.ID)
			require.Equal(t, ci.JobRunning, got.State)
			requireTime(t, at, got.Started)
			require.NoError(t, s.StartJob(f.ctx, j.ID, j.Attempt, at.Add(time.Minute)), "again is a no-op")
			requireTime(t, at, f.job(j.ID).Started)
			require.ErrorIs(t, s.StartJob(f.ctx, j.ID, j.Attempt+1, at), ci.ErrStaleAttempt)
			require.ErrorIs(t, s.StartJob(f.ctx, j.ID, -1, at), ci.ErrInvalid)
		}},
		{"update step", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 2)
			a := f.agent("a", true)
			j := f.claim(jobs[0].ID, a.ID)
			start, end := now(), now().Add(time.Second)
			code := 3
			st := ci.Step{Index: 1, Status: ci.StepFailed, ExitCode: &code, Reason: "retcode",
				Message: "exit 3", Started: &start, Finished: &end,
				Tool: "ignored", Fields: map[string]any{"ignored": true}}
			for range 2 { // idempotent
				require.NoError(t, s.UpdateStep(f.ctx, j.ID, j.Attempt, st))
			}
			got := f.job(j.ID).Steps[1]
			require.Equal(t, ci.StepFailed, got.Status)
			require.Equal(t, &code, got.ExitCode)
			require.Equal(t, "retcode", got.Reason)
			require.Equal(t, "exit 3", got.Message)
			requireTime(t, start, got.Started)
			requireTime(t, end, got.Finished)
			require.Equal(t, "shell", got.Tool, "only the outcome is updated")
			require.Equal(t, jobs[0].Steps[1].Fields, got.Fields)

			st.Index = 7
			require.ErrorIs(t, s.UpdateStep(f.ctx, j.ID, j.Attempt, st), ci.ErrNotFound)
			st.Index = 0
			st.Status = "weird"
			require.ErrorIs(t, s.UpdateStep(f.ctx, j.ID, j.Attempt, st), ci.ErrInvalid)
			st.Status = ci.StepOK
			require.ErrorIs(t, s.UpdateStep(f.ctx, j.ID, j.Attempt+1, st), ci.ErrStaleAttempt)
			require.NoError(t, s.UpdateStep(f.ctx, j.ID, 0, st), "server side writes are not fenced")
		}},
		{"renew lease", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			_, err := s.RenewLease(f.ctx, jobs[0].ID, 0, now())
			require.ErrorIs(t, err, ci.ErrConflict, "a queued job has no lease")
			a := f.agent("a", true)
			j := f.claim(jobs[0].ID, a.ID)
			until := now().Add(5 * time.Minute)
			got, err := s.RenewLease(f.ctx, j.ID, j.Attempt, until)
			require.NoError(t, err)
			requireTime(t, until, got.LeaseUntil)
			require.Nil(t, got.Steps)
			requireTime(t, until, f.job(j.ID).LeaseUntil)

			_, err = s.RenewLease(f.ctx, j.ID, j.Attempt+1, until)
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			f.complete(j.ID, ci.JobCancelled)
			_, err = s.RenewLease(f.ctx, j.ID, j.Attempt, until)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "a completed job tells the agent to stop")
		}},
		{"renew an agent's lease", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(2, 1)
			a, b := f.agent("a", true), f.agent("b", true)
			until, seen := now().Add(5*time.Minute), now().Add(time.Minute)
			_, err := s.RenewAgentLease(f.ctx, jobs[0].ID, 1, a.ID, until, seen)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "a queued job has no lease")
			_, err = s.RenewAgentLease(f.ctx, 424242, 1, a.ID, until, seen)
			require.ErrorIs(t, err, ci.ErrNotFound)

			j := f.claim(jobs[0].ID, a.ID)
			_, err = s.RenewAgentLease(f.ctx, j.ID, 0, a.ID, until, seen)
			require.ErrorIs(t, err, ci.ErrInvalid, "an agent's write always has an attempt")
			got, err := s.RenewAgentLease(f.ctx, j.ID, j.Attempt, a.ID, until, seen)
			require.NoError(t, err)
			requireTime(t, until, got.LeaseUntil)
			require.Equal(t, a.ID, got.AgentID)
			requireTime(t, until, f.job(j.ID).LeaseUntil)
			ag, err := s.GetAgent(f.ctx, a.ID)
			require.NoError(t, err)
			requireTime(t, seen, ag.LastSeen)

			later := until.Add(time.Hour)
			_, err = s.RenewAgentLease(f.ctx, j.ID, j.Attempt, b.ID, later, seen)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "another agent's heartbeat")
			_, err = s.RenewAgentLease(f.ctx, j.ID, j.Attempt+1, a.ID, later, seen)
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			requireTime(t, until, f.job(j.ID).LeaseUntil) // refused renewals change nothing
			other, err := s.GetAgent(f.ctx, b.ID)
			require.NoError(t, err)
			require.NotEqual(t, seen.UnixMilli(), lastSeenMS(other), "a refused renewal does not mark the agent seen")

			require.NoError(t, s.StartJob(f.ctx, j.ID, j.Attempt, now()))
			_, err = s.RenewAgentLease(f.ctx, j.ID, j.Attempt, a.ID, later, seen)
			require.NoError(t, err, "a running job's lease")
			q, outcome := f.fail(j, true)
			require.Equal(t, store.FailRequeued, outcome)
			_, err = s.RenewAgentLease(f.ctx, q.ID, j.Attempt, a.ID, later, seen)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "a requeued attempt")

			k := f.claim(jobs[1].ID, b.ID)
			f.complete(k.ID, ci.JobOK)
			_, err = s.RenewAgentLease(f.ctx, k.ID, k.Attempt, b.ID, later, seen)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "a completed job tells the agent to stop")
		}},
		{"an agent's start and step writes are fenced by agent", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 2)
			a, b := f.agent("a", true), f.agent("b", true)
			at := now()
			ok := ci.Step{Index: 0, Status: ci.StepOK, Started: &at, Finished: &at}
			require.ErrorIs(t, s.StartAgentJob(f.ctx, jobs[0].ID, 1, a.ID, at), ci.ErrStaleAttempt, "a queued job")
			require.ErrorIs(t, s.StartAgentJob(f.ctx, 424242, 1, a.ID, at), ci.ErrNotFound)
			require.ErrorIs(t, s.UpdateAgentStep(f.ctx, 424242, 1, a.ID, ok), ci.ErrNotFound)

			j := f.claim(jobs[0].ID, a.ID)
			require.ErrorIs(t, s.StartAgentJob(f.ctx, j.ID, j.Attempt, b.ID, at), ci.ErrStaleAttempt, "another agent")
			require.ErrorIs(t, s.StartAgentJob(f.ctx, j.ID, 0, a.ID, at), ci.ErrInvalid, "an agent's write always has an attempt")
			require.Equal(t, ci.JobAssigned, f.job(j.ID).State, "refused starts change nothing")
			require.NoError(t, s.StartAgentJob(f.ctx, j.ID, j.Attempt, a.ID, at))
			require.Equal(t, ci.JobRunning, f.job(j.ID).State)
			require.NoError(t, s.StartAgentJob(f.ctx, j.ID, j.Attempt, a.ID, at), "a second start is a no-op")

			require.ErrorIs(t, s.UpdateAgentStep(f.ctx, j.ID, j.Attempt, b.ID, ok), ci.ErrStaleAttempt, "another agent")
			require.ErrorIs(t, s.UpdateAgentStep(f.ctx, j.ID, j.Attempt+1, a.ID, ok), ci.ErrStaleAttempt)
			require.Equal(t, ci.StepPending, f.job(j.ID).Steps[0].Status, "refused step writes change nothing")
			require.NoError(t, s.UpdateAgentStep(f.ctx, j.ID, j.Attempt, a.ID, ok))
			require.Equal(t, ci.StepOK, f.job(j.ID).Steps[0].Status)
			missing := ok
			missing.Index = 7
			require.ErrorIs(t, s.UpdateAgentStep(f.ctx, j.ID, j.Attempt, a.ID, missing), ci.ErrNotFound)

			f.complete(j.ID, ci.JobOK)
			require.ErrorIs(t, s.UpdateAgentStep(f.ctx, j.ID, j.Attempt, a.ID, ok), ci.ErrStaleAttempt, "a completed job")
			require.ErrorIs(t, s.StartAgentJob(f.ctx, j.ID, j.Attempt, a.ID, at), ci.ErrStaleAttempt, "a completed job")
		}},
		{"an agent's completion is fenced by agent and idempotent for that agent", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(2, 1)
			a, b := f.agent("a", true), f.agent("b", true)
			at := now()
			_, _, err := s.CompleteAgentJob(f.ctx, jobs[0].ID, 1, a.ID, ci.JobOK, "", at)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "a queued job")
			_, _, err = s.CompleteAgentJob(f.ctx, 424242, 1, a.ID, ci.JobOK, "", at)
			require.ErrorIs(t, err, ci.ErrNotFound)

			j := f.claim(jobs[0].ID, a.ID)
			require.NoError(t, s.StartAgentJob(f.ctx, j.ID, j.Attempt, a.ID, at))
			before := f.job(j.ID)
			_, _, err = s.CompleteAgentJob(f.ctx, j.ID, j.Attempt, b.ID, ci.JobOK, "", at)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "another agent")
			_, _, err = s.CompleteAgentJob(f.ctx, j.ID, j.Attempt+1, a.ID, ci.JobOK, "", at)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "another attempt")
			_, _, err = s.CompleteAgentJob(f.ctx, j.ID, 0, a.ID, ci.JobOK, "", at)
			require.ErrorIs(t, err, ci.ErrInvalid, "an agent's write always has an attempt")
			_, _, err = s.CompleteAgentJob(f.ctx, j.ID, j.Attempt, a.ID, ci.JobResult("bogus"), "", at)
			require.ErrorIs(t, err, ci.ErrInvalid)
			require.Equal(t, before, f.job(j.ID), "refused completions change nothing")
			require.Equal(t, j.ID, f.getAgent(a.ID).JobID)

			done, changed, err := s.CompleteAgentJob(f.ctx, j.ID, j.Attempt, a.ID, ci.JobFailed, "boom", at)
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, ci.JobCompleted, done.State)
			require.Equal(t, ci.JobFailed, done.Result)
			require.Equal(t, done, f.job(j.ID))
			require.Zero(t, f.getAgent(a.ID).JobID)

			again, changed, err := s.CompleteAgentJob(f.ctx, j.ID, j.Attempt, a.ID, ci.JobOK, "retry", at.Add(time.Second))
			require.NoError(t, err, "a resent completion of the same attempt")
			require.False(t, changed)
			require.Equal(t, done, again, "the first completion stands")
			_, _, err = s.CompleteAgentJob(f.ctx, j.ID, j.Attempt, b.ID, ci.JobOK, "", at)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "another agent's completion of a completed job")
			require.Equal(t, done, f.job(j.ID))

			k := f.claim(jobs[1].ID, b.ID)
			q, outcome := f.fail(k, true)
			require.Equal(t, store.FailRequeued, outcome)
			_, _, err = s.CompleteAgentJob(f.ctx, q.ID, k.Attempt, b.ID, ci.JobOK, "", at)
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "a requeued attempt")
			require.Equal(t, q, f.job(q.ID))
		}},
		{"writes of a requeued attempt are stale", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 3)
			a1, a2 := f.agent("a1", true), f.agent("a2", true)
			old := f.claim(jobs[0].ID, a1.ID)
			require.NoError(t, s.StartJob(f.ctx, old.ID, old.Attempt, now()))
			start := now()
			require.NoError(t, s.UpdateStep(f.ctx, old.ID, old.Attempt,
				ci.Step{Index: 0, Status: ci.StepRunning, Started: &start}))
			f.append(chunk(old, 0, 0, "attempt 1"))

			q, outcome := f.fail(old, true)
			require.Equal(t, store.FailRequeued, outcome)
			require.Equal(t, q, f.job(old.ID))
			require.Equal(t, ci.JobQueued, q.State)
			require.Zero(t, q.AgentID)
			require.Nil(t, q.Assigned)
			require.Nil(t, q.Started)
			require.Nil(t, q.LeaseUntil)
			require.Empty(t, q.Result)
			require.Equal(t, old.Attempt, q.Attempt)
			for _, st := range q.Steps {
				require.Equal(t, ci.StepPending, st.Status)
				require.Nil(t, st.Started)
			}
			require.Zero(t, f.getAgent(a1.ID).JobID)
			logs := f.readAll(old.ID)
			require.Len(t, logs, 1, "the failed attempt keeps its log")
			require.Equal(t, old.Attempt, logs[0].Attempt)

			// Until it is claimed again, the old attempt is over already.
			require.ErrorIs(t, s.StartJob(f.ctx, old.ID, old.Attempt, now()), ci.ErrStaleAttempt)
			_, _, err := s.FailAttempt(f.ctx, store.AttemptFailure{JobID: old.ID, Attempt: old.Attempt, At: now(),
				Outcome: ci.JobAgentLost, Retry: true})
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "an attempt fails once")

			cur := f.claim(old.ID, a2.ID)
			require.Equal(t, old.Attempt+1, cur.Attempt)
			stale := old.Attempt
			require.ErrorIs(t, s.StartJob(f.ctx, cur.ID, stale, now()), ci.ErrStaleAttempt)
			_, err = s.RenewLease(f.ctx, cur.ID, stale, now().Add(time.Hour))
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			require.ErrorIs(t, s.UpdateStep(f.ctx, cur.ID, stale, ci.Step{Index: 0, Status: ci.StepOK}),
				ci.ErrStaleAttempt)
			_, _, err = s.CompleteJob(f.ctx, cur.ID, stale, ci.JobOK, "", now())
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			_, _, err = s.FailAttempt(f.ctx, store.AttemptFailure{JobID: cur.ID, Attempt: stale, At: now(),
				Outcome: ci.JobAgentLost, Retry: true})
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			_, err = s.AppendLog(f.ctx, chunk(old, 0, 1, "late"))
			require.ErrorIs(t, err, ci.ErrStaleAttempt)

			// None of the stale writes landed.
			got := f.job(cur.ID)
			require.Equal(t, ci.JobAssigned, got.State)
			require.Equal(t, a2.ID, got.AgentID)
			require.Equal(t, ci.StepPending, got.Steps[0].Status)

			// The current attempt works.
			require.NoError(t, s.StartJob(f.ctx, cur.ID, cur.Attempt, now()))
			_, err = s.RenewLease(f.ctx, cur.ID, cur.Attempt, now().Add(time.Hour))
			require.NoError(t, err)
			require.NoError(t, s.UpdateStep(f.ctx, cur.ID, cur.Attempt, ci.Step{Index: 0, Status: ci.StepOK}))
			done, changed, err := s.CompleteJob(f.ctx, cur.ID, cur.Attempt, ci.JobOK, "", now())
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, ci.JobOK, done.Result)

			// A completed job: its own attempt sees the completion, others are stale.
			_, changed, err = s.CompleteJob(f.ctx, cur.ID, cur.Attempt, ci.JobOK, "", now())
			require.NoError(t, err)
			require.False(t, changed)
			_, _, err = s.CompleteJob(f.ctx, cur.ID, stale, ci.JobOK, "", now())
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			require.ErrorIs(t, s.UpdateStep(f.ctx, cur.ID, cur.Attempt, ci.Step{Index: 0, Status: ci.StepOK}),
				ci.ErrStaleAttempt)
			_, _, err = s.FailAttempt(f.ctx, store.AttemptFailure{JobID: cur.ID, Attempt: cur.Attempt, At: now(),
				Outcome: ci.JobAgentLost, Retry: true})
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
		}},
		{"fail attempt requeues, gives up or cancels", func(t *testing.T, s store.Store) {
			tests := []struct {
				name    string
				retry   bool
				cancel  bool
				outcome store.FailOutcome
				state   ci.JobState
				result  ci.JobResult
				message string
			}{
				{name: "retry", retry: true, outcome: store.FailRequeued, state: ci.JobQueued},
				{name: "give up", outcome: store.FailCompleted, state: ci.JobCompleted, result: ci.JobAgentLost, message: "gave up after 1 attempt"},
				{name: "pending cancel wins over a retry", retry: true, cancel: true, outcome: store.FailCompleted,
					state: ci.JobCompleted, result: ci.JobCancelled, message: "cancelled by user; lost contact"},
				{name: "pending cancel wins over giving up", cancel: true, outcome: store.FailCompleted,
					state: ci.JobCompleted, result: ci.JobCancelled, message: "cancelled by user; lost contact"},
			}
			parent := newFx(t, s)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					f := parent.sub(t)
					r, jobs := f.queued(1, 2)
					a := f.agent(f.unique("agent"), true)
					j := f.claim(jobs[0].ID, a.ID)
					require.NoError(t, s.StartJob(f.ctx, j.ID, j.Attempt, now()))
					if tc.cancel {
						_, changed, err := s.RequestCancel(f.ctx, j.ID, now(), "")
						require.NoError(t, err)
						require.True(t, changed)
					}
					at := now().Add(time.Minute)
					got, outcome, err := s.FailAttempt(f.ctx, store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt, At: at,
						Outcome: ci.JobAgentLost, Reason: "lost contact", Retry: tc.retry, Result: ci.JobAgentLost,
						Message: "gave up after 1 attempt"})
					require.NoError(t, err)
					require.Equal(t, tc.outcome, outcome)
					require.Equal(t, tc.state, got.State)
					require.Equal(t, tc.result, got.Result)
					require.Equal(t, tc.message, got.Message)
					require.Equal(t, got, f.job(j.ID))
					require.Zero(t, f.getAgent(a.ID).JobID, "the agent is free")
					if tc.state == ci.JobCompleted {
						requireTime(t, at, got.Finished)
						require.Nil(t, got.LeaseUntil)
						require.Equal(t, []ci.StepStatus{ci.StepSkipped, ci.StepSkipped}, []ci.StepStatus{got.Steps[0].Status, got.Steps[1].Status})
						run, err := s.GetRun(f.ctx, r.ID)
						require.NoError(t, err)
						require.Equal(t, 1, run.JobsError)
					}
					attempts, err := s.ListJobAttempts(f.ctx, j.ID)
					require.NoError(t, err)
					require.Len(t, attempts, 1)
					require.Equal(t, ci.JobAgentLost, attempts[0].Outcome, "the attempt itself was lost")
					require.Equal(t, "lost contact", attempts[0].Message)
					requireTime(t, at, attempts[0].Finished)
				})
			}
		}},
		{"fail attempt refusals", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			tests := []struct {
				name string
				f    store.AttemptFailure
				want error
			}{
				{"no attempt", store.AttemptFailure{JobID: j.ID, Outcome: ci.JobAgentLost, Retry: true}, ci.ErrInvalid},
				{"outcome not an infrastructure failure", store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt, Outcome: ci.JobFailed, Retry: true}, ci.ErrInvalid},
				{"no result when giving up", store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt, Outcome: ci.JobError}, ci.ErrInvalid},
				{"other attempt", store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt + 1, Outcome: ci.JobError, Retry: true}, ci.ErrStaleAttempt},
			}
			before := f.job(j.ID)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.f.At = now()
					_, outcome, err := s.FailAttempt(f.ctx, tc.f)
					require.ErrorIs(t, err, tc.want)
					require.Equal(t, store.FailNone, outcome)
					require.Equal(t, before, f.job(j.ID))
				})
			}
		}},
		{"a lease renewed after it was seen expired is not failed", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1) // lease: one minute
			later := now().Add(2 * time.Minute)
			expired, err := s.ListExpiredJobs(f.ctx, later)
			require.NoError(t, err)
			require.Equal(t, []int64{j.ID}, jobIDs(expired))

			// The agent's heartbeat lands between the watchdog's list and its expiry.
			_, err = s.RenewLease(f.ctx, j.ID, j.Attempt, later.Add(time.Minute))
			require.NoError(t, err)
			before := f.job(j.ID)
			got, outcome, err := s.FailAttempt(f.ctx, store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt, At: later,
				OnlyIfExpired: true, Outcome: ci.JobAgentLost, Retry: true})
			require.NoError(t, err)
			require.Equal(t, store.FailNone, outcome)
			require.Equal(t, before, got)
			require.Equal(t, before, f.job(j.ID), "no change")
			attempts, err := s.ListJobAttempts(f.ctx, j.ID)
			require.NoError(t, err)
			require.Empty(t, attempts[0].Outcome, "the attempt runs on")

			// A lease ending exactly at At has not expired; one before it has.
			_, outcome, err = s.FailAttempt(f.ctx, store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt, At: later.Add(time.Minute),
				OnlyIfExpired: true, Outcome: ci.JobAgentLost, Retry: true})
			require.NoError(t, err)
			require.Equal(t, store.FailNone, outcome)
			_, outcome, err = s.FailAttempt(f.ctx, store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt, At: later.Add(time.Minute + time.Millisecond),
				OnlyIfExpired: true, Outcome: ci.JobAgentLost, Retry: true})
			require.NoError(t, err)
			require.Equal(t, store.FailRequeued, outcome)
		}},
		{"racing renewals and expiries never lose a live attempt", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			seen := now().Add(2 * time.Minute) // the watchdog saw the lease expired at this time
			const n = 10
			outcomes := make([]store.FailOutcome, n)
			errs := parallel(n, func(i int) error {
				if i%2 == 0 {
					_, err := s.RenewLease(f.ctx, j.ID, j.Attempt, seen.Add(time.Hour))
					if errors.Is(err, ci.ErrStaleAttempt) {
						return nil // the expiry won the race
					}
					return err
				}
				var err error
				_, outcomes[i], err = s.FailAttempt(f.ctx, store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt, At: seen,
					OnlyIfExpired: true, Outcome: ci.JobAgentLost, Retry: true})
				if errors.Is(err, ci.ErrStaleAttempt) {
					return nil // another expiry won
				}
				return err
			})
			requireNoErrors(t, errs)
			got := f.job(j.ID)
			requeued := 0
			for _, o := range outcomes {
				if o == store.FailRequeued {
					requeued++
				}
			}
			require.LessOrEqual(t, requeued, 1, "an attempt fails once")
			if requeued == 0 {
				require.Equal(t, ci.JobAssigned, got.State, "a renewal came first: the attempt lives")
				require.True(t, got.LeaseUntil.After(seen))
			} else {
				require.Equal(t, ci.JobQueued, got.State)
			}
		}},
		{"attempt history", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			a1, a2 := f.agent("first-agent", true), f.agent("second-agent", true)
			first := f.claim(jobs[0].ID, a1.ID)
			started := now()
			require.NoError(t, s.StartJob(f.ctx, first.ID, first.Attempt, started))
			failedAt := now()
			f.failAt(first, true, failedAt)
			second := f.claim(first.ID, a2.ID)
			attempts, err := s.ListJobAttempts(f.ctx, first.ID)
			require.NoError(t, err)
			require.Len(t, attempts, 2)
			require.Empty(t, attempts[1].Outcome, "the current attempt is open")
			require.Nil(t, attempts[1].Finished)
			doneAt := now().Add(time.Second)
			_, _, err = s.CompleteJob(f.ctx, second.ID, second.Attempt, ci.JobFailed, "step 0 failed", doneAt)
			require.NoError(t, err)
			_, _, err = s.CompleteJob(f.ctx, second.ID, 0, ci.JobCancelled, "again", now())
			require.NoError(t, err)

			attempts, err = s.ListJobAttempts(f.ctx, first.ID)
			require.NoError(t, err)
			require.Len(t, attempts, 2)
			one, two := attempts[0], attempts[1]
			require.Equal(t, []int{1, 2}, []int{one.Attempt, two.Attempt})
			require.Equal(t, first.ID, one.JobID)
			require.Equal(t, a1.ID, one.AgentID)
			require.Equal(t, "first-agent", one.Agent)
			require.True(t, first.Assigned.Equal(one.Assigned))
			requireTime(t, started, one.Started)
			requireTime(t, failedAt, one.Finished)
			require.Equal(t, ci.JobAgentLost, one.Outcome)
			require.Equal(t, "lost contact", one.Message)
			require.Equal(t, a2.ID, two.AgentID)
			require.Equal(t, "second-agent", two.Agent)
			require.Nil(t, two.Started)
			requireTime(t, doneAt, two.Finished)
			require.Equal(t, ci.JobFailed, two.Outcome, "the attempt that completed the job carries its result")
			require.Equal(t, "step 0 failed", two.Message)

			// Deleting an agent keeps its name in the history.
			require.NoError(t, s.DeleteAgent(f.ctx, a1.ID))
			attempts, err = s.ListJobAttempts(f.ctx, first.ID)
			require.NoError(t, err)
			require.Zero(t, attempts[0].AgentID)
			require.Equal(t, "first-agent", attempts[0].Agent)
		}},
		{"request cancel", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r, jobs := f.queued(3, 1)
			a := f.agent("a", true)

			// A queued job completes at once.
			got, changed, err := s.RequestCancel(f.ctx, jobs[0].ID, now(), "cancelled by user")
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, ci.JobCompleted, got.State)
			require.Equal(t, ci.JobCancelled, got.Result)
			require.Equal(t, "cancelled by user", got.Message)
			require.Nil(t, got.CancelRequested)
			require.Equal(t, ci.StepSkipped, got.Steps[0].Status)
			run, err := s.GetRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, 1, run.JobsError)

			// An active job records the first request.
			j := f.claim(jobs[1].ID, a.ID)
			first := now()
			got, changed, err = s.RequestCancel(f.ctx, j.ID, first, "")
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, ci.JobAssigned, got.State)
			requireTime(t, first, got.CancelRequested)
			got, changed, err = s.RequestCancel(f.ctx, j.ID, first.Add(time.Minute), "")
			require.NoError(t, err)
			require.False(t, changed)
			requireTime(t, first, got.CancelRequested)
			renewed, err := s.RenewLease(f.ctx, j.ID, j.Attempt, now().Add(time.Hour))
			require.NoError(t, err)
			requireTime(t, first, renewed.CancelRequested) // the heartbeat learns it
			active, err := s.ListActiveJobs(f.ctx)
			require.NoError(t, err)
			require.Len(t, active, 1)
			requireTime(t, first, active[0].CancelRequested)

			// A completed job is left alone.
			done := f.complete(jobs[2].ID, ci.JobOK)
			got, changed, err = s.RequestCancel(f.ctx, done.ID, now(), "")
			require.NoError(t, err)
			require.False(t, changed)
			require.Equal(t, done, got)

			// A rerun starts without the request.
			f.complete(j.ID, ci.JobCancelled)
			fresh, err := s.RerunJob(f.ctx, j.ID)
			require.NoError(t, err)
			require.Nil(t, fresh.CancelRequested)
		}},
	}
}

// fail ends job j's current attempt as lost, now: requeued when retry, else
// completed with agent_lost.
func (f *fx) fail(j ci.Job, retry bool) (ci.Job, store.FailOutcome) {
	f.t.Helper()
	return f.failAt(j, retry, now())
}

func (f *fx) failAt(j ci.Job, retry bool, at time.Time) (ci.Job, store.FailOutcome) {
	f.t.Helper()
	got, outcome, err := f.s.FailAttempt(f.ctx, store.AttemptFailure{JobID: j.ID, Attempt: j.Attempt, At: at,
		Outcome: ci.JobAgentLost, Reason: "lost contact", Retry: retry, Result: ci.JobAgentLost, Message: "gave up"})
	require.NoError(f.t, err)
	return got, outcome
}

func jobIDs(jobs []ci.Job) []int64 {
	out := []int64{}
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

// lastSeenMS is the agent's LastSeen in Unix milliseconds (0 when never seen).
func lastSeenMS(a ci.Agent) int64 {
	if a.LastSeen == nil {
		return 0
	}
	return a.LastSeen.UnixMilli()
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

const jobCols = `id, run_id, flow_id, name, state, result, message, agents_group, system, executor, timeout,
	covered, agent_id, attempt, created, assigned, started, finished, lease_until, cancel_requested, network, logs_purged`

func scanJob(sc scanner) (ci.Job, error) {
	var j ci.Job
	var agentID sql.NullInt64
	var created int64
	var assigned, started, finished, lease, cancel sql.NullInt64
	if err := sc.Scan(&j.ID, &j.RunID, &j.FlowID, &j.Name, &j.State, &j.Result, &j.Message, &j.Group,
		&j.System, &j.Executor, &j.Timeout, &j.Covered, &agentID, &j.Attempt, &created, &assigned,
		&started, &finished, &lease, &cancel, &j.Network, &j.LogsPurged); err != nil {
		return ci.Job{}, err
	}
	j.CancelRequested = fromNullMS(cancel)
	j.AgentID = agentID.Int64
	j.Created = fromMS(created)
	j.Assigned = fromNullMS(assigned)
	j.Started = fromNullMS(started)
	j.Finished = fromNullMS(finished)
	j.LeaseUntil = fromNullMS(lease)
	return j, nil
}

const stepCols = `job_id, idx, tool, name, fields, status, exit_code, reason, message, started, finished`

func scanStep(sc scanner) (ci.Step, error) {
	var st ci.Step
	var fields string
	var exit, started, finished sql.NullInt64
	if err := sc.Scan(&st.JobID, &st.Index, &st.Tool, &st.Name, &fields, &st.Status, &exit, &st.Reason,
		&st.Message, &started, &finished); err != nil {
		return ci.Step{}, err
	}
	m, err := decodeMap[any](fields)
	if err != nil {
		return ci.Step{}, fmt.Errorf("step %d of job %d fields: %w", st.Index, st.JobID, err)
	}
	st.Fields = m
	if exit.Valid {
		v := int(exit.Int64)
		st.ExitCode = &v
	}
	st.Started = fromNullMS(started)
	st.Finished = fromNullMS(finished)
	return st, nil
}

// getJob reads a job without its steps.
func getJob(ctx context.Context, q querier, id int64) (ci.Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if err != nil {
		return ci.Job{}, notFound(err, "job", id)
	}
	return j, nil
}

// getJobWithSteps reads a job and its steps ordered by index.
func getJobWithSteps(ctx context.Context, q querier, id int64) (ci.Job, error) {
	j, err := getJob(ctx, q, id)
	if err != nil {
		return ci.Job{}, err
	}
	steps, err := queryAll(ctx, q, scanStep, `SELECT `+stepCols+` FROM steps WHERE job_id = ? ORDER BY idx`, id)
	if err != nil {
		return ci.Job{}, fmt.Errorf("read steps of job %d: %w", id, err)
	}
	if len(steps) > 0 {
		j.Steps = steps
	}
	return j, nil
}

// jobRow is a job prepared for insertion.
type jobRow struct {
	job    *ci.Job
	fields []string // encoded step fields
	id     int64    // set by insertJobs
}

// prepareJobs validates the jobs and encodes their steps' fields, before any
// transaction starts.
func prepareJobs(jobs []*ci.Job) ([]jobRow, error) {
	rows := make([]jobRow, len(jobs))
	for i, j := range jobs {
		if j == nil {
			return nil, fmt.Errorf("job %d is nil: %w", i, ci.ErrInvalid)
		}
		if err := checkName("job", j.Name); err != nil {
			return nil, err
		}
		if j.Timeout < 0 {
			return nil, fmt.Errorf("job %q: negative timeout %d: %w", j.Name, j.Timeout, ci.ErrInvalid)
		}
		rows[i].job = j
		rows[i].fields = make([]string, len(j.Steps))
		for k, st := range j.Steps {
			f, err := encodeMap(st.Fields)
			if err != nil {
				return nil, fmt.Errorf("job %q step %d fields: %w", j.Name, k, err)
			}
			rows[i].fields[k] = f
		}
	}
	return rows, nil
}

// insertJobs inserts new queued jobs of a run and their pending steps. Steps
// are numbered by their position in Job.Steps.
func insertJobs(ctx context.Context, tx *sql.Tx, runID, flowID int64, rows []jobRow, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	jobStmt, err := tx.PrepareContext(ctx, `
		INSERT INTO jobs (run_id, flow_id, name, state, agents_group, system, executor, timeout, created, network)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
	if err != nil {
		return fmt.Errorf("insert jobs: %w", err)
	}
	defer jobStmt.Close()
	stepStmt, err := tx.PrepareContext(ctx, `
		INSERT INTO steps (job_id, idx, tool, name, fields, status) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("insert steps: %w", err)
	}
	defer stepStmt.Close()
	for i := range rows {
		j := rows[i].job
		if err := jobStmt.QueryRowContext(ctx, runID, flowID, j.Name, ci.JobQueued, j.Group, j.System,
			j.Executor, j.Timeout, ms(now), j.Network).Scan(&rows[i].id); err != nil {
			return fmt.Errorf("insert job %q: %w", j.Name, err)
		}
		for k, st := range j.Steps {
			if _, err := stepStmt.ExecContext(ctx, rows[i].id, k, st.Tool, st.Name, rows[i].fields[k],
				ci.StepPending); err != nil {
				return fmt.Errorf("insert step %d of job %q: %w", k, j.Name, err)
			}
		}
	}
	return nil
}

// fillJobs sets, after the commit, what the store assigned to the jobs.
func fillJobs(rows []jobRow, runID, flowID int64, now time.Time) {
	for _, r := range rows {
		j := r.job
		j.ID, j.RunID, j.FlowID = r.id, runID, flowID
		j.State, j.Result, j.Message = ci.JobQueued, ci.JobResultNone, ""
		j.Covered, j.AgentID, j.Attempt = false, 0, 0
		j.Created = now
		j.Assigned, j.Started, j.Finished, j.LeaseUntil, j.CancelRequested = nil, nil, nil, nil, nil
		for k := range j.Steps {
			st := &j.Steps[k]
			st.JobID, st.Index, st.Status = r.id, k, ci.StepPending
			st.ExitCode, st.Reason, st.Message, st.Started, st.Finished = nil, "", "", nil, nil
		}
	}
}

// GetJob returns the job with its steps ordered by index.
func (s *Store) GetJob(ctx context.Context, id int64) (ci.Job, error) {
	var j ci.Job
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = getJobWithSteps(ctx, tx, id)
		return err
	})
	if err != nil {
		return ci.Job{}, fmt.Errorf("get job: %w", err)
	}
	return j, nil
}

// ListJobs returns the run's jobs with their steps in creation order, covered
// ones included.
func (s *Store) ListJobs(ctx context.Context, runID int64) ([]ci.Job, error) {
	var jobs []ci.Job
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		jobs, err = queryAll(ctx, tx, scanJob, `SELECT `+jobCols+` FROM jobs WHERE run_id = ? ORDER BY id`, runID)
		if err != nil {
			return err
		}
		steps, err := queryAll(ctx, tx, scanStep, `SELECT `+stepCols+` FROM steps
			WHERE job_id IN (SELECT id FROM jobs WHERE run_id = ?) ORDER BY job_id, idx`, runID)
		if err != nil {
			return err
		}
		byJob := map[int64][]ci.Step{}
		for _, st := range steps {
			byJob[st.JobID] = append(byJob[st.JobID], st)
		}
		for i := range jobs {
			jobs[i].Steps = byJob[jobs[i].ID]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs of run %d: %w", runID, err)
	}
	return jobs, nil
}

// ListQueuedJobs returns queued jobs in FIFO order (run creation, then job
// ID), read in order from the partial index jobs_queue. The state is a literal,
// not a parameter, so that the planner can match the index's WHERE clause.
func (s *Store) ListQueuedJobs(ctx context.Context, limit int) ([]ci.Job, error) {
	out, err := queryAll(ctx, s.r, scanJob,
		queuedJobsQuery, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list queued jobs: %w", err)
	}
	return out, nil
}

func (s *Store) ListQueuedJobsAfter(ctx context.Context, runID, jobID int64, limit int) ([]ci.Job, error) {
	out, err := queryAll(ctx, s.r, scanJob, queuedJobsAfterQuery, runID, runID, jobID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list queued jobs after job %d: %w", jobID, err)
	}
	return out, nil
}

// Queries whose plans TestQueryPlans checks.
const (
	queuedJobsQuery = `SELECT ` + jobCols + ` FROM jobs WHERE state = 'queued' ORDER BY run_id, id LIMIT ?`
	// The expanded row comparison keeps the jobs_queue index usable.
	queuedJobsAfterQuery = `SELECT ` + jobCols + ` FROM jobs WHERE state = 'queued'
		AND run_id >= ? AND (run_id > ? OR id > ?) ORDER BY run_id, id LIMIT ?`
	expiredJobsQuery = `SELECT ` + jobCols + ` FROM jobs
		WHERE state IN ('assigned', 'running') AND lease_until < ? ORDER BY lease_until, id`
)

// sqlLimit maps "0: no limit" to SQLite's -1.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// ClaimJob gives a queued job to an idle, authorized, enabled agent.
func (s *Store) ClaimJob(ctx context.Context, jobID, agentID int64, lease time.Duration) (ci.Job, error) {
	if lease <= 0 {
		return ci.Job{}, fmt.Errorf("claim job %d: lease %v is not positive: %w", jobID, lease, ci.ErrInvalid)
	}
	now := s.now()
	var j ci.Job
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = claimJob(ctx, tx, jobID, agentID, now, lease)
		return err
	})
	if err != nil {
		return ci.Job{}, fmt.Errorf("claim job %d for agent %d: %w", jobID, agentID, err)
	}
	return j, nil
}

func (s *Store) ClaimJobs(ctx context.Context, claims []store.Claim, lease time.Duration) ([]store.ClaimResult, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("claim jobs: lease %v is not positive: %w", lease, ci.ErrInvalid)
	}
	now := s.now()
	var results []store.ClaimResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		results = make([]store.ClaimResult, len(claims))
		for i, c := range claims {
			j, err := claimJob(ctx, tx, c.JobID, c.AgentID, now, lease)
			if err != nil && !refusedClaim(err) {
				return err
			}
			if err != nil {
				err = fmt.Errorf("claim job %d for agent %d: %w", c.JobID, c.AgentID, err)
			}
			results[i] = store.ClaimResult{Job: j, Err: err}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim %d jobs: %w", len(claims), err)
	}
	return results, nil
}

// refusedClaim tells a claim that was refused before it changed anything
// from a failure of the database.
func refusedClaim(err error) bool {
	return errors.Is(err, ci.ErrConflict) || errors.Is(err, ci.ErrNotFound)
}

// claimJob is ClaimJob inside tx. It changes nothing when it returns
// ErrConflict or ErrNotFound.
func claimJob(ctx context.Context, tx *sql.Tx, jobID, agentID int64, now time.Time, lease time.Duration) (ci.Job, error) {
	var authorized, disabled bool
	var current sql.NullInt64
	var name string
	err := tx.QueryRowContext(ctx, `SELECT name, authorized, disabled, job_id FROM agents WHERE id = ?`, agentID).
		Scan(&name, &authorized, &disabled, &current)
	if err != nil {
		return ci.Job{}, notFound(err, "agent", agentID)
	}
	switch {
	case !authorized:
		return ci.Job{}, fmt.Errorf("agent %d is not authorized: %w", agentID, ci.ErrConflict)
	case disabled:
		return ci.Job{}, fmt.Errorf("agent %d is disabled: %w", agentID, ci.ErrConflict)
	case current.Valid:
		return ci.Job{}, fmt.Errorf("agent %d is busy with job %d: %w", agentID, current.Int64, ci.ErrConflict)
	}
	res, err := tx.ExecContext(ctx, `
		UPDATE jobs SET state = ?, attempt = attempt + 1, agent_id = ?, assigned = ?, lease_until = ?
		WHERE id = ? AND state = ?`,
		ci.JobAssigned, agentID, ms(now), ms(now.Add(lease)), jobID, ci.JobQueued)
	if err != nil {
		return ci.Job{}, err
	}
	if ok, err := affected(res); err != nil {
		return ci.Job{}, err
	} else if !ok {
		cur, err := getJob(ctx, tx, jobID)
		if err != nil {
			return ci.Job{}, err
		}
		return ci.Job{}, fmt.Errorf("job is %s, not %s: %w", cur.State, ci.JobQueued, ci.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET job_id = ? WHERE id = ?`, jobID, agentID); err != nil {
		return ci.Job{}, err
	}
	j, err := getJobWithSteps(ctx, tx, jobID)
	if err != nil {
		return ci.Job{}, err
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO job_attempts (job_id, attempt, agent_id, agent, assigned) VALUES (?, ?, ?, ?, ?)`,
		jobID, j.Attempt, agentID, name, ms(now))
	if err != nil {
		return ci.Job{}, err
	}
	return j, nil
}

// jobHead is what fencing decisions need.
type jobHead struct {
	state   ci.JobState
	attempt int
	runID   int64
	flowID  int64
	covered bool
	lease   *time.Time
	cancel  *time.Time // cancel requested
	agentID int64      // 0: none
}

func getJobHead(ctx context.Context, tx *sql.Tx, id int64) (jobHead, error) {
	var h jobHead
	var lease, cancel, agent sql.NullInt64
	err := tx.QueryRowContext(ctx, `
		SELECT state, attempt, run_id, flow_id, covered, lease_until, cancel_requested, agent_id FROM jobs WHERE id = ?`, id).
		Scan(&h.state, &h.attempt, &h.runID, &h.flowID, &h.covered, &lease, &cancel, &agent)
	if err != nil {
		return jobHead{}, notFound(err, "job", id)
	}
	h.lease, h.cancel, h.agentID = fromNullMS(lease), fromNullMS(cancel), agent.Int64
	return h, nil
}

func (h jobHead) active() bool { return h.state == ci.JobAssigned || h.state == ci.JobRunning }

// fence checks a write of the given attempt. Attempt 0 (server side) is never
// fenced. Another attempt is stale, and so is the job's own attempt once the
// job is no longer assigned or running: it was requeued (and waits for its
// next claim, which will increment the attempt) or completed.
func fence(jobID int64, h jobHead, attempt int) error {
	if attempt < 0 {
		return fmt.Errorf("attempt %d is negative: %w", attempt, ci.ErrInvalid)
	}
	if attempt == 0 {
		return nil
	}
	if h.attempt != attempt || !h.active() {
		return fmt.Errorf("job %d is %s at attempt %d, attempt %d is over: %w",
			jobID, h.state, h.attempt, attempt, ci.ErrStaleAttempt)
	}
	return nil
}

// agentFence is fence for an agent's write: the attempt must also be agentID's.
func agentFence(jobID int64, h jobHead, attempt int, agentID int64) error {
	if attempt <= 0 {
		return fmt.Errorf("attempt %d of agent %d must be >= 1: %w", attempt, agentID, ci.ErrInvalid)
	}
	if err := fence(jobID, h, attempt); err != nil {
		return err
	}
	if h.agentID != agentID {
		return fmt.Errorf("job %d attempt %d is not agent %d's: %w", jobID, attempt, agentID, ci.ErrStaleAttempt)
	}
	return nil
}

// StartJob moves an assigned job to running. Fenced.
func (s *Store) StartJob(ctx context.Context, jobID int64, attempt int, at time.Time) error {
	return s.startJob(ctx, jobID, attempt, 0, at)
}

// StartAgentJob is StartJob fenced also by the job's agent.
func (s *Store) StartAgentJob(ctx context.Context, jobID int64, attempt int, agentID int64, at time.Time) error {
	return s.startJob(ctx, jobID, attempt, agentID, at)
}

// startJob is StartJob; agentID 0: any agent.
func (s *Store) startJob(ctx context.Context, jobID int64, attempt int, agentID int64, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if agentID != 0 {
			err = agentFence(jobID, h, attempt, agentID)
		} else {
			err = fence(jobID, h, attempt)
		}
		if err != nil {
			return err
		}
		switch h.state {
		case ci.JobRunning:
			return nil
		case ci.JobAssigned:
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, started = ? WHERE id = ?`,
				ci.JobRunning, ms(at), jobID); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE job_attempts SET started = ? WHERE job_id = ? AND attempt = ?`,
				ms(at), jobID, h.attempt)
			return err
		}
		return fmt.Errorf("job is %s: %w", h.state, ci.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("start job %d: %w", jobID, err)
	}
	return nil
}

// RenewLease extends the current attempt's lease. Fenced.
func (s *Store) RenewLease(ctx context.Context, jobID int64, attempt int, until time.Time) (ci.Job, error) {
	var j ci.Job
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if err := fence(jobID, h, attempt); err != nil {
			return err
		}
		if !h.active() {
			return fmt.Errorf("job is %s and has no lease: %w", h.state, ci.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ? WHERE id = ?`, ms(until), jobID); err != nil {
			return err
		}
		j, err = getJob(ctx, tx, jobID)
		return err
	})
	if err != nil {
		return ci.Job{}, fmt.Errorf("renew lease of job %d: %w", jobID, err)
	}
	return j, nil
}

// RenewAgentLease extends the lease of the agent's current attempt and sets
// the agent's LastSeen in one transaction. Fenced by attempt and agent inside
// the UPDATE.
func (s *Store) RenewAgentLease(ctx context.Context, jobID int64, attempt int, agentID int64, until, seen time.Time) (ci.Job, error) {
	if attempt <= 0 {
		return ci.Job{}, fmt.Errorf("renew lease of job %d: attempt %d must be >= 1: %w", jobID, attempt, ci.ErrInvalid)
	}
	var j ci.Job
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE jobs SET lease_until = ?
			WHERE id = ? AND attempt = ? AND agent_id = ? AND state IN (?, ?)`,
			ms(until), jobID, attempt, agentID, ci.JobAssigned, ci.JobRunning)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			h, err := getJobHead(ctx, tx, jobID)
			if err != nil {
				return err
			}
			return fmt.Errorf("job %d is %s at attempt %d, attempt %d of agent %d is over: %w",
				jobID, h.state, h.attempt, attempt, agentID, ci.ErrStaleAttempt)
		}
		res, err = tx.ExecContext(ctx, `UPDATE agents SET last_seen = ? WHERE id = ?`, ms(seen), agentID)
		if err != nil {
			return err
		}
		if err := mustAffect(res, "agent", agentID); err != nil {
			return err
		}
		j, err = getJob(ctx, tx, jobID)
		return err
	})
	if err != nil {
		return ci.Job{}, fmt.Errorf("renew lease of job %d: %w", jobID, err)
	}
	return j, nil
}

var stepStatuses = map[ci.StepStatus]bool{
	ci.StepPending: true, ci.StepRunning: true, ci.StepOK: true, ci.StepFailed: true,
	ci.StepTimeout: true, ci.StepSkipped: true, ci.StepCancelled: true, ci.StepError: true,
}

// UpdateStep stores the step's status and outcome. Fenced. Idempotent.
func (s *Store) UpdateStep(ctx context.Context, jobID int64, attempt int, st ci.Step) error {
	return s.updateStep(ctx, jobID, attempt, 0, st)
}

// UpdateAgentStep is UpdateStep fenced also by the job's agent.
func (s *Store) UpdateAgentStep(ctx context.Context, jobID int64, attempt int, agentID int64, st ci.Step) error {
	return s.updateStep(ctx, jobID, attempt, agentID, st)
}

// updateStep is UpdateStep; agentID 0: any agent.
func (s *Store) updateStep(ctx context.Context, jobID int64, attempt int, agentID int64, st ci.Step) error {
	if !stepStatuses[st.Status] {
		return fmt.Errorf("update step %d of job %d: unknown status %q: %w", st.Index, jobID, st.Status, ci.ErrInvalid)
	}
	var exit sql.NullInt64
	if st.ExitCode != nil {
		exit = sql.NullInt64{Int64: int64(*st.ExitCode), Valid: true}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if agentID != 0 {
			err = agentFence(jobID, h, attempt, agentID)
		} else {
			err = fence(jobID, h, attempt)
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			UPDATE steps SET status = ?, exit_code = ?, reason = ?, message = ?, started = ?, finished = ?
			WHERE job_id = ? AND idx = ?`,
			st.Status, exit, st.Reason, st.Message, msPtr(st.Started), msPtr(st.Finished), jobID, st.Index)
		if err != nil {
			return err
		}
		return mustAffect(res, "step", st.Index)
	})
	if err != nil {
		return fmt.Errorf("update step %d of job %d: %w", st.Index, jobID, err)
	}
	return nil
}

var jobResults = map[ci.JobResult]bool{
	ci.JobOK: true, ci.JobFailed: true, ci.JobTimeout: true, ci.JobCancelled: true, ci.JobError: true,
	ci.JobNoAgents: true, ci.JobServerTimeout: true, ci.JobAgentLost: true,
}

// runningStepStatus is what a still running step becomes when its job
// completes with result.
func runningStepStatus(result ci.JobResult) ci.StepStatus {
	switch result {
	case ci.JobCancelled:
		return ci.StepCancelled
	case ci.JobTimeout:
		return ci.StepTimeout
	}
	return ci.StepError
}

// CompleteJob completes a job; a second completion is a no-op (changed=false).
// Fenced when attempt > 0.
func (s *Store) CompleteJob(ctx context.Context, jobID int64, attempt int, result ci.JobResult, message string, at time.Time) (ci.Job, bool, error) {
	return s.completeJob(ctx, jobID, attempt, 0, result, message, at)
}

// CompleteAgentJob is CompleteJob fenced also by the job's agent: only
// agentID's attempt completes the job, and only a retry of that agent's
// completion of it is a no-op.
func (s *Store) CompleteAgentJob(ctx context.Context, jobID int64, attempt int, agentID int64, result ci.JobResult, message string, at time.Time) (ci.Job, bool, error) {
	if attempt <= 0 || agentID <= 0 {
		return ci.Job{}, false, fmt.Errorf("complete job %d: attempt %d of agent %d must be >= 1: %w", jobID, attempt, agentID, ci.ErrInvalid)
	}
	return s.completeJob(ctx, jobID, attempt, agentID, result, message, at)
}

// completeJob is CompleteJob; agentID 0: any agent.
func (s *Store) completeJob(ctx context.Context, jobID int64, attempt int, agentID int64, result ci.JobResult, message string, at time.Time) (ci.Job, bool, error) {
	if !jobResults[result] {
		return ci.Job{}, false, fmt.Errorf("complete job %d: unknown result %q: %w", jobID, result, ci.ErrInvalid)
	}
	var j ci.Job
	var changed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if h.state == ci.JobCompleted && (attempt == 0 || attempt == h.attempt) && (agentID == 0 || agentID == h.agentID) {
			// Idempotent: a retried completion of the same attempt, or a server
			// side one, finds the job already completed.
			j, err = getJobWithSteps(ctx, tx, jobID)
			return err
		}
		if agentID != 0 {
			err = agentFence(jobID, h, attempt, agentID)
		} else {
			err = fence(jobID, h, attempt)
		}
		if err != nil {
			return err
		}
		if err := completeJob(ctx, tx, jobID, h, result, message, at); err != nil {
			return err
		}
		changed = true
		j, err = getJobWithSteps(ctx, tx, jobID)
		return err
	})
	if err != nil {
		return ci.Job{}, false, fmt.Errorf("complete job %d: %w", jobID, err)
	}
	return j, changed, nil
}

// completeJob completes the job h describes, which is not completed: it
// settles its steps, frees its agent, counts a failure in the run's counters
// and ends its current attempt's history entry, unless that one ended before.
func completeJob(ctx context.Context, tx *sql.Tx, jobID int64, h jobHead, result ci.JobResult, message string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, `
		UPDATE jobs SET state = ?, result = ?, message = ?, finished = ?, lease_until = NULL WHERE id = ?`,
		ci.JobCompleted, result, message, ms(at), jobID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE steps SET status = ? WHERE job_id = ? AND status = ?`,
		ci.StepSkipped, jobID, ci.StepPending); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE steps SET status = ?, finished = coalesce(finished, ?) WHERE job_id = ? AND status = ?`,
		runningStepStatus(result), ms(at), jobID, ci.StepRunning); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET job_id = NULL WHERE job_id = ?`, jobID); err != nil {
		return err
	}
	if !h.covered && result != ci.JobOK {
		// Incremental, so completing a job costs the same in a run of any size.
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET jobs_error = jobs_error + 1 WHERE id = ?`,
			h.runID); err != nil {
			return err
		}
	}
	return endAttempt(ctx, tx, jobID, h.attempt, result, message, at)
}

// endAttempt closes the attempt's history entry if it is still open.
func endAttempt(ctx context.Context, tx *sql.Tx, jobID int64, attempt int, outcome ci.JobResult, message string, at time.Time) error {
	if attempt <= 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `
		UPDATE job_attempts SET finished = ?, outcome = ?, message = ?
		WHERE job_id = ? AND attempt = ? AND outcome = ''`,
		ms(at), outcome, message, jobID, attempt)
	return err
}

var failOutcomes = map[ci.JobResult]bool{ci.JobAgentLost: true, ci.JobError: true}

// FailAttempt ends the current attempt after an infrastructure failure and
// requeues or completes the job, in one transaction.
func (s *Store) FailAttempt(ctx context.Context, f store.AttemptFailure) (ci.Job, store.FailOutcome, error) {
	switch {
	case f.Attempt <= 0:
		return ci.Job{}, store.FailNone, fmt.Errorf("fail attempt of job %d: attempt %d: give the failed attempt (>= 1): %w", f.JobID, f.Attempt, ci.ErrInvalid)
	case !failOutcomes[f.Outcome]:
		return ci.Job{}, store.FailNone, fmt.Errorf("fail attempt %d of job %d: outcome %q: use agent_lost or error: %w", f.Attempt, f.JobID, f.Outcome, ci.ErrInvalid)
	case !f.Retry && !jobResults[f.Result]:
		return ci.Job{}, store.FailNone, fmt.Errorf("fail attempt %d of job %d: unknown result %q: %w", f.Attempt, f.JobID, f.Result, ci.ErrInvalid)
	}
	var j ci.Job
	outcome := store.FailNone
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, f.JobID)
		if err != nil {
			return err
		}
		if err := fence(f.JobID, h, f.Attempt); err != nil {
			return err
		}
		if f.OnlyIfExpired && (h.lease == nil || !h.lease.Before(f.At)) {
			// The agent renewed its lease after the caller saw it expire.
			j, err = getJobWithSteps(ctx, tx, f.JobID)
			return err
		}
		if err := endAttempt(ctx, tx, f.JobID, f.Attempt, f.Outcome, f.Reason, f.At); err != nil {
			return err
		}
		switch {
		case h.cancel != nil:
			msg := "cancelled by user"
			if f.Reason != "" {
				msg += "; " + f.Reason
			}
			err = completeJob(ctx, tx, f.JobID, h, ci.JobCancelled, msg, f.At)
			outcome = store.FailCompleted
		case !f.Retry:
			err = completeJob(ctx, tx, f.JobID, h, f.Result, f.Message, f.At)
			outcome = store.FailCompleted
		default:
			err = requeueJob(ctx, tx, f.JobID)
			outcome = store.FailRequeued
		}
		if err != nil {
			return err
		}
		j, err = getJobWithSteps(ctx, tx, f.JobID)
		return err
	})
	if err != nil {
		return ci.Job{}, store.FailNone, fmt.Errorf("fail attempt %d of job %d: %w", f.Attempt, f.JobID, err)
	}
	return j, outcome, nil
}

// requeueJob puts an active job back to queued for its next attempt (whose
// claim increments the attempt number). Its steps start over; the log chunks
// of the failed attempt stay, under their attempt number.
func requeueJob(ctx context.Context, tx *sql.Tx, jobID int64) error {
	if _, err := tx.ExecContext(ctx, `
		UPDATE jobs SET state = ?, result = '', message = '', agent_id = NULL,
			assigned = NULL, started = NULL, finished = NULL, lease_until = NULL
		WHERE id = ?`, ci.JobQueued, jobID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE steps SET status = ?, exit_code = NULL, reason = '', message = '', started = NULL, finished = NULL
		WHERE job_id = ?`, ci.StepPending, jobID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE agents SET job_id = NULL WHERE job_id = ?`, jobID)
	return err
}

// RequestCancel completes a queued job cancelled, or records the cancel
// request of an active one (the first request time stays).
func (s *Store) RequestCancel(ctx context.Context, jobID int64, at time.Time, message string) (ci.Job, bool, error) {
	var j ci.Job
	var changed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, jobID)
		if err != nil {
			return err
		}
		switch {
		case h.state == ci.JobQueued:
			if err := completeJob(ctx, tx, jobID, h, ci.JobCancelled, message, at); err != nil {
				return err
			}
			changed = true
		case h.active() && h.cancel == nil:
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested = ? WHERE id = ?`, ms(at), jobID); err != nil {
				return err
			}
			changed = true
		}
		j, err = getJobWithSteps(ctx, tx, jobID)
		return err
	})
	if err != nil {
		return ci.Job{}, false, fmt.Errorf("cancel job %d: %w", jobID, err)
	}
	return j, changed, nil
}

const attemptCols = `job_id, attempt, agent_id, agent, assigned, started, finished, outcome, message`

func scanAttempt(sc scanner) (ci.JobAttempt, error) {
	var a ci.JobAttempt
	var agentID, started, finished sql.NullInt64
	var assigned int64
	if err := sc.Scan(&a.JobID, &a.Attempt, &agentID, &a.Agent, &assigned, &started, &finished, &a.Outcome,
		&a.Message); err != nil {
		return ci.JobAttempt{}, err
	}
	a.AgentID = agentID.Int64
	a.Assigned = fromMS(assigned)
	a.Started = fromNullMS(started)
	a.Finished = fromNullMS(finished)
	return a, nil
}

// ListJobAttempts returns the job's attempt history in order.
func (s *Store) ListJobAttempts(ctx context.Context, jobID int64) ([]ci.JobAttempt, error) {
	out, err := queryAll(ctx, s.r, scanAttempt,
		`SELECT `+attemptCols+` FROM job_attempts WHERE job_id = ? ORDER BY attempt`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list attempts of job %d: %w", jobID, err)
	}
	return out, nil
}

// RerunJob covers a completed job, inserts a fresh copy of it in the same run
// and reopens the run and the flow. Only one rerun of a job wins: rerunning a
// job that is already covered is a conflict.
func (s *Store) RerunJob(ctx context.Context, jobID int64) (ci.Job, error) {
	now := s.now()
	var j ci.Job
	err := s.write(ctx, func(tx *sql.Tx) error {
		old, err := getJobWithSteps(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if old.State != ci.JobCompleted {
			return fmt.Errorf("job is %s, not %s: %w", old.State, ci.JobCompleted, ci.ErrConflict)
		}
		if old.Covered {
			return fmt.Errorf("job was already rerun: rerun its newest copy: %w", ci.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET covered = 1 WHERE id = ?`, jobID); err != nil {
			return err
		}
		fresh := &ci.Job{Name: old.Name, Group: old.Group, System: old.System, Executor: old.Executor,
			Timeout: old.Timeout}
		for _, st := range old.Steps {
			fresh.Steps = append(fresh.Steps, ci.Step{Tool: st.Tool, Name: st.Name, Fields: st.Fields})
		}
		rows, err := prepareJobs([]*ci.Job{fresh})
		if err != nil {
			return err
		}
		if err := insertJobs(ctx, tx, old.RunID, old.FlowID, rows, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, finished = NULL WHERE id = ?`,
			ci.RunInProgress, old.RunID); err != nil {
			return err
		}
		if err := refreshRunCounters(ctx, tx, old.RunID); err != nil {
			return err
		}
		if err := reopenFlow(ctx, tx, old.FlowID); err != nil {
			return err
		}
		j, err = getJobWithSteps(ctx, tx, rows[0].id)
		return err
	})
	if err != nil {
		return ci.Job{}, fmt.Errorf("rerun job %d: %w", jobID, err)
	}
	return j, nil
}

// ListExpiredJobs returns assigned or running jobs whose lease ended before
// now, soonest expired first.
func (s *Store) ListExpiredJobs(ctx context.Context, now time.Time) ([]ci.Job, error) {
	out, err := queryAll(ctx, s.r, scanJob, expiredJobsQuery, ms(now))
	if err != nil {
		return nil, fmt.Errorf("list expired jobs: %w", err)
	}
	return out, nil
}

// ListActiveJobs returns the assigned and running jobs by ID.
func (s *Store) ListActiveJobs(ctx context.Context) ([]ci.Job, error) {
	out, err := queryAll(ctx, s.r, scanJob, `SELECT `+jobCols+` FROM jobs
		WHERE state IN ('assigned', 'running') ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list active jobs: %w", err)
	}
	return out, nil
}

package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Sequence kinds of branch_sequences.
const (
	seqFlow = "flow"
	seqRun  = "run"
)

// nextSeq takes the next value of a branch counter (1 for a new counter). The
// upsert keeps the counter's row locked until the transaction ends, so
// concurrent callers get consecutive numbers in commit order.
func nextSeq(ctx context.Context, tx querier, branchID int64, kind, stage string) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, `
		INSERT INTO branch_sequences AS s (branch_id, kind, stage, value) VALUES ($1, $2, $3, 1)
		ON CONFLICT (branch_id, kind, stage) DO UPDATE SET value = s.value + 1
		RETURNING value`, branchID, kind, stage).Scan(&v)
	if isForeignKey(err) {
		return 0, fmt.Errorf("branch %d: %w", branchID, ci.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("next %s sequence of branch %d: %w", kind, branchID, err)
	}
	return v, nil
}

// Flows.

const flowCols = `id, branch_id, kind, state, label, seq, kind_seq, args, trigger_data::text, created, finished`

func scanFlow(sc pgx.Row) (ci.Flow, error) {
	var f ci.Flow
	var args string
	var trigger *string
	if err := sc.Scan(&f.ID, &f.BranchID, &f.Kind, &f.State, &f.Label, &f.Seq, &f.KindSeq, &args,
		&trigger, &f.Created, &f.Finished); err != nil {
		return ci.Flow{}, err
	}
	m, err := decodeMap[string](args)
	if err != nil {
		return ci.Flow{}, fmt.Errorf("flow %d args: %w", f.ID, err)
	}
	f.Args = m
	f.TriggerData = decodeRaw(trigger)
	return f, nil
}

// getFlow reads a flow; lock appends a locking clause (FOR UPDATE) or "".
func getFlow(ctx context.Context, q querier, id int64, lock string) (ci.Flow, error) {
	f, err := scanFlow(q.QueryRow(ctx, `SELECT `+flowCols+` FROM flows WHERE id = $1 `+lock, id))
	if err != nil {
		return ci.Flow{}, notFound(err, "flow", id)
	}
	return f, nil
}

// CreateFlow inserts f as in_progress with the next shared and per-kind numbers
// of its branch.
func (s *Store) CreateFlow(ctx context.Context, f *ci.Flow) error {
	if f.Kind != ci.FlowCI && f.Kind != ci.FlowDEV {
		return fmt.Errorf("create flow: kind %q is neither %q nor %q: %w", f.Kind, ci.FlowCI, ci.FlowDEV, ci.ErrInvalid)
	}
	args, err := encodeMap(f.Args)
	if err != nil {
		return fmt.Errorf("create flow: args: %w", err)
	}
	trigger, err := encodeRaw("trigger data", f.TriggerData)
	if err != nil {
		return fmt.Errorf("create flow: %w", err)
	}
	now := s.now()
	var id, seq, kindSeq int64
	err = s.write(ctx, func(tx querier) error {
		var err error
		if seq, err = nextSeq(ctx, tx, f.BranchID, seqFlow, ""); err != nil {
			return err
		}
		if kindSeq, err = nextSeq(ctx, tx, f.BranchID, seqFlow+"_"+string(f.Kind), ""); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
			INSERT INTO flows (branch_id, kind, state, label, seq, kind_seq, args, trigger_data, created)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json, $9) RETURNING id`,
			f.BranchID, f.Kind, ci.FlowInProgress, f.Label, seq, kindSeq, args, trigger, now).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("create flow in branch %d: %w", f.BranchID, err)
	}
	f.ID, f.Seq, f.KindSeq = id, seq, kindSeq
	f.State = ci.FlowInProgress
	f.Created = now
	f.Finished = nil
	return nil
}

// GetFlow returns the flow with this ID.
func (s *Store) GetFlow(ctx context.Context, id int64) (ci.Flow, error) {
	f, err := getFlow(ctx, s.q(), id, "")
	if err != nil {
		return ci.Flow{}, fmt.Errorf("get flow: %w", err)
	}
	return f, nil
}

// ListFlows returns the branch's flows, newest first.
func (s *Store) ListFlows(ctx context.Context, branchID int64, opts store.ListFlowsOpts) ([]ci.Flow, error) {
	q := `SELECT ` + flowCols + ` FROM flows WHERE branch_id = $1`
	args := []any{branchID}
	if opts.Kind != "" {
		args = append(args, opts.Kind)
		q += ` AND kind = $` + strconv.Itoa(len(args))
	}
	q += ` ORDER BY id DESC`
	if opts.Limit > 0 {
		args = append(args, opts.Limit)
		q += ` LIMIT $` + strconv.Itoa(len(args))
	}
	out, err := queryAll(ctx, s, s.q(), scanFlow, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list flows of branch %d: %w", branchID, err)
	}
	return out, nil
}

// SetFlowLabel sets the flow's label.
func (s *Store) SetFlowLabel(ctx context.Context, id int64, label string) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE flows SET label = $1 WHERE id = $2`, label, id)
		if err != nil {
			return err
		}
		return mustAffect(tag, "flow", id)
	})
	if err != nil {
		return fmt.Errorf("set flow label: %w", err)
	}
	return nil
}

// CompleteFlowIfDone completes the flow when it is in progress and none of its
// runs is. It locks the flow first, so the check of its runs (a later
// statement) sees every run that a committed transaction added or reopened.
func (s *Store) CompleteFlowIfDone(ctx context.Context, flowID int64, at time.Time) (ci.Flow, bool, error) {
	var f ci.Flow
	var changed bool
	err := s.write(ctx, func(tx querier) error {
		changed = false
		cur, err := getFlow(ctx, tx, flowID, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		if cur.State != ci.FlowInProgress {
			f = cur
			return nil
		}
		tag, err := tx.Exec(ctx, `
			UPDATE flows SET state = $1, finished = $2
			WHERE id = $3 AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.flow_id = flows.id AND runs.state = $4)`,
			ci.FlowCompleted, ts(at), flowID, ci.RunInProgress)
		if err != nil {
			return err
		}
		changed = tag.RowsAffected() > 0
		f, err = getFlow(ctx, tx, flowID, "")
		return err
	})
	if err != nil {
		return ci.Flow{}, false, fmt.Errorf("complete flow %d: %w", flowID, err)
	}
	return f, changed, nil
}

// reopenFlow sets the flow in_progress. It writes the row even when the flow
// is in progress already: the row lock makes a concurrent CompleteFlowIfDone
// wait for this transaction and then see the work it added.
func reopenFlow(ctx context.Context, tx querier, flowID int64) error {
	_, err := tx.Exec(ctx, `UPDATE flows SET state = $1, finished = NULL WHERE id = $2`, ci.FlowInProgress, flowID)
	if err != nil {
		return fmt.Errorf("reopen flow %d: %w", flowID, err)
	}
	return nil
}

// Runs.

const runCols = `id, flow_id, stage_id, stage_name, state, reason, label, seq, args, note,
	jobs_total, jobs_error, created, started, finished`

func scanRun(sc pgx.Row) (ci.Run, error) {
	var r ci.Run
	var stageID *int64
	var args string
	if err := sc.Scan(&r.ID, &r.FlowID, &stageID, &r.StageName, &r.State, &r.Reason, &r.Label, &r.Seq,
		&args, &r.Note, &r.JobsTotal, &r.JobsError, &r.Created, &r.Started, &r.Finished); err != nil {
		return ci.Run{}, err
	}
	m, err := decodeMap[string](args)
	if err != nil {
		return ci.Run{}, fmt.Errorf("run %d args: %w", r.ID, err)
	}
	if stageID != nil {
		r.StageID = *stageID
	}
	r.Args = m
	return r, nil
}

// getRun reads a run; lock appends a locking clause (FOR UPDATE) or "".
func getRun(ctx context.Context, q querier, id int64, lock string) (ci.Run, error) {
	r, err := scanRun(q.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1 `+lock, id))
	if err != nil {
		return ci.Run{}, notFound(err, "run", id)
	}
	return r, nil
}

// refreshRunCounters recomputes the run's JobsTotal (jobs not covered) and
// JobsError (jobs not covered, completed with a result other than ok). It
// locks the run first, so the counting statement sees every job completion
// that committed before (completions of jobs still running add themselves
// to jobs_error when they commit).
func refreshRunCounters(ctx context.Context, tx querier, runID int64) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE`, runID); err != nil {
		return fmt.Errorf("lock run %d: %w", runID, err)
	}
	_, err := tx.Exec(ctx, `
		UPDATE runs SET
			jobs_total = (SELECT count(*) FROM jobs WHERE run_id = runs.id AND NOT covered),
			jobs_error = (SELECT count(*) FROM jobs WHERE run_id = runs.id AND NOT covered
				AND state = $1 AND result <> $2)
		WHERE id = $3`, ci.JobCompleted, ci.JobOK, runID)
	if err != nil {
		return fmt.Errorf("update counters of run %d: %w", runID, err)
	}
	return nil
}

// CreateRun inserts r and, for an in_progress run, its jobs and steps.
func (s *Store) CreateRun(ctx context.Context, r *ci.Run, jobs []*ci.Job) error {
	if err := checkName("stage", r.StageName); err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	var rows []jobRow
	switch r.State {
	case ci.RunManual:
		// The jobs of a manual run are inserted by StartRun; jobs given here are ignored.
		jobs = nil
	case ci.RunInProgress:
		var err error
		if rows, err = prepareJobs(jobs); err != nil {
			return fmt.Errorf("create run: %w", err)
		}
	default:
		return fmt.Errorf("create run: state %q is neither %q nor %q: %w", r.State, ci.RunManual, ci.RunInProgress, ci.ErrInvalid)
	}
	args, err := encodeMap(r.Args)
	if err != nil {
		return fmt.Errorf("create run: args: %w", err)
	}
	now := s.now()
	var id, seq int64
	err = s.write(ctx, func(tx querier) error {
		f, err := getFlow(ctx, tx, r.FlowID, "")
		if err != nil {
			return err
		}
		if seq, err = nextSeq(ctx, tx, f.BranchID, seqRun, r.StageName); err != nil {
			return err
		}
		var stageID *int64
		if r.StageID != 0 {
			stageID = &r.StageID
		}
		var started *time.Time
		if r.State == ci.RunInProgress {
			started = &now
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO runs (flow_id, stage_id, stage_name, state, reason, label, seq, args, note,
				jobs_total, created, started)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
			r.FlowID, stageID, r.StageName, r.State, r.Reason, r.Label, seq, args, r.Note,
			len(jobs), now, started).Scan(&id)
		if isForeignKey(err) {
			return fmt.Errorf("stage %d: %w", r.StageID, ci.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if r.State != ci.RunInProgress {
			return nil
		}
		if err := insertJobs(ctx, tx, id, r.FlowID, rows, now); err != nil {
			return err
		}
		return reopenFlow(ctx, tx, r.FlowID)
	})
	if err != nil {
		return fmt.Errorf("create run of stage %q in flow %d: %w", r.StageName, r.FlowID, err)
	}
	r.ID, r.Seq, r.Created = id, seq, now
	r.JobsError = 0
	r.Finished = nil
	r.Started = nil
	r.JobsTotal = 0
	if r.State == ci.RunInProgress {
		r.Started = &now
		r.JobsTotal = len(jobs)
		fillJobs(rows, id, r.FlowID, now)
	}
	return nil
}

// GetRun returns the run with this ID.
func (s *Store) GetRun(ctx context.Context, id int64) (ci.Run, error) {
	r, err := getRun(ctx, s.q(), id, "")
	if err != nil {
		return ci.Run{}, fmt.Errorf("get run: %w", err)
	}
	return r, nil
}

// ListRuns returns the flow's runs in creation order.
func (s *Store) ListRuns(ctx context.Context, flowID int64) ([]ci.Run, error) {
	out, err := queryAll(ctx, s, s.q(), scanRun, `SELECT `+runCols+` FROM runs WHERE flow_id = $1 ORDER BY id`, flowID)
	if err != nil {
		return nil, fmt.Errorf("list runs of flow %d: %w", flowID, err)
	}
	return out, nil
}

// StartRun moves a manual run to in_progress and inserts its jobs.
func (s *Store) StartRun(ctx context.Context, runID int64, jobs []*ci.Job, at time.Time) (ci.Run, error) {
	rows, err := prepareJobs(jobs)
	if err != nil {
		return ci.Run{}, fmt.Errorf("start run %d: %w", runID, err)
	}
	now := s.now()
	var r ci.Run
	err = s.write(ctx, func(tx querier) error {
		cur, err := getRun(ctx, tx, runID, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		if cur.State != ci.RunManual {
			return fmt.Errorf("run is %s, not %s: %w", cur.State, ci.RunManual, ci.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE runs SET state = $1, started = $2, finished = NULL WHERE id = $3`,
			ci.RunInProgress, ts(at), runID); err != nil {
			return err
		}
		if err := insertJobs(ctx, tx, runID, cur.FlowID, rows, now); err != nil {
			return err
		}
		if err := refreshRunCounters(ctx, tx, runID); err != nil {
			return err
		}
		if err := reopenFlow(ctx, tx, cur.FlowID); err != nil {
			return err
		}
		r, err = getRun(ctx, tx, runID, "")
		return err
	})
	if err != nil {
		return ci.Run{}, fmt.Errorf("start run %d: %w", runID, err)
	}
	fillJobs(rows, runID, r.FlowID, now)
	return r, nil
}

// CompleteRunIfDone completes the run when it is in progress and every job that
// is not covered is completed, storing its final counters. It locks the run
// first, so the check (a later statement) sees every job a committed
// transaction added. The check reads the partial index jobs_open.
func (s *Store) CompleteRunIfDone(ctx context.Context, runID int64, at time.Time) (ci.Run, bool, error) {
	var r ci.Run
	var changed bool
	err := s.write(ctx, func(tx querier) error {
		changed = false
		cur, err := getRun(ctx, tx, runID, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		if cur.State != ci.RunInProgress {
			r = cur
			return nil
		}
		tag, err := tx.Exec(ctx, `
			UPDATE runs SET state = $1, finished = $2
			WHERE id = $3 AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.run_id = runs.id
				AND NOT jobs.covered AND jobs.state <> 'completed')`,
			ci.RunCompleted, ts(at), runID)
		if err != nil {
			return err
		}
		if changed = tag.RowsAffected() > 0; changed {
			if err := refreshRunCounters(ctx, tx, runID); err != nil {
				return err
			}
		}
		r, err = getRun(ctx, tx, runID, "")
		return err
	})
	if err != nil {
		return ci.Run{}, false, fmt.Errorf("complete run %d: %w", runID, err)
	}
	return r, changed, nil
}

// SetRunNote sets the run's note.
func (s *Store) SetRunNote(ctx context.Context, runID int64, note string) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET note = $1 WHERE id = $2`, note, runID)
		if err != nil {
			return err
		}
		return mustAffect(tag, "run", runID)
	})
	if err != nil {
		return fmt.Errorf("set run note: %w", err)
	}
	return nil
}

// SetRunLabel sets the run's label.
func (s *Store) SetRunLabel(ctx context.Context, runID int64, label string) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET label = $1 WHERE id = $2`, label, runID)
		if err != nil {
			return err
		}
		return mustAffect(tag, "run", runID)
	})
	if err != nil {
		return fmt.Errorf("set run label: %w", err)
	}
	return nil
}

// RerunRun covers every job of the run, inserts the new jobs and reopens the
// run and its flow. It locks the run's jobs before the run (the store's lock
// order is job, agent, run, flow).
func (s *Store) RerunRun(ctx context.Context, runID int64, jobs []*ci.Job) (ci.Run, error) {
	rows, err := prepareJobs(jobs)
	if err != nil {
		return ci.Run{}, fmt.Errorf("rerun run %d: %w", runID, err)
	}
	now := s.now()
	var r ci.Run
	err = s.write(ctx, func(tx querier) error {
		cur, err := getRun(ctx, tx, runID, "")
		if err != nil {
			return err
		}
		if cur.State == ci.RunManual {
			// A run never goes back to manual, so this needs no lock.
			return fmt.Errorf("run is %s: start it instead: %w", ci.RunManual, ci.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE jobs SET covered = true WHERE run_id = $1`, runID); err != nil {
			return err
		}
		if err := insertJobs(ctx, tx, runID, cur.FlowID, rows, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			`UPDATE runs SET state = $1, finished = NULL, started = coalesce(started, $2) WHERE id = $3`,
			ci.RunInProgress, now, runID); err != nil {
			return err
		}
		if err := refreshRunCounters(ctx, tx, runID); err != nil {
			return err
		}
		if err := reopenFlow(ctx, tx, cur.FlowID); err != nil {
			return err
		}
		r, err = getRun(ctx, tx, runID, "")
		return err
	})
	if err != nil {
		return ci.Run{}, fmt.Errorf("rerun run %d: %w", runID, err)
	}
	fillJobs(rows, runID, r.FlowID, now)
	return r, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Sequence kinds of branch_sequences.
const (
	seqFlow = "flow"
	seqRun  = "run"
)

// nextSeq takes the next value of a branch counter (1 for a new counter).
func nextSeq(ctx context.Context, tx *sql.Tx, branchID int64, kind, stage string) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `
		INSERT INTO branch_sequences (branch_id, kind, stage, value) VALUES (?, ?, ?, 1)
		ON CONFLICT (branch_id, kind, stage) DO UPDATE SET value = value + 1
		RETURNING value`, branchID, kind, stage).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("next %s sequence of branch %d: %w", kind, branchID, err)
	}
	return v, nil
}

// Flows.

const flowCols = `id, branch_id, kind, state, label, seq, kind_seq, args, trigger_data, created, finished`

func scanFlow(sc scanner) (ci.Flow, error) {
	var f ci.Flow
	var args string
	var trigger sql.NullString
	var created int64
	var finished sql.NullInt64
	if err := sc.Scan(&f.ID, &f.BranchID, &f.Kind, &f.State, &f.Label, &f.Seq, &f.KindSeq, &args,
		&trigger, &created, &finished); err != nil {
		return ci.Flow{}, err
	}
	m, err := decodeMap[string](args)
	if err != nil {
		return ci.Flow{}, fmt.Errorf("flow %d args: %w", f.ID, err)
	}
	f.Args = m
	f.TriggerData = decodeRaw(trigger)
	f.Created = fromMS(created)
	f.Finished = fromNullMS(finished)
	return f, nil
}

func getFlow(ctx context.Context, q querier, id int64) (ci.Flow, error) {
	f, err := scanFlow(q.QueryRowContext(ctx, `SELECT `+flowCols+` FROM flows WHERE id = ?`, id))
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM branches WHERE id = ?`, f.BranchID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("branch %d: %w", f.BranchID, ci.ErrNotFound)
		}
		if seq, err = nextSeq(ctx, tx, f.BranchID, seqFlow, ""); err != nil {
			return err
		}
		if kindSeq, err = nextSeq(ctx, tx, f.BranchID, seqFlow+"_"+string(f.Kind), ""); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `
			INSERT INTO flows (branch_id, kind, state, label, seq, kind_seq, args, trigger_data, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			f.BranchID, f.Kind, ci.FlowInProgress, f.Label, seq, kindSeq, args, trigger, ms(now)).Scan(&id)
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
	f, err := getFlow(ctx, s.r, id)
	if err != nil {
		return ci.Flow{}, fmt.Errorf("get flow: %w", err)
	}
	return f, nil
}

// ListFlows returns the branch's flows, newest first.
func (s *Store) ListFlows(ctx context.Context, branchID int64, opts store.ListFlowsOpts) ([]ci.Flow, error) {
	q := `SELECT ` + flowCols + ` FROM flows WHERE branch_id = ?`
	args := []any{branchID}
	if opts.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, opts.Kind)
	}
	q += ` ORDER BY id DESC`
	if opts.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, opts.Limit)
	}
	out, err := queryAll(ctx, s.r, scanFlow, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list flows of branch %d: %w", branchID, err)
	}
	return out, nil
}

// SetFlowLabel sets the flow's label.
func (s *Store) SetFlowLabel(ctx context.Context, id int64, label string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE flows SET label = ? WHERE id = ?`, label, id)
		if err != nil {
			return err
		}
		return mustAffect(res, "flow", id)
	})
	if err != nil {
		return fmt.Errorf("set flow label: %w", err)
	}
	return nil
}

// CompleteFlowIfDone completes the flow when it is in progress and none of its
// runs is.
func (s *Store) CompleteFlowIfDone(ctx context.Context, flowID int64, at time.Time) (ci.Flow, bool, error) {
	var f ci.Flow
	var changed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE flows SET state = ?, finished = ?
			WHERE id = ? AND state = ?
			AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.flow_id = flows.id AND runs.state = ?)`,
			ci.FlowCompleted, ms(at), flowID, ci.FlowInProgress, ci.RunInProgress)
		if err != nil {
			return err
		}
		if changed, err = affected(res); err != nil {
			return err
		}
		f, err = getFlow(ctx, tx, flowID)
		return err
	})
	if err != nil {
		return ci.Flow{}, false, fmt.Errorf("complete flow %d: %w", flowID, err)
	}
	return f, changed, nil
}

// reopenFlow sets a completed flow back to in_progress.
func reopenFlow(ctx context.Context, tx *sql.Tx, flowID int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE flows SET state = ?, finished = NULL WHERE id = ? AND state = ?`,
		ci.FlowInProgress, flowID, ci.FlowCompleted)
	if err != nil {
		return fmt.Errorf("reopen flow %d: %w", flowID, err)
	}
	return nil
}

// Runs.

const runCols = `id, flow_id, stage_id, stage_name, state, reason, label, seq, args, note,
	jobs_total, jobs_error, created, started, finished`

func scanRun(sc scanner) (ci.Run, error) {
	var r ci.Run
	var stageID sql.NullInt64
	var args string
	var created int64
	var started, finished sql.NullInt64
	if err := sc.Scan(&r.ID, &r.FlowID, &stageID, &r.StageName, &r.State, &r.Reason, &r.Label, &r.Seq,
		&args, &r.Note, &r.JobsTotal, &r.JobsError, &created, &started, &finished); err != nil {
		return ci.Run{}, err
	}
	m, err := decodeMap[string](args)
	if err != nil {
		return ci.Run{}, fmt.Errorf("run %d args: %w", r.ID, err)
	}
	r.StageID = stageID.Int64
	r.Args = m
	r.Created = fromMS(created)
	r.Started = fromNullMS(started)
	r.Finished = fromNullMS(finished)
	return r, nil
}

func getRun(ctx context.Context, q querier, id int64) (ci.Run, error) {
	r, err := scanRun(q.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
	if err != nil {
		return ci.Run{}, notFound(err, "run", id)
	}
	return r, nil
}

// refreshRunCounters recomputes the run's JobsTotal (jobs not covered) and
// JobsError (jobs not covered, completed with a result other than ok).
func refreshRunCounters(ctx context.Context, tx *sql.Tx, runID int64) error {
	_, err := tx.ExecContext(ctx, `
		UPDATE runs SET
			jobs_total = (SELECT count(*) FROM jobs WHERE run_id = runs.id AND covered = 0),
			jobs_error = (SELECT count(*) FROM jobs WHERE run_id = runs.id AND covered = 0
				AND state = ? AND result <> ?)
		WHERE id = ?`, ci.JobCompleted, ci.JobOK, runID)
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		f, err := getFlow(ctx, tx, r.FlowID)
		if err != nil {
			return err
		}
		if seq, err = nextSeq(ctx, tx, f.BranchID, seqRun, r.StageName); err != nil {
			return err
		}
		var stageID sql.NullInt64
		if r.StageID != 0 {
			stageID = sql.NullInt64{Int64: r.StageID, Valid: true}
		}
		var started sql.NullInt64
		if r.State == ci.RunInProgress {
			started = sql.NullInt64{Int64: ms(now), Valid: true}
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO runs (flow_id, stage_id, stage_name, state, reason, label, seq, args, note,
				jobs_total, created, started)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			r.FlowID, stageID, r.StageName, r.State, r.Reason, r.Label, seq, args, r.Note,
			len(jobs), ms(now), started).Scan(&id)
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
	r, err := getRun(ctx, s.r, id)
	if err != nil {
		return ci.Run{}, fmt.Errorf("get run: %w", err)
	}
	return r, nil
}

// ListRuns returns the flow's runs in creation order.
func (s *Store) ListRuns(ctx context.Context, flowID int64) ([]ci.Run, error) {
	out, err := queryAll(ctx, s.r, scanRun, `SELECT `+runCols+` FROM runs WHERE flow_id = ? ORDER BY id`, flowID)
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, started = ?, finished = NULL WHERE id = ? AND state = ?`,
			ci.RunInProgress, ms(at), runID, ci.RunManual)
		if err != nil {
			return err
		}
		if ok, err := affected(res); err != nil {
			return err
		} else if !ok {
			cur, err := getRun(ctx, tx, runID)
			if err != nil {
				return err
			}
			return fmt.Errorf("run is %s, not %s: %w", cur.State, ci.RunManual, ci.ErrConflict)
		}
		if r, err = getRun(ctx, tx, runID); err != nil {
			return err
		}
		if err := insertJobs(ctx, tx, runID, r.FlowID, rows, now); err != nil {
			return err
		}
		if err := refreshRunCounters(ctx, tx, runID); err != nil {
			return err
		}
		if err := reopenFlow(ctx, tx, r.FlowID); err != nil {
			return err
		}
		r, err = getRun(ctx, tx, runID)
		return err
	})
	if err != nil {
		return ci.Run{}, fmt.Errorf("start run %d: %w", runID, err)
	}
	fillJobs(rows, runID, r.FlowID, now)
	return r, nil
}

// CompleteRunIfDone completes the run when it is in progress and every job that
// is not covered is completed, storing its final counters. The check reads the
// partial index jobs_open (literal conditions, so the planner can match it),
// so it does not scan the run's completed jobs.
func (s *Store) CompleteRunIfDone(ctx context.Context, runID int64, at time.Time) (ci.Run, bool, error) {
	var r ci.Run
	var changed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE runs SET state = ?, finished = ?
			WHERE id = ? AND state = ?
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.run_id = runs.id
				AND jobs.covered = 0 AND jobs.state <> 'completed')`,
			ci.RunCompleted, ms(at), runID, ci.RunInProgress)
		if err != nil {
			return err
		}
		if changed, err = affected(res); err != nil {
			return err
		}
		if changed {
			if err := refreshRunCounters(ctx, tx, runID); err != nil {
				return err
			}
		}
		r, err = getRun(ctx, tx, runID)
		return err
	})
	if err != nil {
		return ci.Run{}, false, fmt.Errorf("complete run %d: %w", runID, err)
	}
	return r, changed, nil
}

// SetRunNote sets the run's note.
func (s *Store) SetRunNote(ctx context.Context, runID int64, note string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET note = ? WHERE id = ?`, note, runID)
		if err != nil {
			return err
		}
		return mustAffect(res, "run", runID)
	})
	if err != nil {
		return fmt.Errorf("set run note: %w", err)
	}
	return nil
}

// SetRunLabel sets the run's label.
func (s *Store) SetRunLabel(ctx context.Context, runID int64, label string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET label = ? WHERE id = ?`, label, runID)
		if err != nil {
			return err
		}
		return mustAffect(res, "run", runID)
	})
	if err != nil {
		return fmt.Errorf("set run label: %w", err)
	}
	return nil
}

// RerunRun covers every job of the run, inserts the new jobs and reopens the
// run and its flow.
func (s *Store) RerunRun(ctx context.Context, runID int64, jobs []*ci.Job) (ci.Run, error) {
	rows, err := prepareJobs(jobs)
	if err != nil {
		return ci.Run{}, fmt.Errorf("rerun run %d: %w", runID, err)
	}
	now := s.now()
	var r ci.Run
	err = s.write(ctx, func(tx *sql.Tx) error {
		cur, err := getRun(ctx, tx, runID)
		if err != nil {
			return err
		}
		if cur.State == ci.RunManual {
			return fmt.Errorf("run is %s: start it instead: %w", ci.RunManual, ci.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET covered = 1 WHERE run_id = ?`, runID); err != nil {
			return err
		}
		if err := insertJobs(ctx, tx, runID, cur.FlowID, rows, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE runs SET state = ?, finished = NULL, started = coalesce(started, ?) WHERE id = ?`,
			ci.RunInProgress, ms(now), runID); err != nil {
			return err
		}
		if err := refreshRunCounters(ctx, tx, runID); err != nil {
			return err
		}
		if err := reopenFlow(ctx, tx, cur.FlowID); err != nil {
			return err
		}
		r, err = getRun(ctx, tx, runID)
		return err
	})
	if err != nil {
		return ci.Run{}, fmt.Errorf("rerun run %d: %w", runID, err)
	}
	fillJobs(rows, runID, r.FlowID, now)
	return r, nil
}

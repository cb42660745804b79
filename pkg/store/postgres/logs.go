package postgres

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// AppendLog stores a chunk of the job's current attempt, fenced in the same
// transaction (the job row is share-locked: chunks of one job go in side by
// side, a state change waits for them); re-sending the same (JobID, Attempt,
// Step, Seq) is a no-op (inserted=false) that keeps the first data, also once
// that attempt completed the job.
func (s *Store) AppendLog(ctx context.Context, c ci.LogChunk) (bool, error) {
	if c.Step < 0 || c.Seq < 0 {
		return false, fmt.Errorf("append log of job %d: step %d, seq %d: negative position: %w",
			c.JobID, c.Step, c.Seq, ci.ErrInvalid)
	}
	if c.Attempt <= 0 {
		return false, fmt.Errorf("append log of job %d: attempt %d: give the assignment's attempt number (>= 1): %w",
			c.JobID, c.Attempt, ci.ErrInvalid)
	}
	data := c.Data
	if data == nil {
		data = []byte{}
	}
	var inserted bool
	err := s.write(ctx, func(tx querier) error {
		inserted = false
		h, err := getJobHead(ctx, tx, c.JobID, shareJob)
		if err != nil {
			return err
		}
		if h.state == ci.JobCompleted && h.attempt == c.Attempt {
			// A retry of a chunk the agent sent before it completed the job
			// (its answer was lost) is harmless; anything new is too late.
			have, err := exists(ctx, tx, `SELECT 1 FROM log_chunks WHERE job_id = $1 AND attempt = $2 AND step = $3 AND seq = $4`,
				c.JobID, c.Attempt, c.Step, c.Seq)
			if err != nil || have {
				return err
			}
			return fmt.Errorf("job %d completed with attempt %d before this chunk arrived: %w", c.JobID, c.Attempt, ci.ErrStaleAttempt)
		}
		if err := fence(c.JobID, h, c.Attempt); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO log_chunks (job_id, attempt, step, seq, data) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (job_id, attempt, step, seq) DO NOTHING`, c.JobID, c.Attempt, c.Step, c.Seq, data)
		if err != nil {
			return err
		}
		inserted = tag.RowsAffected() > 0
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("append log of job %d attempt %d step %d seq %d: %w", c.JobID, c.Attempt, c.Step, c.Seq, err)
	}
	return inserted, nil
}

// ReadLogs returns the job's chunks after the position after, ordered by
// (Attempt, Step, Seq), restricted to one attempt when attempt > 0 and to one
// step when step >= 0, at most limit (0: all).
func (s *Store) ReadLogs(ctx context.Context, jobID int64, attempt, step int, after store.LogPos, limit int) ([]ci.LogChunk, error) {
	q := `SELECT job_id, attempt, step, seq, data FROM log_chunks
		WHERE job_id = $1 AND (attempt, step, seq) > ($2, $3, $4)`
	args := []any{jobID, after.Attempt, after.Step, after.Seq}
	if attempt > 0 {
		args = append(args, attempt)
		q += ` AND attempt = $` + strconv.Itoa(len(args))
	}
	if step >= 0 {
		args = append(args, step)
		q += ` AND step = $` + strconv.Itoa(len(args))
	}
	args = append(args, sqlLimit(limit))
	q += ` ORDER BY attempt, step, seq LIMIT $` + strconv.Itoa(len(args))
	out, err := queryAll(ctx, s, s.q(), func(sc pgx.Row) (ci.LogChunk, error) {
		var c ci.LogChunk
		err := sc.Scan(&c.JobID, &c.Attempt, &c.Step, &c.Seq, &c.Data)
		return c, err
	}, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read logs of job %d: %w", jobID, err)
	}
	return out, nil
}

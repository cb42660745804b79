package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// AppendLog stores a chunk of the job's current attempt, fenced in the same
// transaction; re-sending the same (JobID, Attempt, Step, Seq) is a no-op
// (inserted=false) that keeps the first data, also once that attempt
// completed the job.
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, c.JobID)
		if err != nil {
			return err
		}
		if h.state == ci.JobCompleted && h.attempt == c.Attempt {
			// A retry of a chunk the agent sent before it completed the job
			// (its answer was lost) is harmless; anything new is too late.
			have, err := exists(ctx, tx, `SELECT 1 FROM log_chunks WHERE job_id = ? AND attempt = ? AND step = ? AND seq = ?`,
				c.JobID, c.Attempt, c.Step, c.Seq)
			if err != nil || have {
				return err
			}
			return fmt.Errorf("job %d completed with attempt %d before this chunk arrived: %w", c.JobID, c.Attempt, ci.ErrStaleAttempt)
		}
		if err := fence(c.JobID, h, c.Attempt); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO log_chunks (job_id, attempt, step, seq, data) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (job_id, attempt, step, seq) DO NOTHING`, c.JobID, c.Attempt, c.Step, c.Seq, data)
		if err != nil {
			return err
		}
		inserted, err = affected(res)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("append log of job %d attempt %d step %d seq %d: %w", c.JobID, c.Attempt, c.Step, c.Seq, err)
	}
	if inserted {
		s.ckpt.wrote(len(data))
	}
	return inserted, nil
}

// ReadLogs returns the job's chunks after the position after, ordered by
// (Attempt, Step, Seq), restricted to one attempt when attempt > 0 and to one
// step when step >= 0, at most limit (0: all).
func (s *Store) ReadLogs(ctx context.Context, jobID int64, attempt, step int, after store.LogPos, limit int) ([]ci.LogChunk, error) {
	q := `SELECT job_id, attempt, step, seq, data FROM log_chunks
		WHERE job_id = ? AND (attempt, step, seq) > (?, ?, ?)`
	args := []any{jobID, after.Attempt, after.Step, after.Seq}
	if attempt > 0 {
		q += ` AND attempt = ?`
		args = append(args, attempt)
	}
	if step >= 0 {
		q += ` AND step = ?`
		args = append(args, step)
	}
	q += ` ORDER BY attempt, step, seq LIMIT ?`
	args = append(args, sqlLimit(limit))
	out, err := queryAll(ctx, s.r, func(sc scanner) (ci.LogChunk, error) {
		var c ci.LogChunk
		err := sc.Scan(&c.JobID, &c.Attempt, &c.Step, &c.Seq, &c.Data)
		return c, err
	}, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read logs of job %d: %w", jobID, err)
	}
	return out, nil
}

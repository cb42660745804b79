package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
)

// AppendLog stores a chunk; re-sending the same (JobID, Step, Seq) is a no-op
// (inserted=false) that keeps the first data.
func (s *Store) AppendLog(ctx context.Context, c ci.LogChunk) (bool, error) {
	if c.Step < 0 || c.Seq < 0 {
		return false, fmt.Errorf("append log of job %d: step %d, seq %d: negative position: %w",
			c.JobID, c.Step, c.Seq, ci.ErrInvalid)
	}
	data := c.Data
	if data == nil {
		data = []byte{}
	}
	var inserted bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO log_chunks (job_id, step, seq, data) VALUES (?, ?, ?, ?)
			ON CONFLICT (job_id, step, seq) DO NOTHING`, c.JobID, c.Step, c.Seq, data)
		if isForeignKey(err) {
			return fmt.Errorf("job %d: %w", c.JobID, ci.ErrNotFound)
		}
		if err != nil {
			return err
		}
		inserted, err = affected(res)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("append log of job %d step %d seq %d: %w", c.JobID, c.Step, c.Seq, err)
	}
	return inserted, nil
}

// ReadLogs returns the job's chunks after (afterStep, afterSeq) ordered by
// (Step, Seq), restricted to one step when step >= 0, at most limit (0: all).
func (s *Store) ReadLogs(ctx context.Context, jobID int64, step int, afterStep int, afterSeq int64, limit int) ([]ci.LogChunk, error) {
	q := `SELECT job_id, step, seq, data FROM log_chunks WHERE job_id = ? AND (step, seq) > (?, ?)`
	args := []any{jobID, afterStep, afterSeq}
	if step >= 0 {
		q += ` AND step = ?`
		args = append(args, step)
	}
	q += ` ORDER BY step, seq LIMIT ?`
	args = append(args, sqlLimit(limit))
	out, err := queryAll(ctx, s.r, func(sc scanner) (ci.LogChunk, error) {
		var c ci.LogChunk
		err := sc.Scan(&c.JobID, &c.Step, &c.Seq, &c.Data)
		return c, err
	}, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read logs of job %d: %w", jobID, err)
	}
	return out, nil
}

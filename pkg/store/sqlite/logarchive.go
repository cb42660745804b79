package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
)

// DeleteLogs deletes the chunks of a completed job (its log was archived).
func (s *Store) DeleteLogs(ctx context.Context, jobID int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if h.state != ci.JobCompleted {
			return fmt.Errorf("job is %s, not completed: its log may still grow: %w", h.state, ci.ErrConflict)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM log_chunks WHERE job_id = ?`, jobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete logs of job %d: %w", jobID, err)
	}
	return nil
}

// ListArchivableLogs returns IDs of completed jobs that still have chunks.
func (s *Store) ListArchivableLogs(ctx context.Context, afterID int64, limit int) ([]int64, error) {
	out, err := queryAll(ctx, s.r, func(sc scanner) (int64, error) {
		var id int64
		err := sc.Scan(&id)
		return id, err
	}, `SELECT j.id FROM jobs j WHERE j.id > ? AND j.state = 'completed'
		AND EXISTS (SELECT 1 FROM log_chunks c WHERE c.job_id = j.id)
		ORDER BY j.id LIMIT ?`, afterID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list archivable logs: %w", err)
	}
	return out, nil
}

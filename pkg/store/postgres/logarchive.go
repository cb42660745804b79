package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
)

// DeleteLogs deletes the chunks of a completed job (its log was archived).
// The job row is share-locked, as AppendLog does, so the check that the job
// is completed holds until the chunks are gone.
func (s *Store) DeleteLogs(ctx context.Context, jobID int64) error {
	err := s.write(ctx, func(tx querier) error {
		h, err := getJobHead(ctx, tx, jobID, shareJob)
		if err != nil {
			return err
		}
		if h.state != ci.JobCompleted {
			return fmt.Errorf("job is %s, not completed: its log may still grow: %w", h.state, ci.ErrConflict)
		}
		_, err = tx.Exec(ctx, `DELETE FROM log_chunks WHERE job_id = $1`, jobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete logs of job %d: %w", jobID, err)
	}
	return nil
}

// ListArchivableLogs returns IDs of completed jobs that still have chunks.
func (s *Store) ListArchivableLogs(ctx context.Context, afterID int64, limit int) ([]int64, error) {
	out, err := queryAll(ctx, s, s.q(), func(sc pgx.Row) (int64, error) {
		var id int64
		err := sc.Scan(&id)
		return id, err
	}, `SELECT j.id FROM jobs j WHERE j.id > $1 AND j.state = 'completed'
		AND EXISTS (SELECT 1 FROM log_chunks c WHERE c.job_id = j.id)
		ORDER BY j.id LIMIT $2`, afterID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list archivable logs: %w", err)
	}
	return out, nil
}

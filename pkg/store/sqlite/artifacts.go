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

// Artifacts.

const artifactCols = `a.id, a.flow_id, a.run_id, a.job_id, r.stage_name, a.path, a.size, a.sha256,
	a.public, a.report_entry, a.blob_key, a.created`

const artifactFrom = ` FROM artifacts a JOIN runs r ON r.id = a.run_id`

func scanArtifact(sc scanner) (store.Artifact, error) {
	var a store.Artifact
	var created int64
	if err := sc.Scan(&a.ID, &a.FlowID, &a.RunID, &a.JobID, &a.Stage, &a.Path, &a.Size, &a.SHA256,
		&a.Public, &a.ReportEntry, &a.BlobKey, &created); err != nil {
		return store.Artifact{}, err
	}
	a.Created = fromMS(created)
	return a, nil
}

func checkBlob(what, key, sha string, size int64) error {
	switch {
	case key == "":
		return fmt.Errorf("%s has no blob key: %w", what, ci.ErrInvalid)
	case size < 0:
		return fmt.Errorf("%s size %d is negative: %w", what, size, ci.ErrInvalid)
	case len(sha) != 64:
		return fmt.Errorf("%s sha256 %q is not 64 hex digits: %w", what, sha, ci.ErrInvalid)
	}
	return nil
}

// CreateArtifact records an artifact of a.JobID, fenced by attempt; an
// artifact of the same job and path is replaced in place.
func (s *Store) CreateArtifact(ctx context.Context, a *store.Artifact, attempt int) (string, error) {
	if a.Path == "" {
		return "", fmt.Errorf("create artifact of job %d: empty path: %w", a.JobID, ci.ErrInvalid)
	}
	if err := checkBlob("artifact", a.BlobKey, a.SHA256, a.Size); err != nil {
		return "", fmt.Errorf("create artifact of job %d: %w", a.JobID, err)
	}
	now := s.now()
	var replaced string
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, a.JobID)
		if err != nil {
			return err
		}
		if err := fence(a.JobID, h, attempt); err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT blob_key FROM artifacts WHERE job_id = ? AND path = ?`, a.JobID, a.Path).Scan(&replaced)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO artifacts (job_id, run_id, flow_id, path, size, sha256, public, report_entry, blob_key, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (job_id, path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
				public = excluded.public, report_entry = excluded.report_entry,
				blob_key = excluded.blob_key, created = excluded.created
			RETURNING id`,
			a.JobID, h.runID, h.flowID, a.Path, a.Size, a.SHA256, boolInt(a.Public), boolInt(a.ReportEntry), a.BlobKey, ms(now)).
			Scan(&a.ID); err != nil {
			return err
		}
		a.RunID, a.FlowID = h.runID, h.flowID
		return tx.QueryRowContext(ctx, `SELECT stage_name FROM runs WHERE id = ?`, h.runID).Scan(&a.Stage)
	})
	if err != nil {
		return "", fmt.Errorf("create artifact %q of job %d: %w", a.Path, a.JobID, err)
	}
	a.Created = now
	return replaced, nil
}

// GetArtifact returns the artifact with this ID.
func (s *Store) GetArtifact(ctx context.Context, id int64) (store.Artifact, error) {
	a, err := scanArtifact(s.r.QueryRowContext(ctx, `SELECT `+artifactCols+artifactFrom+` WHERE a.id = ?`, id))
	if err != nil {
		return store.Artifact{}, fmt.Errorf("get artifact: %w", notFound(err, "artifact", id))
	}
	return a, nil
}

// GetJobArtifact returns the job's artifact of this path.
func (s *Store) GetJobArtifact(ctx context.Context, jobID int64, path string) (store.Artifact, error) {
	a, err := scanArtifact(s.r.QueryRowContext(ctx, `SELECT `+artifactCols+artifactFrom+` WHERE a.job_id = ? AND a.path = ?`, jobID, path))
	if err != nil {
		return store.Artifact{}, fmt.Errorf("get artifact of job %d: %w", jobID, notFound(err, "artifact path", fmt.Sprintf("%q", path)))
	}
	return a, nil
}

// ListFlowArtifacts returns the flow's artifacts, newest run first.
func (s *Store) ListFlowArtifacts(ctx context.Context, flowID int64) ([]store.Artifact, error) {
	out, err := queryAll(ctx, s.r, scanArtifact, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.flow_id = ? ORDER BY a.run_id DESC, a.job_id, a.path`, flowID)
	if err != nil {
		return nil, fmt.Errorf("list artifacts of flow %d: %w", flowID, err)
	}
	return out, nil
}

// ListRunArtifacts returns the run's artifacts.
func (s *Store) ListRunArtifacts(ctx context.Context, runID int64) ([]store.Artifact, error) {
	out, err := queryAll(ctx, s.r, scanArtifact, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.run_id = ? ORDER BY a.job_id, a.path`, runID)
	if err != nil {
		return nil, fmt.Errorf("list artifacts of run %d: %w", runID, err)
	}
	return out, nil
}

// ListJobArtifacts returns the job's artifacts.
func (s *Store) ListJobArtifacts(ctx context.Context, jobID int64) ([]store.Artifact, error) {
	out, err := queryAll(ctx, s.r, scanArtifact, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.job_id = ? ORDER BY a.path`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list artifacts of job %d: %w", jobID, err)
	}
	return out, nil
}

// Caches.

const cacheCols = `branch_id, key, size, sha256, blob_key, created, expires`

func scanCache(sc scanner) (store.CacheEntry, error) {
	var e store.CacheEntry
	var created, expires int64
	if err := sc.Scan(&e.BranchID, &e.Key, &e.Size, &e.SHA256, &e.BlobKey, &created, &expires); err != nil {
		return store.CacheEntry{}, err
	}
	e.Created, e.Expires = fromMS(created), fromMS(expires)
	return e, nil
}

// PutCache records a cache archive of the job's branch, fenced by attempt.
func (s *Store) PutCache(ctx context.Context, jobID int64, attempt int, e *store.CacheEntry) (string, error) {
	if e.Key == "" {
		return "", fmt.Errorf("put cache of job %d: empty key: %w", jobID, ci.ErrInvalid)
	}
	if err := checkBlob("cache", e.BlobKey, e.SHA256, e.Size); err != nil {
		return "", fmt.Errorf("put cache of job %d: %w", jobID, err)
	}
	if e.Created.IsZero() {
		e.Created = s.now()
	}
	e.Created, e.Expires = truncMS(e.Created), truncMS(e.Expires)
	var replaced string
	err := s.write(ctx, func(tx *sql.Tx) error {
		h, err := getJobHead(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if err := fence(jobID, h, attempt); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT branch_id FROM flows WHERE id = ?`, h.flowID).Scan(&e.BranchID); err != nil {
			return notFound(err, "flow", h.flowID)
		}
		err = tx.QueryRowContext(ctx, `SELECT blob_key FROM caches WHERE branch_id = ? AND key = ?`, e.BranchID, e.Key).Scan(&replaced)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO caches (branch_id, key, size, sha256, blob_key, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (branch_id, key) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
				blob_key = excluded.blob_key, created = excluded.created, expires = excluded.expires`,
			e.BranchID, e.Key, e.Size, e.SHA256, e.BlobKey, ms(e.Created), ms(e.Expires))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("put cache %q of job %d: %w", e.Key, jobID, err)
	}
	return replaced, nil
}

// GetCache returns the branch's unexpired entry of key.
func (s *Store) GetCache(ctx context.Context, branchID int64, key string, now time.Time) (store.CacheEntry, error) {
	e, err := scanCache(s.r.QueryRowContext(ctx, `SELECT `+cacheCols+` FROM caches
		WHERE branch_id = ? AND key = ? AND expires > ?`, branchID, key, ms(now)))
	if err != nil {
		return store.CacheEntry{}, fmt.Errorf("get cache of branch %d: %w", branchID, notFound(err, "cache key", fmt.Sprintf("%q", key)))
	}
	return e, nil
}

// ListCaches returns the branch's entries by key.
func (s *Store) ListCaches(ctx context.Context, branchID int64) ([]store.CacheEntry, error) {
	out, err := queryAll(ctx, s.r, scanCache, `SELECT `+cacheCols+` FROM caches WHERE branch_id = ? ORDER BY key`, branchID)
	if err != nil {
		return nil, fmt.Errorf("list caches of branch %d: %w", branchID, err)
	}
	return out, nil
}

// DeleteExpiredCaches deletes and returns up to limit expired entries.
func (s *Store) DeleteExpiredCaches(ctx context.Context, now time.Time, limit int) ([]store.CacheEntry, error) {
	var out []store.CacheEntry
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = queryAll(ctx, tx, scanCache, `DELETE FROM caches WHERE rowid IN (
			SELECT rowid FROM caches WHERE expires <= ? ORDER BY expires LIMIT ?)
			RETURNING `+cacheCols, ms(now), sqlLimit(limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete expired caches: %w", err)
	}
	return out, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// maxUpsertTries bounds the update-or-insert loops of rows that concurrent
// writers may create or delete between the two statements.
const maxUpsertTries = 3

// Artifacts.

const artifactCols = `a.id, a.flow_id, a.run_id, a.job_id, r.stage_name, a.path, a.size, a.sha256,
	a.public, a.report_entry, a.blob_key, a.created`

const artifactFrom = ` FROM artifacts a JOIN runs r ON r.id = a.run_id`

func scanArtifact(sc pgx.Row) (store.Artifact, error) {
	var a store.Artifact
	if err := sc.Scan(&a.ID, &a.FlowID, &a.RunID, &a.JobID, &a.Stage, &a.Path, &a.Size, &a.SHA256,
		&a.Public, &a.ReportEntry, &a.BlobKey, &a.Created); err != nil {
		return store.Artifact{}, err
	}
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

// CreateArtifact records an artifact of a.JobID, fenced by attempt (the job
// row is share-locked, as for log chunks); an artifact of the same job and
// path is replaced in place. The replaced row is locked before it is read,
// so of two uploads of one path each sees the blob key the other replaced.
func (s *Store) CreateArtifact(ctx context.Context, a *store.Artifact, attempt int) (string, error) {
	if a.Path == "" {
		return "", fmt.Errorf("create artifact of job %d: empty path: %w", a.JobID, ci.ErrInvalid)
	}
	if err := checkBlob("artifact", a.BlobKey, a.SHA256, a.Size); err != nil {
		return "", fmt.Errorf("create artifact of job %d: %w", a.JobID, err)
	}
	now := s.now()
	var replaced, stage string
	var id int64
	var h jobHead
	err := s.write(ctx, func(tx querier) error {
		var err error
		h, err = getJobHead(ctx, tx, a.JobID, shareJob)
		if err != nil {
			return err
		}
		if err := fence(a.JobID, h, attempt); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT stage_name FROM runs WHERE id = $1`, h.runID).Scan(&stage); err != nil {
			return notFound(err, "run", h.runID)
		}
		for range maxUpsertTries {
			replaced = ""
			err := tx.QueryRow(ctx, `SELECT id, blob_key FROM artifacts WHERE job_id = $1 AND path = $2 FOR UPDATE`,
				a.JobID, a.Path).Scan(&id, &replaced)
			switch {
			case err == nil:
				_, err = tx.Exec(ctx, `
					UPDATE artifacts SET size = $1, sha256 = $2, public = $3, report_entry = $4, blob_key = $5, created = $6
					WHERE id = $7`, a.Size, a.SHA256, a.Public, a.ReportEntry, a.BlobKey, now, id)
				return err
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			err = tx.QueryRow(ctx, `
				INSERT INTO artifacts (job_id, run_id, flow_id, path, size, sha256, public, report_entry, blob_key, created)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
				ON CONFLICT (job_id, path) DO NOTHING RETURNING id`,
				a.JobID, h.runID, h.flowID, a.Path, a.Size, a.SHA256, a.Public, a.ReportEntry, a.BlobKey, now).Scan(&id)
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			// A concurrent upload of the path inserted it first: replace it.
		}
		return fmt.Errorf("concurrent uploads of the path kept changing it: try again: %w", ci.ErrConflict)
	})
	if err != nil {
		return "", fmt.Errorf("create artifact %q of job %d: %w", a.Path, a.JobID, err)
	}
	a.ID, a.RunID, a.FlowID, a.Stage, a.Created = id, h.runID, h.flowID, stage, now
	return replaced, nil
}

// GetArtifact returns the artifact with this ID.
func (s *Store) GetArtifact(ctx context.Context, id int64) (store.Artifact, error) {
	a, err := scanArtifact(s.q().QueryRow(ctx, `SELECT `+artifactCols+artifactFrom+` WHERE a.id = $1`, id))
	if err != nil {
		return store.Artifact{}, fmt.Errorf("get artifact: %w", notFound(err, "artifact", id))
	}
	return a, nil
}

// GetJobArtifact returns the job's artifact of this path.
func (s *Store) GetJobArtifact(ctx context.Context, jobID int64, path string) (store.Artifact, error) {
	a, err := scanArtifact(s.q().QueryRow(ctx, `SELECT `+artifactCols+artifactFrom+` WHERE a.job_id = $1 AND a.path = $2`, jobID, path))
	if err != nil {
		return store.Artifact{}, fmt.Errorf("get artifact of job %d: %w", jobID, notFound(err, "artifact path", fmt.Sprintf("%q", path)))
	}
	return a, nil
}

// ListFlowArtifacts returns the flow's artifacts, newest run first.
func (s *Store) ListFlowArtifacts(ctx context.Context, flowID int64) ([]store.Artifact, error) {
	out, err := queryAll(ctx, s, s.q(), scanArtifact, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.flow_id = $1 ORDER BY a.run_id DESC, a.job_id, a.path`, flowID)
	if err != nil {
		return nil, fmt.Errorf("list artifacts of flow %d: %w", flowID, err)
	}
	return out, nil
}

// ListRunArtifacts returns the run's artifacts.
func (s *Store) ListRunArtifacts(ctx context.Context, runID int64) ([]store.Artifact, error) {
	out, err := queryAll(ctx, s, s.q(), scanArtifact, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.run_id = $1 ORDER BY a.job_id, a.path`, runID)
	if err != nil {
		return nil, fmt.Errorf("list artifacts of run %d: %w", runID, err)
	}
	return out, nil
}

// ListJobArtifacts returns the job's artifacts.
func (s *Store) ListJobArtifacts(ctx context.Context, jobID int64) ([]store.Artifact, error) {
	out, err := queryAll(ctx, s, s.q(), scanArtifact, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.job_id = $1 ORDER BY a.path`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list artifacts of job %d: %w", jobID, err)
	}
	return out, nil
}

// Caches.

const cacheCols = `branch_id, key, size, sha256, blob_key, created, expires`

func scanCache(sc pgx.Row) (store.CacheEntry, error) {
	var e store.CacheEntry
	if err := sc.Scan(&e.BranchID, &e.Key, &e.Size, &e.SHA256, &e.BlobKey, &e.Created, &e.Expires); err != nil {
		return store.CacheEntry{}, err
	}
	return e, nil
}

// PutCache records a cache archive of the job's branch, fenced by attempt.
// Like CreateArtifact it locks an entry it replaces before reading its blob
// key, so concurrent saves of one key (jobs of several flows) each return
// the key they replaced.
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
	e.Created, e.Expires = ts(e.Created), ts(e.Expires)
	var replaced string
	var branchID int64
	err := s.write(ctx, func(tx querier) error {
		h, err := getJobHead(ctx, tx, jobID, shareJob)
		if err != nil {
			return err
		}
		if err := fence(jobID, h, attempt); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT branch_id FROM flows WHERE id = $1`, h.flowID).Scan(&branchID); err != nil {
			return notFound(err, "flow", h.flowID)
		}
		for range maxUpsertTries {
			replaced = ""
			err := tx.QueryRow(ctx, `SELECT blob_key FROM caches WHERE branch_id = $1 AND key = $2 FOR UPDATE`,
				branchID, e.Key).Scan(&replaced)
			switch {
			case err == nil:
				_, err = tx.Exec(ctx, `
					UPDATE caches SET size = $1, sha256 = $2, blob_key = $3, created = $4, expires = $5
					WHERE branch_id = $6 AND key = $7`, e.Size, e.SHA256, e.BlobKey, e.Created, e.Expires, branchID, e.Key)
				return err
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			tag, err := tx.Exec(ctx, `
				INSERT INTO caches (branch_id, key, size, sha256, blob_key, created, expires) VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (branch_id, key) DO NOTHING`,
				branchID, e.Key, e.Size, e.SHA256, e.BlobKey, e.Created, e.Expires)
			if err != nil || tag.RowsAffected() > 0 {
				return err
			}
			// A concurrent save of the key inserted it first: replace it.
		}
		return fmt.Errorf("concurrent saves of the key kept changing it: try again: %w", ci.ErrConflict)
	})
	if err != nil {
		return "", fmt.Errorf("put cache %q of job %d: %w", e.Key, jobID, err)
	}
	e.BranchID = branchID
	return replaced, nil
}

// GetCache returns the branch's unexpired entry of key.
func (s *Store) GetCache(ctx context.Context, branchID int64, key string, now time.Time) (store.CacheEntry, error) {
	e, err := scanCache(s.q().QueryRow(ctx, `SELECT `+cacheCols+` FROM caches
		WHERE branch_id = $1 AND key = $2 AND expires > $3`, branchID, key, ts(now)))
	if err != nil {
		return store.CacheEntry{}, fmt.Errorf("get cache of branch %d: %w", branchID, notFound(err, "cache key", fmt.Sprintf("%q", key)))
	}
	return e, nil
}

// ListCaches returns the branch's entries by key.
func (s *Store) ListCaches(ctx context.Context, branchID int64) ([]store.CacheEntry, error) {
	out, err := queryAll(ctx, s, s.q(), scanCache, `SELECT `+cacheCols+` FROM caches WHERE branch_id = $1 ORDER BY key`, branchID)
	if err != nil {
		return nil, fmt.Errorf("list caches of branch %d: %w", branchID, err)
	}
	return out, nil
}

// DeleteExpiredCaches deletes and returns up to limit expired entries, the
// earliest expired first. Entries another transaction holds (being
// replaced, or deleted by another kkd) are skipped, not waited for.
func (s *Store) DeleteExpiredCaches(ctx context.Context, now time.Time, limit int) ([]store.CacheEntry, error) {
	var out []store.CacheEntry
	err := s.write(ctx, func(tx querier) error {
		var err error
		out, err = queryAll(ctx, s, tx, scanCache, `
			WITH gone AS (
				DELETE FROM caches WHERE (branch_id, key) IN (
					SELECT branch_id, key FROM caches WHERE expires <= $1
					ORDER BY expires LIMIT $2 FOR UPDATE SKIP LOCKED)
				RETURNING `+cacheCols+`)
			SELECT `+cacheCols+` FROM gone ORDER BY expires, branch_id, key`, ts(now), sqlLimit(limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete expired caches: %w", err)
	}
	return out, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Stages from repositories, branch retention, job history and retention
// deletions.

func encodeRepo(r *ci.StageRepo) (sql.NullString, error) {
	if r == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("encode repo: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

func decodeRepo(s string) (*ci.StageRepo, error) {
	if s == "" {
		return nil, nil
	}
	var r ci.StageRepo
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("decode repo: %w", err)
	}
	return &r, nil
}

// placeholders returns "?, ?, ..." for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func anys[T any](vs []T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

func checkRetention(r ci.Retention) error {
	if r.KeepFlowsDays < 0 || r.KeepLogsDays < 0 || r.KeepArtifactsDays < 0 {
		return fmt.Errorf("retention days must not be negative (0 means the default): %w", ci.ErrInvalid)
	}
	return nil
}

// SetBranchRetention stores the branch's retention settings.
func (s *Store) SetBranchRetention(ctx context.Context, id int64, r ci.Retention) (ci.Branch, error) {
	if err := checkRetention(r); err != nil {
		return ci.Branch{}, fmt.Errorf("set retention of branch %d: %w", id, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE branches SET keep_flows_days = ?, keep_logs_days = ?, keep_artifacts_days = ?
			WHERE id = ?`, r.KeepFlowsDays, r.KeepLogsDays, r.KeepArtifactsDays, id)
		if err != nil {
			return err
		}
		return mustAffect(res, "branch", id)
	})
	if err != nil {
		return ci.Branch{}, fmt.Errorf("set retention of branch %d: %w", id, err)
	}
	return s.GetBranch(ctx, id)
}

// UpdateStageRepo stores a refresh of a repo-backed stage unless the stage
// changed since prevUpdated.
func (s *Store) UpdateStageRepo(ctx context.Context, st *ci.Stage, prevUpdated time.Time) error {
	if st.Repo == nil {
		return fmt.Errorf("update stage %d from repo: no repo: %w", st.ID, ci.ErrInvalid)
	}
	schema, err := encodeRaw("stage schema", st.Schema)
	if err != nil {
		return fmt.Errorf("update stage %d from repo: %w", st.ID, err)
	}
	repo, err := encodeRepo(st.Repo)
	if err != nil {
		return fmt.Errorf("update stage %d from repo: %w", st.ID, err)
	}
	now := s.now()
	if !now.After(prevUpdated) {
		now = truncMS(prevUpdated).Add(time.Millisecond) // a later write must change updated
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE stages SET code = ?, schema = ?, parent = ?, repo = ?, updated = ?
			WHERE id = ? AND updated = ? AND repo IS NOT NULL`,
			st.Code, schema, st.Parent, repo, ms(now), st.ID, ms(prevUpdated))
		if err != nil {
			return err
		}
		if ok, err := affected(res); err != nil || ok {
			return err
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM stages WHERE id = ?`, st.ID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("stage %d: %w", st.ID, ci.ErrNotFound)
		}
		return fmt.Errorf("stage %d changed since it was read: %w", st.ID, ci.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("update stage %d from repo: %w", st.ID, err)
	}
	st.Updated = now
	return nil
}

// ListRepoStages returns the stages that have a repo, by ID.
func (s *Store) ListRepoStages(ctx context.Context) ([]ci.Stage, error) {
	out, err := queryAll(ctx, s.r, scanStage, `SELECT `+stageCols+` FROM stages WHERE repo IS NOT NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list repo stages: %w", err)
	}
	return out, nil
}

// ListJobHistory returns comparable completed jobs, newest first.
func (s *Store) ListJobHistory(ctx context.Context, q store.JobHistoryQuery, limit int) ([]ci.Job, error) {
	if len(q.Results) == 0 {
		return []ci.Job{}, nil
	}
	args := []any{q.BranchID, q.Stage, q.Name, q.Group, q.System}
	args = append(args, anys(q.Results)...)
	args = append(args, sqlLimit(limit))
	out, err := queryAll(ctx, s.r, scanJob, `SELECT `+prefixed("j.", jobCols)+`
		FROM flows f JOIN runs r ON r.flow_id = f.id JOIN jobs j ON j.run_id = r.id
		WHERE f.branch_id = ? AND r.stage_name = ? AND j.name = ? AND j.agents_group = ? AND j.system = ?
			AND j.state = 'completed' AND j.covered = 0 AND j.started IS NOT NULL AND j.finished IS NOT NULL
			AND j.result IN (`+placeholders(len(q.Results))+`)
		ORDER BY j.finished DESC, j.id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list job history: %w", err)
	}
	return out, nil
}

// ListActiveRuns returns the runs in progress.
func (s *Store) ListActiveRuns(ctx context.Context) ([]ci.Run, error) {
	out, err := queryAll(ctx, s.r, scanRun, `SELECT `+runCols+` FROM runs WHERE state = 'in_progress' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list active runs: %w", err)
	}
	return out, nil
}

func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]int64, error) {
	return queryAll(ctx, q, func(sc scanner) (int64, error) {
		var id int64
		err := sc.Scan(&id)
		return id, err
	}, query, args...)
}

// DeleteFlowsBefore deletes old completed flows of the branch.
func (s *Store) DeleteFlowsBefore(ctx context.Context, branchID int64, before time.Time, limit int) (store.PurgedFlows, error) {
	var out store.PurgedFlows
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = store.PurgedFlows{}
		flows, err := queryIDs(ctx, tx, `SELECT id FROM flows WHERE branch_id = ? AND state = 'completed' AND finished < ?
			ORDER BY finished, id LIMIT ?`, branchID, ms(before), sqlLimit(limit))
		if err != nil || len(flows) == 0 {
			return err
		}
		in := placeholders(len(flows))
		fargs := anys(flows)
		if out.JobIDs, err = queryIDs(ctx, tx, `SELECT j.id FROM runs r JOIN jobs j ON j.run_id = r.id
			WHERE r.flow_id IN (`+in+`) ORDER BY j.id`, fargs...); err != nil {
			return err
		}
		if out.Artifacts, err = queryAll(ctx, tx, scanArtifact, `SELECT `+artifactCols+artifactFrom+`
			WHERE a.flow_id IN (`+in+`) ORDER BY a.id`, fargs...); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(length(c.data)), 0)
			FROM runs r JOIN jobs j ON j.run_id = r.id JOIN log_chunks c ON c.job_id = j.id
			WHERE r.flow_id IN (`+in+`)`, fargs...).Scan(&out.LogBytes); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM flows WHERE id IN (`+in+`)`, fargs...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		out.Flows = int(n)
		return err
	})
	if err != nil {
		return store.PurgedFlows{}, fmt.Errorf("delete flows of branch %d: %w", branchID, err)
	}
	return out, nil
}

// PurgeLogsBefore deletes the log chunks of old jobs of the branch and marks
// their logs purged.
func (s *Store) PurgeLogsBefore(ctx context.Context, branchID int64, before time.Time, limit int) ([]int64, int64, error) {
	var ids []int64
	var size int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		ids, err = queryIDs(ctx, tx, `SELECT j.id FROM flows f JOIN runs r ON r.flow_id = f.id JOIN jobs j ON j.run_id = r.id
			WHERE f.branch_id = ? AND f.state = 'completed' AND f.finished < ? AND j.state = 'completed' AND j.logs_purged = 0
			ORDER BY j.id LIMIT ?`, branchID, ms(before), sqlLimit(limit))
		if err != nil || len(ids) == 0 {
			return err
		}
		in := placeholders(len(ids))
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(length(data)), 0) FROM log_chunks WHERE job_id IN (`+in+`)`,
			anys(ids)...).Scan(&size); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM log_chunks WHERE job_id IN (`+in+`)`, anys(ids)...); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET logs_purged = 1 WHERE id IN (`+in+`)`, anys(ids)...)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("purge logs of branch %d: %w", branchID, err)
	}
	if ids == nil {
		ids = []int64{}
	}
	return ids, size, nil
}

// DeleteArtifactsBefore deletes the artifacts of old flows of the branch.
func (s *Store) DeleteArtifactsBefore(ctx context.Context, branchID int64, before time.Time, limit int) ([]store.Artifact, error) {
	var out []store.Artifact
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = queryAll(ctx, tx, scanArtifact, `SELECT `+artifactCols+artifactFrom+` JOIN flows f ON f.id = a.flow_id
			WHERE f.branch_id = ? AND f.state = 'completed' AND f.finished < ?
			ORDER BY a.id LIMIT ?`, branchID, ms(before), sqlLimit(limit))
		if err != nil || len(out) == 0 {
			return err
		}
		ids := make([]int64, len(out))
		for i, a := range out {
			ids[i] = a.ID
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM artifacts WHERE id IN (`+placeholders(len(ids))+`)`, anys(ids)...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete artifacts of branch %d: %w", branchID, err)
	}
	return out, nil
}

// ReferencedBlobs returns which keys an artifact or cache row names.
func (s *Store) ReferencedBlobs(ctx context.Context, keys []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(keys) == 0 {
		return out, nil
	}
	in := placeholders(len(keys))
	args := append(anys(keys), anys(keys)...)
	found, err := queryAll(ctx, s.r, func(sc scanner) (string, error) {
		var k string
		err := sc.Scan(&k)
		return k, err
	}, `SELECT blob_key FROM artifacts WHERE blob_key IN (`+in+`)
		UNION SELECT blob_key FROM caches WHERE blob_key IN (`+in+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("referenced blobs: %w", err)
	}
	for _, k := range found {
		out[k] = true
	}
	return out, nil
}

// JobsWithLogs returns which ids are jobs whose log was not purged.
func (s *Store) JobsWithLogs(ctx context.Context, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	found, err := queryIDs(ctx, s.r, `SELECT id FROM jobs WHERE logs_purged = 0 AND id IN (`+placeholders(len(ids))+`)`, anys(ids)...)
	if err != nil {
		return nil, fmt.Errorf("jobs with logs: %w", err)
	}
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

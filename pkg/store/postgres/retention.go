package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Stages from repositories, branch retention, job history and retention
// deletions.

func encodeRepo(r *ci.StageRepo) (*string, error) {
	if r == nil {
		return nil, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode repo: %w", err)
	}
	s := string(b)
	return &s, nil
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

func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func scanID(sc pgx.Row) (int64, error) {
	var id int64
	err := sc.Scan(&id)
	return id, err
}

// SetBranchRetention stores the branch's retention settings.
func (s *Store) SetBranchRetention(ctx context.Context, id int64, r ci.Retention) (ci.Branch, error) {
	if r.KeepFlowsDays < 0 || r.KeepLogsDays < 0 || r.KeepArtifactsDays < 0 {
		return ci.Branch{}, fmt.Errorf("set retention of branch %d: retention days must not be negative (0 means the default): %w", id, ci.ErrInvalid)
	}
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE branches SET keep_flows_days = $1, keep_logs_days = $2, keep_artifacts_days = $3
			WHERE id = $4`, r.KeepFlowsDays, r.KeepLogsDays, r.KeepArtifactsDays, id)
		if err != nil {
			return err
		}
		return mustAffect(tag, "branch", id)
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
		now = ts(prevUpdated).Add(time.Millisecond) // a later write must change updated
	}
	err = s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE stages SET code = $1, schema = $2::json, parent = $3, repo = $4::json, updated = $5
			WHERE id = $6 AND updated = $7 AND repo IS NOT NULL`,
			st.Code, schema, st.Parent, repo, now, st.ID, ts(prevUpdated))
		if err != nil {
			return err
		}
		if tag.RowsAffected() > 0 {
			return nil
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM stages WHERE id = $1`, st.ID)
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
	out, err := queryAll(ctx, s, s.q(), scanStage, `SELECT `+stageCols+` FROM stages WHERE repo IS NOT NULL ORDER BY id`)
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
	results := make([]string, len(q.Results))
	for i, r := range q.Results {
		results[i] = string(r)
	}
	out, err := queryAll(ctx, s, s.q(), scanJob, `SELECT `+prefixCols("j.", jobCols)+`
		FROM flows f JOIN runs r ON r.flow_id = f.id JOIN jobs j ON j.run_id = r.id
		WHERE f.branch_id = $1 AND r.stage_name = $2 AND j.name = $3 AND j.agents_group = $4 AND j.system = $5
			AND j.state = 'completed' AND NOT j.covered AND j.started IS NOT NULL AND j.finished IS NOT NULL
			AND j.result = ANY($6)
		ORDER BY j.finished DESC, j.id DESC LIMIT $7`,
		q.BranchID, q.Stage, q.Name, q.Group, q.System, results, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list job history: %w", err)
	}
	return out, nil
}

// ListActiveRuns returns the runs in progress.
func (s *Store) ListActiveRuns(ctx context.Context) ([]ci.Run, error) {
	out, err := queryAll(ctx, s, s.q(), scanRun, `SELECT `+runCols+` FROM runs WHERE state = 'in_progress' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list active runs: %w", err)
	}
	return out, nil
}

// DeleteFlowsBefore deletes old completed flows of the branch. The flows are
// locked first, so a rerun that would reopen one waits (or, having reopened
// it first, makes it no longer qualify); flows another transaction holds are
// skipped.
func (s *Store) DeleteFlowsBefore(ctx context.Context, branchID int64, before time.Time, limit int) (store.PurgedFlows, error) {
	var out store.PurgedFlows
	err := s.write(ctx, func(tx querier) error {
		out = store.PurgedFlows{}
		flows, err := queryAll(ctx, s, tx, scanID, `SELECT id FROM flows
			WHERE branch_id = $1 AND state = 'completed' AND finished < $2
			ORDER BY finished, id LIMIT $3 FOR UPDATE SKIP LOCKED`, branchID, ts(before), sqlLimit(limit))
		if err != nil || len(flows) == 0 {
			return err
		}
		if out.JobIDs, err = queryAll(ctx, s, tx, scanID, `SELECT j.id FROM runs r JOIN jobs j ON j.run_id = r.id
			WHERE r.flow_id = ANY($1) ORDER BY j.id`, flows); err != nil {
			return err
		}
		if out.Artifacts, err = queryAll(ctx, s, tx, scanArtifact, `SELECT `+artifactCols+artifactFrom+`
			WHERE a.flow_id = ANY($1) ORDER BY a.id`, flows); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(length(c.data)), 0)
			FROM runs r JOIN jobs j ON j.run_id = r.id JOIN log_chunks c ON c.job_id = j.id
			WHERE r.flow_id = ANY($1)`, flows).Scan(&out.LogBytes); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM flows WHERE id = ANY($1)`, flows)
		if err != nil {
			return err
		}
		out.Flows = int(tag.RowsAffected())
		return nil
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
	err := s.write(ctx, func(tx querier) error {
		var err error
		ids, err = queryAll(ctx, s, tx, scanID, `SELECT j.id FROM flows f JOIN runs r ON r.flow_id = f.id JOIN jobs j ON j.run_id = r.id
			WHERE f.branch_id = $1 AND f.state = 'completed' AND f.finished < $2 AND j.state = 'completed' AND NOT j.logs_purged
			ORDER BY j.id LIMIT $3 FOR UPDATE OF f, j SKIP LOCKED`, branchID, ts(before), sqlLimit(limit))
		if err != nil || len(ids) == 0 {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(length(data)), 0) FROM log_chunks WHERE job_id = ANY($1)`,
			ids).Scan(&size); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM log_chunks WHERE job_id = ANY($1)`, ids); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET logs_purged = true WHERE id = ANY($1)`, ids)
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
	err := s.write(ctx, func(tx querier) error {
		var err error
		out, err = queryAll(ctx, s, tx, scanArtifact, `SELECT `+artifactCols+artifactFrom+` JOIN flows f ON f.id = a.flow_id
			WHERE f.branch_id = $1 AND f.state = 'completed' AND f.finished < $2
			ORDER BY a.id LIMIT $3 FOR UPDATE OF f, a SKIP LOCKED`, branchID, ts(before), sqlLimit(limit))
		if err != nil || len(out) == 0 {
			return err
		}
		ids := make([]int64, len(out))
		for i, a := range out {
			ids[i] = a.ID
		}
		_, err = tx.Exec(ctx, `DELETE FROM artifacts WHERE id = ANY($1)`, ids)
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
	found, err := queryAll(ctx, s, s.q(), func(sc pgx.Row) (string, error) {
		var k string
		err := sc.Scan(&k)
		return k, err
	}, `SELECT blob_key FROM artifacts WHERE blob_key = ANY($1)
		UNION SELECT blob_key FROM caches WHERE blob_key = ANY($1)`, keys)
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
	found, err := queryAll(ctx, s, s.q(), scanID, `SELECT id FROM jobs WHERE NOT logs_purged AND id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("jobs with logs: %w", err)
	}
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Planner triggers. The claims are conditional updates: a concurrent update
// of the same row waits for the first one's commit and then re-checks its
// condition (READ COMMITTED), so exactly one caller wins.

// ListPlannedStages returns every enabled stage, ordered by ID.
func (s *Store) ListPlannedStages(ctx context.Context) ([]ci.Stage, error) {
	out, err := queryAll(ctx, s, s.q(), scanStage, `SELECT `+stageCols+` FROM stages WHERE enabled ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list planned stages: %w", err)
	}
	return out, nil
}

// StagesVersion changes when a stage is applied or deleted.
func (s *Store) StagesVersion(ctx context.Context) (string, error) {
	var rev int64
	err := s.q().QueryRow(ctx, `SELECT rev FROM stages_revision WHERE id = 1`).Scan(&rev)
	if err != nil {
		return "", fmt.Errorf("stages version: %w", err)
	}
	return fmt.Sprint(rev), nil
}

const triggerCols = `stage_id, kind, rule, since, last_fired, repo, checked`

func scanTrigger(row pgx.Row) (store.TriggerState, error) {
	var t store.TriggerState
	var fired, checked *time.Time
	if err := row.Scan(&t.StageID, &t.Kind, &t.Rule, &t.Since, &fired, &t.Repo, &checked); err != nil {
		return t, err
	}
	t.Since = ts(t.Since)
	if fired != nil {
		t.LastFired = ts(*fired)
	}
	if checked != nil {
		t.Checked = ts(*checked)
	}
	return t, nil
}

// EnsureTrigger returns the trigger state, creating or restarting it.
func (s *Store) EnsureTrigger(ctx context.Context, stageID int64, kind, rule string, now time.Time) (store.TriggerState, error) {
	if kind == "" || rule == "" {
		return store.TriggerState{}, fmt.Errorf("ensure trigger: kind and rule are required: %w", ci.ErrInvalid)
	}
	var out store.TriggerState
	err := s.write(ctx, func(tx querier) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM stages WHERE id = $1 FOR KEY SHARE`, stageID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("stage %d: %w", stageID, ci.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO stage_triggers (stage_id, kind, rule, since) VALUES ($1, $2, $3, $4)
			ON CONFLICT (stage_id, kind) DO UPDATE SET rule = excluded.rule, since = excluded.since, repo = '', checked = NULL
			WHERE stage_triggers.rule <> excluded.rule`, stageID, kind, rule, ts(now)); err != nil {
			return err
		}
		out, err = scanTrigger(tx.QueryRow(ctx, `SELECT `+triggerCols+` FROM stage_triggers WHERE stage_id = $1 AND kind = $2`, stageID, kind))
		return err
	})
	if err != nil {
		return store.TriggerState{}, fmt.Errorf("ensure %s trigger of stage %d: %w", kind, stageID, err)
	}
	return out, nil
}

// DropTriggers deletes the stage's trigger states of kinds not in keep.
func (s *Store) DropTriggers(ctx context.Context, stageID int64, keep []string) error {
	if keep == nil {
		keep = []string{}
	}
	err := s.write(ctx, func(tx querier) error {
		_, err := tx.Exec(ctx, `DELETE FROM stage_triggers WHERE stage_id = $1 AND NOT (kind = ANY($2))`, stageID, keep)
		return err
	})
	if err != nil {
		return fmt.Errorf("drop triggers of stage %d (keep %s): %w", stageID, strings.Join(keep, ","), err)
	}
	return nil
}

// ListTriggerStates returns the trigger states of a branch (0: all).
func (s *Store) ListTriggerStates(ctx context.Context, branchID int64) ([]store.TriggerState, error) {
	q := `SELECT t.stage_id, t.kind, t.rule, t.since, t.last_fired, t.repo, t.checked
		FROM stage_triggers t JOIN stages s ON s.id = t.stage_id`
	var args []any
	if branchID != 0 {
		q += ` WHERE s.branch_id = $1`
		args = append(args, branchID)
	}
	out, err := queryAll(ctx, s, s.q(), scanTrigger, q+` ORDER BY t.stage_id, t.kind`, args...)
	if err != nil {
		return nil, fmt.Errorf("list trigger states: %w", err)
	}
	return out, nil
}

// ClaimTriggerFire records the fire of the scheduled instant at once.
func (s *Store) ClaimTriggerFire(ctx context.Context, stageID int64, kind, rule string, at time.Time) (bool, error) {
	var claimed bool
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE stage_triggers SET last_fired = $1
			WHERE stage_id = $2 AND kind = $3 AND rule = $4 AND (last_fired IS NULL OR last_fired < $1)`,
			ts(at), stageID, kind, rule)
		if err != nil {
			return err
		}
		if claimed = tag.RowsAffected() == 1; claimed {
			return nil
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM stage_triggers WHERE stage_id = $1 AND kind = $2`, stageID, kind)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s trigger of stage %d: %w", kind, stageID, ci.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("claim trigger fire: %w", err)
	}
	return claimed, nil
}

// SwapTriggerRepo records a poll of a repo trigger when its state is still prev.
func (s *Store) SwapTriggerRepo(ctx context.Context, stageID int64, rule, prev, next string, checked, fired time.Time) (bool, error) {
	var swapped bool
	err := s.write(ctx, func(tx querier) error {
		var firedArg *time.Time
		if !fired.IsZero() {
			f := ts(fired)
			firedArg = &f
		}
		tag, err := tx.Exec(ctx, `UPDATE stage_triggers SET repo = $1, checked = $2, last_fired = coalesce($3, last_fired)
			WHERE stage_id = $4 AND kind = 'repo' AND rule = $5 AND repo = $6`,
			next, ts(checked), firedArg, stageID, rule, prev)
		if err != nil {
			return err
		}
		if swapped = tag.RowsAffected() == 1; swapped {
			return nil
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM stage_triggers WHERE stage_id = $1 AND kind = 'repo'`, stageID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("repo trigger of stage %d: %w", stageID, ci.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record repo poll: %w", err)
	}
	return swapped, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Planner triggers.

// ListPlannedStages returns every enabled stage, ordered by ID.
func (s *Store) ListPlannedStages(ctx context.Context) ([]ci.Stage, error) {
	out, err := queryAll(ctx, s.r, scanStage, `SELECT `+stageCols+` FROM stages WHERE enabled = 1 ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list planned stages: %w", err)
	}
	return out, nil
}

// StagesVersion changes when a stage is applied or deleted.
func (s *Store) StagesVersion(ctx context.Context) (string, error) {
	var rev int64
	err := s.r.QueryRowContext(ctx, `SELECT rev FROM stages_revision WHERE id = 1`).Scan(&rev)
	if err != nil {
		return "", fmt.Errorf("stages version: %w", err)
	}
	return fmt.Sprint(rev), nil
}

const triggerCols = `stage_id, kind, rule, since, last_fired, repo, checked`

func scanTrigger(sc scanner) (store.TriggerState, error) {
	var t store.TriggerState
	var since int64
	var fired, checked sql.NullInt64
	if err := sc.Scan(&t.StageID, &t.Kind, &t.Rule, &since, &fired, &t.Repo, &checked); err != nil {
		return t, err
	}
	t.Since = fromMS(since)
	if fired.Valid {
		t.LastFired = fromMS(fired.Int64)
	}
	if checked.Valid {
		t.Checked = fromMS(checked.Int64)
	}
	return t, nil
}

// EnsureTrigger returns the trigger state, creating or restarting it.
func (s *Store) EnsureTrigger(ctx context.Context, stageID int64, kind, rule string, now time.Time) (store.TriggerState, error) {
	if kind == "" || rule == "" {
		return store.TriggerState{}, fmt.Errorf("ensure trigger: kind and rule are required: %w", ci.ErrInvalid)
	}
	var out store.TriggerState
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM stages WHERE id = ?`, stageID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("stage %d: %w", stageID, ci.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO stage_triggers (stage_id, kind, rule, since) VALUES (?, ?, ?, ?)
			ON CONFLICT (stage_id, kind) DO UPDATE SET rule = excluded.rule, since = excluded.since, repo = '', checked = NULL
			WHERE stage_triggers.rule <> excluded.rule`, stageID, kind, rule, ms(now)); err != nil {
			return err
		}
		out, err = scanTrigger(tx.QueryRowContext(ctx, `SELECT `+triggerCols+` FROM stage_triggers WHERE stage_id = ? AND kind = ?`, stageID, kind))
		return err
	})
	if err != nil {
		return store.TriggerState{}, fmt.Errorf("ensure %s trigger of stage %d: %w", kind, stageID, err)
	}
	return out, nil
}

// DropTriggers deletes the stage's trigger states of kinds not in keep.
func (s *Store) DropTriggers(ctx context.Context, stageID int64, keep []string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT kind FROM stage_triggers WHERE stage_id = ?`, stageID)
		if err != nil {
			return err
		}
		var drop []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			if !slices.Contains(keep, k) {
				drop = append(drop, k)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, k := range drop {
			if _, err := tx.ExecContext(ctx, `DELETE FROM stage_triggers WHERE stage_id = ? AND kind = ?`, stageID, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop triggers of stage %d (keep %s): %w", stageID, strings.Join(keep, ","), err)
	}
	return nil
}

// ListTriggerStates returns the trigger states of a branch (0: all).
func (s *Store) ListTriggerStates(ctx context.Context, branchID int64) ([]store.TriggerState, error) {
	q := `SELECT ` + prefixCols("t.", triggerCols) + ` FROM stage_triggers t JOIN stages s ON s.id = t.stage_id`
	var args []any
	if branchID != 0 {
		q += ` WHERE s.branch_id = ?`
		args = append(args, branchID)
	}
	out, err := queryAll(ctx, s.r, scanTrigger, q+` ORDER BY t.stage_id, t.kind`, args...)
	if err != nil {
		return nil, fmt.Errorf("list trigger states: %w", err)
	}
	return out, nil
}

// ClaimTriggerFire records the fire of the scheduled instant at once.
func (s *Store) ClaimTriggerFire(ctx context.Context, stageID int64, kind, rule string, at time.Time) (bool, error) {
	var claimed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE stage_triggers SET last_fired = ?
			WHERE stage_id = ? AND kind = ? AND rule = ? AND (last_fired IS NULL OR last_fired < ?)`,
			ms(at), stageID, kind, rule, ms(at))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if claimed = n == 1; claimed {
			return nil
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM stage_triggers WHERE stage_id = ? AND kind = ?`, stageID, kind)
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		var firedArg sql.NullInt64
		if !fired.IsZero() {
			firedArg = sql.NullInt64{Int64: ms(fired), Valid: true}
		}
		res, err := tx.ExecContext(ctx, `UPDATE stage_triggers SET repo = ?, checked = ?, last_fired = coalesce(?, last_fired)
			WHERE stage_id = ? AND kind = 'repo' AND rule = ? AND repo = ?`,
			next, ms(checked), firedArg, stageID, rule, prev)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if swapped = n == 1; swapped {
			return nil
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM stage_triggers WHERE stage_id = ? AND kind = 'repo'`, stageID)
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

// prefixCols qualifies each of the comma-separated columns with prefix.
func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

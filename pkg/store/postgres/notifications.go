package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
)

// Notifications.

// ClaimNotification inserts the notification in state sending unless it
// exists. A concurrent claim of the same one waits for the first one's
// commit and then inserts nothing.
func (s *Store) ClaimNotification(ctx context.Context, n ci.Notification) (bool, error) {
	runID := n.RunID
	now := s.now()
	claimed := false
	err := s.write(ctx, func(tx querier) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM runs WHERE id = $1 FOR KEY SHARE`, runID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("run %d: %w", runID, ci.ErrNotFound)
		}
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO run_notifications (run_id, event, round, channel, state, created, updated)
			VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (run_id, event, round, channel) DO NOTHING RETURNING id`,
			runID, string(n.Event), n.Round, n.Channel, string(ci.NotifySending), now).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		claimed = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claim %s notification %s of run %d: %w", n.Channel, n.Event, runID, err)
	}
	return claimed, nil
}

// SetNotificationResult stores how a notification went.
func (s *Store) SetNotificationResult(ctx context.Context, n ci.Notification) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE run_notifications SET state = $1, message = $2, updated = $3
			WHERE run_id = $4 AND event = $5 AND round = $6 AND channel = $7`, string(n.State), n.Message, s.now(), n.RunID, string(n.Event), n.Round, n.Channel)
		if err != nil {
			return err
		}
		return mustAffect(tag, "notification of run", n.RunID)
	})
	if err != nil {
		return fmt.Errorf("set %s notification %s result: %w", n.Channel, n.Event, err)
	}
	return nil
}

// ListNotifications returns the run's notifications, oldest first.
func (s *Store) ListNotifications(ctx context.Context, runID int64) ([]ci.Notification, error) {
	rows, err := s.q().Query(ctx, `SELECT run_id, event, round, channel, state, message, created, updated
		FROM run_notifications WHERE run_id = $1 ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	defer rows.Close()
	out := []ci.Notification{}
	for rows.Next() {
		var n ci.Notification
		var event, state string
		if err := rows.Scan(&n.RunID, &event, &n.Round, &n.Channel, &state, &n.Message, &n.Created, &n.Updated); err != nil {
			return nil, fmt.Errorf("list notifications: %w", err)
		}
		n.Event, n.State = ci.NotifyEvent(event), ci.NotifyState(state)
		n.Created, n.Updated = ts(n.Created), ts(n.Updated)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return out, nil
}

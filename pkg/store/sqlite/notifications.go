package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
)

// Notifications.

// ClaimNotification inserts the notification in state sending unless it
// exists.
func (s *Store) ClaimNotification(ctx context.Context, n ci.Notification) (bool, error) {
	runID := n.RunID
	now := ms(s.now())
	claimed := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM runs WHERE id = ?`, runID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("run %d: %w", runID, ci.ErrNotFound)
		}
		var id int64
		err = tx.QueryRowContext(ctx, `INSERT INTO run_notifications (run_id, event, round, channel, state, created, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, event, round, channel) DO NOTHING RETURNING id`,
			runID, string(n.Event), n.Round, n.Channel, string(ci.NotifySending), now, now).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE run_notifications SET state = ?, message = ?, updated = ?
			WHERE run_id = ? AND event = ? AND round = ? AND channel = ?`, string(n.State), n.Message, ms(s.now()), n.RunID, string(n.Event), n.Round, n.Channel)
		if err != nil {
			return err
		}
		return mustAffect(res, "notification of run", n.RunID)
	})
	if err != nil {
		return fmt.Errorf("set %s notification %s result: %w", n.Channel, n.Event, err)
	}
	return nil
}

// ListNotifications returns the run's notifications, oldest first.
func (s *Store) ListNotifications(ctx context.Context, runID int64) ([]ci.Notification, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT run_id, event, round, channel, state, message, created, updated
		FROM run_notifications WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	defer rows.Close()
	out := []ci.Notification{}
	for rows.Next() {
		var n ci.Notification
		var created, updated int64
		if err := rows.Scan(&n.RunID, &n.Event, &n.Round, &n.Channel, &n.State, &n.Message, &created, &updated); err != nil {
			return nil, fmt.Errorf("list notifications: %w", err)
		}
		n.Created, n.Updated = fromMS(created), fromMS(updated)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return out, nil
}

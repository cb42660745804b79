package store

import (
	"context"

	"github.com/kraken-go/kk/pkg/ci"
)

// NotificationStore records the notifications sent about runs. They are
// deleted with their run.
type NotificationStore interface {
	// ClaimNotification records that this replica sends the notification
	// n (its RunID, Event, Round and Channel; state sending) and reports
	// true; false when it was claimed before (by any replica), atomically.
	// ErrNotFound if the run does not exist.
	ClaimNotification(ctx context.Context, n ci.Notification) (bool, error)
	// SetNotificationResult stores how the claimed notification n went
	// (n.State and n.Message). ErrNotFound if it was not claimed.
	SetNotificationResult(ctx context.Context, n ci.Notification) error
	// ListNotifications returns the run's notifications, oldest first.
	ListNotifications(ctx context.Context, runID int64) ([]ci.Notification, error)
}

package store

import (
	"context"

	"github.com/kraken-go/kk/pkg/ci"
)

// NotificationStore records the notifications sent about runs. They are
// deleted with their run.
type NotificationStore interface {
	// ClaimNotification records that this replica sends the run's
	// notification of event on channel (state sending) and reports true;
	// false when it was claimed before (by any replica), atomically.
	// ErrNotFound if the run does not exist.
	ClaimNotification(ctx context.Context, runID int64, event ci.NotifyEvent, channel string) (bool, error)
	// SetNotificationResult stores how a claimed notification went (state
	// sent or failed, and a message). ErrNotFound if it was not claimed.
	SetNotificationResult(ctx context.Context, runID int64, event ci.NotifyEvent, channel string, state ci.NotifyState, message string) error
	// ListNotifications returns the run's notifications, oldest first.
	ListNotifications(ctx context.Context, runID int64) ([]ci.Notification, error)
}

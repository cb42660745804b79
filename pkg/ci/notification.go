package ci

import "time"

// NotifyEvent is when kkd notifies about a run.
type NotifyEvent string

// The notification events: the run started (its jobs were queued) and the
// run ended (completed and its results analysed).
const (
	NotifyStart NotifyEvent = "start"
	NotifyEnd   NotifyEvent = "end"
)

// NotifyState is how a notification went.
type NotifyState string

// The notification states. A notification stays "sending" when the kkd that
// sent it stopped meanwhile (notifications are sent at most once).
const (
	NotifySending NotifyState = "sending"
	NotifySent    NotifyState = "sent"
	NotifyFailed  NotifyState = "failed"
	// NotifySkipped: nothing to send (e.g. a commit status for a flow that
	// no commit triggered); Message says why.
	NotifySkipped NotifyState = "skipped"
)

// Notification records one notification about a run on one channel (email,
// slack, discord, github).
type Notification struct {
	RunID   int64       `json:"run_id"`
	Event   NotifyEvent `json:"event"`
	Channel string      `json:"channel"`
	// Round tells the ends of a run apart (a rerun ends it again): the run's
	// finish time in Unix ms for event end, 0 for start.
	Round int64       `json:"round"`
	State NotifyState `json:"state"`
	// Message says what was sent, or why it failed.
	Message string    `json:"message,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Package leader runs work that only one kkd replica may do at a time: the
// watchdog (lease and timeout enforcement) and, as they come, the planner
// and the start sweeps of the log archiver and the results analyzer.
// Dispatch and the HTTP API run on every replica.
package leader

import (
	"context"
	"log/slog"
	"time"
)

// Elector runs leader-only work.
//
// Run calls fn whenever this replica holds leadership, with a ctx that is
// cancelled when leadership is lost (or when Run's ctx is done); fn must
// return soon after its ctx is done. fn is never called twice at once. When
// fn returns while leadership is still held (an error, or nil), the elector
// gives leadership up and campaigns again after a retry interval, so another
// replica may take over. Run returns nil once ctx is done and fn has
// returned.
//
// Implementations guarantee that, as long as replicas' clocks run at the same
// rate, two replicas never run fn at the same time.
type Elector interface {
	Run(ctx context.Context, fn func(ctx context.Context) error) error
}

// DefaultRetry is how long Always waits before calling fn again after it
// failed.
const DefaultRetry = 2 * time.Second

// Always is the elector of a single kkd (SQLite): it always leads.
type Always struct {
	Logger *slog.Logger
	// Retry is the wait before fn is called again after it returned early
	// (default DefaultRetry).
	Retry time.Duration
}

// Run calls fn until ctx is done, again after Retry when it returns early.
func (a Always) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	retry := a.Retry
	if retry <= 0 {
		retry = DefaultRetry
	}
	for {
		err := fn(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if a.Logger != nil {
			a.Logger.Error("leader work stopped; restarting it", "err", err, "retry_in", retry)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Package watchdog enforces leases and timeouts on the server side:
//
//   - a job whose agent stopped renewing its lease (the agent died or lost its
//     network) fails its attempt through engine.FailAttempt, which requeues it
//     for another attempt under the engine's retry policy or fails it with
//     result agent_lost; the store checks in the same transaction that the
//     lease is still expired, so a heartbeat that lands between the check and
//     the requeue wins; the old attempt is fenced out by the store, so its
//     agent's late writes are rejected and it stops;
//   - a cancel (stored with the job, so it survives a restart of kkd) that
//     the agent did not confirm within CancelGrace is completed by the server;
//   - a job running past its timeout plus TimeoutGrace (its agent failed to
//     enforce it) completes with result server_timeout.
//
// On Start every active job's lease is extended by RestartGrace (two lease
// periods by default), so agents, whose reconnect backoff is capped at 30 s,
// get time to reconnect after a kkd restart before their jobs are requeued.
package watchdog

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/store"
)

// Config of a Watchdog.
type Config struct {
	Store      store.Store
	Engine     *engine.Engine
	Dispatcher *scheduler.Dispatcher
	Logger     *slog.Logger
	Now        func() time.Time
	// Interval between checks (default 1 s).
	Interval time.Duration
	// CancelGrace before the server completes an unconfirmed cancel (default 15 s).
	CancelGrace time.Duration
	// TimeoutGrace past a job's timeout before the server fails it (default 60 s).
	TimeoutGrace time.Duration
	// RestartGrace is how long after Start the leases of active jobs last
	// (default: two lease periods).
	RestartGrace time.Duration
}

// Watchdog runs the checks.
type Watchdog struct {
	cfg  Config
	done chan struct{}
}

// New returns a watchdog with defaults filled in.
func New(cfg Config) *Watchdog {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.CancelGrace <= 0 {
		cfg.CancelGrace = 15 * time.Second
	}
	if cfg.TimeoutGrace <= 0 {
		cfg.TimeoutGrace = 60 * time.Second
	}
	if cfg.RestartGrace <= 0 {
		cfg.RestartGrace = 2 * cfg.Dispatcher.Lease()
	}
	return &Watchdog{cfg: cfg, done: make(chan struct{})}
}

// Start extends active leases by RestartGrace, then checks every Interval
// until ctx is done.
func (w *Watchdog) Start(ctx context.Context) error {
	active, err := w.cfg.Store.ListActiveJobs(ctx)
	if err != nil {
		return err
	}
	until := w.cfg.Now().Add(w.cfg.RestartGrace)
	for _, j := range active {
		if j.LeaseUntil != nil && j.LeaseUntil.After(until) {
			continue
		}
		if _, err := w.cfg.Store.RenewLease(ctx, j.ID, j.Attempt, until); err != nil {
			w.cfg.Logger.Warn("extend lease at start", "job_id", j.ID, "err", err)
		}
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.Check(ctx)
			}
		}
	}()
	return nil
}

// Done is closed when the loop has stopped.
func (w *Watchdog) Done() <-chan struct{} { return w.done }

// Check runs every check once.
func (w *Watchdog) Check(ctx context.Context) {
	now := w.cfg.Now().UTC()
	w.checkLeases(ctx, now)
	w.checkActive(ctx, now)
}

func (w *Watchdog) checkLeases(ctx context.Context, now time.Time) {
	expired, err := w.cfg.Store.ListExpiredJobs(ctx, now)
	if err != nil {
		w.logErr(ctx, "list expired jobs", err)
		return
	}
	for _, j := range expired {
		_, _, err := w.cfg.Engine.FailAttempt(ctx, j.ID, j.Attempt, engine.LeaseExpired, "")
		if err != nil && !errors.Is(err, ci.ErrStaleAttempt) && !errors.Is(err, ci.ErrNotFound) {
			// Stale or gone: the attempt ended otherwise since the list.
			w.logErr(ctx, "fail lost job attempt", err, "job_id", j.ID, "attempt", j.Attempt)
		}
	}
}

// checkActive completes the active jobs whose cancel the agent did not
// confirm within CancelGrace and those running past their timeout plus
// TimeoutGrace. Both completions are fenced by the attempt the check saw.
func (w *Watchdog) checkActive(ctx context.Context, now time.Time) {
	active, err := w.cfg.Store.ListActiveJobs(ctx)
	if err != nil {
		w.logErr(ctx, "list active jobs", err)
		return
	}
	for _, j := range active {
		var result ci.JobResult
		var msg string
		start := j.Started
		if start == nil {
			start = j.Assigned
		}
		switch {
		case j.CancelRequested != nil && now.Sub(*j.CancelRequested) > w.cfg.CancelGrace:
			result, msg = ci.JobCancelled, "cancelled by user; the agent did not confirm in time"
		case start != nil && j.Timeout > 0 && now.Sub(*start) > time.Duration(j.Timeout)*time.Second+w.cfg.TimeoutGrace:
			result, msg = ci.JobServerTimeout, "job ran past its timeout and its agent did not stop it"
		default:
			continue
		}
		if _, err := w.cfg.Engine.CompleteJob(ctx, j.ID, j.Attempt, result, msg); err != nil &&
			!errors.Is(err, ci.ErrStaleAttempt) && !errors.Is(err, ci.ErrNotFound) {
			w.logErr(ctx, "complete job", err, "job_id", j.ID, "result", result)
		}
	}
}

func (w *Watchdog) logErr(ctx context.Context, msg string, err error, args ...any) {
	if ctx.Err() == nil {
		w.cfg.Logger.Error(msg, append(args, "err", err)...)
	}
}

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
//     enforce it) completes with result server_timeout;
//   - a run in progress for longer than its run timeout (the schema's
//     top-level timeout key, default 3 h) gets its unfinished jobs cancelled
//     with the reason "run timeout of N s exceeded" (checked every
//     RunInterval).
//
// On Start every active job's lease is extended by RestartGrace (two lease
// periods by default), so agents, whose reconnect backoff is capped at 30 s,
// get time to reconnect after a kkd restart before their jobs are requeued.
//
// A database outage is handled the same way: while the database is
// unreachable (Config.Health says so, or a check of the watchdog failed with
// ci.ErrUnavailable) no lease is judged, since heartbeats could not be
// recorded; once it is reachable again, before any lease is judged, every
// active job's lease is extended to OutageGrace from then, so agents, which
// retry their heartbeats with backoff, renew them before jobs are requeued.
// The outage is logged by the Health monitor, not once per check.
package watchdog

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/dbhealth"
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
	// OutageGrace is how long after a database outage ends the leases of
	// active jobs last (default: RestartGrace).
	OutageGrace time.Duration
	// RunInterval is how often runs are checked against their run timeout
	// (default 30 s).
	RunInterval time.Duration
	// Health reports database outages (nil: the watchdog only notices those
	// its own checks run into).
	Health *dbhealth.Monitor
}

// Watchdog runs the checks.
type Watchdog struct {
	cfg  Config
	done chan struct{}

	// Owned by Check's goroutine.
	recoveries uint64    // Health's Recoveries when last looked at
	outage     bool      // leases are not to be judged until extended
	lastRuns   time.Time // when run timeouts were last checked
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
	if cfg.OutageGrace <= 0 {
		cfg.OutageGrace = cfg.RestartGrace
	}
	if cfg.RunInterval <= 0 {
		cfg.RunInterval = 30 * time.Second
	}
	return &Watchdog{cfg: cfg, done: make(chan struct{})}
}

// Start extends active leases by RestartGrace, then checks every Interval
// until ctx is done.
func (w *Watchdog) Start(ctx context.Context) error {
	w.recoveries = w.cfg.Health.State().Recoveries
	if err := w.extendLeases(ctx, w.cfg.Now().Add(w.cfg.RestartGrace), "start"); err != nil {
		return err
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

// extendLeases makes every active job's lease last at least until until.
// It fails only when the active jobs cannot be listed.
func (w *Watchdog) extendLeases(ctx context.Context, until time.Time, why string) error {
	active, err := w.cfg.Store.ListActiveJobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range active {
		if j.LeaseUntil != nil && j.LeaseUntil.After(until) {
			continue
		}
		if _, err := w.cfg.Store.RenewLease(ctx, j.ID, j.Attempt, until); err != nil &&
			!errors.Is(err, ci.ErrStaleAttempt) && !errors.Is(err, ci.ErrNotFound) {
			if errors.Is(err, ci.ErrUnavailable) {
				return err
			}
			w.cfg.Logger.Warn("extend lease after "+why, "job_id", j.ID, "err", err)
		}
	}
	return nil
}

// Check runs every check once.
func (w *Watchdog) Check(ctx context.Context) {
	now := w.cfg.Now().UTC()
	if w.leasesJudgeable(ctx, now) {
		w.checkLeases(ctx, now)
	}
	w.checkActive(ctx, now)
	w.checkRuns(ctx, now)
}

// leasesJudgeable reports whether expired leases may be acted on: not during
// a database outage, and after one only once every active lease has been
// extended by OutageGrace.
func (w *Watchdog) leasesJudgeable(ctx context.Context, now time.Time) bool {
	st := w.cfg.Health.State()
	if !st.Up {
		w.outage = true
		return false
	}
	if st.Recoveries != w.recoveries {
		w.recoveries = st.Recoveries
		w.outage = true
	}
	if !w.outage {
		return true
	}
	if err := w.extendLeases(ctx, now.Add(w.cfg.OutageGrace), "a database outage"); err != nil {
		w.logErr(ctx, "extend leases after a database outage", err)
		return false
	}
	w.outage = false
	w.cfg.Logger.Info("database outage over: extended the leases of active jobs so their agents can renew them",
		"grace", w.cfg.OutageGrace)
	return true
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

// logErr logs a failed check. A database outage is not logged here (the
// Health monitor logs it once) but stops lease judgement until it is over.
func (w *Watchdog) logErr(ctx context.Context, msg string, err error, args ...any) {
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, ci.ErrUnavailable) {
		w.outage = true
		if !w.cfg.Health.Report(err) {
			w.cfg.Logger.Debug(msg, append(args, "err", err)...)
		}
		return
	}
	w.cfg.Logger.Error(msg, append(args, "err", err)...)
}

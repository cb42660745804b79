// Package watchdog enforces leases and timeouts on the server side:
//
//   - a job whose agent stopped renewing its lease (the agent died or lost its
//     network) is requeued for another attempt, up to MaxAttempts, then failed
//     with result agent_lost; the old attempt is fenced out by the store, so its
//     agent's late writes are rejected and it stops;
//   - a cancel the agent did not confirm within CancelGrace is completed by
//     the server;
//   - a job running past its timeout plus TimeoutGrace (its agent failed to
//     enforce it) completes with result server_timeout.
//
// On Start every active job's lease is extended by one lease period, so agents
// get time to reconnect after a kkd restart before their jobs are requeued.
package watchdog

import (
	"context"
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
	// MaxAttempts a job gets when its agent is lost (default 3: two retries).
	MaxAttempts int
	// CancelGrace before the server completes an unconfirmed cancel (default 15 s).
	CancelGrace time.Duration
	// TimeoutGrace past a job's timeout before the server fails it (default 60 s).
	TimeoutGrace time.Duration
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
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.CancelGrace <= 0 {
		cfg.CancelGrace = 15 * time.Second
	}
	if cfg.TimeoutGrace <= 0 {
		cfg.TimeoutGrace = 60 * time.Second
	}
	return &Watchdog{cfg: cfg, done: make(chan struct{})}
}

// Start extends active leases, then checks every Interval until ctx is done.
func (w *Watchdog) Start(ctx context.Context) error {
	active, err := w.cfg.Store.ListActiveJobs(ctx)
	if err != nil {
		return err
	}
	until := w.cfg.Now().Add(w.cfg.Dispatcher.Lease())
	for _, j := range active {
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
	w.checkCancels(ctx, now)
	w.checkTimeouts(ctx, now)
}

func (w *Watchdog) checkLeases(ctx context.Context, now time.Time) {
	expired, err := w.cfg.Store.ListExpiredJobs(ctx, now)
	if err != nil {
		w.logErr(ctx, "list expired jobs", err)
		return
	}
	for _, j := range expired {
		log := w.cfg.Logger.With("job_id", j.ID, "attempt", j.Attempt, "agent_id", j.AgentID)
		if _, cancelling := w.cfg.Engine.CancelRequested(j.ID); cancelling || j.Attempt >= w.cfg.MaxAttempts {
			msg := "agent lost contact and the job has no attempts left"
			result := ci.JobAgentLost
			if cancelling {
				msg, result = "cancelled by user; the agent lost contact", ci.JobCancelled
			}
			if _, err := w.cfg.Engine.CompleteJob(ctx, j.ID, j.Attempt, result, msg); err != nil {
				log.Warn("fail lost job", "err", err)
				continue
			}
			log.Warn("agent lost: job failed", "result", result)
			continue
		}
		changed, err := w.cfg.Store.RequeueJob(ctx, j.ID, j.Attempt)
		if err != nil {
			log.Warn("requeue lost job", "err", err)
			continue
		}
		if changed {
			log.Warn("agent lost: job requeued for another attempt")
			w.cfg.Engine.JobRequeued(j.ID)
		}
	}
}

func (w *Watchdog) checkCancels(ctx context.Context, now time.Time) {
	for _, id := range w.cfg.Engine.PendingCancels(now.Add(-w.cfg.CancelGrace)) {
		if _, err := w.cfg.Engine.CompleteJob(ctx, id, 0, ci.JobCancelled, "cancelled by user; the agent did not confirm in time"); err != nil {
			w.logErr(ctx, "complete unconfirmed cancel", err)
		}
	}
}

func (w *Watchdog) checkTimeouts(ctx context.Context, now time.Time) {
	active, err := w.cfg.Store.ListActiveJobs(ctx)
	if err != nil {
		w.logErr(ctx, "list active jobs", err)
		return
	}
	for _, j := range active {
		start := j.Started
		if start == nil {
			start = j.Assigned
		}
		if start == nil || j.Timeout <= 0 {
			continue
		}
		if now.Sub(*start) > time.Duration(j.Timeout)*time.Second+w.cfg.TimeoutGrace {
			if _, err := w.cfg.Engine.CompleteJob(ctx, j.ID, 0, ci.JobServerTimeout, "job ran past its timeout and its agent did not stop it"); err != nil {
				w.logErr(ctx, "time out job", err)
			}
		}
	}
}

func (w *Watchdog) logErr(ctx context.Context, msg string, err error) {
	if ctx.Err() == nil {
		w.cfg.Logger.Error(msg, "err", err)
	}
}

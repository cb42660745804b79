// Package scheduler hands queued jobs to waiting agents.
//
// Idle agents hold a long-poll (Wait). One dispatcher goroutine matches queued
// jobs, in FIFO order, to waiting agents whenever something changes (a job is
// queued, an agent starts waiting, an agent's groups change) — there is no
// fixed-interval polling. Claims go through store.ClaimJob, which is atomic, so
// a job is never given to two agents even with several dispatchers.
//
// Matching rules (Kraken's, plus capability checks): the job's agents group must
// be one of the agent's groups; for the local executor the job's system must be
// "any" or equal the agent's system; for docker and lxd the agent must have that
// executor.
package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Config of a Dispatcher.
type Config struct {
	Store  store.Store
	Logger *slog.Logger
	// Lease is the lease given with each claim (default 30 s).
	Lease time.Duration
	// Batch is how many queued jobs one matching pass looks at (default 1000).
	Batch int
}

// Dispatcher matches queued jobs to waiting agents.
type Dispatcher struct {
	cfg     Config
	mu      sync.Mutex
	waiters map[int64]*waiter // by agent id
	kick    chan struct{}
	done    chan struct{}
}

type waiter struct {
	agent ci.Agent
	got   chan ci.Job // buffered(1): the dispatcher never blocks on it
}

// New returns a dispatcher; call Start to run it.
func New(cfg Config) *Dispatcher {
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	return &Dispatcher{cfg: cfg, waiters: make(map[int64]*waiter), kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// Lease returns the lease duration given with claims.
func (d *Dispatcher) Lease() time.Duration { return d.cfg.Lease }

// Start runs the matching loop until ctx is done.
func (d *Dispatcher) Start(ctx context.Context) {
	go func() {
		defer close(d.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.kick:
				d.match(ctx)
			}
		}
	}()
	d.Kick()
}

// Wait blocks until a job is claimed for the agent or ctx is done. The job is
// returned with its steps. ok is false when ctx ended first.
func (d *Dispatcher) Wait(ctx context.Context, agent ci.Agent) (job ci.Job, ok bool) {
	w := &waiter{agent: agent, got: make(chan ci.Job, 1)}
	d.mu.Lock()
	if old := d.waiters[agent.ID]; old != nil {
		// A newer long-poll from the same agent replaces the old one; the old
		// request returns empty (the agent abandoned it).
		close(old.got)
	}
	d.waiters[agent.ID] = w
	d.mu.Unlock()
	d.Kick()
	select {
	case j, open := <-w.got:
		return j, open
	case <-ctx.Done():
		d.mu.Lock()
		if d.waiters[agent.ID] == w {
			delete(d.waiters, agent.ID)
		}
		d.mu.Unlock()
		// The dispatcher may have claimed a job for us just now; it is in the
		// buffered channel and must not be dropped.
		select {
		case j, open := <-w.got:
			return j, open
		default:
			return ci.Job{}, false
		}
	}
}

// Kick asks for a matching pass (after a job was queued, for example). It never blocks.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Refresh updates the cached agent of a waiting agent (groups, disabled) and
// drops the waiter when the agent may no longer get work.
func (d *Dispatcher) Refresh(agent ci.Agent) {
	d.mu.Lock()
	if w := d.waiters[agent.ID]; w != nil {
		if !agent.Authorized || agent.Disabled {
			delete(d.waiters, agent.ID)
			close(w.got)
		} else {
			w.agent = agent
		}
	}
	d.mu.Unlock()
	d.Kick()
}

// Waiting returns how many agents hold a long-poll.
func (d *Dispatcher) Waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waiters)
}

func (d *Dispatcher) match(ctx context.Context) {
	d.mu.Lock()
	n := len(d.waiters)
	d.mu.Unlock()
	if n == 0 {
		return
	}
	jobs, err := d.cfg.Store.ListQueuedJobs(ctx, d.cfg.Batch)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Error("list queued jobs", "err", err)
		}
		return
	}
	for _, j := range jobs {
		d.mu.Lock()
		w := d.pick(j)
		if w != nil {
			// Take the waiter out before the claim so a concurrent Wait timeout
			// sees it gone; on failure it is put back.
			delete(d.waiters, w.agent.ID)
		}
		d.mu.Unlock()
		if w == nil {
			continue
		}
		claimed, err := d.cfg.Store.ClaimJob(ctx, j.ID, w.agent.ID, d.cfg.Lease)
		if err != nil {
			d.mu.Lock()
			if _, taken := d.waiters[w.agent.ID]; !taken {
				d.waiters[w.agent.ID] = w
			}
			d.mu.Unlock()
			if !errors.Is(err, ci.ErrConflict) && ctx.Err() == nil {
				d.cfg.Logger.Error("claim job", "job_id", j.ID, "agent_id", w.agent.ID, "err", err)
			}
			continue
		}
		d.cfg.Logger.Info("job assigned", "job_id", claimed.ID, "attempt", claimed.Attempt, "agent_id", w.agent.ID, "agent", w.agent.Name)
		w.got <- claimed
		d.mu.Lock()
		n = len(d.waiters)
		d.mu.Unlock()
		if n == 0 {
			return
		}
	}
}

// pick chooses a waiting agent for job j (d.mu held): the one that has waited
// longest is not tracked, so pick the lowest id for determinism.
func (d *Dispatcher) pick(j ci.Job) *waiter {
	var best *waiter
	for _, w := range d.waiters {
		if Matches(w.agent, j) && (best == nil || w.agent.ID < best.agent.ID) {
			best = w
		}
	}
	return best
}

// Matches reports whether agent may run job.
func Matches(a ci.Agent, j ci.Job) bool {
	if !a.Authorized || a.Disabled {
		return false
	}
	if !slices.Contains(a.Groups, j.Group) {
		return false
	}
	executor := j.Executor
	if executor == "" {
		executor = ci.ExecutorLocal
	}
	if !slices.Contains(a.HostInfo.Executors(), executor) {
		return false
	}
	if executor == ci.ExecutorLocal && j.System != ci.SystemAny && j.System != a.HostInfo.System {
		return false
	}
	return true
}

// Package scheduler hands queued jobs to waiting agents.
//
// Idle agents hold a long-poll (Wait). One dispatcher goroutine matches queued
// jobs, in FIFO order, to waiting agents whenever something changes (a job is
// queued, an agent starts waiting, an agent's groups change) — there is no
// fixed-interval polling. A matching pass pairs queued jobs with all the
// waiting agents at once and claims the pairs in one store.ClaimJobs call (one
// transaction); each claim is conditional, so a job is never given to two
// agents even with several dispatchers.
//
// Matching rules (Kraken's, plus capability checks): the job's agents group must
// be one of the agent's groups; for the local executor the job's system must be
// "any" or equal the agent's system; for docker and lxd the agent must have that
// executor.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/dbhealth"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/store"
)

// Config of a Dispatcher.
type Config struct {
	Store  store.Store
	Logger *slog.Logger
	// Lease is the lease given with each claim (default 30 s).
	Lease time.Duration
	// Batch is how many queued jobs one read of the queue returns (default
	// 1000); a matching pass reads further pages while agents wait.
	Batch int
	// Hub, when set, carries kicks between kkd replicas: Kick also signals
	// notify.DispatchKey on the other replicas (Hub.Forward), and a signal of
	// that key from another replica (or a bridge's catch-up wake-up) runs a
	// matching pass here.
	Hub *notify.Hub
}

// Dispatcher matches queued jobs to waiting agents.
type Dispatcher struct {
	cfg     Config
	mu      sync.Mutex
	waiters map[int64]*waiter // by agent id; a waiter being claimed for is not here
	// claiming holds, by agent id, the waiters the dispatcher is claiming a
	// job for; there is one matching goroutine, and it claims for each agent
	// at most once per batch.
	claiming map[int64]*waiter
	kick     chan struct{}
	done     chan struct{}
}

// waiter is one Wait call. Its channel receives exactly one job or is closed,
// never both, and the dispatcher never blocks on it.
type waiter struct {
	agent ci.Agent
	got   chan ci.Job // buffered(1)
	// Set under Dispatcher.mu while the waiter is being claimed for:
	abandoned  bool // its Wait's ctx ended; the Wait blocks until the claim resolves
	superseded bool // a newer Wait of the agent, or a Refresh that took its work away
}

// New returns a dispatcher; call Start to run it.
func New(cfg Config) *Dispatcher {
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	return &Dispatcher{cfg: cfg, waiters: make(map[int64]*waiter), claiming: make(map[int64]*waiter), kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// Lease returns the lease duration given with claims.
func (d *Dispatcher) Lease() time.Duration { return d.cfg.Lease }

// Done is closed when the matching loop started by Start has returned.
func (d *Dispatcher) Done() <-chan struct{} { return d.done }

// Start runs the matching loop until ctx is done.
func (d *Dispatcher) Start(ctx context.Context) {
	var remote <-chan struct{} // nil without a hub: never ready
	unsubscribe := func() {}
	if d.cfg.Hub != nil {
		remote, unsubscribe = d.cfg.Hub.Subscribe(notify.DispatchKey)
	}
	go func() {
		defer close(d.done)
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.kick:
				d.match(ctx)
			case <-remote:
				d.match(ctx)
			}
		}
	}()
	d.poke()
}

// Wait blocks until a job is claimed for the agent or ctx is done. The job is
// returned with its steps. ok is false when ctx ended first, when a newer Wait
// of the same agent replaced this one, or when Refresh took the agent's work
// away.
//
// A job claimed for the agent is never lost: when ctx ends while the
// dispatcher is claiming a job for this Wait, Wait waits for the claim (one
// store call) and returns the job if the claim succeeded. When Wait returns
// ok=false, no job was claimed for it.
func (d *Dispatcher) Wait(ctx context.Context, agent ci.Agent) (job ci.Job, ok bool) {
	w := &waiter{agent: agent, got: make(chan ci.Job, 1)}
	d.mu.Lock()
	if old := d.waiters[agent.ID]; old != nil {
		// A newer long-poll from the same agent replaces the old one; the old
		// request returns empty (the agent abandoned it).
		close(old.got)
	}
	if c := d.claiming[agent.ID]; c != nil {
		// The job being claimed for the old request goes to this one.
		c.superseded = true
	}
	d.waiters[agent.ID] = w
	d.mu.Unlock()
	d.poke()
	select {
	case j, open := <-w.got:
		return j, open
	case <-ctx.Done():
	}
	d.mu.Lock()
	if d.claiming[agent.ID] == w {
		// A claim for us is in flight: its job must not be dropped. The
		// dispatcher sends it or closes the channel as soon as the claim ends.
		w.abandoned = true
		d.mu.Unlock()
		j, open := <-w.got
		return j, open
	}
	if d.waiters[agent.ID] == w {
		delete(d.waiters, agent.ID)
	}
	d.mu.Unlock()
	// Sends and closes happen under d.mu, so the channel now holds whatever
	// it will ever get.
	select {
	case j, open := <-w.got:
		return j, open
	default:
		return ci.Job{}, false
	}
}

// Kick asks for a matching pass after jobs were queued or requeued, here and
// (with Config.Hub) on the other replicas. It never blocks.
func (d *Dispatcher) Kick() {
	d.poke()
	if d.cfg.Hub != nil {
		d.cfg.Hub.Forward(notify.DispatchKey)
	}
}

// poke asks this dispatcher only for a matching pass (an agent started
// waiting or changed). It never blocks.
func (d *Dispatcher) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Refresh updates the cached agent of a waiting agent (groups, disabled) and
// ends its wait when the agent may no longer get work.
func (d *Dispatcher) Refresh(agent ci.Agent) {
	eligible := agent.Authorized && !agent.Disabled
	d.mu.Lock()
	if w := d.waiters[agent.ID]; w != nil {
		if !eligible {
			delete(d.waiters, agent.ID)
			close(w.got)
		} else {
			w.agent = agent
		}
	}
	if c := d.claiming[agent.ID]; c != nil {
		if !eligible {
			// The claim fails (the store checks) or wins the race; either way
			// the waiter is not put back.
			c.superseded = true
		} else {
			c.agent = agent
		}
	}
	d.mu.Unlock()
	d.poke()
}

// Waiting returns how many agents hold a long-poll.
func (d *Dispatcher) Waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waiters)
}

// match hands queued jobs to waiting agents, reading the queue a page of
// Config.Batch jobs at a time for as long as agents wait: a queue whose
// first pages nobody waiting can run does not hide the jobs after them.
func (d *Dispatcher) match(ctx context.Context) {
	var after *ci.Job
	for d.Waiting() > 0 {
		var page []ci.Job
		var err error
		if after == nil {
			page, err = d.cfg.Store.ListQueuedJobs(ctx, d.cfg.Batch)
		} else {
			page, err = d.cfg.Store.ListQueuedJobsAfter(ctx, after.RunID, after.ID, d.cfg.Batch)
		}
		if err != nil {
			if ctx.Err() == nil {
				d.cfg.Logger.Log(ctx, dbhealth.Level(err), "list queued jobs", "err", err)
				d.retryLater()
			}
			return
		}
		if len(page) == 0 {
			return
		}
		tail := page[len(page)-1]
		if !d.matchPage(ctx, page) || len(page) < d.cfg.Batch {
			return
		}
		after = &tail
	}
}

// matchPage hands the jobs of one page of the queue to waiting agents. It
// returns false when the store failed (a retry is scheduled).
func (d *Dispatcher) matchPage(ctx context.Context, jobs []ci.Job) bool {
	// Each round pairs queued jobs, in FIFO order, with waiting agents and
	// claims all the pairs in one store call; a waiter whose claim was
	// refused (the job went elsewhere) may get a later job in the next round.
	for len(jobs) > 0 {
		var batch []*waiter
		var claims []store.Claim
		rest := jobs[:0]
		d.mu.Lock()
		for i, j := range jobs {
			if len(d.waiters) == 0 {
				rest = append(rest, jobs[i:]...)
				break
			}
			w := d.pick(j)
			if w == nil {
				rest = append(rest, j)
				continue
			}
			// Take the waiter out during the claim; Wait, Refresh and a newer
			// Wait see it in d.claiming and leave the outcome to resolve.
			delete(d.waiters, w.agent.ID)
			d.claiming[w.agent.ID] = w
			batch = append(batch, w)
			claims = append(claims, store.Claim{JobID: j.ID, AgentID: w.agent.ID})
		}
		d.mu.Unlock()
		if len(claims) == 0 {
			return true
		}
		jobs = rest
		if !d.claim(ctx, batch, claims) {
			return false
		}
		if d.Waiting() == 0 {
			return true
		}
	}
	return true
}

// claim makes the claims of one batch (claims[i] for waiter batch[i]) and
// hands each claimed job to its waiter. It returns false when the store
// failed (the waiters were released and a retry is scheduled).
func (d *Dispatcher) claim(ctx context.Context, batch []*waiter, claims []store.Claim) bool {
	results, err := d.cfg.Store.ClaimJobs(ctx, claims, d.cfg.Lease)
	if err != nil {
		for _, w := range batch {
			d.release(w, false)
		}
		if ctx.Err() == nil {
			d.cfg.Logger.Log(ctx, dbhealth.Level(err), "claim jobs", "jobs", len(claims), "err", err)
			d.retryLater()
		}
		return false
	}
	ok := true
	for i, w := range batch {
		res := results[i]
		if res.Err == nil {
			d.deliver(w, res.Job)
			d.cfg.Logger.Info("job assigned", "job_id", res.Job.ID, "attempt", res.Job.Attempt, "agent_id", w.agent.ID, "agent", w.agent.Name)
			continue
		}
		// The job is gone (cancelled, claimed elsewhere) or the agent
		// cannot take work; only the first keeps the waiter.
		keep := errors.Is(res.Err, ci.ErrConflict) && d.agentCanWork(ctx, w.agent.ID)
		d.release(w, keep)
		if !errors.Is(res.Err, ci.ErrConflict) && ctx.Err() == nil {
			d.cfg.Logger.Log(ctx, dbhealth.Level(res.Err), "claim job", "job_id", claims[i].JobID, "agent_id", w.agent.ID, "err", res.Err)
			d.retryLater()
			ok = false
		}
	}
	return ok
}

// deliver hands a claimed job to w, or to the newer Wait of the same agent
// that superseded w meanwhile (w then returns empty).
func (d *Dispatcher) deliver(w *waiter, j ci.Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.endClaim(w)
	if w.superseded {
		if cur := d.waiters[w.agent.ID]; cur != nil {
			delete(d.waiters, w.agent.ID)
			cur.got <- j
			close(w.got)
			return
		}
	}
	w.got <- j
}

// release ends a claim that failed: w waits on when keep is true and nobody
// superseded or abandoned it; otherwise its Wait returns empty.
func (d *Dispatcher) release(w *waiter, keep bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.endClaim(w)
	if keep && !w.superseded && !w.abandoned && d.waiters[w.agent.ID] == nil {
		d.waiters[w.agent.ID] = w
		return
	}
	close(w.got)
}

// endClaim removes w from the waiters being claimed for (d.mu held).
func (d *Dispatcher) endClaim(w *waiter) {
	if d.claiming[w.agent.ID] == w {
		delete(d.claiming, w.agent.ID)
	}
}

// agentCanWork reads the agent after a conflicting claim: an agent that the
// store says is busy, disabled, unauthorized or gone must not keep waiting
// (it would be picked, and fail, for every queued job). Its Wait returns and
// the agent's next request sorts out its state.
func (d *Dispatcher) agentCanWork(ctx context.Context, agentID int64) bool {
	a, err := d.cfg.Store.GetAgent(ctx, agentID)
	if err != nil {
		return !errors.Is(err, ci.ErrNotFound) && ctx.Err() == nil
	}
	return a.Authorized && !a.Disabled && a.JobID == 0
}

// retryLater schedules a matching pass after a store error, so waiting agents
// are not stranded until the next event.
func (d *Dispatcher) retryLater() {
	time.AfterFunc(time.Second, d.poke)
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

// Candidate is an agent as WaitReason sees it: the agent and its displayed
// state in this kkd.
type Candidate struct {
	Agent ci.Agent
	State ci.AgentState
}

// WaitReason says why the queued job j waits, from the agents kkd knows and
// whether j's agents group exists. The checks go from the most fundamental
// to the most passing: no agent in the group; none with the job's executor;
// none running the job's system; the capable ones disabled, lost or missing;
// the usable ones all busy; else the job waits for its turn.
func WaitReason(j ci.Job, agents []Candidate, groupExists bool) string {
	executor := j.Executor
	if executor == "" {
		executor = ci.ExecutorLocal
	}
	var members, capable, matching []Candidate
	for _, c := range agents {
		if c.Agent.Authorized && slices.Contains(c.Agent.Groups, j.Group) {
			members = append(members, c)
		}
	}
	if len(members) == 0 {
		if !groupExists {
			return fmt.Sprintf("agents group %q does not exist: create it with `kk group create %s` and add agents to it", j.Group, j.Group)
		}
		return fmt.Sprintf("no agent in group %q: add one with `kk group add %s AGENT`", j.Group, j.Group)
	}
	for _, c := range members {
		if slices.Contains(c.Agent.HostInfo.Executors(), executor) {
			capable = append(capable, c)
		}
	}
	if len(capable) == 0 {
		return fmt.Sprintf("no agent in group %q has the %s executor", j.Group, executor)
	}
	for _, c := range capable {
		if executor != ci.ExecutorLocal || j.System == ci.SystemAny || j.System == c.Agent.HostInfo.System {
			matching = append(matching, c)
		}
	}
	if len(matching) == 0 {
		var systems []string
		for _, c := range capable {
			if s := c.Agent.HostInfo.System; s != "" && !slices.Contains(systems, s) {
				systems = append(systems, s)
			}
		}
		slices.Sort(systems)
		return fmt.Sprintf("no agent in group %q runs system %q (they run %s)", j.Group, j.System, strings.Join(systems, ", "))
	}
	var usable, unusable []string
	busy := 0
	for _, c := range matching {
		switch c.State {
		case ci.AgentDisabled, ci.AgentLostContact, ci.AgentMissing, ci.AgentDiscovered:
			unusable = append(unusable, fmt.Sprintf("%s: %s", c.Agent.Name, c.State))
		default:
			usable = append(usable, c.Agent.Name)
			if c.Agent.JobID != 0 {
				busy++
			}
		}
	}
	switch {
	case len(usable) == 0:
		return fmt.Sprintf("the agents of group %q that can run it are disabled or lost (%s)", j.Group, strings.Join(unusable, ", "))
	case busy == len(usable):
		return fmt.Sprintf("agents of group %q are all busy (%d)", j.Group, busy)
	}
	return "waiting for a free agent"
}

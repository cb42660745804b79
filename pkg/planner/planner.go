// Package planner fires the time and repository triggers of stages (Kraken's
// planner): interval, date (one-shot), cron (5 fields, UTC) and repo
// polling. Only the elected leader replica runs it (pkg/daemon leaderWork).
//
// Exactness: the planner sleeps on a timer until the next fire time of all
// triggers, so a trigger fires within milliseconds of its time; it re-reads
// the stages when their version (store.StagesVersion) changes, which it
// checks every PollEvery (1 s) too.
//
// Exactly once: before it starts a run, the planner claims the scheduled
// instant in the store with a conditional update (ClaimTriggerFire: "last
// fired < this instant"), and a repo trigger swaps the commits it saw
// (SwapTriggerRepo). Two replicas (a leader change) can never both fire one
// instant. A fire is recorded before the run starts: when kkd dies in
// between, that instant's run is lost rather than doubled.
//
// Catch-up: instants missed while no planner ran (kkd down) are coalesced
// into one run, fired as soon as the planner starts, for the latest missed
// instant.
package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/store"
)

// Starter starts the run of a fired trigger (engine.Engine.TriggerStage).
type Starter interface {
	TriggerStage(ctx context.Context, s ci.Stage, reason string, triggerData json.RawMessage) (engine.Triggered, error)
}

// Config of a Planner.
type Config struct {
	Store  store.Store
	Engine Starter
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PollEvery is how often the stages' version is checked (default 1 s).
	PollEvery time.Duration
	// Repos polls repositories for repo triggers (default: go-git, with
	// its clones under RepoDir).
	Repos RepoPoller
	// RepoDir holds the planner's bare clones of polled repositories
	// (default: in memory, fetched in full on every poll).
	RepoDir string
	// Secrets opens the project secrets repo triggers take access tokens
	// from (token_secret); nil: such triggers cannot poll.
	Secrets *secrets.Cipher
}

// Planner fires stage triggers.
type Planner struct {
	cfg Config

	version string
	planned map[int64]*plannedStage // by stage id

	mu      sync.Mutex
	polling map[int64]bool // repo polls in flight, by stage id
	results []pollResult   // repo polls done, for Tick to take in
	wake    chan struct{}
	polls   sync.WaitGroup
}

// plannedStage is a stage with time or repo triggers and their states.
type plannedStage struct {
	stage  ci.Stage
	rules  []rule
	states map[string]store.TriggerState // by kind
}

// New returns a planner.
func New(cfg Config) *Planner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = time.Second
	}
	if cfg.Repos == nil {
		cfg.Repos = &GitPoller{Dir: cfg.RepoDir}
	}
	return &Planner{cfg: cfg, planned: map[int64]*plannedStage{}, polling: map[int64]bool{}, wake: make(chan struct{}, 1)}
}

func (p *Planner) now() time.Time { return p.cfg.Now().UTC() }

// Run fires triggers until ctx ends. Errors of the store are logged and
// retried; it returns ctx.Err().
func (p *Planner) Run(ctx context.Context) error {
	defer p.polls.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-p.wake:
		}
		next, err := p.Tick(ctx)
		if err != nil && ctx.Err() == nil {
			p.cfg.Logger.Error("planner", "err", err)
		}
		now := p.now()
		wait := p.cfg.PollEvery
		if err == nil && !next.IsZero() && next.Sub(now) < wait {
			wait = max(next.Sub(now), 0)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// Tick re-plans when the stages changed, fires every trigger due at the
// clock's now and returns the next time something is due (zero: nothing
// planned). Repo polls run in the background; Run wakes when one is done.
func (p *Planner) Tick(ctx context.Context) (time.Time, error) {
	now := p.now()
	p.takeResults()
	if err := p.replan(ctx, now); err != nil {
		return now.Add(p.cfg.PollEvery), err
	}
	var errs []error
	var next time.Time
	ids := make([]int64, 0, len(p.planned))
	for id := range p.planned {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		ps := p.planned[id]
		for _, r := range ps.rules {
			st := ps.states[r.kind]
			if r.kind == KindRepo {
				p.mu.Lock()
				busy := p.polling[id]
				p.mu.Unlock()
				n := r.next(st, now)
				if !busy && !n.After(now) {
					p.startPoll(ctx, ps, r, st, now)
					continue
				}
				if !busy {
					next = earliest(next, n)
				}
				continue
			}
			if at, ok := r.due(st, now); ok {
				if err := p.fire(ctx, ps, r, at); err != nil {
					errs = append(errs, err)
				}
				st = ps.states[r.kind]
			}
			next = earliest(next, r.next(st, now))
		}
	}
	return next, errors.Join(errs...)
}

// takeResults applies the states of finished repo polls.
func (p *Planner) takeResults() {
	p.mu.Lock()
	results := p.results
	p.results = nil
	p.mu.Unlock()
	for _, res := range results {
		if res.stale {
			p.version = "" // re-read the states
			continue
		}
		if ps, ok := p.planned[res.stageID]; ok && ps.states[KindRepo].Rule == res.state.Rule {
			ps.states[KindRepo] = res.state
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// replan reloads the stages and their trigger states when the stages changed.
func (p *Planner) replan(ctx context.Context, now time.Time) error {
	v, err := p.cfg.Store.StagesVersion(ctx)
	if err != nil {
		return fmt.Errorf("check stages: %w", err)
	}
	if v == p.version {
		return nil
	}
	stages, err := p.cfg.Store.ListPlannedStages(ctx)
	if err != nil {
		return fmt.Errorf("list stages: %w", err)
	}
	states, err := p.cfg.Store.ListTriggerStates(ctx, 0)
	if err != nil {
		return fmt.Errorf("list trigger states: %w", err)
	}
	have := map[int64]map[string]store.TriggerState{}
	for _, st := range states {
		if have[st.StageID] == nil {
			have[st.StageID] = map[string]store.TriggerState{}
		}
		have[st.StageID][st.Kind] = st
	}
	planned := map[int64]*plannedStage{}
	for _, s := range stages {
		sch, err := engine.ParseStageSchema(s)
		if err != nil {
			p.cfg.Logger.Warn("planner: stage schema unreadable", "stage_id", s.ID, "err", err)
			continue
		}
		rules, bad := rulesOf(sch)
		for kind, err := range bad {
			p.cfg.Logger.Warn("planner: trigger ignored", "stage_id", s.ID, "stage", s.Name, "trigger", kind, "err", err)
		}
		var kinds []string
		ps := &plannedStage{stage: s, states: map[string]store.TriggerState{}}
		for _, r := range rules {
			kinds = append(kinds, r.kind)
			st, ok := have[s.ID][r.kind]
			if !ok || st.Rule != r.text {
				if st, err = p.cfg.Store.EnsureTrigger(ctx, s.ID, r.kind, r.text, sinceFor(s, now)); err != nil {
					if errors.Is(err, ci.ErrNotFound) {
						continue // deleted meanwhile
					}
					return err
				}
			}
			ps.rules = append(ps.rules, r)
			ps.states[r.kind] = st
		}
		for kind := range have[s.ID] {
			if !slices.Contains(kinds, kind) {
				if err := p.cfg.Store.DropTriggers(ctx, s.ID, kinds); err != nil {
					return err
				}
				break
			}
		}
		if len(ps.rules) > 0 {
			planned[s.ID] = ps
		}
	}
	p.planned = planned
	p.version = v
	p.cfg.Logger.Debug("planner: planned", "stages", len(planned))
	return nil
}

// fire claims the instant at of a time trigger and starts its run.
func (p *Planner) fire(ctx context.Context, ps *plannedStage, r rule, at time.Time) error {
	s := ps.stage
	claimed, err := p.cfg.Store.ClaimTriggerFire(ctx, s.ID, r.kind, r.text, at)
	if err != nil {
		if errors.Is(err, ci.ErrNotFound) {
			p.version = "" // the stage changed: re-plan
			return nil
		}
		return fmt.Errorf("claim %s trigger of stage %q: %w", r.kind, s.Name, err)
	}
	st := ps.states[r.kind]
	if st.LastFired.Before(at) {
		st.LastFired = at
	}
	ps.states[r.kind] = st
	if !claimed {
		p.cfg.Logger.Info("planner: fire already recorded (by another replica)", "stage", s.Name, "trigger", r.kind, "at", at)
		return nil
	}
	late := p.now().Sub(at)
	got, err := p.cfg.Engine.TriggerStage(ctx, s, r.reason(), nil)
	if err != nil {
		return fmt.Errorf("start %s-triggered run of stage %q: %w", r.kind, s.Name, err)
	}
	p.logFire(s, r, at, late, got)
	return nil
}

func (p *Planner) logFire(s ci.Stage, r rule, at time.Time, late time.Duration, got engine.Triggered) {
	if got.Skipped != "" {
		p.cfg.Logger.Info("planner: trigger fired, no run started", "stage", s.Name, "trigger", r.kind, "at", at, "why", got.Skipped)
		return
	}
	p.cfg.Logger.Info("planner: trigger fired", "stage", s.Name, "trigger", r.kind, "at", at, "late", late, "flow_id", got.Flow.ID, "run_id", got.Run.ID)
}

// Wait waits for the repo polls in flight (for tests).
func (p *Planner) Wait() { p.polls.Wait() }

func (p *Planner) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

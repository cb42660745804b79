package watchdog

import (
	"context"
	"errors"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
)

// checkRuns ends the runs in progress that started (or were last rerun)
// longer ago than their stage's run timeout (the schema's top-level timeout key, else
// schema.DefaultRunTimeout): their unfinished jobs are cancelled with the
// reason "run timeout of N s exceeded" (engine.TimeoutRun). It runs every
// RunInterval.
func (w *Watchdog) checkRuns(ctx context.Context, now time.Time) {
	if !w.lastRuns.IsZero() && now.Sub(w.lastRuns) < w.cfg.RunInterval {
		return
	}
	w.lastRuns = now
	runs, err := w.cfg.Store.ListActiveRuns(ctx)
	if err != nil {
		w.logErr(ctx, "list active runs", err)
		return
	}
	timeouts := map[int64]int{} // stage → run timeout
	for _, r := range runs {
		if r.Started == nil {
			continue
		}
		limit, ok := timeouts[r.StageID]
		if !ok {
			limit = w.runTimeout(ctx, r)
			timeouts[r.StageID] = limit
		}
		if now.Sub(*r.Started) <= time.Duration(limit)*time.Second {
			continue
		}
		// A rerun (of the run or of a job) restarts the clock: count from
		// the newest job that is not covered.
		if last, ok := w.lastJobCreated(ctx, r.ID); !ok || now.Sub(last) <= time.Duration(limit)*time.Second {
			continue
		}
		if err := w.cfg.Engine.TimeoutRun(ctx, r.ID, limit); err != nil && !errors.Is(err, ci.ErrNotFound) {
			w.logErr(ctx, "time out run", err, "run_id", r.ID)
		}
	}
}

// lastJobCreated returns when the run's newest job that is not covered was
// created; ok is false when the jobs cannot be read.
func (w *Watchdog) lastJobCreated(ctx context.Context, runID int64) (time.Time, bool) {
	jobs, err := w.cfg.Store.ListJobs(ctx, runID)
	if err != nil {
		w.logErr(ctx, "list jobs of a run past its timeout", err, "run_id", runID)
		return time.Time{}, false
	}
	var last time.Time
	for _, j := range jobs {
		if !j.Covered && j.Created.After(last) {
			last = j.Created
		}
	}
	return last, true
}

// runTimeout is the run timeout of the run's stage as stored now (the
// default when the stage is gone).
func (w *Watchdog) runTimeout(ctx context.Context, r ci.Run) int {
	if r.StageID == 0 {
		return engine.RunTimeout(nil)
	}
	s, err := w.cfg.Store.GetStage(ctx, r.StageID)
	if err != nil {
		return engine.RunTimeout(nil)
	}
	st, err := engine.ParseStageSchema(s)
	if err != nil {
		return engine.RunTimeout(nil)
	}
	return engine.RunTimeout(st)
}

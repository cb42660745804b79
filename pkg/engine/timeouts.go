package engine

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
)

// Job timeout estimation (Kraken's _estimate_timeout, with its cap fixed).
//
// A job that sets no timeout gets one estimated from the history of
// comparable jobs: same branch, stage, job name, agents group and system,
// completed, not covered by a rerun, with result ok or (server) timeout,
// the last EstimateHistory of them. With fewer than EstimateMinHistory the
// default (schema.DefaultJobTimeout) stays. Otherwise the timeout is
// EstimateFactor × the longest duration, at least EstimateFloor; doubled
// when one of them timed out (it needed more than it had); at most
// EstimateCap. Kraken wrote the cap as max(timeout, 3 days), which made
// every estimate at least 3 days; here it is a cap.
const (
	EstimateHistory    = 10
	EstimateMinHistory = 4
	EstimateFactor     = 1.7
	EstimateFloor      = 60            // seconds
	EstimateCap        = 3 * 24 * 3600 // seconds
)

// EstimateTimeout returns the timeout in seconds of job j (of stage stage in
// a flow of branch) estimated from history, or j.Timeout when there is not
// enough history or it cannot be read.
func (e *Engine) EstimateTimeout(ctx context.Context, branchID int64, stage string, j *ci.Job) int {
	hist, err := e.cfg.Store.ListJobHistory(ctx, store.JobHistoryQuery{
		BranchID: branchID, Stage: stage, Name: j.Name, Group: j.Group, System: j.System,
		Results: []ci.JobResult{ci.JobOK, ci.JobTimeout, ci.JobServerTimeout},
	}, EstimateHistory)
	if err != nil {
		e.cfg.Logger.Warn("read job history for its timeout: keeping the default", "job", j.Name, "err", err)
		return j.Timeout
	}
	var durations []time.Duration
	timedOut := false
	for _, h := range hist {
		if h.Started == nil || h.Finished == nil {
			continue
		}
		durations = append(durations, h.Finished.Sub(*h.Started))
		if h.Result != ci.JobOK {
			timedOut = true
		}
	}
	est, ok := EstimateFromHistory(durations, timedOut)
	if !ok {
		return j.Timeout
	}
	return est
}

// EstimateFromHistory applies the estimation rule to the durations of
// comparable jobs; ok is false when there are too few.
func EstimateFromHistory(durations []time.Duration, timedOut bool) (seconds int, ok bool) {
	if len(durations) < EstimateMinHistory {
		return 0, false
	}
	var longest time.Duration
	for _, d := range durations {
		longest = max(longest, d)
	}
	est := math.Ceil(EstimateFactor * longest.Seconds())
	est = max(est, EstimateFloor)
	if timedOut {
		est *= 2
	}
	return int(min(est, EstimateCap)), true
}

// RunTimeout returns the run timeout in seconds of a stage: its top-level
// timeout key, else schema.DefaultRunTimeout.
func RunTimeout(st *schema.Stage) int {
	if st != nil && st.Timeout > 0 {
		return st.Timeout
	}
	return schema.DefaultRunTimeout
}

// TimeoutRun ends a run that ran past its timeout of seconds: every job not
// completed is completed cancelled with the reason (an agent running one
// learns it from its next heartbeat and stops), and the run gets a note.
func (e *Engine) TimeoutRun(ctx context.Context, runID int64, seconds int) error {
	msg := fmt.Sprintf("run timeout of %d s exceeded", seconds)
	if err := e.cfg.Store.SetRunNote(ctx, runID, msg+": its unfinished jobs were cancelled"); err != nil {
		return fmt.Errorf("note run timeout: %w", err)
	}
	jobs, err := e.cfg.Store.ListJobs(ctx, runID)
	if err != nil {
		return fmt.Errorf("list jobs of timed out run: %w", err)
	}
	for _, j := range jobs {
		if j.State == ci.JobCompleted {
			continue
		}
		if _, err := e.CompleteJob(ctx, j.ID, 0, ci.JobCancelled, msg); err != nil {
			return fmt.Errorf("cancel job %d of timed out run: %w", j.ID, err)
		}
	}
	e.cfg.Logger.Warn("run timed out: unfinished jobs cancelled", "run_id", runID, "timeout_s", seconds)
	_, err = e.afterJobs(ctx, runID)
	return err
}

// SetStageRefresher sets the function that refreshes a repo-backed stage
// before its run starts (pkg/stagerepo Loader.BeforeRun). Call it before
// the engine is used.
func (e *Engine) SetStageRefresher(fn func(context.Context, ci.Stage) ci.Stage) {
	e.beforeLaunch = fn
}

func (e *Engine) refreshStage(ctx context.Context, s ci.Stage) ci.Stage {
	if e.beforeLaunch == nil || s.Repo == nil {
		return s
	}
	return e.beforeLaunch(ctx, s)
}

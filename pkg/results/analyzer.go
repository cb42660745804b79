package results

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/dbhealth"
	"github.com/kraken-go/kk/pkg/store"
)

// Config of an Analyzer.
type Config struct {
	Store  store.Store
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
	// RetryAfter is how long a run whose analysis failed waits before it is
	// tried again (default 30 s).
	RetryAfter time.Duration
	// RunTimeout bounds the analysis of one run (default 5 min).
	RunTimeout time.Duration
	// Processed, when set, is called with every run whose analysis is done
	// (kkd sends the run's end notifications, which carry its counts); it
	// must not block. A run analysed again (enqueued twice, or resumed
	// after a restart) is passed again: the callee deduplicates.
	Processed func(runID int64)
}

// Analyzer analyses the results of completed runs in the background, one
// run at a time.
//
// Ordering: the analysis of a CI result reads the analysed history of the
// earlier CI flows, so a CI run is analysed only once the run of the same
// stage in the closest earlier CI flow of the branch is processed (completed
// and every job analysed); runs in state manual are skipped. A run that has
// to wait is picked up again when its predecessor is processed (which
// enqueues the next run), so the outcome does not depend on the order in
// which concurrent flows complete. DEV runs do not wait.
//
// Enqueue never blocks: the queue holds each run once. Start sweeps the
// runs a crash (or a stop) left unanalysed.
type Analyzer struct {
	cfg Config

	mu     sync.Mutex
	queue  []int64
	queued map[int64]bool
	wake   chan struct{}
	done   chan struct{}
}

// New returns an analyzer; call Start to run it.
func New(cfg Config) *Analyzer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 30 * time.Second
	}
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = 5 * time.Minute
	}
	return &Analyzer{cfg: cfg, queued: map[int64]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Enqueue asks for the analysis of a run (once it is completed). It never
// blocks and a run already waiting in the queue is not added twice.
func (a *Analyzer) Enqueue(runID int64) {
	a.mu.Lock()
	if !a.queued[runID] {
		a.queued[runID] = true
		a.queue = append(a.queue, runID)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Analyzer) pop() (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		return 0, false
	}
	id := a.queue[0]
	a.queue = a.queue[1:]
	delete(a.queued, id)
	return id, true
}

// Start enqueues the completed runs that still have unanalysed jobs and
// starts the worker, which stops when ctx ends (see Done).
func (a *Analyzer) Start(ctx context.Context) error {
	runs, err := a.cfg.Store.ListRunsToAnalyze(ctx)
	if err != nil {
		close(a.done)
		return fmt.Errorf("start results analyzer: %w", err)
	}
	if len(runs) > 0 {
		a.cfg.Logger.Info("resuming results analysis", "runs", len(runs))
	}
	for _, id := range runs {
		a.Enqueue(id)
	}
	go a.loop(ctx)
	return nil
}

// Done is closed once the worker stopped.
func (a *Analyzer) Done() <-chan struct{} { return a.done }

func (a *Analyzer) loop(ctx context.Context) {
	defer close(a.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
		for ctx.Err() == nil {
			id, ok := a.pop()
			if !ok {
				break
			}
			rctx, cancel := context.WithTimeout(ctx, a.cfg.RunTimeout)
			out, err := a.AnalyzeRun(rctx, id)
			cancel()
			if err == nil && out == Analyzed && a.cfg.Processed != nil {
				a.cfg.Processed(id)
			}
			if err != nil && ctx.Err() == nil {
				if errors.Is(err, ci.ErrNotFound) {
					continue // the run was deleted meanwhile
				}
				a.cfg.Logger.Log(ctx, dbhealth.Level(err), "results analysis failed; retrying later", "run_id", id, "retry_after", a.cfg.RetryAfter, "err", err)
				time.AfterFunc(a.cfg.RetryAfter, func() { a.Enqueue(id) })
			}
		}
	}
}

// Outcome is what AnalyzeRun did.
type Outcome int

const (
	// NotCompleted: the run is not completed yet; nothing was done.
	NotCompleted Outcome = iota
	// Waiting: the previous CI run of the stage is not processed yet; the
	// run is analysed after it (its predecessor was enqueued when it is
	// completed).
	Waiting
	// Analyzed: every pending job of the run is analysed.
	Analyzed
)

// AnalyzeRun analyses the completed, non-covered, unanalysed jobs of the
// run now, unless the run must wait (see Analyzer). When a CI run is
// processed, the next CI run of its stage is enqueued.
func (a *Analyzer) AnalyzeRun(ctx context.Context, runID int64) (Outcome, error) {
	st := a.cfg.Store
	run, err := st.GetRun(ctx, runID)
	if err != nil {
		return NotCompleted, fmt.Errorf("analyse run %d: %w", runID, err)
	}
	if run.State != ci.RunCompleted {
		return NotCompleted, nil
	}
	flow, err := st.GetFlow(ctx, run.FlowID)
	if err != nil {
		return NotCompleted, fmt.Errorf("analyse run %d: %w", runID, err)
	}
	log := a.cfg.Logger.With("run_id", runID, "flow_id", flow.ID, "stage", run.StageName)
	if flow.Kind == ci.FlowCI {
		prev, found, err := st.AdjacentCIRun(ctx, runID, false)
		if err != nil {
			return NotCompleted, fmt.Errorf("analyse run %d: %w", runID, err)
		}
		if found && !prev.Processed {
			if prev.State == ci.RunCompleted {
				a.Enqueue(prev.RunID) // analysed first, then it enqueues its next run
			}
			log.Debug("results analysis waits for the previous CI run", "prev_run_id", prev.RunID)
			return Waiting, nil
		}
	}
	jobs, err := st.PendingAnalysis(ctx, runID)
	if err != nil {
		return NotCompleted, fmt.Errorf("analyse run %d: %w", runID, err)
	}
	for _, j := range jobs {
		if err := a.analyzeJob(ctx, j, flow.Kind); err != nil {
			return NotCompleted, fmt.Errorf("analyse run %d: %w", runID, err)
		}
	}
	if len(jobs) > 0 {
		log.Info("results analysed", "jobs", len(jobs))
	}
	if flow.Kind == ci.FlowCI {
		next, found, err := st.AdjacentCIRun(ctx, runID, true)
		if err != nil {
			return Analyzed, fmt.Errorf("analyse run %d: next run: %w", runID, err)
		}
		if found && next.State == ci.RunCompleted && !next.Processed {
			a.Enqueue(next.RunID)
		}
	}
	return Analyzed, nil
}

// analyzeJob analyses one job's results and issues and saves them.
func (a *Analyzer) analyzeJob(ctx context.Context, j ci.Job, kind ci.FlowKind) error {
	st := a.cfg.Store
	rs, err := st.ListJobResults(ctx, j.ID)
	if err != nil {
		return err
	}
	out := make([]store.ResultAnalysis, 0, len(rs))
	if len(rs) > 0 {
		if kind == ci.FlowCI {
			hist, err := st.CIHistory(ctx, j.ID, HistoryLen)
			if err != nil {
				return err
			}
			for _, r := range rs {
				out = append(out, resultAnalysis(r.ID, AnalyzeCI(r.Status, hist[r.Name])))
			}
		} else {
			base, err := st.CIBaseline(ctx, j.ID)
			if err != nil {
				return err
			}
			for _, r := range rs {
				var b *ci.TestResult
				if v, ok := base[r.Name]; ok {
					b = &v
				}
				out = append(out, resultAnalysis(r.ID, AnalyzeDEV(r.Status, b)))
			}
		}
	}
	issues, err := st.ListJobIssues(ctx, j.ID)
	if err != nil {
		return err
	}
	var ia []store.IssueAnalysis
	if len(issues) > 0 {
		prev, _, err := st.PreviousIssues(ctx, j.ID)
		if err != nil {
			return err
		}
		for i, age := range IssueAges(issues, prev) {
			ia = append(ia, store.IssueAnalysis{ID: issues[i].ID, Age: age})
		}
	}
	err = st.SaveAnalysis(ctx, j.ID, out, ia, a.cfg.Now().UTC())
	if errors.Is(err, ci.ErrConflict) {
		return nil // analysed meanwhile: the first analysis stands
	}
	return err
}

func resultAnalysis(id int64, a Analysis) store.ResultAnalysis {
	return store.ResultAnalysis{ID: id, Change: a.Change, Instability: a.Instability, Age: a.Age, Relevancy: a.Relevancy}
}

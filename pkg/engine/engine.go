// Package engine advances flows: it creates flows, runs and jobs from stage
// schemas and moves runs and flows on as jobs complete (child stages start when
// their parent run completes without job errors; manual stages wait for a
// user). It owns every state transition that spans several objects, so the HTTP
// handlers stay thin.
//
// Transitions are made with the store's conditional updates (CompleteRunIfDone,
// CompleteFlowIfDone), so concurrent completions trigger each child run once.
//
// Retry policy: an infrastructure failure of a job's attempt (FailAttempt: the
// agent went silent, came back without the job, or reported result error) is
// retried on a new attempt until the job had MaxAttempts attempts; then the
// job completes with agent_lost or error and a message that lists the
// attempts. A failing step never causes a retry, and neither does a user's
// cancel, which is stored with the job (store.RequestCancel) so that it
// survives a restart of kkd.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
)

// Config of an Engine.
type Config struct {
	Store      store.Store
	Hub        *notify.Hub
	Dispatcher *scheduler.Dispatcher
	Logger     *slog.Logger
	Now        func() time.Time // default time.Now
	Limits     schema.Limits
	// MaxAttempts is how many attempts a job gets when infrastructure
	// failures end them (kkd --job-retries + 1; default 3). 1: no retries.
	MaxAttempts int
	// JobDone, when set, is called with every job that completed; it must
	// not block (kkd archives the job's log in the background).
	JobDone func(jobID int64)
	Results ResultsAnalyzer // results analysis of completed runs (nil: none)
	// Notifier is told when runs start (nil: no start notifications).
	Notifier RunNotifier
}

// DefaultMaxAttempts is a job's attempts when Config.MaxAttempts is not set:
// two retries.
const DefaultMaxAttempts = 3

// Engine creates and advances flows.
type Engine struct {
	cfg Config
	// beforeLaunch refreshes a repo-backed stage before its run starts
	// (SetStageRefresher; nil: none).
	beforeLaunch func(context.Context, ci.Stage) ci.Stage
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	return &Engine{cfg: cfg}
}

// MaxAttempts returns how many attempts a job gets.
func (e *Engine) MaxAttempts() int { return e.cfg.MaxAttempts }

func (e *Engine) now() time.Time { return e.cfg.Now().UTC() }

// Store returns the engine's store.
func (e *Engine) Store() store.Store { return e.cfg.Store }

// CancelKey is the hub key signalled when a job's cancel is requested.
func CancelKey(jobID int64) string { return fmt.Sprintf("cancel:%d", jobID) }

// EvalStage evaluates and validates stage code for storing it: first with no
// arguments to learn the parameters, then with their defaults.
func (e *Engine) EvalStage(ctx context.Context, filename string, code []byte, c schema.Context) (*schema.Stage, error) {
	st, err := schema.Eval(ctx, filename, code, c, e.cfg.Limits)
	if err != nil {
		return nil, err
	}
	args := DefaultArgs([]*schema.Stage{st}, c.Args)
	if len(st.Parameters) == 0 {
		return st, nil
	}
	c.Args = args
	return schema.Eval(ctx, filename, code, c, e.cfg.Limits)
}

// DefaultArgs merges the defaults of the stages' parameters under given.
func DefaultArgs(stages []*schema.Stage, given map[string]string) map[string]string {
	args := map[string]string{}
	for _, st := range stages {
		for _, p := range st.Parameters {
			if _, ok := args[p.Name]; !ok {
				args[p.Name] = p.Default
			}
		}
	}
	for k, v := range given {
		args[k] = v
	}
	return args
}

// ParseStageSchema decodes a stored stage schema.
func ParseStageSchema(s ci.Stage) (*schema.Stage, error) {
	var st schema.Stage
	if err := json.Unmarshal(s.Schema, &st); err != nil {
		return nil, fmt.Errorf("decode schema of stage %q: %w", s.Name, err)
	}
	return &st, nil
}

// FlowOptions are the optional inputs of CreateFlowWith.
type FlowOptions struct {
	// Args are the flow's arguments; unknown ones are rejected.
	Args map[string]string
	// TriggerData is what started the flow (a webhook's commits or pull
	// request), a JSON object: stored with the flow, visible to stages as
	// ctx.flow.trigger and handed to the git tool, which checks out its
	// commit (see pkg/tools/git.go).
	TriggerData json.RawMessage
}

// CreateFlow starts a flow of kind on the branch with a run per root stage.
// Unknown arguments are rejected.
func (e *Engine) CreateFlow(ctx context.Context, branch ci.Branch, kind ci.FlowKind, given map[string]string) (ci.Flow, error) {
	return e.CreateFlowWith(ctx, branch, kind, FlowOptions{Args: given})
}

// CreateFlowWith is CreateFlow with trigger data.
func (e *Engine) CreateFlowWith(ctx context.Context, branch ci.Branch, kind ci.FlowKind, opts FlowOptions) (ci.Flow, error) {
	given := opts.Args
	if len(opts.TriggerData) > 0 {
		var obj map[string]any
		if err := json.Unmarshal(opts.TriggerData, &obj); err != nil {
			return ci.Flow{}, fmt.Errorf("%w: trigger data must be a JSON object: %v", ci.ErrInvalid, err)
		}
	}
	if kind == "" {
		kind = ci.FlowCI
	}
	if kind != ci.FlowCI && kind != ci.FlowDEV {
		return ci.Flow{}, fmt.Errorf("%w: flow kind %q: use ci or dev", ci.ErrInvalid, kind)
	}
	stages, err := e.cfg.Store.ListStages(ctx, branch.ID)
	if err != nil {
		return ci.Flow{}, fmt.Errorf("list stages: %w", err)
	}
	var schemas []*schema.Stage
	var roots []ci.Stage
	known := map[string]bool{}
	for _, s := range stages {
		st, err := ParseStageSchema(s)
		if err != nil {
			return ci.Flow{}, err
		}
		schemas = append(schemas, st)
		for _, p := range st.Parameters {
			known[p.Name] = true
		}
		if s.Enabled && st.Parent == "root" && (st.Triggers.Parent == nil || *st.Triggers.Parent || st.Triggers.Manual) {
			roots = append(roots, s)
		}
	}
	if len(stages) == 0 {
		return ci.Flow{}, fmt.Errorf("%w: branch %q has no stages: add one with `kk stage apply PROJECT/%s FILE`", ci.ErrInvalid, branch.Name, branch.Name)
	}
	if len(roots) == 0 {
		return ci.Flow{}, fmt.Errorf("%w: branch %q has no enabled root stage (parent \"root\")", ci.ErrInvalid, branch.Name)
	}
	var unknown []string
	for k := range given {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		names := make([]string, 0, len(known))
		for k := range known {
			names = append(names, k)
		}
		sort.Strings(names)
		return ci.Flow{}, fmt.Errorf("%w: unknown argument(s) %s: the stages' parameters are [%s]", ci.ErrInvalid, strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	f := ci.Flow{BranchID: branch.ID, Kind: kind, Args: DefaultArgs(schemas, given), TriggerData: opts.TriggerData}
	if err := e.cfg.Store.CreateFlow(ctx, &f); err != nil {
		return ci.Flow{}, fmt.Errorf("create flow: %w", err)
	}
	f.Label = strconv.FormatInt(f.KindSeq, 10)
	for _, s := range roots {
		st, _ := ParseStageSchema(s)
		if st.FlowLabel != "" {
			c, err := e.context(ctx, f, s, ci.Run{})
			if err == nil {
				if l, err := schema.Interpolate(st.FlowLabel, c.Vars()); err == nil && l != "" {
					f.Label = l
				}
			}
			break
		}
	}
	if err := e.cfg.Store.SetFlowLabel(ctx, f.ID, f.Label); err != nil {
		return ci.Flow{}, fmt.Errorf("set flow label: %w", err)
	}
	for _, s := range roots {
		if _, err := e.startStage(ctx, f, s, "flow"); err != nil {
			e.cfg.Logger.Error("start root stage", "flow_id", f.ID, "stage", s.Name, "err", err)
		}
	}
	if _, _, err := e.cfg.Store.CompleteFlowIfDone(ctx, f.ID, e.now()); err != nil {
		return ci.Flow{}, fmt.Errorf("complete flow: %w", err)
	}
	return e.cfg.Store.GetFlow(ctx, f.ID)
}

// context builds the evaluation context of a stage in a flow.
func (e *Engine) context(ctx context.Context, f ci.Flow, s ci.Stage, r ci.Run) (schema.Context, error) {
	b, err := e.cfg.Store.GetBranch(ctx, f.BranchID)
	if err != nil {
		return schema.Context{}, fmt.Errorf("get branch: %w", err)
	}
	p, err := e.cfg.Store.GetProject(ctx, b.ProjectID)
	if err != nil {
		return schema.Context{}, fmt.Errorf("get project: %w", err)
	}
	kind := "CI"
	if f.Kind == ci.FlowDEV {
		kind = "DEV"
	}
	var trigger map[string]any
	if len(f.TriggerData) > 0 {
		_ = json.Unmarshal(f.TriggerData, &trigger)
	}
	c := schema.Context{
		IsCI:       f.Kind == ci.FlowCI,
		Args:       f.Args,
		Project:    p.Name,
		Branch:     b.Name,
		BranchName: b.RepoBranch,
		Env:        b.Env,
		Stage:      s.Name,
		Flow:       schema.FlowInfo{ID: f.ID, Kind: kind, Seq: f.Seq, KindSeq: f.KindSeq, Label: f.Label, Trigger: trigger},
		Run:        schema.RunInfo{ID: r.ID, Seq: r.Seq, Label: r.Label},
		Secrets:    e.SecretRefs(ctx, p.ID, s.Code),
	}
	if err := e.addScopeData(ctx, &c, f, b, p); err != nil {
		return schema.Context{}, err
	}
	return c, nil
}

// startStage creates the stage's run in flow f: in state manual when the stage
// has triggers.manual, else with its jobs queued.
func (e *Engine) startStage(ctx context.Context, f ci.Flow, s ci.Stage, reason string) (ci.Run, error) {
	st, err := ParseStageSchema(s)
	if err != nil {
		return ci.Run{}, err
	}
	r := ci.Run{FlowID: f.ID, StageID: s.ID, StageName: s.Name, State: ci.RunManual, Reason: reason, Args: f.Args}
	if err := e.cfg.Store.CreateRun(ctx, &r, nil); err != nil {
		return ci.Run{}, fmt.Errorf("create run of stage %q: %w", s.Name, err)
	}
	if st.Triggers.Manual && reason != "manual" {
		e.cfg.Logger.Info("run waits for a manual start", "run_id", r.ID, "stage", s.Name)
		return r, nil
	}
	return e.launch(ctx, f, s, r)
}

// launch evaluates the stage for run r (in state manual) and queues its jobs.
func (e *Engine) launch(ctx context.Context, f ci.Flow, s ci.Stage, r ci.Run) (ci.Run, error) {
	s = e.refreshStage(ctx, s)
	jobs, label, evalErr := e.jobsFor(ctx, f, s, r)
	if label != "" {
		if err := e.cfg.Store.SetRunLabel(ctx, r.ID, label); err != nil {
			return r, fmt.Errorf("set run label: %w", err)
		}
	}
	started, err := e.cfg.Store.StartRun(ctx, r.ID, jobs, e.now())
	if err != nil {
		return r, fmt.Errorf("start run %d: %w", r.ID, err)
	}
	if evalErr != nil {
		note := "schema error: " + evalErr.Error()
		if err := e.cfg.Store.SetRunNote(ctx, r.ID, note); err != nil {
			return started, fmt.Errorf("set run note: %w", err)
		}
		e.cfg.Logger.Warn("run failed to evaluate", "run_id", r.ID, "stage", s.Name, "err", evalErr)
	} else {
		e.runStarted(started)
	}
	if err := e.failUnrunnable(ctx, jobs); err != nil {
		return started, err
	}
	e.cfg.Dispatcher.Kick()
	return e.afterJobs(ctx, r.ID)
}

// failUnrunnable completes jobs whose agents group does not exist.
func (e *Engine) failUnrunnable(ctx context.Context, jobs []*ci.Job) error {
	missing := map[string]bool{}
	for _, j := range jobs {
		if _, seen := missing[j.Group]; !seen {
			_, err := e.cfg.Store.GetGroupByName(ctx, j.Group)
			if err != nil && !errors.Is(err, ci.ErrNotFound) {
				return fmt.Errorf("look up agents group %q: %w", j.Group, err)
			}
			missing[j.Group] = err != nil
		}
		if missing[j.Group] {
			msg := fmt.Sprintf("agents group %q does not exist: create it with `kk group create %s` and add agents to it", j.Group, j.Group)
			if _, _, err := e.cfg.Store.CompleteJob(ctx, j.ID, 0, ci.JobNoAgents, msg, e.now()); err != nil {
				return fmt.Errorf("fail job %d: %w", j.ID, err)
			}
		}
	}
	return nil
}

// jobsFor evaluates the stage for run r and builds its jobs. On an evaluation
// error it returns no jobs and the error (the run then completes with a note).
func (e *Engine) jobsFor(ctx context.Context, f ci.Flow, s ci.Stage, r ci.Run) ([]*ci.Job, string, error) {
	// The label defaults to the run's seq, also when the stage fails to evaluate.
	label := strconv.FormatInt(r.Seq, 10)
	c, err := e.context(ctx, f, s, r)
	if err != nil {
		return nil, label, err
	}
	st, err := schema.Eval(ctx, s.Name+".py", []byte(s.Code), c, e.cfg.Limits)
	if err != nil {
		return nil, label, err
	}
	vars := c.Vars()
	if st.RunLabel != "" {
		if l, err := schema.Interpolate(st.RunLabel, vars); err == nil {
			label = l
		}
	}
	c.Run.Label = label
	vars = c.Vars()
	var jobs []*ci.Job
	for _, in := range st.Instances() {
		group, err := schema.Interpolate(in.Group, vars)
		if err != nil {
			return nil, label, fmt.Errorf("job %q agents_group: %w", in.Name, err)
		}
		system, err := schema.Interpolate(in.System, vars)
		if err != nil {
			return nil, label, fmt.Errorf("job %q system: %w", in.Name, err)
		}
		j := &ci.Job{Name: in.Name, Group: group, System: system, Executor: in.Executor, Network: in.Network, Timeout: in.Timeout}
		if !in.ExplicitTimeout {
			j.Timeout = e.EstimateTimeout(ctx, f.BranchID, s.Name, j)
		}
		for i, step := range in.Steps {
			v, err := schema.InterpolateValue(map[string]any(step), vars)
			if err != nil {
				return nil, label, fmt.Errorf("job %q step %d: %w", in.Name, i, err)
			}
			fields, _ := v.(map[string]any)
			j.Steps = append(j.Steps, ci.Step{Index: i, Tool: step.Tool(), Name: step.Name(), Fields: fields, Status: ci.StepPending})
		}
		jobs = append(jobs, j)
	}
	return jobs, label, nil
}

// afterJobs completes the run if nothing is left, then starts child stages and
// completes the flow when appropriate.
func (e *Engine) afterJobs(ctx context.Context, runID int64) (ci.Run, error) {
	r, changed, err := e.cfg.Store.CompleteRunIfDone(ctx, runID, e.now())
	if err != nil {
		return r, fmt.Errorf("complete run %d: %w", runID, err)
	}
	if !changed {
		return r, nil
	}
	e.cfg.Logger.Info("run completed", "run_id", r.ID, "stage", r.StageName, "jobs_total", r.JobsTotal, "jobs_error", r.JobsError)
	e.runCompleted(r)
	f, err := e.cfg.Store.GetFlow(ctx, r.FlowID)
	if err != nil {
		return r, fmt.Errorf("get flow: %w", err)
	}
	if r.JobsError == 0 && r.JobsTotal > 0 {
		if err := e.startChildren(ctx, f, r); err != nil {
			e.cfg.Logger.Error("start child stages", "run_id", r.ID, "err", err)
		}
	}
	if _, done, err := e.cfg.Store.CompleteFlowIfDone(ctx, f.ID, e.now()); err != nil {
		return r, fmt.Errorf("complete flow %d: %w", f.ID, err)
	} else if done {
		e.cfg.Logger.Info("flow completed", "flow_id", f.ID)
	}
	return r, nil
}

// startChildren starts the enabled stages whose parent is the run's stage and
// that have no run in the flow yet.
func (e *Engine) startChildren(ctx context.Context, f ci.Flow, parent ci.Run) error {
	stages, err := e.cfg.Store.ListStages(ctx, f.BranchID)
	if err != nil {
		return fmt.Errorf("list stages: %w", err)
	}
	runs, err := e.cfg.Store.ListRuns(ctx, f.ID)
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	has := map[string]bool{}
	for _, r := range runs {
		has[r.StageName] = true
	}
	for _, s := range stages {
		if !s.Enabled || s.Parent != parent.StageName || has[s.Name] {
			continue
		}
		st, err := ParseStageSchema(s)
		if err != nil {
			return err
		}
		if st.Triggers.Parent != nil && !*st.Triggers.Parent && !st.Triggers.Manual {
			continue
		}
		if _, err := e.startStage(ctx, f, s, "parent"); err != nil {
			return err
		}
	}
	return nil
}

// JobRequeued wakes whoever watches a job that went back to the queue: the
// old attempt's held heartbeat (which then learns it is stale), log followers
// and the dispatcher.
func (e *Engine) JobRequeued(jobID int64) {
	e.cfg.Hub.Publish(CancelKey(jobID))
	e.cfg.Hub.Publish(logs.Key(jobID))
	e.cfg.Dispatcher.Kick()
}

// JobCompleted advances the job's run and flow after the job completed.
func (e *Engine) JobCompleted(ctx context.Context, j ci.Job) {
	e.cfg.Hub.Publish(logs.Key(j.ID))
	e.cfg.Hub.Publish(CancelKey(j.ID))
	e.cfg.Dispatcher.Kick()
	if e.cfg.JobDone != nil {
		e.cfg.JobDone(j.ID)
	}
	if _, err := e.afterJobs(ctx, j.RunID); err != nil {
		e.cfg.Logger.Error("advance run after job", "job_id", j.ID, "run_id", j.RunID, "err", err)
	}
}

// CompleteJob completes a job (fenced by attempt when > 0) and advances its run.
func (e *Engine) CompleteJob(ctx context.Context, jobID int64, attempt int, result ci.JobResult, msg string) (ci.Job, error) {
	j, changed, err := e.cfg.Store.CompleteJob(ctx, jobID, attempt, result, msg, e.now())
	return e.completed(ctx, j, attempt, result, changed, err)
}

// CompleteAgentJob is CompleteJob of agent agentID's attempt
// (store.CompleteAgentJob): another agent's or attempt gives
// ci.ErrStaleAttempt, a retry of the agent's completion is a no-op.
func (e *Engine) CompleteAgentJob(ctx context.Context, jobID int64, attempt int, agentID int64, result ci.JobResult, msg string) (ci.Job, error) {
	j, changed, err := e.cfg.Store.CompleteAgentJob(ctx, jobID, attempt, agentID, result, msg, e.now())
	return e.completed(ctx, j, attempt, result, changed, err)
}

// completed advances the run of job j after the store completed it (changed).
func (e *Engine) completed(ctx context.Context, j ci.Job, attempt int, result ci.JobResult, changed bool, err error) (ci.Job, error) {
	if err != nil {
		return j, err
	}
	if changed {
		e.cfg.Logger.Info("job completed", "job_id", j.ID, "attempt", attempt, "result", result)
		e.JobCompleted(ctx, j)
	}
	return j, nil
}

// Failure is an infrastructure failure that ends a job's attempt.
type Failure int

const (
	// LeaseExpired: the agent stopped renewing the attempt's lease (it died,
	// hangs or lost its network). Found by the watchdog.
	LeaseExpired Failure = iota
	// AgentError: the agent reported result error: its executor failed, or
	// kkagent was stopped in the middle of the job.
	AgentError
	// AgentRestarted: the agent asked for work while the job was running on
	// it: it restarted and its copy of the job is gone.
	AgentRestarted
)

// FailAttempt handles an infrastructure failure of the job's attempt: the job
// is requeued for another attempt while it had fewer than MaxAttempts, else
// it completes (agent_lost, or error for AgentError) with a message that
// lists its attempts. A pending cancel completes it cancelled instead. For
// LeaseExpired nothing happens when the lease was renewed after the caller
// saw it expire. detail adds the agent's own message (AgentError).
//
// It returns ci.ErrStaleAttempt when the attempt is no longer current
// (another failure, a completion or a cancel ended it first).
func (e *Engine) FailAttempt(ctx context.Context, jobID int64, attempt int, failure Failure, detail string) (ci.Job, store.FailOutcome, error) {
	history, err := e.cfg.Store.ListJobAttempts(ctx, jobID)
	if err != nil {
		return ci.Job{}, store.FailNone, err
	}
	agent := "(unknown)" // an attempt from before the history was kept
	if i := slices.IndexFunc(history, func(a ci.JobAttempt) bool { return a.Attempt == attempt }); i >= 0 {
		agent = history[i].Agent
		history = history[:i] // the attempts before this one
	}
	outcome, result := ci.JobAgentLost, ci.JobAgentLost
	var reason string
	switch failure {
	case LeaseExpired:
		reason = "lost contact (its lease expired)"
	case AgentRestarted:
		reason = "restarted and lost its copy of the job"
	case AgentError:
		outcome, result = ci.JobError, ci.JobError
		reason = "reported an error"
		if detail != "" {
			reason += ": " + detail
		}
	default:
		return ci.Job{}, store.FailNone, fmt.Errorf("fail attempt %d of job %d: unknown failure %d: %w", attempt, jobID, failure, ci.ErrInvalid)
	}
	reason = fmt.Sprintf("agent %s %s", agent, reason)
	f := store.AttemptFailure{
		JobID: jobID, Attempt: attempt, At: e.now(), OnlyIfExpired: failure == LeaseExpired,
		Outcome: outcome, Reason: reason, Retry: attempt < e.cfg.MaxAttempts, Result: result,
	}
	if !f.Retry {
		f.Message = giveUpMessage(reason, attempt, e.cfg.MaxAttempts, history)
	}
	j, done, err := e.cfg.Store.FailAttempt(ctx, f)
	if err != nil {
		return j, done, err
	}
	log := e.cfg.Logger.With("job_id", jobID, "attempt", attempt, "agent", agent)
	switch done {
	case store.FailRequeued:
		log.Warn("job attempt failed: retrying on another attempt", "reason", reason, "max_attempts", e.cfg.MaxAttempts)
		e.JobRequeued(jobID)
	case store.FailCompleted:
		log.Warn("job attempt failed: job completed", "reason", reason, "result", j.Result)
		e.JobCompleted(ctx, j)
	}
	return j, done, nil
}

// giveUpMessage says why a job failed for good, naming every attempt.
func giveUpMessage(reason string, attempt, maxAttempts int, before []ci.JobAttempt) string {
	var b strings.Builder
	b.WriteString(reason)
	if maxAttempts <= 1 {
		b.WriteString("; job retries are off (kkd --job-retries 0)")
		return b.String()
	}
	fmt.Fprintf(&b, "; gave up after %d attempts (kkd --job-retries %d)", attempt, maxAttempts-1)
	if len(before) > 0 {
		b.WriteString(": earlier attempts:")
		for i, a := range before {
			sep := ";"
			if i == 0 {
				sep = ""
			}
			msg := a.Message
			if msg == "" {
				msg = string(a.Outcome)
			}
			fmt.Fprintf(&b, "%s #%d %s", sep, a.Attempt, msg)
		}
	}
	return b.String()
}

// CancelJob cancels a job: a queued job completes at once; for a job an agent
// runs the cancel is stored and signalled to the agent's held heartbeat: the
// agent stops the job and reports it cancelled, or failing that the watchdog
// completes it.
func (e *Engine) CancelJob(ctx context.Context, jobID int64) (ci.Job, error) {
	j, changed, err := e.cfg.Store.RequestCancel(ctx, jobID, e.now(), "cancelled by user")
	if err != nil || !changed {
		return j, err
	}
	if j.State == ci.JobCompleted {
		e.cfg.Logger.Info("job cancelled before an agent took it", "job_id", jobID)
		e.JobCompleted(ctx, j)
		return j, nil
	}
	e.cfg.Hub.Publish(CancelKey(jobID))
	e.cfg.Logger.Info("job cancel requested", "job_id", jobID, "attempt", j.Attempt, "agent_id", j.AgentID)
	return j, nil
}

// CancelRun cancels every unfinished job of the run; a manual run is closed.
func (e *Engine) CancelRun(ctx context.Context, runID int64) (ci.Run, error) {
	r, err := e.cfg.Store.GetRun(ctx, runID)
	if err != nil {
		return r, err
	}
	switch r.State {
	case ci.RunCompleted:
		return r, nil
	case ci.RunManual:
		if _, err := e.cfg.Store.StartRun(ctx, runID, nil, e.now()); err != nil {
			return r, fmt.Errorf("close manual run: %w", err)
		}
		if err := e.cfg.Store.SetRunNote(ctx, runID, "cancelled by user before it started"); err != nil {
			return r, err
		}
		return e.afterJobs(ctx, runID)
	}
	jobs, err := e.cfg.Store.ListJobs(ctx, runID)
	if err != nil {
		return r, err
	}
	for _, j := range jobs {
		if j.State != ci.JobCompleted {
			if _, err := e.CancelJob(ctx, j.ID); err != nil {
				return r, err
			}
		}
	}
	return e.cfg.Store.GetRun(ctx, runID)
}

// StartRun starts a run that waits in state manual.
func (e *Engine) StartRun(ctx context.Context, runID int64) (ci.Run, error) {
	r, err := e.cfg.Store.GetRun(ctx, runID)
	if err != nil {
		return r, err
	}
	if r.State != ci.RunManual {
		return r, fmt.Errorf("%w: run %d is %s, only a run waiting in state manual can be started (use `kk run rerun %d` to run it again)", ci.ErrConflict, runID, r.State, runID)
	}
	f, s, err := e.flowAndStage(ctx, r)
	if err != nil {
		return r, err
	}
	return e.launch(ctx, f, s, r)
}

func (e *Engine) flowAndStage(ctx context.Context, r ci.Run) (ci.Flow, ci.Stage, error) {
	f, err := e.cfg.Store.GetFlow(ctx, r.FlowID)
	if err != nil {
		return f, ci.Stage{}, fmt.Errorf("get flow: %w", err)
	}
	s, err := e.cfg.Store.GetStage(ctx, r.StageID)
	if err != nil {
		return f, s, fmt.Errorf("stage %q of run %d no longer exists: %w", r.StageName, r.ID, err)
	}
	return f, s, nil
}

// RerunRun re-evaluates the run's stage and queues fresh jobs; the old jobs are
// covered (and cancelled when still running).
//
// The order matters: the stage is evaluated first, so a stage that no longer
// evaluates leaves the run alone; the old jobs are covered (with the new jobs
// inserted) before the unfinished ones are cancelled, so their cancellation
// neither counts as a job error nor completes the run and the flow on the way.
func (e *Engine) RerunRun(ctx context.Context, runID int64) (ci.Run, error) {
	r, err := e.cfg.Store.GetRun(ctx, runID)
	if err != nil {
		return r, err
	}
	if r.State == ci.RunManual {
		return e.StartRun(ctx, runID)
	}
	f, s, err := e.flowAndStage(ctx, r)
	if err != nil {
		return r, err
	}
	jobs, _, evalErr := e.jobsFor(ctx, f, s, r)
	if evalErr != nil {
		return r, fmt.Errorf("%w: %v", ci.ErrInvalid, evalErr)
	}
	r, err = e.cfg.Store.RerunRun(ctx, runID, jobs)
	if err != nil {
		return r, fmt.Errorf("rerun run %d: %w", runID, err)
	}
	all, err := e.cfg.Store.ListJobs(ctx, runID)
	if err != nil {
		return r, err
	}
	for _, j := range all {
		if j.Covered && j.State != ci.JobCompleted {
			if _, err := e.CancelJob(ctx, j.ID); err != nil {
				return r, err
			}
		}
	}
	if err := e.failUnrunnable(ctx, jobs); err != nil {
		return r, err
	}
	e.cfg.Dispatcher.Kick()
	return e.afterJobs(ctx, runID)
}

// RerunJob queues a fresh copy of a completed job.
func (e *Engine) RerunJob(ctx context.Context, jobID int64) (ci.Job, error) {
	j, err := e.cfg.Store.GetJob(ctx, jobID)
	if err != nil {
		return j, err
	}
	if j.State != ci.JobCompleted && j.CancelRequested != nil {
		return j, fmt.Errorf("%w: job %d is being cancelled: rerun it once its agent has stopped it (`kk job show %d` says completed)", ci.ErrConflict, jobID, jobID)
	}
	if j.State != ci.JobCompleted {
		return j, fmt.Errorf("%w: job %d is %s: cancel it first (`kk job cancel %d`) or wait for it to finish", ci.ErrConflict, jobID, j.State, jobID)
	}
	nj, err := e.cfg.Store.RerunJob(ctx, jobID)
	if err != nil {
		return nj, fmt.Errorf("rerun job %d: %w", jobID, err)
	}
	if err := e.failUnrunnable(ctx, []*ci.Job{&nj}); err != nil {
		return nj, err
	}
	e.cfg.Dispatcher.Kick()
	// The fresh job may be completed already (its group is gone): the reopened
	// run must then complete again, or it would stay in progress forever.
	if _, err := e.afterJobs(ctx, nj.RunID); err != nil {
		return nj, err
	}
	return e.cfg.Store.GetJob(ctx, nj.ID)
}

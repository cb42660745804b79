package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/tools"
)

// Why a job's context was cancelled (context.Cause).
var (
	errCancelRequested = errors.New("job cancelled on the server")
	errJobGone         = errors.New("job no longer exists on the server")
)

// jobFatal tells whether a refused write means this copy of the job must stop
// without reporting anything more: the attempt is stale, the credential was
// revoked, or the job is gone.
func jobFatal(err error) bool {
	return isStale(err) || isUnauthorized(err) || errors.Is(err, ci.ErrNotFound)
}

// fatalCause maps a fatal write error to the job context's cancel cause.
func fatalCause(err error) error {
	switch {
	case isStale(err):
		return ci.ErrStaleAttempt
	case isUnauthorized(err):
		return errCredentialRevoked
	}
	return errJobGone
}

// closeTimeout bounds tearing down an executor environment and stopping
// background steps (their grace periods included).
const closeTimeout = 30 * time.Second

// jobRunner runs one assignment. Its pieces:
//   - heartbeat (heartbeat.go): holds the heartbeat request, renews the lease
//     and cancels the job context on cancel or fencing;
//   - outbox (outbox.go, spool.go): spools start, step results, log chunks
//     and completion to disk and delivers them in order, so the job goes on
//     while kkd is unreachable;
//   - steps (this file): prepares the environment and runs the steps.
//
// Contexts: jobCtx bounds the steps (deadline = Assignment.Timeout, cancelled
// with a cause on cancel, fencing or agent shutdown); reportCtx bounds the
// calls to the server, which must go on after the job context ended so the
// end can be reported; it ends ShutdownTimeout after the agent is stopped.
type jobRunner struct {
	asg    api.Assignment
	cfg    *Config
	client *client
	log    *slog.Logger

	reportCtx context.Context
	cancelJob context.CancelCauseFunc
	jobCtx    context.Context
	deadline  time.Time
	out       *outbox
	// abandonedFlag is set once a write was refused for good (stale attempt,
	// revoked credential, job gone).
	abandonedFlag atomic.Bool
}

// stepState is what `when` conditions of later steps see of a step.
type stepState struct {
	status   ci.StepStatus
	exitCode int
	duration time.Duration
}

// runJob runs one assignment to its end and reports it.
func (a *Agent) runJob(ctx context.Context, asg api.Assignment) {
	log := a.log.With("job_id", asg.JobID, "attempt", asg.Attempt)
	log.Info("job received", "name", asg.Name, "project", asg.Project, "branch", asg.Branch, "stage", asg.Stage,
		"executor", asg.Executor, "system", asg.System, "steps", len(asg.Steps), "timeout", asg.Timeout)
	r := &jobRunner{asg: asg, cfg: &a.cfg, client: a.client, log: log}
	r.run(ctx)
}

// backoff is the retry policy of the job's writes and heartbeat: capped at
// jobWriteMaxBackoff so delivery resumes soon after kkd is back.
func (r *jobRunner) backoff() backoff {
	return backoff{min: r.cfg.MinBackoff, max: min(r.cfg.MaxBackoff, jobWriteMaxBackoff)}
}

// spoolPath is the attempt's spool directory.
func (r *jobRunner) spoolPath() string {
	return filepath.Join(r.cfg.DataDir, spoolDir, fmt.Sprintf("%d-%d", r.asg.JobID, r.asg.Attempt))
}

func (r *jobRunner) run(ctx context.Context) {
	start := time.Now()

	reportCtx, stopReports := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReports()
	// When the agent stops, the job still gets ShutdownTimeout to report its end.
	stopAfter := context.AfterFunc(ctx, func() {
		t := time.NewTimer(r.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			stopReports()
		case <-reportCtx.Done():
		}
	})
	defer stopAfter()
	r.reportCtx = reportCtx

	jobCtx, cancelJob := context.WithCancelCause(ctx)
	defer cancelJob(nil)
	r.cancelJob = cancelJob
	r.jobCtx = jobCtx
	if r.asg.Timeout > 0 {
		r.deadline = start.Add(time.Duration(r.asg.Timeout) * time.Second)
		var cancel context.CancelFunc
		r.jobCtx, cancel = context.WithDeadline(jobCtx, r.deadline)
		defer cancel()
	}

	hbCtx, stopHeartbeat := context.WithCancel(reportCtx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		r.heartbeat(hbCtx)
	}()
	defer func() {
		stopHeartbeat()
		<-hbDone
	}()

	sp, spoolErr := openSpool(r.spoolPath(), r.cfg.SpoolSegmentSize)
	defer func() {
		// The sender stops once everything is delivered, the job was
		// abandoned or reportCtx ended; only then the spool goes.
		<-r.out.done
		if err := sp.remove(); err != nil {
			r.log.Warn("cannot delete the job's spool; delete it by hand", "dir", sp.dir, "err", err)
		}
	}()
	r.out = newOutbox(sp, r.sendRecord, r.abandon, r.abandoned, r.log, r.backoff(), r.cfg.LogChunkSize, r.cfg.LogFlushDelay, newRedaction(r.asg, r.log))
	go r.out.run(reportCtx)

	var result ci.JobResult
	var msg string
	if spoolErr != nil {
		result, msg = ci.JobError, fmt.Sprintf("kkagent cannot record the job's output: %v; free space or fix the permissions of the agent's data dir", spoolErr)
		r.log.Error("job not run", "err", spoolErr)
	} else {
		result, msg = r.execute(ctx)
	}

	r.out.closeWriters()
	if !r.abandoned() {
		r.out.appendComplete(api.CompleteJob{Attempt: r.asg.Attempt, Result: result, Message: msg})
	}
	if err := r.out.finish(reportCtx); err != nil {
		r.log.Error("job end not reported: kkd could not be reached in time", "err", err, "result", result)
		return
	}
	switch {
	case r.abandoned():
		r.log.Warn("job stopped without reporting its end: this attempt is no longer current")
	case !r.out.drained:
		r.log.Error("job end not reported", "result", result)
	case r.out.completeErr != nil:
		r.log.Error("kkd refused the job end", "err", r.out.completeErr, "result", result)
	default:
		r.log.Info("job finished", "result", result, "message", msg, "duration", time.Since(start).Round(time.Millisecond))
	}
}

// abandon stops the job for good after a fatal write error: the job context
// is cancelled (killing the running step) and nothing more is reported.
func (r *jobRunner) abandon(err error) {
	if r.abandonedFlag.Swap(true) {
		return
	}
	r.log.Warn("stopping the job: the server refuses this attempt", "err", err)
	r.cancelJob(fatalCause(err))
}

// abandoned tells whether the job was stopped by a fatal write error.
func (r *jobRunner) abandoned() bool { return r.abandonedFlag.Load() }

// sendRecord makes one attempt at delivering a spooled record.
func (r *jobRunner) sendRecord(ctx context.Context, rec record) error {
	id, attempt := r.asg.JobID, r.asg.Attempt
	switch rec.kind {
	case recStart:
		return r.client.start(ctx, id, attempt)
	case recStep:
		return r.client.stepResultJSON(ctx, id, rec.step, rec.data)
	case recLog:
		return r.client.logChunk(ctx, id, rec.step, attempt, rec.seq, rec.data)
	case recComplete:
		return r.client.completeJSON(ctx, id, rec.data)
	}
	return fmt.Errorf("unknown spool record kind %d", rec.kind)
}

// execute prepares the environment and runs the steps; it returns the job's
// result. ctx is the agent's context.
func (r *jobRunner) execute(ctx context.Context) (ci.JobResult, string) {
	name := r.asg.Executor
	if name == "" {
		name = ci.ExecutorLocal
	}
	ex, ok := r.cfg.Executors[name]
	if !ok {
		names := make([]string, 0, len(r.cfg.Executors))
		for n := range r.cfg.Executors {
			names = append(names, n)
		}
		sort.Strings(names)
		return ci.JobError, fmt.Sprintf("executor %q is not available on this agent (it has: %s)", name, strings.Join(names, ", "))
	}
	env, err := ex.Prepare(r.jobCtx, executor.JobSpec{JobID: r.asg.JobID, Attempt: r.asg.Attempt, System: r.asg.System, Options: r.asg.Options})
	if err != nil {
		if res, msg, interrupted := r.interruption(ctx); interrupted {
			return res, msg
		}
		return ci.JobError, fmt.Sprintf("prepare %s environment: %v", name, err)
	}
	bg := tools.NewBackground()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := bg.Stop(cctx); err != nil {
			r.log.Error("stop background steps", "err", err)
		}
		if err := env.Close(cctx); err != nil {
			r.log.Error("close job environment", "err", err)
		}
	}()

	r.out.appendStart()
	r.log.Info("job started", "workspace", env.Workspace())

	failed := r.runSteps(env, bg)
	if res, msg, interrupted := r.interruption(ctx); interrupted {
		return res, msg
	}
	if failed {
		return ci.JobFailed, "a step failed"
	}
	return ci.JobOK, ""
}

// interruption tells whether the job context ended early, and how to report it.
func (r *jobRunner) interruption(ctx context.Context) (ci.JobResult, string, bool) {
	if r.jobCtx.Err() == nil {
		return "", "", false
	}
	cause := context.Cause(r.jobCtx)
	switch {
	case errors.Is(cause, errCancelRequested):
		return ci.JobCancelled, "job cancelled", true
	case errors.Is(cause, context.DeadlineExceeded) && ctx.Err() == nil:
		return ci.JobTimeout, fmt.Sprintf("job timed out after %ds", r.asg.Timeout), true
	case ctx.Err() != nil:
		return ci.JobError, "kkagent was stopped while the job was running", true
	}
	return ci.JobError, cause.Error(), true
}

// runSteps runs the steps in order and reports each; it returns whether a
// step failed. After a failure, later steps still run when their `when`
// allows it (was_any_error, always); once the job context ends, the remaining
// steps are reported skipped.
func (r *jobRunner) runSteps(env executor.Env, bg *tools.Background) bool {
	states := make([]stepState, len(r.asg.Steps))
	for i := range states {
		states[i].status = ci.StepPending
	}
	failed := false
	for i, step := range r.asg.Steps {
		if r.abandoned() {
			return failed
		}
		log := r.log.With("step", step.Index, "tool", step.Tool)
		var st stepState
		if r.jobCtx.Err() != nil {
			st.status = ci.StepSkipped
			r.reportStep(step.Index, api.StepResult{Status: ci.StepSkipped, Message: "the job was stopped before this step"})
		} else {
			ok, err := r.evalWhen(step, i, states)
			switch {
			case err != nil:
				st.status = ci.StepError
				now := time.Now()
				r.reportStep(step.Index, api.StepResult{Status: ci.StepError, Reason: "when-error",
					Message: fmt.Sprintf("when: %v", err), Started: &now, Finished: &now})
			case !ok:
				st.status = ci.StepSkipped
				r.reportStep(step.Index, api.StepResult{Status: ci.StepSkipped,
					Message: fmt.Sprintf("skipped: when %q is false", whenExpr(step.Fields))})
			default:
				st = r.runStep(env, bg, step, log)
			}
		}
		states[i] = st
		log.Info("step finished", "status", st.status)
		if st.status.Failed() {
			failed = true
		}
	}
	return failed
}

// whenExpr is the step's `when` (default was_no_error, Kraken's); a boolean
// true or false means always or never.
func whenExpr(fields map[string]any) string {
	switch w := fields["when"].(type) {
	case string:
		if strings.TrimSpace(w) != "" {
			return w
		}
	case bool:
		if w {
			return "always"
		}
		return "never"
	}
	return schema.DefaultWhen
}

func (r *jobRunner) evalWhen(step api.AssignedStep, pos int, states []stepState) (bool, error) {
	if v, ok := step.Fields["when"]; ok && v != nil {
		switch v.(type) {
		case string, bool:
		default:
			return false, fmt.Errorf("want an expression string, got %T", v)
		}
	}
	wc := schema.WhenContext{
		IsCI:   r.asg.FlowKind != ci.FlowDEV,
		PrevOK: pos == 0 || states[pos-1].status == ci.StepOK,
		Index:  step.Index,
		Steps:  make([]schema.WhenStep, len(states)),
	}
	for i, s := range states {
		if i < pos && s.status.Failed() {
			wc.WasAnyError = true
		}
		wc.Steps[i] = schema.WhenStep{
			Index:    r.asg.Steps[i].Index,
			Status:   string(s.status),
			Duration: s.duration.Seconds(),
			ExitCode: s.exitCode,
		}
	}
	return schema.EvalWhen(whenExpr(step.Fields), wc)
}

// runStep runs one step with its attempts and reports it running and done.
func (r *jobRunner) runStep(env executor.Env, bg *tools.Background, step api.AssignedStep, log *slog.Logger) stepState {
	started := time.Now()
	r.reportStep(step.Index, api.StepResult{Status: ci.StepRunning, Started: &started})
	out := r.out.writer(step.Index)

	res := r.attempts(env, bg, step, out, log)

	out.flush()
	finished := time.Now()
	r.reportStep(step.Index, api.StepResult{
		Status: res.Status, ExitCode: res.ExitCode, Reason: res.Reason, Message: res.Message,
		Started: &started, Finished: &finished,
	})
	st := stepState{status: res.Status, duration: finished.Sub(started)}
	if res.ExitCode != nil {
		st.exitCode = *res.ExitCode
	}
	return st
}

// attempts runs the step's tool up to `attempts` times, sleeping
// `sleep_time_after_attempt` seconds (interruptibly) between attempts.
func (r *jobRunner) attempts(env executor.Env, bg *tools.Background, step api.AssignedStep, out *stepWriter, log *slog.Logger) tools.Result {
	toolName, _, _ := strings.Cut(step.Tool, "@")
	tool, ok := r.cfg.Tools[toolName]
	if !ok {
		msg := fmt.Sprintf("tool %s is not available in this agent version", toolName)
		fmt.Fprintln(out, msg)
		return tools.Result{Status: ci.StepError, Reason: tools.ReasonToolNotAvailable, Message: msg}
	}
	attempts, err := tools.Int(step.Fields, "attempts", 1)
	if err != nil {
		return tools.Result{Status: ci.StepError, Reason: tools.ReasonBadParameters, Message: err.Error()}
	}
	attempts = max(attempts, 1)
	pause, _, err := tools.Seconds(step.Fields, "sleep_time_after_attempt")
	if err != nil {
		return tools.Result{Status: ci.StepError, Reason: tools.ReasonBadParameters, Message: err.Error()}
	}
	ts := tools.Step{
		Index:      step.Index,
		Name:       step.Name,
		Tool:       toolName,
		Fields:     step.Fields,
		Env:        r.asg.Env,
		Output:     out,
		Deadline:   r.deadline,
		Background: bg,
		Job: tools.JobInfo{
			ID: r.asg.JobID, Attempt: r.asg.Attempt, RunID: r.asg.RunID, FlowID: r.asg.FlowID,
			Name: r.asg.Name, Project: r.asg.Project, Branch: r.asg.Branch, Stage: r.asg.Stage, FlowKind: r.asg.FlowKind,
		},
		Creds:    r.asg.Creds,
		Trigger:  r.asg.Trigger,
		Services: r.services(step.Index, out, log),
	}
	for n := 1; ; n++ {
		res := tool.Run(r.jobCtx, env, ts)
		if res.Status == ci.StepOK || res.Status == ci.StepCancelled || n >= attempts || r.jobCtx.Err() != nil {
			return res
		}
		log.Info("step attempt failed", "attempt_no", n, "attempts", attempts, "status", res.Status, "message", res.Message)
		fmt.Fprintf(out, "attempt %d of %d failed (%s: %s); next attempt in %s\n", n, attempts, res.Status, res.Message, pause)
		if !sleepCtx(r.jobCtx, pause) {
			if errors.Is(r.jobCtx.Err(), context.DeadlineExceeded) {
				return tools.Result{Status: ci.StepTimeout, Reason: tools.ReasonJobTimeout, Message: "job timed out"}
			}
			return tools.Result{Status: ci.StepCancelled, Reason: tools.ReasonCancelled, Message: "cancelled"}
		}
	}
}

// reportStep spools a step's state for delivery; it never waits for kkd.
func (r *jobRunner) reportStep(idx int, res api.StepResult) {
	if r.abandoned() {
		return
	}
	res.Attempt = r.asg.Attempt
	r.out.appendStep(idx, res)
}

package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/store"
)

var validAgentName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (s *Server) registrationKeyOK(key string) bool {
	ok := false
	for _, k := range s.cfg.RegistrationKeys {
		if k != "" && auth.EqualHash(k, key) {
			ok = true
		}
	}
	return ok
}

func (s *Server) agentRegister(w http.ResponseWriter, r *http.Request) error {
	var req api.Register
	if err := decode(r, &req); err != nil {
		return err
	}
	id, err := uuid.Parse(req.UUID)
	if err != nil {
		return badRequest("uuid %q is not a UUID", req.UUID)
	}
	// uuid.Parse accepts several spellings (braces, urn:uuid:, no dashes, upper
	// case): one agent must not become several by changing how it writes its UUID.
	req.UUID = id.String()
	if len(req.EnrollSecret) < 32 {
		return badRequest("enroll_secret must be at least 32 characters of random data")
	}
	if !validAgentName.MatchString(req.Name) {
		return badRequest("agent name %q is invalid: use letters, digits, '.', '_' and '-' (up to 64 characters)", req.Name)
	}
	// Checked before anything is stored, so a bad request changes nothing.
	for _, g := range req.Groups {
		if err := checkName("group", g); err != nil {
			return err
		}
	}
	wait, err := s.waitParam(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	enroll := auth.HashToken(req.EnrollSecret)
	if old, err := s.cfg.Store.GetAgentByUUID(ctx, req.UUID); err == nil {
		if !auth.EqualHash(old.EnrollHash, enroll) {
			s.cfg.Logger.Warn("agent registration with a wrong enroll secret", "agent_id", old.ID, "remote", remoteIP(r))
			return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized,
				"agent %s is registered with another enroll secret: if the host was reinstalled, delete the old agent (`kk agent delete %s`) and restart this one", req.UUID, old.Name)
		}
	} else if !errors.Is(err, ci.ErrNotFound) {
		return err
	}
	a, err := s.cfg.Store.RegisterAgent(ctx, ci.Agent{UUID: req.UUID, Name: req.Name, Address: remoteIP(r), HostInfo: req.HostInfo, EnrollHash: enroll}, s.cfg.Now())
	if err != nil {
		return err
	}
	resp := api.RegisterResponse{AgentID: a.ID, Name: a.Name}
	if !a.Authorized && req.RegistrationKey != "" {
		if s.registrationKeyOK(req.RegistrationKey) {
			gs, err := s.ensureGroups(ctx, req.Groups)
			if err != nil {
				return err
			}
			if a, err = s.authorize(ctx, a, gs); err != nil {
				return err
			}
			s.cfg.Logger.Info("agent auto-registered with a registration key", "agent_id", a.ID, "agent", a.Name, "groups", a.Groups)
		} else {
			s.cfg.Logger.Warn("agent presented a wrong registration key; it stays discovered", "agent_id", a.ID, "agent", a.Name, "remote", remoteIP(r))
			resp.Message = "the registration key was rejected: the agent stays discovered until an admin runs `kk agent authorize " + a.Name + "`"
		}
	}
	if !a.Authorized && wait > 0 {
		a, err = s.waitAuthorized(ctx, a, wait)
		if err != nil {
			return err
		}
	}
	resp.Authorized = a.Authorized
	if a.Authorized {
		cred := auth.NewToken("kka")
		if err := s.cfg.Store.SetAgentCredential(ctx, a.ID, auth.HashToken(cred)); err != nil {
			return err
		}
		// The agent's previous credential, if any, is no longer valid.
		s.revokeCreds()
		resp.Credential = cred
		s.cfg.Logger.Info("agent credential issued", "agent_id", a.ID, "agent", a.Name)
	} else if resp.Message == "" {
		resp.Message = "waiting for authorization: run `kk agent authorize " + a.Name + "`"
	}
	return writeJSON(w, http.StatusOK, resp)
}

// ensureGroups returns the named groups, creating missing ones (registration keys
// put agents straight into their groups).
func (s *Server) ensureGroups(ctx context.Context, names []string) ([]ci.Group, error) {
	var gs []ci.Group
	for _, n := range names {
		if err := checkName("group", n); err != nil {
			return nil, err
		}
		g, err := s.cfg.Store.GetGroupByName(ctx, n)
		if errors.Is(err, ci.ErrNotFound) {
			g = ci.Group{Name: n}
			err = s.cfg.Store.CreateGroup(ctx, &g)
			if errors.Is(err, ci.ErrConflict) {
				g, err = s.cfg.Store.GetGroupByName(ctx, n)
			}
		}
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

func (s *Server) waitAuthorized(ctx context.Context, a ci.Agent, wait time.Duration) (ci.Agent, error) {
	wake, unsubscribe := s.cfg.Hub.Subscribe(AuthKey(a.ID))
	defer unsubscribe()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		cur, err := s.cfg.Store.GetAgent(ctx, a.ID)
		if err != nil {
			return a, err
		}
		if cur.Authorized {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return cur, nil
		case <-timer.C:
			return cur, nil
		case <-wake:
		}
	}
}

func (s *Server) agentWork(w http.ResponseWriter, r *http.Request) error {
	a := agentFrom(r)
	var req api.WorkRequest
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	wait, err := s.waitParam(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.cfg.Store.TouchAgent(ctx, a.ID, s.cfg.Now(), req.HostInfo); err != nil {
		return err
	}
	if req.HostInfo != nil {
		a.HostInfo = *req.HostInfo
	}
	if a.JobID != 0 {
		j, err := s.cfg.Store.GetJob(ctx, a.JobID)
		if err != nil && !errors.Is(err, ci.ErrNotFound) {
			return err
		}
		switch {
		case err == nil && j.State == ci.JobAssigned && j.AgentID == a.ID:
			// The assignment was claimed but its response was lost: hand it over again.
			return s.writeAssignment(w, r, j)
		case err == nil && j.State == ci.JobRunning && j.AgentID == a.ID:
			// The agent asks for work while the server thinks it runs a job: the
			// agent restarted and its copy of the job is gone. The engine retries
			// the job (or gives up, or completes a pending cancel) and wakes the
			// old attempt's held heartbeat, the job's followers and the dispatcher.
			_, outcome, err := s.cfg.Engine.FailAttempt(ctx, j.ID, j.Attempt, engine.AgentRestarted, "")
			if err != nil && !errors.Is(err, ci.ErrStaleAttempt) && !errors.Is(err, ci.ErrNotFound) {
				return err
			}
			s.cfg.Logger.Warn("agent came back without its job", "agent_id", a.ID, "job_id", j.ID, "attempt", j.Attempt, "requeued", outcome == store.FailRequeued)
		}
	}
	if a.Disabled || wait == 0 {
		if a.Disabled && wait > 0 {
			release := s.hold(ctx, a.ID)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			release()
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// a was read by requireAgent (the work route skips the credential
	// cache) during this request; only an agent that had a job is read again,
	// as the engine may have freed it above.
	fresh := a
	if a.JobID != 0 {
		if fresh, err = s.cfg.Store.GetAgent(ctx, a.ID); err != nil {
			return err
		}
	}
	release := s.hold(ctx, a.ID)
	j, ok := s.cfg.Dispatcher.Wait(wctx, fresh)
	release()
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return s.writeAssignment(w, r, j)
}

func (s *Server) writeAssignment(w http.ResponseWriter, r *http.Request, j ci.Job) error {
	asg, err := s.assignment(r.Context(), j)
	if ue := (*unresolvableError)(nil); errors.As(err, &ue) {
		return s.writeUnresolvable(w, r, j, ue)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, asg)
}

// assignment builds what the agent needs to run job j.
func (s *Server) assignment(ctx context.Context, j ci.Job) (api.Assignment, error) {
	if len(j.Steps) == 0 {
		var err error
		if j, err = s.cfg.Store.GetJob(ctx, j.ID); err != nil {
			return api.Assignment{}, err
		}
	}
	run, err := s.cfg.Store.GetRun(ctx, j.RunID)
	if err != nil {
		return api.Assignment{}, err
	}
	f, err := s.cfg.Store.GetFlow(ctx, j.FlowID)
	if err != nil {
		return api.Assignment{}, err
	}
	b, err := s.cfg.Store.GetBranch(ctx, f.BranchID)
	if err != nil {
		return api.Assignment{}, err
	}
	p, err := s.cfg.Store.GetProject(ctx, b.ProjectID)
	if err != nil {
		return api.Assignment{}, err
	}
	env := map[string]string{}
	for k, v := range b.Env {
		env[k] = v
	}
	kind := "CI"
	if f.Kind == ci.FlowDEV {
		kind = "DEV"
	}
	for k, v := range map[string]string{
		"CI": "true", "KRAKEN": "true", "KK_PROJECT": p.Name, "KK_BRANCH": b.RepoBranch, "KK_BRANCH_NAME": b.Name,
		"KK_STAGE": run.StageName, "KK_FLOW_ID": itoa64(f.ID), "KK_FLOW_KIND": kind, "KK_FLOW_SEQ": itoa64(f.Seq),
		"KK_FLOW_LABEL": f.Label, "KK_RUN_ID": itoa64(run.ID), "KK_RUN_SEQ": itoa64(run.Seq), "KK_RUN_LABEL": run.Label,
		"KK_JOB_ID": itoa64(j.ID), "KK_JOB_NAME": j.Name, "KK_JOB_ATTEMPT": strconv.Itoa(j.Attempt), "KK_SYSTEM": j.System,
	} {
		env[k] = v
	}
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = 300
	}
	asg := api.Assignment{
		JobID: j.ID, Attempt: j.Attempt, RunID: run.ID, FlowID: f.ID, Name: j.Name,
		Project: p.Name, Branch: b.Name, Stage: run.StageName, FlowKind: f.Kind,
		Executor: j.Executor, System: j.System, Timeout: timeout,
		LeaseSeconds: int(s.cfg.Dispatcher.Lease() / time.Second), Env: env,
	}
	if j.Network != "" {
		asg.Options = map[string]string{"network": j.Network}
	}
	if len(f.TriggerData) > 0 {
		asg.Trigger = f.TriggerData // the git tool checks out its commit
	}
	for _, st := range j.Steps {
		asg.Steps = append(asg.Steps, api.AssignedStep{Index: st.Index, Tool: st.Tool, Name: st.Name, Fields: st.Fields})
	}
	if err := s.resolveSecrets(ctx, p, &asg); err != nil {
		return api.Assignment{}, err
	}
	return asg, nil
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// agentJob loads {id} and checks it belongs to the calling agent's attempt.
func (s *Server) agentJob(r *http.Request, attempt int) (ci.Job, error) {
	a := agentFrom(r)
	id, err := pathID(r, "id")
	if err != nil {
		return ci.Job{}, err
	}
	if attempt <= 0 {
		return ci.Job{}, badRequest("attempt must be the assignment's attempt number (>= 1)")
	}
	j, err := s.cfg.Store.GetJob(r.Context(), id)
	return checkAgentJob(a, id, attempt, j, err)
}

// checkAgentJob is agentJob's check of job id as GetJob returned it (j, err).
func checkAgentJob(a ci.Agent, id int64, attempt int, j ci.Job, err error) (ci.Job, error) {
	if errors.Is(err, ci.ErrNotFound) {
		return j, api.Errorf(http.StatusConflict, api.CodeStaleAttempt, "job %d no longer exists: stop it", id)
	}
	if err != nil {
		return j, err
	}
	if !currentAttempt(j, a.ID, attempt) {
		return j, api.Errorf(http.StatusConflict, api.CodeStaleAttempt,
			"job %d attempt %d is not this agent's current attempt (job is %s, attempt %d): stop it", id, attempt, j.State, j.Attempt)
	}
	return j, nil
}

// agentJobDone loads {id} for an idempotent write (log chunk, completion):
// besides the calling agent's current attempt, the attempt of this agent
// that completed the job is accepted (done=true); the store then tells a
// retry from a new write.
func (s *Server) agentJobDone(r *http.Request, attempt int) (j ci.Job, done bool, err error) {
	j, err = s.agentJob(r, attempt)
	var ae *api.Error
	if err == nil || !errors.As(err, &ae) || ae.Code != api.CodeStaleAttempt {
		return j, false, err
	}
	if j.ID != 0 && j.State == ci.JobCompleted && j.Attempt == attempt && j.AgentID == agentFrom(r).ID {
		return j, true, nil
	}
	return j, false, err
}

// currentAttempt reports whether attempt is the job's current attempt and
// belongs to agent agentID: the job is assigned to or run by that agent under
// that attempt number (a requeued job is queued until its next claim).
func currentAttempt(j ci.Job, agentID int64, attempt int) bool {
	return j.AgentID == agentID && j.Attempt == attempt && (j.State == ci.JobAssigned || j.State == ci.JobRunning)
}

// finishedAttempt tells whether attempt of the agent is the one that completed
// job j: its heartbeat is then not stale, the attempt is simply over.
func finishedAttempt(j ci.Job, agentID int64, attempt int) bool {
	return j.State == ci.JobCompleted && j.AgentID == agentID && j.Attempt == attempt
}

func staleOr(err error) error {
	if errors.Is(err, ci.ErrStaleAttempt) {
		return api.Errorf(http.StatusConflict, api.CodeStaleAttempt, "%v: stop the job", err)
	}
	return err
}

func (s *Server) agentStart(w http.ResponseWriter, r *http.Request) error {
	var req api.AttemptRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if req.Attempt <= 0 {
		return badRequest("attempt must be the assignment's attempt number (>= 1)")
	}
	// The store fences by attempt and agent in the write's transaction; only
	// a refused write reads the job, to tell the agent why.
	if err := s.cfg.Store.StartAgentJob(r.Context(), id, req.Attempt, agentFrom(r).ID, s.cfg.Now()); err != nil {
		return s.whyRefused(r, req.Attempt, err, nil)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// whyRefused turns an agent's write that the store refused (err) into the
// answer agentJob (and, when check is set, check of the job) would have
// given before the write: the usual answer of a stale attempt or a missing
// job or step. Other errors are returned as they are.
func (s *Server) whyRefused(r *http.Request, attempt int, err error, check func(ci.Job) error) error {
	if !errors.Is(err, ci.ErrStaleAttempt) && !errors.Is(err, ci.ErrNotFound) {
		return err
	}
	j, jerr := s.agentJob(r, attempt)
	if jerr != nil {
		return jerr
	}
	if check != nil {
		if cerr := check(j); cerr != nil {
			return cerr
		}
	}
	return staleOr(err)
}

func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var req api.AttemptRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	wait, err := s.waitParam(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	a := agentFrom(r)
	lease := s.cfg.Dispatcher.Lease()
	over := api.HeartbeatResponse{LeaseSeconds: int(lease / time.Second), Cancel: true}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if req.Attempt <= 0 {
		return badRequest("attempt must be the assignment's attempt number (>= 1)")
	}
	// A held heartbeat counts as presence from before it subscribes: whoever
	// sees the subscription (a cancel, a test) sees the agent present.
	release := func() {}
	if wait > 0 {
		release = sync.OnceFunc(s.hold(ctx, a.ID))
		defer release()
	}
	// Subscribe before renewing, so a cancel between renewal and wait is seen.
	wake, unsubscribe := s.cfg.Hub.Subscribe(engine.CancelKey(id))
	defer unsubscribe()
	// One statement fences (attempt, agent), renews the lease and marks the
	// agent seen; only a refused renewal reads the job, to tell why.
	now := s.cfg.Now()
	renewed, err := s.cfg.Store.RenewAgentLease(ctx, id, req.Attempt, a.ID, now.Add(lease), now)
	if errors.Is(err, ci.ErrStaleAttempt) || errors.Is(err, ci.ErrNotFound) {
		cur, gerr := s.cfg.Store.GetJob(ctx, id)
		// The agent's completion may be processed while its heartbeat is on
		// the way: that attempt is over, not stale (a 409 would make the
		// agent think it abandoned a job it finished).
		if gerr == nil && finishedAttempt(cur, a.ID, req.Attempt) {
			return writeJSON(w, http.StatusOK, over)
		}
		if _, cerr := checkAgentJob(a, id, req.Attempt, cur, gerr); cerr != nil {
			return cerr
		}
		return staleOr(err)
	}
	if err != nil {
		return err
	}
	j := renewed
	resp := api.HeartbeatResponse{LeaseSeconds: int(lease / time.Second), Cancel: renewed.CancelRequested != nil}
	if resp.Cancel || wait == 0 {
		return writeJSON(w, http.StatusOK, resp)
	}
	t := time.NewTimer(wait)
	select {
	case <-wake:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	release()
	if ctx.Err() != nil {
		// The agent hung up or kkd is shutting down; in the latter case the
		// agent gets an envelope it retries, not an empty 200.
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "kkd is shutting down: retry the heartbeat")
	}
	// The job may have been cancelled, completed or requeued meanwhile.
	cur, err := s.cfg.Store.GetJob(ctx, j.ID)
	if err != nil && !errors.Is(err, ci.ErrNotFound) {
		return err
	}
	if err == nil && finishedAttempt(cur, a.ID, req.Attempt) {
		return writeJSON(w, http.StatusOK, over)
	}
	if err != nil || !currentAttempt(cur, a.ID, req.Attempt) {
		return api.Errorf(http.StatusConflict, api.CodeStaleAttempt, "job %d attempt %d is no longer current: stop it", j.ID, req.Attempt)
	}
	resp.Cancel = cur.CancelRequested != nil
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) stepIndex(r *http.Request, j ci.Job) (int, error) {
	v := r.PathValue("idx")
	idx, err := strconv.Atoi(v)
	if err != nil || idx < 0 || idx >= len(j.Steps) {
		return 0, badRequest("step %q does not exist in job %d (%d steps)", v, j.ID, len(j.Steps))
	}
	return idx, nil
}

func (s *Server) agentLogs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	attempt, err := strconv.Atoi(q.Get("attempt"))
	if err != nil {
		return badRequest("attempt=%q: give the assignment's attempt number", q.Get("attempt"))
	}
	seq, err := strconv.ParseInt(q.Get("seq"), 10, 64)
	if err != nil || seq < 0 {
		return badRequest("seq=%q: give the chunk's sequence number (>= 0)", q.Get("seq"))
	}
	// A chunk of the attempt that completed the job may be a retry of one
	// whose answer was lost: the store accepts it if it has it already.
	j, _, err := s.agentJobDone(r, attempt)
	if err != nil {
		return err
	}
	idx, err := s.stepIndex(r, j)
	if err != nil {
		return err
	}
	data, err := readChunk(r, maxLogChunk)
	if err != nil {
		return badRequest("read log chunk: %v (chunks are limited to %d bytes)", err, maxLogChunk)
	}
	// The store fences the chunk by attempt in the same transaction that
	// stores it, so a requeue racing this request cannot let a stale chunk in.
	if err := s.cfg.Logs.Append(r.Context(), ci.LogChunk{JobID: j.ID, Attempt: attempt, Step: idx, Seq: seq, Data: data}); err != nil {
		return staleOr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// readChunk reads a log chunk's body of at most limit bytes. With a
// Content-Length (kkagent always sends one) it reads into one buffer of that
// size instead of growing one by doubling, which copied a 1 MiB chunk about
// twice more and allocated twice its size.
func readChunk(r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(nil, r.Body, limit)
	if n := r.ContentLength; n >= 0 && n <= limit {
		data := make([]byte, n)
		if _, err := io.ReadFull(body, data); err != nil {
			return nil, err
		}
		return data, nil
	}
	return io.ReadAll(body)
}

var stepStatuses = map[ci.StepStatus]bool{
	ci.StepRunning: true, ci.StepOK: true, ci.StepFailed: true, ci.StepTimeout: true,
	ci.StepSkipped: true, ci.StepCancelled: true, ci.StepError: true,
}

func (s *Server) agentStep(w http.ResponseWriter, r *http.Request) error {
	var req api.StepResult
	if err := decode(r, &req); err != nil {
		return err
	}
	if !stepStatuses[req.Status] {
		return badRequest("step status %q is unknown: use running, ok, failed, timeout, skipped, cancelled or error", req.Status)
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if req.Attempt <= 0 {
		return badRequest("attempt must be the assignment's attempt number (>= 1)")
	}
	idx, err := strconv.Atoi(r.PathValue("idx"))
	if err != nil || idx < 0 {
		return badRequest("step %q does not exist in job %d", r.PathValue("idx"), id)
	}
	// The store fences by attempt and agent in the write's transaction and
	// refuses a step the job does not have; only then is the job read, to
	// tell the agent why.
	st := ci.Step{Index: idx, Status: req.Status, ExitCode: req.ExitCode, Reason: req.Reason, Message: req.Message, Started: req.Started, Finished: req.Finished}
	if err := s.cfg.Store.UpdateAgentStep(r.Context(), id, req.Attempt, agentFrom(r).ID, st); err != nil {
		return s.whyRefused(r, req.Attempt, err, func(j ci.Job) error {
			_, err := s.stepIndex(r, j)
			return err
		})
	}
	s.cfg.Hub.Publish(logs.Key(id))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var jobResults = map[ci.JobResult]bool{
	ci.JobOK: true, ci.JobFailed: true, ci.JobTimeout: true, ci.JobCancelled: true, ci.JobError: true,
}

func (s *Server) agentComplete(w http.ResponseWriter, r *http.Request) error {
	var req api.CompleteJob
	if err := decode(r, &req); err != nil {
		return err
	}
	if !jobResults[req.Result] {
		return badRequest("job result %q is unknown: use ok, failed, timeout, cancelled or error", req.Result)
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	if req.Attempt <= 0 {
		return badRequest("attempt must be the assignment's attempt number (>= 1)")
	}
	if req.Result != ci.JobError {
		// The store fences by attempt and agent in the completion's
		// transaction and treats a retry of this agent's completion as a
		// no-op; only a refused completion reads the job, to answer as below.
		_, err := s.cfg.Engine.CompleteAgentJob(ctx, id, req.Attempt, agentFrom(r).ID, req.Result, req.Message)
		if err == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if !errors.Is(err, ci.ErrStaleAttempt) && !errors.Is(err, ci.ErrNotFound) {
			return err
		}
	}
	j, done, err := s.agentJobDone(r, req.Attempt)
	if err != nil {
		if s.attemptEndedAs(ctx, id, req.Attempt, agentFrom(r).ID, req.Result) {
			// A retry of an error report that failed the attempt (the job was
			// retried on a new attempt meanwhile): the first one counted.
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return err
	}
	if done {
		// Completion is idempotent: a retry after a lost response succeeds
		// and the first completion stands.
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if req.Result == ci.JobError {
		// An infrastructure failure (the executor failed, kkagent was
		// stopped in the middle of the job): retried under the retry policy.
		_, _, err = s.cfg.Engine.FailAttempt(ctx, j.ID, req.Attempt, engine.AgentError, req.Message)
	} else {
		_, err = s.cfg.Engine.CompleteJob(ctx, j.ID, req.Attempt, req.Result, req.Message)
	}
	if err != nil {
		return staleOr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// attemptEndedAs reports whether the agent's attempt of the job ended with
// outcome in the job's history.
func (s *Server) attemptEndedAs(ctx context.Context, jobID int64, attempt int, agentID int64, outcome ci.JobResult) bool {
	history, err := s.cfg.Store.ListJobAttempts(ctx, jobID)
	if err != nil {
		return false
	}
	for _, a := range history {
		if a.Attempt == attempt {
			return a.AgentID == agentID && a.Finished != nil && a.Outcome == outcome
		}
	}
	return false
}

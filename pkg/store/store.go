// Package store defines the persistence contract of kkd. Implementations live in
// sub-packages (sqlite/, later postgres/) and all pass the one suite in storetest/.
//
// Contract for every implementation:
//   - Every method takes ctx first and honours its cancellation.
//   - Every method is atomic: it commits all of its effects or none.
//   - Methods are safe for concurrent use by many goroutines and, for server
//     databases, by several kkd processes. State transitions are conditional
//     updates ("... WHERE state = X"), so two callers racing on the same object
//     see exactly one winner; the loser gets changed=false or ErrConflict.
//   - Lookups of a missing object return an error wrapping ci.ErrNotFound; unique
//     violations wrap ci.ErrConflict; fenced writes from an old attempt wrap
//     ci.ErrStaleAttempt.
//   - Returned objects are copies; callers may modify them freely.
//   - Times are stored with at least millisecond precision, in UTC.
package store

import (
	"context"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// Store is the whole persistence interface of kkd.
type Store interface {
	ProjectStore
	StageStore
	FlowStore
	JobStore
	LogStore
	AgentStore
	UserStore
	ArtifactStore
	SecretStore
	ResultStore
	DataStore
	WebhookStore
	NotificationStore
	TriggerStore
	RetentionStore
	// Close releases the database.
	Close() error
}

// ProjectStore holds projects and branches.
type ProjectStore interface {
	// CreateProject inserts p and sets p.ID and p.Created. ErrConflict if the name is taken.
	CreateProject(ctx context.Context, p *ci.Project) error
	GetProject(ctx context.Context, id int64) (ci.Project, error)
	GetProjectByName(ctx context.Context, name string) (ci.Project, error)
	// ListProjects returns all projects ordered by name.
	ListProjects(ctx context.Context) ([]ci.Project, error)
	// DeleteProject deletes the project and everything below it (branches, stages,
	// flows, runs, jobs, steps, logs).
	DeleteProject(ctx context.Context, id int64) error

	// CreateBranch inserts b and sets b.ID and b.Created. ErrConflict if the project
	// already has a branch of that name; ErrNotFound if the project does not exist.
	CreateBranch(ctx context.Context, b *ci.Branch) error
	GetBranch(ctx context.Context, id int64) (ci.Branch, error)
	GetBranchByName(ctx context.Context, projectID int64, name string) (ci.Branch, error)
	// ListBranches returns the project's branches ordered by name.
	ListBranches(ctx context.Context, projectID int64) ([]ci.Branch, error)
	// DeleteBranch deletes the branch and everything below it.
	DeleteBranch(ctx context.Context, id int64) error
	// SetBranchRetention stores the branch's retention settings (days, 0:
	// default; negative is ErrInvalid) and returns the branch.
	SetBranchRetention(ctx context.Context, id int64, r ci.Retention) (ci.Branch, error)
}

// StageStore holds stages.
type StageStore interface {
	// PutStage inserts the stage, or replaces Code, Schema, Parent, Enabled and
	// Repo of the existing stage with the same (BranchID, Name). It sets s.ID,
	// s.Created and s.Updated.
	PutStage(ctx context.Context, s *ci.Stage) error
	// UpdateStageRepo records a refresh of a repo-backed stage: it stores
	// s.Code, s.Schema, s.Parent and s.Repo and sets s.Updated, only when the
	// stage is unchanged since the caller read it (its Updated equals
	// prevUpdated) and still has a repo; else ErrConflict (someone applied
	// it meanwhile: the refresh is stale). ErrNotFound if it is gone.
	UpdateStageRepo(ctx context.Context, s *ci.Stage, prevUpdated time.Time) error
	// ListRepoStages returns every stage that has a Repo, by ID.
	ListRepoStages(ctx context.Context) ([]ci.Stage, error)
	GetStage(ctx context.Context, id int64) (ci.Stage, error)
	GetStageByName(ctx context.Context, branchID int64, name string) (ci.Stage, error)
	// ListStages returns the branch's stages ordered by name.
	ListStages(ctx context.Context, branchID int64) ([]ci.Stage, error)
	// DeleteStage deletes the stage. Runs of it keep their StageName.
	DeleteStage(ctx context.Context, id int64) error
}

// ListFlowsOpts filters ListFlows.
type ListFlowsOpts struct {
	Kind  ci.FlowKind // "" for both
	Limit int         // 0 for no limit
}

// FlowStore holds flows and runs.
type FlowStore interface {
	// CreateFlow inserts f with state in_progress. It atomically takes the next
	// values of the branch's shared flow counter (f.Seq) and of its per-kind
	// counter (f.KindSeq), starting at 1, and sets f.ID and f.Created.
	CreateFlow(ctx context.Context, f *ci.Flow) error
	GetFlow(ctx context.Context, id int64) (ci.Flow, error)
	// ListFlows returns the branch's flows, newest first.
	ListFlows(ctx context.Context, branchID int64, opts ListFlowsOpts) ([]ci.Flow, error)
	SetFlowLabel(ctx context.Context, id int64, label string) error
	// CompleteFlowIfDone marks the flow completed (Finished=at) when it is
	// in_progress and none of its runs is in_progress. changed tells whether
	// this call made the transition.
	CompleteFlowIfDone(ctx context.Context, flowID int64, at time.Time) (f ci.Flow, changed bool, err error)

	// CreateRun inserts r and, when r.State is in_progress, its jobs with their
	// steps, in one transaction. It takes the next value of the per-(branch,
	// stage name) run counter as r.Seq and sets r.ID, r.Created and, for
	// in_progress runs, r.Started, r.JobsTotal. Each job gets ID, RunID, FlowID,
	// state queued, Attempt 0, Created; each step gets JobID and status pending.
	// A flow that is completed is set back to in_progress.
	CreateRun(ctx context.Context, r *ci.Run, jobs []*ci.Job) error
	GetRun(ctx context.Context, id int64) (ci.Run, error)
	// ListRuns returns the flow's runs in creation order.
	ListRuns(ctx context.Context, flowID int64) ([]ci.Run, error)
	// StartRun moves a manual run to in_progress (Started=at) and inserts its jobs
	// as CreateRun does. ErrConflict if the run is not in state manual.
	StartRun(ctx context.Context, runID int64, jobs []*ci.Job, at time.Time) (ci.Run, error)
	// CompleteRunIfDone marks the run completed (Finished=at) when it is
	// in_progress and every job that is not covered is completed. It stores
	// JobsTotal (non-covered jobs) and JobsError (non-covered jobs whose result is
	// not ok). changed tells whether this call made the transition.
	CompleteRunIfDone(ctx context.Context, runID int64, at time.Time) (r ci.Run, changed bool, err error)
	// SetRunNote sets the run's note (e.g. why it was completed early).
	SetRunNote(ctx context.Context, runID int64, note string) error
	// SetRunLabel sets the run's label (computed from run_label once Seq is known).
	SetRunLabel(ctx context.Context, runID int64, label string) error
	// RerunRun marks every job of the run covered, inserts the new jobs as
	// CreateRun does, and sets the run (and its flow) back to in_progress with
	// Finished cleared. ErrConflict if the run is in state manual.
	RerunRun(ctx context.Context, runID int64, jobs []*ci.Job) (ci.Run, error)
}

// JobStore holds jobs and steps and implements claims, leases and fencing.
//
// Fencing: every claim increments Job.Attempt and starts an entry of the
// job's attempt history (ListJobAttempts). Calls that take an attempt (agent
// writes) succeed only when the job's current attempt equals it and the job is
// not completed; otherwise they return ErrStaleAttempt. Server-side calls pass
// attempt 0, which is never fenced.
type JobStore interface {
	// GetJob returns the job with its steps ordered by index.
	GetJob(ctx context.Context, id int64) (ci.Job, error)
	// ListJobs returns the run's jobs (with steps) in creation order, covered ones included.
	ListJobs(ctx context.Context, runID int64) ([]ci.Job, error)
	// ListQueuedJobs returns queued jobs (without steps) in FIFO order: by run
	// creation, then job ID. At most limit (0: all).
	ListQueuedJobs(ctx context.Context, limit int) ([]ci.Job, error)
	// ListQueuedJobsAfter is the next page of ListQueuedJobs: the queued
	// jobs that come after job (runID, jobID) in FIFO order. At most limit.
	ListQueuedJobsAfter(ctx context.Context, runID, jobID int64, limit int) ([]ci.Job, error)
	// ClaimJob atomically gives a queued job to an agent that has no current
	// job: job → assigned, Attempt+1, AgentID, Assigned=now, LeaseUntil=now+lease;
	// agent.JobID = job; a new attempt in the history names the agent.
	// ErrConflict when the job is no longer queued or the agent is busy,
	// disabled or unauthorized. Returns the job with its steps.
	ClaimJob(ctx context.Context, jobID, agentID int64, lease time.Duration) (ci.Job, error)
	// ClaimJobs makes several claims in one transaction (one commit, one
	// round of locks), each exactly as ClaimJob would, in the order given:
	// results[i] is the outcome of claims[i]. A claim that ClaimJob would
	// refuse (ErrConflict, ErrNotFound) fails alone; an error of the database
	// fails them all and is returned as err.
	ClaimJobs(ctx context.Context, claims []Claim, lease time.Duration) (results []ClaimResult, err error)
	// StartJob moves the job from assigned to running (Started=at, also in the
	// attempt's history). Fenced.
	// Calling it again for a running job with the same attempt is a no-op.
	StartJob(ctx context.Context, jobID int64, attempt int, at time.Time) error
	// StartAgentJob is StartJob for agent agentID: an attempt that is not
	// agentID's gives ErrStaleAttempt (agents' writes need no read first).
	StartAgentJob(ctx context.Context, jobID int64, attempt int, agentID int64, at time.Time) error
	// RenewLease sets LeaseUntil=until for the current attempt and returns the
	// job (without steps; CancelRequested tells the agent to stop). Fenced: a completed job or another attempt gives
	// ErrStaleAttempt, which is how an agent learns that it must stop.
	RenewLease(ctx context.Context, jobID int64, attempt int, until time.Time) (ci.Job, error)
	// RenewAgentLease is an agent's heartbeat: RenewLease fenced also by the
	// job's agent (a job that agentID does not run under attempt gives
	// ErrStaleAttempt), and the agent's LastSeen=seen, in one transaction. The
	// fence is part of the UPDATE itself (no read before the write).
	RenewAgentLease(ctx context.Context, jobID int64, attempt int, agentID int64, until, seen time.Time) (ci.Job, error)
	// UpdateStep stores Status, ExitCode, Reason, Message, Started and Finished of
	// step st.Index of the job. Fenced. Idempotent.
	UpdateStep(ctx context.Context, jobID int64, attempt int, st ci.Step) error
	// UpdateAgentStep is UpdateStep for agent agentID: an attempt that is not
	// agentID's gives ErrStaleAttempt.
	UpdateAgentStep(ctx context.Context, jobID int64, attempt int, agentID int64, st ci.Step) error
	// CompleteJob moves a job that is not completed to completed with result and
	// message (Finished=at), clears the agent's current job and the lease. Steps
	// still pending become skipped; steps still running become cancelled (result
	// cancelled), timeout (result timeout) or error (other results). The
	// current attempt's history entry, if still open, ends with the result.
	// Fenced when attempt > 0. changed is false when the job was already
	// completed (the call is then a no-op, which makes completion idempotent).
	CompleteJob(ctx context.Context, jobID int64, attempt int, result ci.JobResult, message string, at time.Time) (j ci.Job, changed bool, err error)
	// CompleteAgentJob is CompleteJob for agent agentID (attempt >= 1): an
	// attempt that is not agentID's gives ErrStaleAttempt and changes nothing;
	// a retry of agentID's completion of the same attempt is the no-op
	// (changed=false). Agents' completions need no read first.
	CompleteAgentJob(ctx context.Context, jobID int64, attempt int, agentID int64, result ci.JobResult, message string, at time.Time) (j ci.Job, changed bool, err error)
	// FailAttempt ends the job's current attempt after an infrastructure
	// failure (its agent was lost, restarted or reported an executor error)
	// and, in the same transaction, either requeues the job for another
	// attempt or completes it. The attempt's history entry gets f.Outcome and
	// f.Reason. Then:
	//   - when f.OnlyIfExpired is set and the lease was renewed after the caller
	//     saw it expire (LeaseUntil >= f.At), nothing changes (FailNone): the
	//     agent is alive after all;
	//   - when a cancel of the job is pending, the job completes cancelled;
	//   - when f.Retry is set, the job goes back to queued: AgentID, lease and
	//     times are cleared, its steps are reset to pending, the agent's current
	//     job is cleared; the attempt's log stays (every attempt keeps its own);
	//   - otherwise the job completes with f.Result and f.Message, as CompleteJob.
	// Fenced: f.Attempt must be the job's current attempt and the job assigned
	// or running, else ErrStaleAttempt (someone else ended the attempt first).
	FailAttempt(ctx context.Context, f AttemptFailure) (ci.Job, FailOutcome, error)
	// RequestCancel records a user's cancel. A queued job completes at once
	// with result cancelled and message; for an assigned or running job it sets
	// CancelRequested=at (kept when already set: the first request counts), the
	// agent stops the job and completes it. changed tells whether the call did
	// either. A completed job is left alone.
	RequestCancel(ctx context.Context, jobID int64, at time.Time, message string) (j ci.Job, changed bool, err error)
	// ListJobAttempts returns the job's attempts in order (none for a job that
	// was never claimed or does not exist).
	ListJobAttempts(ctx context.Context, jobID int64) ([]ci.JobAttempt, error)
	// RerunJob marks the completed job covered, inserts a fresh copy (queued,
	// steps pending, same run) and sets its run and flow back to in_progress.
	// ErrConflict if the job is not completed.
	RerunJob(ctx context.Context, jobID int64) (ci.Job, error)
	// ListExpiredJobs returns assigned or running jobs whose LeaseUntil is before now.
	ListExpiredJobs(ctx context.Context, now time.Time) ([]ci.Job, error)
	// ListActiveJobs returns jobs that are assigned or running (without steps).
	ListActiveJobs(ctx context.Context) ([]ci.Job, error)
	// ListJobHistory returns up to limit completed, non-covered jobs (without
	// steps) like q describes, newest (by Finished) first.
	ListJobHistory(ctx context.Context, q JobHistoryQuery, limit int) ([]ci.Job, error)
	// ListActiveRuns returns the runs in state in_progress, by ID.
	ListActiveRuns(ctx context.Context) ([]ci.Run, error)
}

// JobHistoryQuery selects comparable jobs for timeout estimation: same
// branch, stage name, job name, agents group and system, with one of Results.
type JobHistoryQuery struct {
	BranchID int64
	Stage    string
	Name     string
	Group    string
	System   string
	Results  []ci.JobResult
}

// PurgedFlows is what DeleteFlowsBefore deleted.
type PurgedFlows struct {
	Flows int
	// JobIDs are the deleted jobs, whose archived logs the caller deletes.
	JobIDs []int64
	// Artifacts are the deleted artifacts, whose blobs the caller deletes.
	Artifacts []Artifact
	// LogBytes is the size of the deleted log chunks still in the database.
	LogBytes int64
}

// RetentionStore deletes old data in batches. Only data of completed flows
// that finished before the given time is touched (never that of a flow in
// progress, also not of one a rerun reopened meanwhile: the check is part of
// the deleting transaction). Blobs are the caller's: the methods return what
// to delete from the blob store once they committed.
type RetentionStore interface {
	// DeleteFlowsBefore deletes up to limit (0: all) of the branch's
	// completed flows that finished before before, oldest first, with their
	// runs, jobs, steps, logs, results and artifact rows.
	DeleteFlowsBefore(ctx context.Context, branchID int64, before time.Time, limit int) (PurgedFlows, error)
	// PurgeLogsBefore deletes the log chunks of up to limit (0: all) completed
	// jobs of the branch's completed flows that finished before before, and
	// marks their logs purged (so they are not returned again). It returns
	// the jobs, whose archived logs the caller deletes, and the bytes of
	// chunks it deleted.
	PurgeLogsBefore(ctx context.Context, branchID int64, before time.Time, limit int) (jobIDs []int64, chunkBytes int64, err error)
	// DeleteArtifactsBefore deletes and returns up to limit (0: all)
	// artifacts of the branch's completed flows that finished before before.
	DeleteArtifactsBefore(ctx context.Context, branchID int64, before time.Time, limit int) ([]Artifact, error)
	// ReferencedBlobs returns which of keys an artifact or a cache entry
	// names.
	ReferencedBlobs(ctx context.Context, keys []string) (map[string]bool, error)
	// JobsWithLogs returns which of ids are jobs that exist and whose log
	// was not purged.
	JobsWithLogs(ctx context.Context, ids []int64) (map[int64]bool, error)
}

// Claim asks for job JobID to be given to agent AgentID (JobStore.ClaimJobs).
type Claim struct {
	JobID   int64
	AgentID int64
}

// ClaimResult is the outcome of one Claim: the claimed job with its steps, or
// why it was refused.
type ClaimResult struct {
	Job ci.Job
	Err error
}

// LogPos is a position in a job's log, whose chunks are ordered by
// (Attempt, Step, Seq). The zero LogPos is before every chunk (attempts count
// from 1); LogPos{Attempt: n, Step: -1, Seq: -1} is the start of attempt n.
type LogPos struct {
	Attempt int
	Step    int
	Seq     int64
}

// LogStore holds step output as ordered chunks (never one row per line),
// one log per attempt of a job.
type LogStore interface {
	// AppendLog stores a chunk of attempt c.Attempt (>= 1, else ErrInvalid).
	// Fenced in the same transaction: the job must exist (ErrNotFound) and be
	// assigned or running at that attempt, else ErrStaleAttempt. Re-sending a
	// chunk with the same (JobID, Attempt, Step, Seq) is a no-op that returns
	// inserted=false and keeps the first data; that also holds once the attempt
	// completed the job, while a chunk the store does not have by then is stale.
	AppendLog(ctx context.Context, c ci.LogChunk) (inserted bool, err error)
	// ReadLogs returns the job's chunks ordered by (Attempt, Step, Seq) that
	// come after the position after. attempt > 0 restricts to that attempt and
	// step >= 0 to that step. At most limit chunks (0: all).
	ReadLogs(ctx context.Context, jobID int64, attempt, step int, after LogPos, limit int) ([]ci.LogChunk, error)
	// DeleteLogs deletes every chunk of a completed job, once its log was
	// archived to the blob store; ErrConflict when the job is not completed.
	DeleteLogs(ctx context.Context, jobID int64) error
	// ListArchivableLogs returns, by ID, up to limit (0: all) IDs greater
	// than afterID of completed jobs that still have chunks.
	ListArchivableLogs(ctx context.Context, afterID int64, limit int) ([]int64, error)
}

// AttemptFailure describes an infrastructure failure of a job's attempt for
// JobStore.FailAttempt.
type AttemptFailure struct {
	JobID   int64
	Attempt int // the failed attempt (>= 1)
	At      time.Time
	// OnlyIfExpired makes the call a no-op unless the attempt's lease ended
	// before At (the watchdog's check, made atomic with the change).
	OnlyIfExpired bool
	// Outcome (agent_lost or error) and Reason are recorded in the attempt's
	// history entry.
	Outcome ci.JobResult
	Reason  string
	// Retry requeues the job; otherwise it completes with Result and Message.
	Retry   bool
	Result  ci.JobResult
	Message string
}

// FailOutcome is what FailAttempt did.
type FailOutcome int

const (
	// FailNone: nothing changed (the lease was renewed meanwhile).
	FailNone FailOutcome = iota
	// FailRequeued: the job is queued for another attempt.
	FailRequeued
	// FailCompleted: the job completed (given up, or cancelled by a pending cancel).
	FailCompleted
)

// AgentUpdate changes some fields of an agent; nil fields are left alone.
type AgentUpdate struct {
	Name       *string
	Authorized *bool
	Disabled   *bool
}

// ListAgentsOpts filters ListAgents.
type ListAgentsOpts struct {
	// Authorized filters on authorization when not nil (false: discovered agents).
	Authorized *bool
}

// AgentStore holds agents and groups. Groups of an agent come back in Agent.Groups.
type AgentStore interface {
	// RegisterAgent inserts an agent with this UUID (unauthorized, name, address,
	// host info, enroll hash) or, when it exists, updates its address, host info
	// and LastSeen (never its name, authorization or enroll hash). Returns the
	// agent as stored.
	RegisterAgent(ctx context.Context, a ci.Agent, at time.Time) (ci.Agent, error)
	GetAgent(ctx context.Context, id int64) (ci.Agent, error)
	GetAgentByUUID(ctx context.Context, uuid string) (ci.Agent, error)
	GetAgentByName(ctx context.Context, name string) (ci.Agent, error)
	// GetAgentByCredential finds the agent whose credential hash equals hash.
	GetAgentByCredential(ctx context.Context, hash string) (ci.Agent, error)
	// ListAgents returns agents ordered by name.
	ListAgents(ctx context.Context, opts ListAgentsOpts) ([]ci.Agent, error)
	UpdateAgent(ctx context.Context, id int64, u AgentUpdate) (ci.Agent, error)
	// SetAgentCredential stores the hash of a newly issued credential ("" revokes).
	SetAgentCredential(ctx context.Context, id int64, hash string) error
	// TouchAgent sets LastSeen (and HostInfo when not nil).
	TouchAgent(ctx context.Context, id int64, at time.Time, info *ci.HostInfo) error
	// DeleteAgent deletes the agent and its group memberships. ErrConflict while
	// it has a current job.
	DeleteAgent(ctx context.Context, id int64) error

	// CreateGroup inserts g; ErrConflict if the name is taken. The group "all"
	// exists from the start.
	CreateGroup(ctx context.Context, g *ci.Group) error
	GetGroupByName(ctx context.Context, name string) (ci.Group, error)
	// ListGroups returns groups ordered by name.
	ListGroups(ctx context.Context) ([]ci.Group, error)
	// DeleteGroup deletes a group and its memberships; ErrInvalid for "all".
	DeleteGroup(ctx context.Context, id int64) error
	// AddAgentToGroup is idempotent.
	AddAgentToGroup(ctx context.Context, groupID, agentID int64) error
	// RemoveAgentFromGroup is idempotent.
	RemoveAgentFromGroup(ctx context.Context, groupID, agentID int64) error
	// ListGroupAgents returns the group's agents ordered by name.
	ListGroupAgents(ctx context.Context, groupID int64) ([]ci.Agent, error)
}

// UserStore holds users and API tokens.
type UserStore interface {
	// CreateUser inserts u; ErrConflict if the name is taken.
	CreateUser(ctx context.Context, u *ci.User) error
	GetUserByName(ctx context.Context, name string) (ci.User, error)
	CountUsers(ctx context.Context) (int, error)
	// CreateToken inserts t (t.Hash is the hash of the secret token).
	CreateToken(ctx context.Context, t *ci.Token) error
	// GetToken finds a token by hash and returns it with its user; it updates
	// LastUsed at most once a minute.
	GetToken(ctx context.Context, hash string, now time.Time) (ci.Token, ci.User, error)
	DeleteToken(ctx context.Context, id int64) error
}

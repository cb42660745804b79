// Package ci holds the domain types of Kraken in Go and their state machines.
//
// The hierarchy is Kraken's: project → branch → stage (schema code); a flow (CI or
// DEV) of a branch holds one run per stage; a run holds jobs (one per environment ×
// system); a job holds steps. Agents belong to groups. This package uses only the
// standard library so that every other package may depend on it.
package ci

import (
	"encoding/json"
	"errors"
	"time"
)

// Domain errors. They are defined once here and mapped once to HTTP statuses and
// JSON error codes by pkg/api.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrInvalid      = errors.New("invalid input")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	// ErrStaleAttempt is returned for writes from a job attempt that is no longer
	// the job's current attempt (fencing). The agent must stop its copy of the job.
	ErrStaleAttempt = errors.New("stale job attempt")
	// ErrUnavailable is returned when a dependency kkd cannot work without
	// (the database) is unreachable for now. The operation may succeed when
	// repeated later; kkd keeps retrying in the background by itself.
	ErrUnavailable = errors.New("unavailable")
)

// FlowKind is CI or DEV.
type FlowKind string

const (
	FlowCI  FlowKind = "ci"
	FlowDEV FlowKind = "dev"
)

// FlowState is the state of a flow.
type FlowState string

const (
	FlowInProgress FlowState = "in_progress"
	FlowCompleted  FlowState = "completed"
)

// RunState is the state of a run.
type RunState string

const (
	// RunManual: the stage has triggers.manual; the run waits for `kk run start`.
	RunManual     RunState = "manual"
	RunInProgress RunState = "in_progress"
	RunCompleted  RunState = "completed"
)

// JobState is the life-cycle state of a job.
type JobState string

const (
	// JobQueued: waiting for an agent.
	JobQueued JobState = "queued"
	// JobAssigned: claimed for an agent, which has not yet reported that it started.
	JobAssigned JobState = "assigned"
	// JobRunning: the agent is executing the job's steps.
	JobRunning JobState = "running"
	// JobCompleted: finished; Result says how.
	JobCompleted JobState = "completed"
)

// JobResult is how a completed job ended.
type JobResult string

const (
	JobResultNone    JobResult = ""
	JobOK            JobResult = "ok"
	JobFailed        JobResult = "failed"    // a step failed
	JobTimeout       JobResult = "timeout"   // job timeout
	JobCancelled     JobResult = "cancelled" // user cancel
	JobError         JobResult = "error"     // agent or infrastructure error
	JobNoAgents      JobResult = "no_agents" // no agent group of that name
	JobServerTimeout JobResult = "server_timeout"
	JobAgentLost     JobResult = "agent_lost"
)

// Ok reports whether the result counts as success.
func (r JobResult) Ok() bool { return r == JobOK }

// StepStatus is the state of a step.
type StepStatus string

const (
	StepPending   StepStatus = "pending"
	StepRunning   StepStatus = "running"
	StepOK        StepStatus = "ok"
	StepFailed    StepStatus = "failed"
	StepTimeout   StepStatus = "timeout"
	StepSkipped   StepStatus = "skipped"
	StepCancelled StepStatus = "cancelled"
	StepError     StepStatus = "error" // the tool could not run (bad parameters, when error)
)

// Done reports whether the status is final.
func (s StepStatus) Done() bool {
	switch s {
	case StepPending, StepRunning:
		return false
	}
	return true
}

// Failed reports whether the status counts as an error for `when` conditions.
func (s StepStatus) Failed() bool {
	switch s {
	case StepFailed, StepTimeout, StepCancelled, StepError:
		return true
	}
	return false
}

// AgentState is the state shown for an agent (GoCD's model). It is derived from the
// stored fields by Agent.State.
type AgentState string

const (
	AgentDiscovered  AgentState = "discovered"
	AgentIdle        AgentState = "idle"
	AgentPreparing   AgentState = "preparing"
	AgentBuilding    AgentState = "building"
	AgentLostContact AgentState = "lost_contact"
	AgentMissing     AgentState = "missing"
	AgentDisabled    AgentState = "disabled"
)

// Executors.
const (
	ExecutorLocal  = "local"
	ExecutorDocker = "docker"
	ExecutorLXD    = "lxd"
)

// GroupAll is the built-in group every authorized agent joins.
const GroupAll = "all"

// SystemAny matches every agent for the local executor.
const SystemAny = "any"

// Project is the top of the hierarchy.
type Project struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// Branch of a project. RepoBranch is the repository branch webhooks match.
type Branch struct {
	ID         int64             `json:"id"`
	ProjectID  int64             `json:"project_id"`
	Name       string            `json:"name"`
	RepoBranch string            `json:"repo_branch"`
	Env        map[string]string `json:"env,omitempty"`
	Retention  Retention         `json:"retention"`
	Created    time.Time         `json:"created"`
}

// Retention is how many days a branch keeps its data; 0 means the default
// (DefaultKeepFlowsDays and so on). Ages count from a flow's finish.
type Retention struct {
	KeepFlowsDays     int `json:"keep_flows_days,omitempty"`
	KeepLogsDays      int `json:"keep_logs_days,omitempty"`
	KeepArtifactsDays int `json:"keep_artifacts_days,omitempty"`
}

// Retention defaults in days.
const (
	DefaultKeepFlowsDays     = 90
	DefaultKeepLogsDays      = 30
	DefaultKeepArtifactsDays = 30
)

// Effective returns the retention with defaults filled in.
func (r Retention) Effective() Retention {
	if r.KeepFlowsDays <= 0 {
		r.KeepFlowsDays = DefaultKeepFlowsDays
	}
	if r.KeepLogsDays <= 0 {
		r.KeepLogsDays = DefaultKeepLogsDays
	}
	if r.KeepArtifactsDays <= 0 {
		r.KeepArtifactsDays = DefaultKeepArtifactsDays
	}
	return r
}

// Stage holds schema code and its evaluated JSON (with default arguments).
type Stage struct {
	ID       int64           `json:"id"`
	BranchID int64           `json:"branch_id"`
	Name     string          `json:"name"`
	Enabled  bool            `json:"enabled"`
	Code     string          `json:"code"`
	Schema   json.RawMessage `json:"schema"` // evaluated stage dict (pkg/schema.Stage as JSON)
	Parent   string          `json:"parent"` // "root" or a stage name (copied from Schema)
	// Repo is set when the stage's code lives in a git repository.
	Repo    *StageRepo `json:"repo,omitempty"`
	Created time.Time  `json:"created"`
	Updated time.Time  `json:"updated"`
}

// StageRepo says where a repo-backed stage's code comes from and how its
// last refresh went. The stage's Code is the last code that evaluated and
// validated; a failed refresh keeps it and records Error.
type StageRepo struct {
	URL         string `json:"url"`
	Branch      string `json:"branch"`
	Path        string `json:"path"`
	TokenSecret string `json:"token_secret,omitempty"` // a project secret holding an access token
	// RefreshSeconds is the periodic refresh interval (0: only on a push
	// webhook, before runs and on apply).
	RefreshSeconds int64      `json:"refresh_seconds,omitempty"`
	Version        string     `json:"version,omitempty"` // commit sha of Code
	Error          string     `json:"error,omitempty"`   // of the last refresh; "" when it succeeded
	Refreshed      *time.Time `json:"refreshed,omitempty"`
}

// Flow is one execution of a branch's stage graph.
type Flow struct {
	ID          int64             `json:"id"`
	BranchID    int64             `json:"branch_id"`
	Kind        FlowKind          `json:"kind"`
	State       FlowState         `json:"state"`
	Label       string            `json:"label"`
	Seq         int64             `json:"seq"`      // shared counter of the branch (CI and DEV)
	KindSeq     int64             `json:"kind_seq"` // own counter per kind
	Args        map[string]string `json:"args"`
	TriggerData json.RawMessage   `json:"trigger_data,omitempty"`
	Created     time.Time         `json:"created"`
	Finished    *time.Time        `json:"finished,omitempty"`
}

// Run is one execution of one stage inside a flow.
type Run struct {
	ID        int64             `json:"id"`
	FlowID    int64             `json:"flow_id"`
	StageID   int64             `json:"stage_id"`
	StageName string            `json:"stage_name"`
	State     RunState          `json:"state"`
	Reason    string            `json:"reason"` // manual, parent, ...
	Label     string            `json:"label"`
	Seq       int64             `json:"seq"`
	Args      map[string]string `json:"args"`
	Note      string            `json:"note,omitempty"`
	// Counters, maintained when jobs complete.
	JobsTotal int        `json:"jobs_total"`
	JobsError int        `json:"jobs_error"`
	Created   time.Time  `json:"created"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
}

// Job is one environment × system instance of a stage job.
type Job struct {
	ID       int64     `json:"id"`
	RunID    int64     `json:"run_id"`
	FlowID   int64     `json:"flow_id"`
	Name     string    `json:"name"`
	State    JobState  `json:"state"`
	Result   JobResult `json:"result,omitempty"`
	Message  string    `json:"message,omitempty"`
	Group    string    `json:"agents_group"`
	System   string    `json:"system"`
	Executor string    `json:"executor"`
	// Network is the Docker network mode of a docker job ("" for the default).
	Network string `json:"network,omitempty"`
	Timeout int    `json:"timeout"` // seconds
	// Covered is set when a rerun supersedes this job.
	Covered bool `json:"covered,omitempty"`
	// AgentID is the agent of the current attempt (0 when none).
	AgentID int64 `json:"agent_id,omitempty"`
	// Attempt counts assignments; every claim increments it (fencing token).
	Attempt  int        `json:"attempt"`
	Created  time.Time  `json:"created"`
	Assigned *time.Time `json:"assigned,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// LeaseUntil is when the current attempt's lease expires unless renewed.
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	// CancelRequested is when a user asked to cancel the job while an agent
	// ran it (nil: never). The agent learns it on its heartbeat and stops the
	// job; the request is stored, so it survives a restart of kkd.
	CancelRequested *time.Time `json:"cancel_requested,omitempty"`
	// LogsPurged is set once retention deleted the job's log.
	LogsPurged bool   `json:"logs_purged,omitempty"`
	Steps      []Step `json:"steps,omitempty"`
}

// JobAttempt is one assignment of a job to an agent: the job's history keeps
// one per attempt, including the attempts that an infrastructure failure
// (a lost agent, an executor error) ended and that were retried.
type JobAttempt struct {
	JobID   int64 `json:"job_id"`
	Attempt int   `json:"attempt"`
	// AgentID is 0 once the agent was deleted; Agent keeps its name.
	AgentID  int64      `json:"agent_id,omitempty"`
	Agent    string     `json:"agent"`
	Assigned time.Time  `json:"assigned"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Outcome is how the attempt ended: the job's result when the attempt
	// completed the job, agent_lost or error when it failed and the job was
	// retried or given up; empty while the attempt runs.
	Outcome JobResult `json:"outcome,omitempty"`
	Message string    `json:"message,omitempty"`
}

// Step is one tool invocation of a job.
type Step struct {
	JobID int64  `json:"job_id"`
	Index int    `json:"index"`
	Tool  string `json:"tool"`
	Name  string `json:"name,omitempty"`
	// Fields are the step parameters after #{} interpolation (all keys of the
	// schema step, including tool, when, attempts...).
	Fields   map[string]any `json:"fields"`
	Status   StepStatus     `json:"status"`
	ExitCode *int           `json:"exit_code,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Message  string         `json:"message,omitempty"`
	Started  *time.Time     `json:"started,omitempty"`
	Finished *time.Time     `json:"finished,omitempty"`
}

// HostInfo is what an agent reports about its host.
type HostInfo struct {
	OS            string `json:"os"`             // linux, darwin, windows
	Distro        string `json:"distro"`         // e.g. debian
	DistroVersion string `json:"distro_version"` // e.g. 12
	System        string `json:"system"`         // e.g. debian-12: matched against a job's system
	Arch          string `json:"arch"`
	CPUs          int    `json:"cpus"`
	MemoryMiB     int64  `json:"memory_mib"`
	Hostname      string `json:"hostname"`
	Isolation     string `json:"isolation"`        // bare-metal or container
	Docker        string `json:"docker,omitempty"` // docker engine version, empty when unavailable
	LXD           string `json:"lxd,omitempty"`    // lxd version, empty when unavailable
	AgentVersion  string `json:"agent_version,omitempty"`
}

// Executors returns the executors this host supports.
func (h HostInfo) Executors() []string {
	e := []string{ExecutorLocal}
	if h.Docker != "" {
		e = append(e, ExecutorDocker)
	}
	if h.LXD != "" {
		e = append(e, ExecutorLXD)
	}
	return e
}

// Agent is a build host known to the server.
type Agent struct {
	ID         int64      `json:"id"`
	UUID       string     `json:"uuid"`
	Name       string     `json:"name"`
	Address    string     `json:"address"`
	Authorized bool       `json:"authorized"`
	Disabled   bool       `json:"disabled"`
	HostInfo   HostInfo   `json:"host_info"`
	Groups     []string   `json:"groups"`
	JobID      int64      `json:"job_id,omitempty"` // current job
	LastSeen   *time.Time `json:"last_seen,omitempty"`
	Created    time.Time  `json:"created"`
	// EnrollHash is the hash of the secret the agent generated and presented at
	// registration; only a registration call presenting it may collect a credential.
	EnrollHash string `json:"-"`
	// CredentialHash is the hash of the agent's credential; empty until issued.
	CredentialHash string `json:"-"`
}

// LostAfter is how long an agent may stay silent before it counts as lost
// contact. A healthy agent is never silent that long: it always holds a work
// poll or a heartbeat (renewed every 10 s), and a held request counts as
// contact.
const LostAfter = 20 * time.Second

// State derives the displayed state. seenSinceStart tells whether the agent talked
// to this server process since it started (false → missing). The order is
// GoCD's: an unauthorized agent is discovered, then disabled wins over
// everything else, an agent this server has not heard from is missing, one
// silent for longer than LostAfter lost contact; otherwise its current job
// (assigned: preparing, running: building) or idle.
func (a Agent) State(now time.Time, seenSinceStart bool, job *Job) AgentState {
	switch {
	case !a.Authorized:
		return AgentDiscovered
	case a.Disabled:
		return AgentDisabled
	case !seenSinceStart || a.LastSeen == nil:
		return AgentMissing
	case now.Sub(*a.LastSeen) > LostAfter:
		return AgentLostContact
	case a.JobID != 0 && job != nil && job.State == JobAssigned:
		return AgentPreparing
	case a.JobID != 0:
		return AgentBuilding
	}
	return AgentIdle
}

// Group of agents.
type Group struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// User of the API.
type User struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	PasswordHash string    `json:"-"`
	Admin        bool      `json:"admin"`
	Created      time.Time `json:"created"`
}

// Token is an API token; only its hash is stored.
type Token struct {
	ID       int64      `json:"id"`
	UserID   int64      `json:"user_id"`
	Hash     string     `json:"-"`
	Name     string     `json:"name"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// LogChunk is an ordered piece of a step's output in one attempt of a job.
// (JobID, Attempt, Step, Seq) is unique: re-sending a chunk is a no-op. Every
// attempt keeps its own log; Seq counts from 0 per step and attempt.
type LogChunk struct {
	JobID   int64  `json:"job_id"`
	Attempt int    `json:"attempt"`
	Step    int    `json:"step"`
	Seq     int64  `json:"seq"`
	Data    []byte `json:"data"`
}

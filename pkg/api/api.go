// Package api defines the JSON wire types of kkd's HTTP API (/api/v1) and its
// error envelope. Domain errors (pkg/ci) are mapped to HTTP statuses and error
// codes here, once.
//
// Routes (all JSON unless noted; {p} project id or name, {b} branch id or name,
// {a} agent id or name, {g} group name; others are numeric ids):
//
//	POST   /api/v1/login                         LoginRequest → LoginResponse (no token needed)
//	GET    /api/v1/whoami                        → User
//	GET    /api/v1/projects                      → []ci.Project
//	POST   /api/v1/projects                      CreateProject → ci.Project (201)
//	GET    /api/v1/projects/{p}                  → ci.Project
//	DELETE /api/v1/projects/{p}                  → 204
//	GET    /api/v1/projects/{p}/branches         → []ci.Branch
//	POST   /api/v1/projects/{p}/branches         CreateBranch → ci.Branch (201)
//	GET    /api/v1/projects/{p}/branches/{b}     → ci.Branch
//	DELETE /api/v1/projects/{p}/branches/{b}     → 204
//	GET    /api/v1/branches/{id}/stages          → []ci.Stage
//	PUT    /api/v1/branches/{id}/stages/{name}   PutStage → ci.Stage (400 invalid_schema with Details)
//	GET    /api/v1/stages/{id}                   → ci.Stage
//	PUT    /api/v1/projects/{p}/branches/{b}/retention ci.Retention → ci.Branch
//	POST   /api/v1/admin/retention               → RetentionReport (admins)
//	POST   /api/v1/stages/{id}/refresh           → ci.Stage (repo-backed stages: fetch again; Repo.Error says how it went)
//	DELETE /api/v1/stages/{id}                   → 204
//	GET    /api/v1/branches/{id}/schedule        → []ScheduleEntry (time and repo triggers)
//	POST   /api/v1/schema/check                  SchemaCheck → json stage (400 invalid_schema)
//	POST   /api/v1/branches/{id}/flows           CreateFlow → FlowDetail (201)
//	GET    /api/v1/branches/{id}/flows?kind=&limit= → []ci.Flow
//	GET    /api/v1/flows/{id}                    → FlowDetail
//	GET    /api/v1/runs/{id}                     → RunDetail
//	POST   /api/v1/runs/{id}/start|cancel|rerun  → RunDetail
//	GET    /api/v1/jobs/{id}                     → JobDetail
//	POST   /api/v1/jobs/{id}/cancel              → JobDetail
//	POST   /api/v1/jobs/{id}/rerun               → JobDetail (the new job)
//	GET    /api/v1/jobs/{id}/logs?step=N&follow=1  → text/plain; with follow the
//	                                               response streams until the job completes
//	GET    /api/v1/agents?discovered=1           → []Agent
//	GET    /api/v1/agents/{a}                    → Agent
//	POST   /api/v1/agents/{a}/authorize          AuthorizeAgent → Agent
//	POST   /api/v1/agents/{a}/enable|disable     → Agent
//	DELETE /api/v1/agents/{a}?force=1            → 204 (409 while it runs a job, unless force: its job is cancelled)
//	POST   /api/v1/agents/{a}/rotate-token       → Agent (its credential is revoked; it registers again)
//	GET    /api/v1/groups                        → []Group
//	POST   /api/v1/groups                        CreateGroup → Group (201)
//	DELETE /api/v1/groups/{g}                    → 204
//	PUT    /api/v1/groups/{g}/agents/{a}         → Group
//	DELETE /api/v1/groups/{g}/agents/{a}         → Group
//
// Agent protocol (see docs/agent-protocol.md); every call but register carries
// "Authorization: Bearer <agent credential>":
//
//	POST /api/v1/agent/register?wait=S           Register → RegisterResponse (no token)
//	POST /api/v1/agent/work?wait=S               WorkRequest → 200 Assignment | 204 no work
//	POST /api/v1/agent/jobs/{id}/start           AttemptRequest → 204
//	POST /api/v1/agent/jobs/{id}/heartbeat?wait=S  AttemptRequest → HeartbeatResponse
//	POST /api/v1/agent/jobs/{id}/steps/{idx}/logs?attempt=N&seq=K  raw bytes → 204
//	POST /api/v1/agent/jobs/{id}/steps/{idx}     StepResult → 204
//	POST /api/v1/agent/jobs/{id}/complete        CompleteJob → 204
//
// Fenced agent writes from an attempt that is no longer current get 409 with
// code "stale_attempt"; the agent must then stop its copy of the job.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// Prefix of every API route.
const Prefix = "/api/v1"

// Error codes of the error envelope.
const (
	CodeBadRequest    = "bad_request"
	CodeInvalidSchema = "invalid_schema"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeNotFound      = "not_found"
	CodeConflict      = "conflict"
	CodeStaleAttempt  = "stale_attempt"
	CodeInternal      = "internal"
	CodeUnavailable   = "unavailable"
)

// ErrorBody is the body of every error response: {"error": {...}}.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error is a JSON API error. It implements error so clients can return it.
type Error struct {
	Status  int           `json:"-"`
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail locates one problem, e.g. in a stage schema.
type ErrorDetail struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

// String renders the detail as FILE:LINE:COL: key: message.
func (d ErrorDetail) String() string {
	s := ""
	if d.File != "" {
		s = d.File
		if d.Line > 0 {
			s += fmt.Sprintf(":%d:%d", d.Line, d.Col)
		}
		s += ": "
	}
	if d.Key != "" {
		s += d.Key + ": "
	}
	return s + d.Message
}

func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	s := e.Message
	for _, d := range e.Details {
		s += "\n  " + d.String()
	}
	return s
}

// Is lets errors.Is match API errors against domain errors by code.
func (e *Error) Is(target error) bool {
	switch target {
	case ci.ErrNotFound:
		return e.Code == CodeNotFound
	case ci.ErrConflict:
		return e.Code == CodeConflict
	case ci.ErrStaleAttempt:
		return e.Code == CodeStaleAttempt
	case ci.ErrUnauthorized:
		return e.Code == CodeUnauthorized
	case ci.ErrInvalid:
		return e.Code == CodeBadRequest || e.Code == CodeInvalidSchema
	case ci.ErrUnavailable:
		return e.Code == CodeUnavailable
	}
	return false
}

// Errorf builds an API error with a status and code.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// FromError maps any error to an API error: API errors pass through, domain
// errors get their status and code, everything else is internal.
func FromError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		if ae.Status == 0 {
			ae.Status = StatusOf(ae.Code)
		}
		return ae
	}
	code := CodeInternal
	switch {
	case errors.Is(err, ci.ErrNotFound):
		code = CodeNotFound
	case errors.Is(err, ci.ErrStaleAttempt):
		code = CodeStaleAttempt
	case errors.Is(err, ci.ErrConflict):
		code = CodeConflict
	case errors.Is(err, ci.ErrInvalid):
		code = CodeBadRequest
	case errors.Is(err, ci.ErrUnauthorized):
		code = CodeUnauthorized
	case errors.Is(err, ci.ErrForbidden):
		code = CodeForbidden
	case errors.Is(err, ci.ErrUnavailable):
		code = CodeUnavailable
	}
	msg := err.Error()
	if code == CodeInternal {
		msg = "internal server error: " + msg
	}
	return &Error{Status: StatusOf(code), Code: code, Message: msg}
}

// StatusOf maps an error code to its HTTP status.
func StatusOf(code string) int {
	switch code {
	case CodeBadRequest, CodeInvalidSchema:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict, CodeStaleAttempt:
		return http.StatusConflict
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// LoginRequest logs a user in.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// LoginResponse carries a new API token (shown once).
type LoginResponse struct {
	Token string `json:"token"`
	User  User   `json:"user"`
}

// User as shown by the API.
type User struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Admin bool   `json:"admin"`
}

// CreateProject creates a project.
type CreateProject struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// CreateBranch creates a branch. RepoBranch defaults to Name.
type CreateBranch struct {
	Name       string            `json:"name"`
	RepoBranch string            `json:"repo_branch,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
}

// PutStage creates or replaces a stage's schema code: Code, or Repo for a
// stage whose code lives in a file of a git repository (one of them).
type PutStage struct {
	Code string `json:"code,omitempty"`
	// Repo makes kkd fetch the code from a repository now and keep it up to
	// date (docs/stages-from-repo.md).
	Repo *StageRepoSpec `json:"repo,omitempty"`
	// Filename is used in error positions (FILE:LINE:COL); default NAME.py.
	Filename string `json:"filename,omitempty"`
	Enabled  *bool  `json:"enabled,omitempty"` // default true
}

// RetentionReport is what a retention run deleted
// (POST /api/v1/admin/retention).
type RetentionReport struct {
	Flows         int      `json:"flows"`
	Jobs          int      `json:"jobs"`
	Logs          int      `json:"logs"` // logs of kept jobs deleted
	LogBytes      int64    `json:"log_bytes"`
	Artifacts     int      `json:"artifacts"`
	ArtifactBytes int64    `json:"artifact_bytes"`
	Caches        int      `json:"caches"`
	CacheBytes    int64    `json:"cache_bytes"`
	OrphanBlobs   int      `json:"orphan_blobs"`
	OrphanBytes   int64    `json:"orphan_bytes"`
	Deliveries    int      `json:"deliveries"` // webhook delivery records deleted
	Errors        []string `json:"errors,omitempty"`
	Seconds       float64  `json:"seconds"`
}

// StageRepoSpec says where a stage's code lives in a git repository.
type StageRepoSpec struct {
	URL    string `json:"url"`
	Branch string `json:"branch"`
	Path   string `json:"path"`
	// TokenSecret names a simple project secret holding an access token,
	// sent as the HTTP basic auth password.
	TokenSecret string `json:"token_secret,omitempty"`
	// Refresh is the periodic refresh interval, a duration such as "10m"
	// (at least 1m); "" or "0": refreshed only by push webhooks, before runs
	// and by `kk stage refresh`.
	Refresh string `json:"refresh,omitempty"`
}

// SchemaCheck evaluates schema code without storing it.
type SchemaCheck struct {
	Code     string            `json:"code"`
	Filename string            `json:"filename,omitempty"`
	Dev      bool              `json:"dev,omitempty"`
	Args     map[string]string `json:"args,omitempty"`
}

// CreateFlow starts a flow on a branch.
type CreateFlow struct {
	Kind ci.FlowKind       `json:"kind"` // ci (default) or dev
	Args map[string]string `json:"args,omitempty"`
}

// FlowDetail is a flow with its runs and their jobs.
type FlowDetail struct {
	ci.Flow
	Project string      `json:"project"`
	Branch  string      `json:"branch"`
	Runs    []RunDetail `json:"runs"`
}

// RunDetail is a run with its jobs.
type RunDetail struct {
	ci.Run
	Name string      `json:"name"` // the stage name
	Jobs []JobDetail `json:"jobs"`
	// Results counts the test results and issues of the non-covered jobs
	// and their changes (new, no_change, regr, fix, issues_new).
	Results *ci.RunResultCounts `json:"results,omitempty"`
	// Notifications are the notifications sent about the run (email,
	// slack, discord, github) and how each went. Only the run routes fill
	// it, not flow details.
	Notifications []ci.Notification `json:"notifications,omitempty"`
}

// JobDetail is a job with its agent's name and steps.
type JobDetail struct {
	ci.Job
	Agent    string  `json:"agent,omitempty"`
	Duration float64 `json:"duration,omitempty"` // seconds, when started
	// WaitReason says why a queued job waits (no agent in its group, all
	// busy, none with its executor or system, ...); empty for other states.
	WaitReason string `json:"wait_reason,omitempty"`
	// Attempts is the job's history of assignments, one per attempt, with
	// the agent and how each ended. Only the job routes (GET /jobs/{id} and
	// the job actions) fill it, not flow and run details.
	Attempts []ci.JobAttempt `json:"attempts,omitempty"`
}

// Agent as shown by the API.
type Agent struct {
	ID         int64         `json:"id"`
	Name       string        `json:"name"`
	UUID       string        `json:"uuid"`
	State      ci.AgentState `json:"state"`
	Address    string        `json:"address"`
	Authorized bool          `json:"authorized"`
	Disabled   bool          `json:"disabled"`
	Groups     []string      `json:"groups"`
	HostInfo   ci.HostInfo   `json:"host_info"`
	Executors  []string      `json:"executors"`
	JobID      int64         `json:"job_id,omitempty"`
	LastSeen   *time.Time    `json:"last_seen,omitempty"`
	Created    time.Time     `json:"created"`
}

// AuthorizeAgent authorizes a discovered agent and puts it in groups (besides "all").
type AuthorizeAgent struct {
	Groups []string `json:"groups,omitempty"`
}

// Group as shown by the API.
type Group struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Agents []string `json:"agents"`
}

// CreateGroup creates a group.
type CreateGroup struct {
	Name string `json:"name"`
}

// Register is sent by an agent on start and until it is authorized.
type Register struct {
	UUID string `json:"uuid"`
	Name string `json:"name"`
	// EnrollSecret is a random secret the agent generated with its UUID and keeps
	// in its data dir. The server stores only its hash; the agent's credential is
	// handed out only to a register call that presents the same secret.
	EnrollSecret    string      `json:"enroll_secret"`
	HostInfo        ci.HostInfo `json:"host_info"`
	RegistrationKey string      `json:"registration_key,omitempty"`
	Groups          []string    `json:"groups,omitempty"`
}

// RegisterResponse tells the agent its state. Once the agent is authorized,
// every register call that presents the right enroll secret gets a fresh
// Credential, which replaces the previous one (the agent stores it in its data
// dir and registers again only when the server rejects its credential).
type RegisterResponse struct {
	AgentID    int64  `json:"agent_id"`
	Name       string `json:"name"`
	Authorized bool   `json:"authorized"`
	Credential string `json:"credential,omitempty"`
	Message    string `json:"message,omitempty"`
}

// WorkRequest is the body of a work long-poll; HostInfo refreshes the agent's.
type WorkRequest struct {
	HostInfo *ci.HostInfo `json:"host_info,omitempty"`
}

// Assignment is a job handed to an agent.
type Assignment struct {
	JobID    int64       `json:"job_id"`
	Attempt  int         `json:"attempt"`
	RunID    int64       `json:"run_id"`
	FlowID   int64       `json:"flow_id"`
	Name     string      `json:"name"`
	Project  string      `json:"project"`
	Branch   string      `json:"branch"`
	Stage    string      `json:"stage"`
	FlowKind ci.FlowKind `json:"flow_kind"`
	Executor string      `json:"executor"`
	System   string      `json:"system"`
	// Options are executor settings of the environment: "network" (docker).
	Options map[string]string `json:"options,omitempty"`
	// Timeout is the job's remaining time budget in seconds.
	Timeout int `json:"timeout"`
	// LeaseSeconds: the agent must send a heartbeat well within this period.
	LeaseSeconds int `json:"lease_seconds"`
	// Env is exported to every step (branch env vars and KK_* variables).
	Env   map[string]string `json:"env"`
	Steps []AssignedStep    `json:"steps"`
	// Secrets are the values of every secret of the project (and their
	// parts): the agent redacts them from all output before it leaves.
	Secrets []string `json:"secrets,omitempty"`
	// Creds are the secrets named by tool parameters (ssh-key,
	// access-token), resolved by kkd when it hands the job out.
	Creds map[string]SecretValue `json:"creds,omitempty"`
	// Trigger is the flow's trigger data (commits, pull request) when the
	// flow was started by a webhook or a repo trigger; the git tool checks
	// out its commit.
	Trigger json.RawMessage `json:"trigger,omitempty"`
}

// AssignedStep is one step of an assignment. Fields hold every key of the
// schema step after interpolation (tool, when, attempts, cmd, ...).
type AssignedStep struct {
	Index  int            `json:"index"`
	Tool   string         `json:"tool"`
	Name   string         `json:"name,omitempty"`
	Fields map[string]any `json:"fields"`
}

// AttemptRequest names the attempt an agent call belongs to.
type AttemptRequest struct {
	Attempt int `json:"attempt"`
}

// HeartbeatResponse renews the lease. Cancel tells the agent to stop the job.
type HeartbeatResponse struct {
	Cancel       bool `json:"cancel"`
	LeaseSeconds int  `json:"lease_seconds"`
}

// StepResult reports a step's state (sent when it starts and when it ends).
type StepResult struct {
	Attempt  int           `json:"attempt"`
	Status   ci.StepStatus `json:"status"`
	ExitCode *int          `json:"exit_code,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Message  string        `json:"message,omitempty"`
	Started  *time.Time    `json:"started,omitempty"`
	Finished *time.Time    `json:"finished,omitempty"`
}

// CompleteJob reports the end of a job.
type CompleteJob struct {
	Attempt int          `json:"attempt"`
	Result  ci.JobResult `json:"result"`
	Message string       `json:"message,omitempty"`
}

// DecodeError turns a non-2xx response body into an *Error.
func DecodeError(status int, body []byte) *Error {
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err == nil && eb.Error.Code != "" {
		eb.Error.Status = status
		return &eb.Error
	}
	msg := string(body)
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return &Error{Status: status, Code: codeOfStatus(status), Message: fmt.Sprintf("HTTP %d: %s", status, msg)}
}

func codeOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	}
	return CodeInternal
}

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// list decodes a JSON array and never returns a nil slice on success.
func list[T any](ctx context.Context, c *Client, p string, q url.Values) ([]T, error) {
	var out []T
	if err := c.do(ctx, http.MethodGet, p, q, nil, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// Login exchanges a user name and password for an API token.
func (c *Client) Login(ctx context.Context, user, password string) (api.LoginResponse, error) {
	var out api.LoginResponse
	err := c.do(ctx, http.MethodPost, path("login"), nil, api.LoginRequest{User: user, Password: password}, &out)
	return out, err
}

// Whoami returns the user the token belongs to.
func (c *Client) Whoami(ctx context.Context) (api.User, error) {
	var out api.User
	err := c.do(ctx, http.MethodGet, path("whoami"), nil, nil, &out)
	return out, err
}

// ListProjects lists all projects.
func (c *Client) ListProjects(ctx context.Context) ([]ci.Project, error) {
	return list[ci.Project](ctx, c, path("projects"), nil)
}

// CreateProject creates a project.
func (c *Client) CreateProject(ctx context.Context, in api.CreateProject) (ci.Project, error) {
	var out ci.Project
	err := c.do(ctx, http.MethodPost, path("projects"), nil, in, &out)
	return out, err
}

// GetProject returns a project by name or id.
func (c *Client) GetProject(ctx context.Context, project string) (ci.Project, error) {
	var out ci.Project
	err := c.do(ctx, http.MethodGet, path("projects", project), nil, nil, &out)
	return out, err
}

// DeleteProject deletes a project (by name or id) with everything in it.
func (c *Client) DeleteProject(ctx context.Context, project string) error {
	return c.do(ctx, http.MethodDelete, path("projects", project), nil, nil, nil)
}

// ListBranches lists the branches of a project (name or id).
func (c *Client) ListBranches(ctx context.Context, project string) ([]ci.Branch, error) {
	return list[ci.Branch](ctx, c, path("projects", project, "branches"), nil)
}

// CreateBranch creates a branch in a project (name or id).
func (c *Client) CreateBranch(ctx context.Context, project string, in api.CreateBranch) (ci.Branch, error) {
	var out ci.Branch
	err := c.do(ctx, http.MethodPost, path("projects", project, "branches"), nil, in, &out)
	return out, err
}

// GetBranch returns a branch by project and branch name or id.
func (c *Client) GetBranch(ctx context.Context, project, branch string) (ci.Branch, error) {
	var out ci.Branch
	err := c.do(ctx, http.MethodGet, path("projects", project, "branches", branch), nil, nil, &out)
	return out, err
}

// DeleteBranch deletes a branch.
func (c *Client) DeleteBranch(ctx context.Context, project, branch string) error {
	return c.do(ctx, http.MethodDelete, path("projects", project, "branches", branch), nil, nil, nil)
}

// ListStages lists the stages of a branch.
func (c *Client) ListStages(ctx context.Context, branchID int64) ([]ci.Stage, error) {
	return list[ci.Stage](ctx, c, path("branches", id(branchID), "stages"), nil)
}

// Schedule lists the time and repo triggers of a branch's stages with their
// last and next fire times.
func (c *Client) Schedule(ctx context.Context, branchID int64) ([]api.ScheduleEntry, error) {
	return list[api.ScheduleEntry](ctx, c, path("branches", id(branchID), "schedule"), nil)
}

// PutStage creates or replaces the stage name of a branch. An invalid schema
// is an *api.Error with code invalid_schema and Details locating the problems.
func (c *Client) PutStage(ctx context.Context, branchID int64, name string, in api.PutStage) (ci.Stage, error) {
	var out ci.Stage
	err := c.do(ctx, http.MethodPut, path("branches", id(branchID), "stages", name), nil, in, &out)
	return out, err
}

// GetStage returns a stage by id.
func (c *Client) GetStage(ctx context.Context, stageID int64) (ci.Stage, error) {
	var out ci.Stage
	err := c.do(ctx, http.MethodGet, path("stages", id(stageID)), nil, nil, &out)
	return out, err
}

// DeleteStage deletes a stage by id.
func (c *Client) DeleteStage(ctx context.Context, stageID int64) error {
	return c.do(ctx, http.MethodDelete, path("stages", id(stageID)), nil, nil, nil)
}

// SchemaCheck evaluates schema code on the server without storing it and
// returns the evaluated stage as JSON.
func (c *Client) SchemaCheck(ctx context.Context, in api.SchemaCheck) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodPost, path("schema", "check"), nil, in, &out)
	return out, err
}

// CreateFlow starts a flow on a branch and returns it with its first runs.
func (c *Client) CreateFlow(ctx context.Context, branchID int64, in api.CreateFlow) (api.FlowDetail, error) {
	var out api.FlowDetail
	err := c.do(ctx, http.MethodPost, path("branches", id(branchID), "flows"), nil, in, &out)
	return out, err
}

// ListFlows lists the flows of a branch, newest first. kind "" lists both
// kinds; limit <= 0 leaves the limit to the server.
func (c *Client) ListFlows(ctx context.Context, branchID int64, kind ci.FlowKind, limit int) ([]ci.Flow, error) {
	q := url.Values{}
	if kind != "" {
		q.Set("kind", string(kind))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return list[ci.Flow](ctx, c, path("branches", id(branchID), "flows"), q)
}

// ListFlowsWithRuns lists the flows of a branch like ListFlows, each with
// its runs and their jobs, in one request (a dashboard's refresh).
func (c *Client) ListFlowsWithRuns(ctx context.Context, branchID int64, kind ci.FlowKind, limit int) ([]api.FlowDetail, error) {
	q := url.Values{"with": {"runs"}}
	if kind != "" {
		q.Set("kind", string(kind))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return list[api.FlowDetail](ctx, c, path("branches", id(branchID), "flows"), q)
}

// GetFlow returns a flow with its runs and their jobs.
func (c *Client) GetFlow(ctx context.Context, flowID int64) (api.FlowDetail, error) {
	var out api.FlowDetail
	err := c.do(ctx, http.MethodGet, path("flows", id(flowID)), nil, nil, &out)
	return out, err
}

func (c *Client) runCall(ctx context.Context, method string, runID int64, action string) (api.RunDetail, error) {
	var out api.RunDetail
	p := path("runs", id(runID))
	if action != "" {
		p = path("runs", id(runID), action)
	}
	err := c.do(ctx, method, p, nil, nil, &out)
	return out, err
}

// GetRun returns a run with its jobs.
func (c *Client) GetRun(ctx context.Context, runID int64) (api.RunDetail, error) {
	return c.runCall(ctx, http.MethodGet, runID, "")
}

// StartRun starts a manual run.
func (c *Client) StartRun(ctx context.Context, runID int64) (api.RunDetail, error) {
	return c.runCall(ctx, http.MethodPost, runID, "start")
}

// CancelRun cancels the unfinished jobs of a run.
func (c *Client) CancelRun(ctx context.Context, runID int64) (api.RunDetail, error) {
	return c.runCall(ctx, http.MethodPost, runID, "cancel")
}

// RerunRun reruns the failed jobs of a run.
func (c *Client) RerunRun(ctx context.Context, runID int64) (api.RunDetail, error) {
	return c.runCall(ctx, http.MethodPost, runID, "rerun")
}

func (c *Client) jobCall(ctx context.Context, method string, jobID int64, action string) (api.JobDetail, error) {
	var out api.JobDetail
	p := path("jobs", id(jobID))
	if action != "" {
		p = path("jobs", id(jobID), action)
	}
	err := c.do(ctx, method, p, nil, nil, &out)
	return out, err
}

// GetJob returns a job with its steps.
func (c *Client) GetJob(ctx context.Context, jobID int64) (api.JobDetail, error) {
	return c.jobCall(ctx, http.MethodGet, jobID, "")
}

// CancelJob cancels a job.
func (c *Client) CancelJob(ctx context.Context, jobID int64) (api.JobDetail, error) {
	return c.jobCall(ctx, http.MethodPost, jobID, "cancel")
}

// RerunJob reruns a job and returns the new job (the old one becomes covered).
func (c *Client) RerunJob(ctx context.Context, jobID int64) (api.JobDetail, error) {
	return c.jobCall(ctx, http.MethodPost, jobID, "rerun")
}

// Logs returns the text log of a job, or of one step when step is not nil.
// With follow the body streams until the job completes; cancel ctx to stop
// earlier. The caller must close the body.
func (c *Client) Logs(ctx context.Context, jobID int64, step *int, follow bool) (io.ReadCloser, error) {
	q := url.Values{}
	if step != nil {
		q.Set("step", strconv.Itoa(*step))
	}
	if follow {
		q.Set("follow", "1")
	}
	req, err := c.newRequest(ctx, http.MethodGet, path("jobs", id(jobID), "logs"), q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// LogRange selects part of a job's log by byte offsets. Offsets count the
// bytes of the text log (step headers included) as the unfiltered stream or
// the one step's stream writes it.
type LogRange struct {
	Step   *int  // one step's log; nil for every step
	Offset int64 // the first byte
	Limit  int64 // how many bytes at most; 0 to the end (or, with Follow, on and on)
	Follow bool  // keep streaming until the job completes
}

// LogPart is a part of a job's log: Offset is the position of its first byte.
type LogPart struct {
	Offset int64
	Body   io.ReadCloser
}

// LogsRange returns the bytes of a job's log selected by r. The caller must
// close the body.
func (c *Client) LogsRange(ctx context.Context, jobID int64, r LogRange) (LogPart, error) {
	q := url.Values{}
	if r.Offset > 0 {
		q.Set("offset", strconv.FormatInt(r.Offset, 10))
	}
	if r.Limit > 0 {
		q.Set("limit", strconv.FormatInt(r.Limit, 10))
	}
	return c.logPart(ctx, jobID, r.Step, r.Follow, q)
}

// LogsTail returns the last n bytes of a job's log as it is now, and their
// offset: follow on with LogsRange from Offset plus their length.
func (c *Client) LogsTail(ctx context.Context, jobID int64, step *int, n int64) (LogPart, error) {
	return c.logPart(ctx, jobID, step, false, url.Values{"tail": {strconv.FormatInt(n, 10)}})
}

func (c *Client) logPart(ctx context.Context, jobID int64, step *int, follow bool, q url.Values) (LogPart, error) {
	if step != nil {
		q.Set("step", strconv.Itoa(*step))
	}
	if follow {
		q.Set("follow", "1")
	}
	req, err := c.newRequest(ctx, http.MethodGet, path("jobs", id(jobID), "logs"), q, nil)
	if err != nil {
		return LogPart{}, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := c.send(req)
	if err != nil {
		return LogPart{}, err
	}
	off, err := strconv.ParseInt(resp.Header.Get("X-Log-Offset"), 10, 64)
	if err != nil {
		resp.Body.Close()
		return LogPart{}, fmt.Errorf("logs of job %d: the server sent no X-Log-Offset header: upgrade kkd", jobID)
	}
	return LogPart{Offset: off, Body: resp.Body}, nil
}

// ListAgents lists authorized agents, or with discovered the agents waiting
// for authorization.
func (c *Client) ListAgents(ctx context.Context, discovered bool) ([]api.Agent, error) {
	q := url.Values{"discovered": {"0"}}
	if discovered {
		q = url.Values{"discovered": {"1"}}
	}
	return list[api.Agent](ctx, c, path("agents"), q)
}

func (c *Client) agentCall(ctx context.Context, method, agent, action string, in any) (api.Agent, error) {
	var out api.Agent
	p := path("agents", agent)
	if action != "" {
		p = path("agents", agent, action)
	}
	err := c.do(ctx, method, p, nil, in, &out)
	return out, err
}

// GetAgent returns an agent by name or id.
func (c *Client) GetAgent(ctx context.Context, agent string) (api.Agent, error) {
	return c.agentCall(ctx, http.MethodGet, agent, "", nil)
}

// AuthorizeAgent authorizes a discovered agent and adds it to groups.
func (c *Client) AuthorizeAgent(ctx context.Context, agent string, in api.AuthorizeAgent) (api.Agent, error) {
	return c.agentCall(ctx, http.MethodPost, agent, "authorize", in)
}

// EnableAgent lets a disabled agent take jobs again.
func (c *Client) EnableAgent(ctx context.Context, agent string) (api.Agent, error) {
	return c.agentCall(ctx, http.MethodPost, agent, "enable", nil)
}

// DisableAgent stops an agent from taking new jobs.
func (c *Client) DisableAgent(ctx context.Context, agent string) (api.Agent, error) {
	return c.agentCall(ctx, http.MethodPost, agent, "disable", nil)
}

// DeleteAgent forgets an agent and revokes its credential. The server refuses
// (ci.ErrConflict) while the agent runs a job, unless force is set: the job
// is then cancelled first.
func (c *Client) DeleteAgent(ctx context.Context, agent string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"1"}}
	}
	return c.do(ctx, http.MethodDelete, path("agents", agent), q, nil, nil)
}

// RotateAgentToken revokes an agent's credential: the agent's next call is
// refused and it registers again with its enroll secret, which gets it a new
// credential. It returns the agent.
func (c *Client) RotateAgentToken(ctx context.Context, agent string) (api.Agent, error) {
	return c.agentCall(ctx, http.MethodPost, agent, "rotate-token", nil)
}

// ListGroups lists agent groups.
func (c *Client) ListGroups(ctx context.Context) ([]api.Group, error) {
	return list[api.Group](ctx, c, path("groups"), nil)
}

// CreateGroup creates an agent group.
func (c *Client) CreateGroup(ctx context.Context, in api.CreateGroup) (api.Group, error) {
	var out api.Group
	err := c.do(ctx, http.MethodPost, path("groups"), nil, in, &out)
	return out, err
}

// DeleteGroup deletes an agent group by name.
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	return c.do(ctx, http.MethodDelete, path("groups", group), nil, nil, nil)
}

// AddAgentToGroup adds an agent (name or id) to a group.
func (c *Client) AddAgentToGroup(ctx context.Context, group, agent string) (api.Group, error) {
	var out api.Group
	err := c.do(ctx, http.MethodPut, path("groups", group, "agents", agent), nil, nil, &out)
	return out, err
}

// RemoveAgentFromGroup removes an agent (name or id) from a group.
func (c *Client) RemoveAgentFromGroup(ctx context.Context, group, agent string) (api.Group, error) {
	var out api.Group
	err := c.do(ctx, http.MethodDelete, path("groups", group, "agents", agent), nil, nil, &out)
	return out, err
}

// RefreshStage fetches a repo-backed stage's file again; Repo.Error of the
// result says whether that worked.
func (c *Client) RefreshStage(ctx context.Context, stageID int64) (ci.Stage, error) {
	var out ci.Stage
	err := c.do(ctx, http.MethodPost, path("stages", id(stageID), "refresh"), nil, nil, &out)
	return out, err
}

// SetBranchRetention stores a branch's retention settings (days; 0: default).
func (c *Client) SetBranchRetention(ctx context.Context, project, branch string, r ci.Retention) (ci.Branch, error) {
	var out ci.Branch
	err := c.do(ctx, http.MethodPut, path("projects", project, "branches", branch, "retention"), nil, r, &out)
	return out, err
}

// RunRetention applies retention now (admins only).
func (c *Client) RunRetention(ctx context.Context) (api.RetentionReport, error) {
	var out api.RetentionReport
	err := c.do(ctx, http.MethodPost, path("admin", "retention"), nil, nil, &out)
	return out, err
}

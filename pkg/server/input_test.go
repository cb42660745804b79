package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// bodyRoute is a route that decodes a JSON body. setup prepares an env where
// valid succeeds and returns the path and the token to use.
type bodyRoute struct {
	name      string
	method    string
	setup     func(t *testing.T, e *env) (path, token string)
	valid     string
	wrongType string
	optional  bool // an empty body is valid
	status    int  // of valid
}

func bodyRoutes() []bodyRoute {
	user := func(path string) func(*testing.T, *env) (string, string) {
		return func(_ *testing.T, e *env) (string, string) { return path, e.token }
	}
	withFixture := func(pathf func(fx fixture) string) func(*testing.T, *env) (string, string) {
		return func(t *testing.T, e *env) (string, string) {
			fx := e.fixture(t, 2)
			return pathf(fx), e.token
		}
	}
	// assigned: an agent holds attempt 1 of a job; path gets the job id.
	assigned := func(pathf string) func(*testing.T, *env) (string, string) {
		return func(t *testing.T, e *env) (string, string) {
			fx := e.fixture(t, 2)
			a := e.agent(t, "builder")
			j := e.queueJob(t, fx)
			asg := e.claim(t, a)
			require.Equal(t, j.ID, asg.JobID)
			return fmt.Sprintf(pathf, j.ID), a.cred
		}
	}
	reg := newAgentIdentity("newagent").register("")
	regJSON, _ := json.Marshal(reg)
	stageJSON, _ := json.Marshal(api.PutStage{Code: stageCode("all", 1)})
	checkJSON, _ := json.Marshal(api.SchemaCheck{Code: stageCode("all", 1)})

	return []bodyRoute{
		{name: "login", method: "POST", setup: func(*testing.T, *env) (string, string) { return "/login", "" },
			valid: `{"user": "admin", "password": "` + adminPassword + `"}`, wrongType: `{"user": 5, "password": "x"}`, status: http.StatusOK},
		{name: "create project", method: "POST", setup: user("/projects"),
			valid: `{"name": "newproj", "description": "d"}`, wrongType: `{"name": 5}`, status: http.StatusCreated},
		{name: "create branch", method: "POST", setup: withFixture(func(fixture) string { return "/projects/proj/branches" }),
			valid: `{"name": "dev", "env": {"A": "1"}}`, wrongType: `{"name": "dev", "env": {"A": 1}}`, status: http.StatusCreated},
		{name: "put stage", method: "PUT", setup: withFixture(func(fx fixture) string { return fmt.Sprintf("/branches/%d/stages/other", fx.branch.ID) }),
			valid: string(stageJSON), wrongType: `{"code": "x", "enabled": "yes"}`, status: http.StatusOK},
		{name: "schema check", method: "POST", setup: user("/schema/check"),
			valid: string(checkJSON), wrongType: `{"code": "x", "args": ["a"]}`, status: http.StatusOK},
		{name: "create flow", method: "POST", setup: withFixture(func(fx fixture) string { return fmt.Sprintf("/branches/%d/flows", fx.branch.ID) }),
			valid: `{"kind": "ci"}`, wrongType: `{"kind": "ci", "args": {"a": 1}}`, optional: true, status: http.StatusCreated},
		{name: "authorize agent", method: "POST", setup: func(t *testing.T, e *env) (string, string) {
			e.call(t, "POST", "/agent/register", newAgentIdentity("waiting").register(""), "").ok(t, http.StatusOK, nil)
			return "/agents/waiting/authorize", e.token
		}, valid: `{"groups": ["all"]}`, wrongType: `{"groups": "all"}`, optional: true, status: http.StatusOK},
		{name: "create group", method: "POST", setup: user("/groups"),
			valid: `{"name": "linux"}`, wrongType: `{"name": ["linux"]}`, status: http.StatusCreated},
		{name: "agent register", method: "POST", setup: func(*testing.T, *env) (string, string) { return "/agent/register", "" },
			valid: string(regJSON), wrongType: `{"uuid": 5}`, status: http.StatusOK},
		{name: "agent work", method: "POST", setup: func(t *testing.T, e *env) (string, string) {
			return "/agent/work", e.agent(t, "builder").cred
		}, valid: `{"host_info": {"os": "linux"}}`, wrongType: `{"host_info": ["linux"]}`, optional: true, status: http.StatusNoContent},
		{name: "agent start", method: "POST", setup: assigned("/agent/jobs/%d/start"),
			valid: `{"attempt": 1}`, wrongType: `{"attempt": "1"}`, status: http.StatusNoContent},
		{name: "agent heartbeat", method: "POST", setup: assigned("/agent/jobs/%d/heartbeat"),
			valid: `{"attempt": 1}`, wrongType: `{"attempt": 1.5}`, status: http.StatusOK},
		{name: "agent step", method: "POST", setup: assigned("/agent/jobs/%d/steps/1"),
			valid: `{"attempt": 1, "status": "running"}`, wrongType: `{"attempt": 1, "status": 3}`, status: http.StatusNoContent},
		{name: "agent complete", method: "POST", setup: assigned("/agent/jobs/%d/complete"),
			valid: `{"attempt": 1, "result": "ok"}`, wrongType: `{"attempt": 1, "result": false}`, status: http.StatusNoContent},
	}
}

// TestBadBodies sends broken variants of a valid body to every route that
// decodes JSON: each gets a 400 envelope that says what is wrong and leaves
// the store alone; the valid body then succeeds, so the variants failed for
// their defect only.
func TestBadBodies(t *testing.T) {
	t.Parallel()
	for _, rt := range bodyRoutes() {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			path, token := rt.setup(t, e)
			valid := strings.TrimSpace(rt.valid)
			require.True(t, strings.HasPrefix(valid, "{"))
			type variant struct{ name, body, contains string }
			variants := []variant{
				{name: "malformed", body: valid[:len(valid)/2], contains: "malformed JSON body"},
				{name: "unknown field", body: `{"bogus_field": 1, ` + valid[1:], contains: `unknown field "bogus_field"`},
				{name: "trailing object", body: valid + ` {}`, contains: "after the JSON object"},
				{name: "two objects", body: valid + valid, contains: "after the JSON object"},
				{name: "trailing brace", body: valid + `}`, contains: "after the JSON object"},
				{name: "trailing bracket", body: valid + "\n]", contains: "after the JSON object"},
				{name: "trailing garbage", body: valid + ` x`, contains: "after the JSON object"},
				{name: "wrong field type", body: rt.wrongType, contains: "cannot unmarshal"},
				{name: "array", body: `[` + valid + `]`, contains: "cannot unmarshal array"},
				{name: "string", body: `"text"`, contains: "cannot unmarshal string"},
			}
			if !rt.optional {
				variants = append(variants, variant{name: "empty body", body: "", contains: "request body is empty"},
					variant{name: "blank body", body: " \n", contains: "request body is empty"})
			}
			before := e.snapshot(t)
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					ae := e.call(t, rt.method, path, v.body, token).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
					require.Contains(t, ae.Message, v.contains)
					e.unchanged(t, before)
				})
			}
			e.call(t, rt.method, path, valid, token).ok(t, rt.status, nil)
			if rt.optional {
				require.Less(t, e.call(t, rt.method, path, "", token).status, 300, "an empty body is valid here")
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"name": "p", "description": "` + strings.Repeat("x", 9<<20) + `"}`
	ae := e.user(t, "POST", "/projects", big).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
	require.Contains(t, ae.Message, "larger than")
	ps, err := e.st.ListProjects(t.Context())
	require.NoError(t, err)
	require.Empty(t, ps)
}

// TestNotFoundAndBadIDs: unknown objects are 404 envelopes naming the object;
// ids that are not positive numbers are 400.
func TestNotFoundAndBadIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 2)
	j := e.queueJob(t, fx)
	a := e.agent(t, "builder")
	tests := []struct {
		name     string
		method   string
		path     string
		body     any
		token    string
		status   int
		contains string
	}{
		{name: "project", method: "GET", path: "/projects/nope", status: 404, contains: `project "nope" does not exist`},
		{name: "delete project", method: "DELETE", path: "/projects/nope", status: 404, contains: `project "nope"`},
		{name: "branches of project", method: "GET", path: "/projects/nope/branches", status: 404, contains: `project "nope"`},
		{name: "create branch in project", method: "POST", path: "/projects/nope/branches", body: api.CreateBranch{Name: "x"}, status: 404, contains: `project "nope"`},
		{name: "branch", method: "GET", path: "/projects/proj/branches/nope", status: 404, contains: `branch "nope" does not exist in project "proj"`},
		{name: "branch by id of other project", method: "GET", path: "/projects/proj/branches/999", status: 404, contains: `branch "999"`},
		{name: "delete branch", method: "DELETE", path: "/projects/proj/branches/nope", status: 404, contains: `branch "nope"`},
		{name: "stages of branch", method: "GET", path: "/branches/999/stages", status: 404, contains: "branch 999 does not exist"},
		{name: "put stage on branch", method: "PUT", path: "/branches/999/stages/x", body: api.PutStage{Code: stageCode("all", 1)}, status: 404, contains: "branch 999"},
		{name: "flows of branch", method: "GET", path: "/branches/999/flows", status: 404, contains: "branch 999"},
		{name: "create flow on branch", method: "POST", path: "/branches/999/flows", status: 404, contains: "branch 999"},
		{name: "stage", method: "GET", path: "/stages/999", status: 404, contains: "stage 999 does not exist"},
		{name: "delete stage", method: "DELETE", path: "/stages/999", status: 404, contains: "stage 999"},
		{name: "flow", method: "GET", path: "/flows/999", status: 404, contains: "flow 999 does not exist"},
		{name: "run", method: "GET", path: "/runs/999", status: 404, contains: "run 999 does not exist"},
		{name: "start run", method: "POST", path: "/runs/999/start", status: 404, contains: "run 999"},
		{name: "cancel run", method: "POST", path: "/runs/999/cancel", status: 404, contains: "run 999"},
		{name: "rerun run", method: "POST", path: "/runs/999/rerun", status: 404, contains: "run 999"},
		{name: "job", method: "GET", path: "/jobs/999", status: 404, contains: "job 999 does not exist"},
		{name: "cancel job", method: "POST", path: "/jobs/999/cancel", status: 404, contains: "job 999"},
		{name: "rerun job", method: "POST", path: "/jobs/999/rerun", status: 404, contains: "job 999"},
		{name: "job logs", method: "GET", path: "/jobs/999/logs", status: 404, contains: "job 999"},
		{name: "step of job logs", method: "GET", path: fmt.Sprintf("/jobs/%d/logs?step=2", j.ID), status: 404, contains: "step 2 does not exist"},
		{name: "agent", method: "GET", path: "/agents/nope", status: 404, contains: `agent "nope" does not exist`},
		{name: "authorize agent", method: "POST", path: "/agents/nope/authorize", status: 404, contains: `agent "nope"`},
		{name: "authorize into unknown group", method: "POST", path: "/agents/builder/authorize", body: api.AuthorizeAgent{Groups: []string{"gpu"}}, status: 404, contains: `group "gpu" does not exist`},
		{name: "disable agent", method: "POST", path: "/agents/nope/disable", status: 404, contains: `agent "nope"`},
		{name: "delete agent", method: "DELETE", path: "/agents/nope", status: 404, contains: `agent "nope"`},
		{name: "delete group", method: "DELETE", path: "/groups/nope", status: 404, contains: `group "nope" does not exist`},
		{name: "group of membership", method: "PUT", path: "/groups/nope/agents/builder", status: 404, contains: `group "nope"`},
		{name: "agent of membership", method: "PUT", path: "/groups/all/agents/nope", status: 404, contains: `agent "nope"`},

		{name: "non-numeric branch id", method: "GET", path: "/branches/main/stages", status: 400, contains: `id "main" in the path is not a valid id`},
		{name: "zero flow id", method: "GET", path: "/flows/0", status: 400, contains: `id "0"`},
		{name: "negative run id", method: "GET", path: "/runs/-1", status: 400, contains: `id "-1"`},
		{name: "overflowing job id", method: "GET", path: "/jobs/99999999999999999999", status: 400, contains: "not a valid id"},
		{name: "non-numeric stage id", method: "DELETE", path: "/stages/build", status: 400, contains: `id "build"`},
		{name: "non-numeric job id for logs", method: "GET", path: "/jobs/x/logs", status: 400, contains: `id "x"`},
		{name: "non-numeric log step", method: "GET", path: fmt.Sprintf("/jobs/%d/logs?step=first", j.ID), status: 400, contains: `step="first"`},
		{name: "bad follow", method: "GET", path: fmt.Sprintf("/jobs/%d/logs?follow=maybe", j.ID), status: 400, contains: `follow="maybe"`},
		{name: "negative log offset", method: "GET", path: fmt.Sprintf("/jobs/%d/logs?offset=-5", j.ID), status: 400, contains: `offset="-5"`},
		{name: "zero log limit", method: "GET", path: fmt.Sprintf("/jobs/%d/logs?limit=0", j.ID), status: 400, contains: `limit="0"`},
		{name: "tail with follow", method: "GET", path: fmt.Sprintf("/jobs/%d/logs?tail=10&follow=1", j.ID), status: 400, contains: "tail cannot be combined"},
		{name: "huge tail", method: "GET", path: fmt.Sprintf("/jobs/%d/logs?tail=999999999", j.ID), status: 400, contains: "tail=999999999"},
		{name: "bad flow with", method: "GET", path: fmt.Sprintf("/branches/%d/flows?with=jobs", fx.branch.ID), status: 400, contains: `with="jobs"`},
		{name: "bad flow kind filter", method: "GET", path: fmt.Sprintf("/branches/%d/flows?kind=nightly", fx.branch.ID), status: 400, contains: `kind="nightly"`},
		{name: "bad flow limit", method: "GET", path: fmt.Sprintf("/branches/%d/flows?limit=-1", fx.branch.ID), status: 400, contains: `limit="-1"`},
		{name: "bad discovered filter", method: "GET", path: "/agents?discovered=maybe", status: 400, contains: `discovered="maybe"`},
		{name: "non-numeric agent job id", method: "POST", path: "/agent/jobs/x/start", body: api.AttemptRequest{Attempt: 1}, token: a.cred, status: 400, contains: `id "x"`},
		{name: "bad work wait", method: "POST", path: "/agent/work?wait=soon", token: a.cred, status: 400, contains: `wait="soon"`},
		{name: "negative work wait", method: "POST", path: "/agent/work?wait=-1", token: a.cred, status: 400, contains: `wait="-1"`},
		{name: "NaN work wait", method: "POST", path: "/agent/work?wait=NaN", token: a.cred, status: 400, contains: `wait="NaN"`},
		{name: "unknown flow kind", method: "POST", path: fmt.Sprintf("/branches/%d/flows", fx.branch.ID), body: api.CreateFlow{Kind: "nightly"}, status: 400, contains: `flow kind "nightly"`},
		{name: "unknown flow argument", method: "POST", path: fmt.Sprintf("/branches/%d/flows", fx.branch.ID), body: api.CreateFlow{Args: map[string]string{"x": "1"}}, status: 400, contains: "unknown argument(s) x"},
		{name: "delete group all", method: "DELETE", path: "/groups/all", status: 400, contains: `group "all" is built in`},
		{name: "leave group all", method: "DELETE", path: "/groups/all/agents/builder", status: 400, contains: `every authorized agent is in group "all"`},
	}
	before := e.snapshot(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token
			if tok == "" {
				tok = e.token
			}
			code := api.CodeNotFound
			if tc.status == http.StatusBadRequest {
				code = api.CodeBadRequest
			}
			ae := e.call(t, tc.method, tc.path, tc.body, tok).envelope(t, tc.status, code)
			require.Contains(t, ae.Message, tc.contains)
			e.unchanged(t, before)
		})
	}
}

// TestInvalidNames: names that cannot be used in paths and CLI arguments are
// rejected with a message that says what a name may contain.
func TestInvalidNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	tests := []struct {
		name     string
		method   string
		path     string
		body     any
		contains string
	}{
		{name: "project with space", method: "POST", path: "/projects", body: api.CreateProject{Name: "my project"}, contains: `project name "my project" is invalid`},
		{name: "empty project", method: "POST", path: "/projects", body: api.CreateProject{}, contains: `project name "" is invalid`},
		{name: "project with slash", method: "POST", path: "/projects", body: api.CreateProject{Name: "a/b"}, contains: "project name"},
		{name: "project starting with dash", method: "POST", path: "/projects", body: api.CreateProject{Name: "-rf"}, contains: "project name"},
		{name: "project too long", method: "POST", path: "/projects", body: api.CreateProject{Name: strings.Repeat("p", 101)}, contains: "up to 100 characters"},
		{name: "project with newline", method: "POST", path: "/projects", body: api.CreateProject{Name: "p\n"}, contains: "project name"},
		{name: "branch with space", method: "POST", path: "/projects/proj/branches", body: api.CreateBranch{Name: "my branch"}, contains: `branch name "my branch" is invalid`},
		{name: "empty branch", method: "POST", path: "/projects/proj/branches", body: api.CreateBranch{}, contains: "branch name"},
		{name: "branch starting with slash", method: "POST", path: "/projects/proj/branches", body: api.CreateBranch{Name: "/main"}, contains: "branch name"},
		{name: "branch env key with =", method: "POST", path: "/projects/proj/branches", body: api.CreateBranch{Name: "dev", Env: map[string]string{"A=B": "1"}}, contains: `env variable name "A=B"`},
		{name: "branch empty env key", method: "POST", path: "/projects/proj/branches", body: api.CreateBranch{Name: "dev", Env: map[string]string{"": "1"}}, contains: `env variable name ""`},
		{name: "group with slash", method: "POST", path: "/groups", body: api.CreateGroup{Name: "a/b"}, contains: `group name "a/b" is invalid`},
		{name: "empty group", method: "POST", path: "/groups", body: api.CreateGroup{}, contains: "group name"},
		{name: "stage with space", method: "PUT", path: fmt.Sprintf("/branches/%d/stages/my%%20stage", fx.branch.ID), body: api.PutStage{Code: stageCode("all", 1)}, contains: `stage name "my stage" is invalid`},
		{name: "stage named root", method: "PUT", path: fmt.Sprintf("/branches/%d/stages/root", fx.branch.ID), body: api.PutStage{Code: stageCode("all", 1)}, contains: `stage name "root" is reserved`},
		{name: "agent with space", method: "POST", path: "/agent/register", body: newAgentIdentity("my agent").register(""), contains: `agent name "my agent" is invalid`},
		{name: "empty agent", method: "POST", path: "/agent/register", body: newAgentIdentity("").register(""), contains: "agent name"},
	}
	before := e.snapshot(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ae := e.user(t, tc.method, tc.path, tc.body).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
			require.Contains(t, ae.Message, tc.contains)
			e.unchanged(t, before)
		})
	}
}

func TestConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	j := e.queueJob(t, fx)
	tests := []struct {
		name     string
		method   string
		path     string
		body     any
		contains string
	}{
		{name: "project exists", method: "POST", path: "/projects", body: api.CreateProject{Name: "proj"}, contains: `project "proj" already exists`},
		{name: "branch exists", method: "POST", path: "/projects/proj/branches", body: api.CreateBranch{Name: "main"}, contains: `branch "main" already exists`},
		{name: "group exists", method: "POST", path: "/groups", body: api.CreateGroup{Name: "all"}, contains: `group "all" already exists`},
		{name: "rerun unfinished job", method: "POST", path: fmt.Sprintf("/jobs/%d/rerun", j.ID), contains: "cancel it first"},
		{name: "start run not manual", method: "POST", path: fmt.Sprintf("/runs/%d/start", j.RunID), contains: "only a run waiting in state manual"},
	}
	before := e.snapshot(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ae := e.user(t, tc.method, tc.path, tc.body).envelope(t, http.StatusConflict, api.CodeConflict)
			require.Contains(t, ae.Message, tc.contains)
			e.unchanged(t, before)
		})
	}
}

// TestStageSchemaErrors: invalid stage code is a 400 invalid_schema whose
// details locate each problem (file, line, column, key); nothing is stored.
func TestStageSchemaErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	unknownKey := `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "build",
            "steps": [{"tool": "shell", "cmd": "make", "timeot": 10}],
            "environments": [{"agents_group": "all", "system": "any"}],
        }],
    }
`
	tests := []struct {
		name   string
		stage  string
		req    api.PutStage
		detail api.ErrorDetail // Message is matched as a substring; Line/Col -1: any > 0
	}{
		{name: "syntax error", stage: "broken", req: api.PutStage{Code: "def stage(ctx):\n    return {\n"},
			detail: api.ErrorDetail{File: "broken.py", Line: -1, Col: -1}},
		{name: "unknown key with filename", stage: "typo", req: api.PutStage{Code: unknownKey, Filename: "ci/typo.py"},
			detail: api.ErrorDetail{File: "ci/typo.py", Line: 6, Col: 56, Key: "jobs[0].steps[0].timeot"}},
		{name: "runtime error", stage: "boom", req: api.PutStage{Code: "def stage(ctx):\n    return 1 // 0\n"},
			detail: api.ErrorDetail{File: "boom.py", Line: 2, Col: -1}},
		{name: "unknown parent", stage: "child", req: api.PutStage{Code: strings.Replace(stageCode("all", 1), `"parent": "root"`, `"parent": "nope"`, 1)},
			detail: api.ErrorDetail{File: "child.py", Key: "parent", Message: `parent stage "nope" does not exist in branch main`}},
		{name: "own parent", stage: "loop", req: api.PutStage{Code: strings.Replace(stageCode("all", 1), `"parent": "root"`, `"parent": "loop"`, 1)},
			detail: api.ErrorDetail{File: "loop.py", Key: "parent", Message: "cannot be its own parent"}},
		{name: "parent cycle", stage: "build", req: api.PutStage{Code: strings.Replace(stageCode("all", 1), `"parent": "root"`, `"parent": "child"`, 1)},
			detail: api.ErrorDetail{File: "build.py", Key: "parent", Message: "makes a cycle (build -> child -> build)"}},
		{name: "unknown agents group", stage: "gpu", req: api.PutStage{Code: stageCode("gpu", 1)},
			detail: api.ErrorDetail{File: "gpu.py", Key: "jobs[0].environments[0].agents_group", Message: "kk group create gpu"}},
	}
	child := e.stage(t, fx.branch.ID, "child", strings.Replace(stageCode("all", 1), `"parent": "root"`, `"parent": "build"`, 1))
	require.Equal(t, "build", child.Parent)
	before := e.snapshot(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.user(t, "PUT", fmt.Sprintf("/branches/%d/stages/%s", fx.branch.ID, tc.stage), tc.req)
			ae := r.envelope(t, http.StatusBadRequest, api.CodeInvalidSchema)
			require.Contains(t, ae.Message, "stage "+tc.stage+" is invalid")
			require.NotEmpty(t, ae.Details)
			d := ae.Details[0]
			require.Equal(t, tc.detail.File, d.File, "%+v", ae.Details)
			require.Equal(t, tc.detail.Key, d.Key, "%+v", ae.Details)
			for _, p := range []struct {
				want, got int
				what      string
			}{{tc.detail.Line, d.Line, "line"}, {tc.detail.Col, d.Col, "col"}} {
				switch {
				case p.want < 0:
					require.Positive(t, p.got, "%s of %+v", p.what, d)
				default:
					require.Equal(t, p.want, p.got, "%s of %+v", p.what, d)
				}
			}
			require.Contains(t, d.Message, tc.detail.Message)
			e.unchanged(t, before)
		})
	}

	t.Run("empty code", func(t *testing.T) {
		ae := e.user(t, "PUT", fmt.Sprintf("/branches/%d/stages/empty", fx.branch.ID), api.PutStage{Code: " \n"}).
			envelope(t, http.StatusBadRequest, api.CodeBadRequest)
		require.Contains(t, ae.Message, "stage code is empty")
		e.unchanged(t, before)
	})

	t.Run("schema check", func(t *testing.T) {
		ae := e.user(t, "POST", "/schema/check", api.SchemaCheck{Code: unknownKey}).envelope(t, http.StatusBadRequest, api.CodeInvalidSchema)
		require.Equal(t, []api.ErrorDetail{{File: "stage.py", Line: 6, Col: 56, Key: "jobs[0].steps[0].timeot", Message: ae.Details[0].Message}}, ae.Details)
		require.NotEmpty(t, ae.Details[0].Message)
	})
}

func TestStageEnabledFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	off := false
	var st ci.Stage
	e.user(t, "PUT", fmt.Sprintf("/branches/%d/stages/build", fx.branch.ID), api.PutStage{Code: stageCode("all", 1), Enabled: &off}).ok(t, http.StatusOK, &st)
	require.False(t, st.Enabled)
	require.Equal(t, fx.stage.ID, st.ID, "a put replaces the stage of that name")
	ae := e.user(t, "POST", fmt.Sprintf("/branches/%d/flows", fx.branch.ID), nil).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
	require.Contains(t, ae.Message, "no enabled root stage")
}

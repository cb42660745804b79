package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/results"
)

func (e *env) postResults(t testing.TB, a testAgent, jobID int64, b api.ResultsBatch) response {
	t.Helper()
	return e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/results", jobID), b, a.cred)
}

func batch(pairs ...string) api.ResultsBatch {
	b := api.ResultsBatch{Attempt: 1}
	for i := 0; i+1 < len(pairs); i += 2 {
		b.Tests = append(b.Tests, api.TestResult{Name: pairs[i], Status: pairs[i+1]})
	}
	return b
}

func (e *env) storedResults(t testing.TB, jobID int64) []ci.TestResult {
	t.Helper()
	rs, err := e.st.ListJobResults(context.Background(), jobID)
	require.NoError(t, err)
	return rs
}

func TestResultsBatchValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	many := api.ResultsBatch{Attempt: 1}
	for i := range 10001 {
		many.Tests = append(many.Tests, api.TestResult{Name: fmt.Sprint(i), Status: api.TestPassed})
	}
	for _, tc := range []struct {
		name string
		b    api.ResultsBatch
		msg  string
	}{
		{"unknown status", batch("t1", "passed", "t2", "green"), `status "green" is unknown: use failed, error`},
		{"empty name", batch("", "passed"), "tests[0] has no name"},
		{"long name", batch(strings.Repeat("x", 1025), "passed"), "1025 bytes long, at most 1024"},
		{"too many", many, "at most 10000 are allowed"},
		{"bad step", api.ResultsBatch{Attempt: 1, Step: 3}, "step 3 does not exist"},
		{"negative duration", api.ResultsBatch{Attempt: 1, Tests: []api.TestResult{{Name: "t", Status: "passed", Duration: -1}}}, "negative"},
		{"issue without path", api.ResultsBatch{Attempt: 1, Issues: []api.Issue{{Type: "error"}}}, "path must be"},
		{"issue without type", api.ResultsBatch{Attempt: 1, Issues: []api.Issue{{Path: "a.py", Line: 3}}}, "has no type"},
		{"no attempt", api.ResultsBatch{Tests: batch("t", "passed").Tests}, "attempt must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ae := e.postResults(t, a, j.ID, tc.b).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
			assert.Contains(t, ae.Message, tc.msg)
			assert.Empty(t, e.storedResults(t, j.ID), "nothing is stored")
		})
	}
	r := e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/results", j.ID), `{"attempt":1,"tests":[{"name":"t","status":"passed","colour":"red"}]}`, a.cred)
	r.envelope(t, http.StatusBadRequest, api.CodeBadRequest)
}

func TestResultsFencing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	bob := e.agent(t, "bob")
	e.postResults(t, a, j.ID, batch("t1", "not-run", "t2", "not-run")).ok(t, http.StatusNoContent, nil)
	e.postResults(t, a, j.ID, batch("t1", "passed")).ok(t, http.StatusNoContent, nil)
	e.postResults(t, bob, j.ID, batch("t2", "passed")).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	stale := batch("t2", "passed")
	stale.Attempt = 2
	e.postResults(t, a, j.ID, stale).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	e.complete(t, a, j.ID)
	e.postResults(t, a, j.ID, batch("t2", "passed")).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	rs := e.storedResults(t, j.ID)
	require.Len(t, rs, 2)
	assert.Equal(t, ci.TestPassed, rs[0].Status, "the real result replaced the pre-registration")
	assert.Equal(t, ci.TestNotRun, rs[1].Status)
	e.call(t, "POST", "/agent/jobs/999999/results", batch("t", "passed"), a.cred).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/results", j.ID), batch("t", "passed"), e.token).envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
}

func TestRunResultsQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	b := batch("pkg/a::ok", "passed", "pkg/b::bad", "failed", "other", "error")
	b.Tests[0].Values = map[string]api.TestValue{"ms": {Value: 12}}
	b.Issues = []api.Issue{{Path: "a.py", Line: 3, Type: "error", Symbol: "E1", Message: "bad"}}
	e.postResults(t, a, j.ID, b).ok(t, http.StatusNoContent, nil)
	e.complete(t, a, j.ID)
	an := results.New(results.Config{Store: e.st})
	o, err := an.AnalyzeRun(context.Background(), j.RunID)
	require.NoError(t, err)
	require.Equal(t, results.Analyzed, o)

	names := func(q string) []string {
		var rs []api.TestResult
		e.user(t, "GET", fmt.Sprintf("/runs/%d/results%s", j.RunID, q), nil).ok(t, http.StatusOK, &rs)
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"pkg/b::bad", "other", "pkg/a::ok"}},
		{"?sort=name", []string{"other", "pkg/a::ok", "pkg/b::bad"}},
		{"?sort=status", []string{"pkg/b::bad", "other", "pkg/a::ok"}},
		{"?status=failed", []string{"pkg/b::bad"}},
		{"?change=new&name=pkg/*&sort=name", []string{"pkg/a::ok", "pkg/b::bad"}},
		{"?change=regr", []string{}},
		{"?min_instability=1", []string{}},
		{"?job=build&sort=name", []string{"other", "pkg/a::ok", "pkg/b::bad"}},
		{fmt.Sprintf("?job=%d&name=*::ok", j.ID), []string{"pkg/a::ok"}},
		{"?job=nope", []string{}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			assert.Equal(t, tc.want, names(tc.query))
		})
	}
	var rs []api.TestResult
	e.user(t, "GET", fmt.Sprintf("/runs/%d/results?name=pkg/a::ok", j.RunID), nil).ok(t, http.StatusOK, &rs)
	require.Len(t, rs, 1)
	assert.Equal(t, api.TestResult{ID: rs[0].ID, JobID: j.ID, JobName: "build", RunID: j.RunID, FlowID: j.FlowID, FlowKind: "ci",
		Name: "pkg/a::ok", Status: "passed", Values: map[string]api.TestValue{"ms": {Value: 12}}, Change: "new",
		Relevancy: 2, Analyzed: true, Created: rs[0].Created}, rs[0])

	for _, q := range []string{"?status=green", "?change=worse", "?sort=age", "?min_instability=-1", "?min_instability=x"} {
		e.user(t, "GET", fmt.Sprintf("/runs/%d/results%s", j.RunID, q), nil).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
	}
	e.user(t, "GET", "/runs/999999/results", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)

	var issues []api.Issue
	e.user(t, "GET", fmt.Sprintf("/runs/%d/issues?new=1", j.RunID), nil).ok(t, http.StatusOK, &issues)
	require.Len(t, issues, 1)
	assert.True(t, issues[0].New)
	assert.Equal(t, "E1", issues[0].Symbol)
	e.user(t, "GET", fmt.Sprintf("/runs/%d/issues?new=maybe", j.RunID), nil).envelope(t, http.StatusBadRequest, api.CodeBadRequest)

	var rd api.RunDetail
	e.user(t, "GET", fmt.Sprintf("/runs/%d", j.RunID), nil).ok(t, http.StatusOK, &rd)
	require.NotNil(t, rd.Results)
	assert.Equal(t, ci.RunResultCounts{TestsTotal: 3, TestsPassed: 1, New: 3, IssuesTotal: 1, IssuesNew: 1, Analyzed: true}, *rd.Results)

	var hist []api.TestResult
	f, err := e.st.GetFlow(context.Background(), j.FlowID)
	require.NoError(t, err)
	e.user(t, "GET", fmt.Sprintf("/branches/%d/tests/history?name=pkg/b::bad&limit=5", f.BranchID), nil).ok(t, http.StatusOK, &hist)
	require.Len(t, hist, 1)
	assert.Equal(t, "failed", hist[0].Status)
	e.user(t, "GET", fmt.Sprintf("/branches/%d/tests/history", f.BranchID), nil).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
	e.user(t, "GET", fmt.Sprintf("/branches/%d/tests/history?name=x&kind=nightly", f.BranchID), nil).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
}

func (e *env) postData(t testing.TB, a testAgent, jobID int64, op api.DataOp) response {
	t.Helper()
	if op.Attempt == 0 {
		op.Attempt = 1
	}
	return e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/data", jobID), op, a.cred)
}

func TestDataOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	steps := []struct {
		name string
		op   api.DataOp
		want string // the value returned, or
		err  string // the error message
	}{
		{"set whole", api.DataOp{Op: "set", JSONPointer: "/", Value: raw(`{"a":1}`)}, `{"a":1}`, ""},
		{"set default op and pointer", api.DataOp{Value: raw(`{"b":[1]}`)}, `{"b":[1]}`, ""},
		{"set nested creates parents", api.DataOp{Op: "set", JSONPointer: "/x/y", Value: raw(`"z"`)}, `{"b":[1],"x":{"y":"z"}}`, ""},
		{"get", api.DataOp{Op: "get", JSONPointer: "/x"}, `{"y":"z"}`, ""},
		{"get whole", api.DataOp{Op: "get"}, `{"b":[1],"x":{"y":"z"}}`, ""},
		{"jq", api.DataOp{Op: "jq", Expr: `.count = ((.count // 0) + 1)`}, `{"b":[1],"count":1,"x":{"y":"z"}}`, ""},
		{"jsonpatch", api.DataOp{Op: "jsonpatch", Value: raw(`[{"op":"add","path":"/b/-","value":2},{"op":"remove","path":"/x"}]`)}, `{"b":[1,2],"count":1}`, ""},
		{"failed patch changes nothing", api.DataOp{Op: "jsonpatch", Value: raw(`[{"op":"add","path":"/c","value":3},{"op":"test","path":"/count","value":5}]`)}, "", "test failed"},
		{"jq with two values", api.DataOp{Op: "jq", Expr: `.b[]`}, "", "gave more than one value"},
		{"jq with no value", api.DataOp{Op: "jq", Expr: `empty`}, "", "gave no value"},
		{"jq syntax", api.DataOp{Op: "jq", Expr: `.a |`}, "", "jq program"},
		{"jq runtime error", api.DataOp{Op: "jq", Expr: `.b + 1`}, "", "cannot add"},
		{"jq without expr", api.DataOp{Op: "jq"}, "", "needs expr"},
		{"set without value", api.DataOp{Op: "set"}, "", "needs a value"},
		{"set inside a number", api.DataOp{Op: "set", JSONPointer: "/count/x", Value: raw(`1`)}, "", "inside a number"},
		{"bad pointer", api.DataOp{Op: "get", JSONPointer: "count"}, "", "must be empty or start with"},
		{"unknown op", api.DataOp{Op: "merge"}, "", `op "merge" is unknown`},
		{"unknown scope", api.DataOp{Scope: "stage", Op: "get"}, "", `scope "stage" is unknown`},
		{"too big", api.DataOp{Op: "set", JSONPointer: "/big", Value: raw(`"` + strings.Repeat("x", 1<<20) + `"`)}, "", "over the limit"},
		{"jq too slow", api.DataOp{Op: "jq", Expr: `last(range(1e15))`}, "", "ran longer than"},
		{"unchanged", api.DataOp{Op: "get"}, `{"b":[1,2],"count":1}`, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := e.postData(t, a, j.ID, s.op)
			if s.err != "" {
				ae := r.envelope(t, http.StatusBadRequest, api.CodeBadRequest)
				assert.Contains(t, ae.Message, s.err)
				return
			}
			var v api.DataValue
			r.ok(t, http.StatusOK, &v)
			assert.JSONEq(t, s.want, string(v.Value))
		})
	}
	e.postData(t, a, j.ID, api.DataOp{Op: "get", JSONPointer: "/nope"}).envelope(t, http.StatusNotFound, api.CodeNotFound)

	f, err := e.st.GetFlow(context.Background(), j.FlowID)
	require.NoError(t, err)
	b, err := e.st.GetBranch(context.Background(), f.BranchID)
	require.NoError(t, err)
	for _, sc := range []string{"branch", "branch-ci", "branch-dev", "project"} {
		var v api.DataValue
		e.postData(t, a, j.ID, api.DataOp{Scope: sc, Op: "set", JSONPointer: "/scope", Value: raw(`"` + sc + `"`)}).ok(t, http.StatusOK, &v)
		assert.Equal(t, sc, v.Scope)
	}
	get := func(path string) api.DataValue {
		var v api.DataValue
		e.user(t, "GET", path, nil).ok(t, http.StatusOK, &v)
		return v
	}
	assert.JSONEq(t, `{"b":[1,2],"count":1}`, string(get(fmt.Sprintf("/flows/%d/data", f.ID)).Value))
	assert.JSONEq(t, `{"scope":"branch"}`, string(get(fmt.Sprintf("/branches/%d/data", b.ID)).Value))
	assert.JSONEq(t, `{"scope":"branch-ci"}`, string(get(fmt.Sprintf("/branches/%d/data?scope=branch-ci", b.ID)).Value))
	assert.JSONEq(t, `{"scope":"branch-dev"}`, string(get(fmt.Sprintf("/branches/%d/data?scope=branch-dev", b.ID)).Value))
	assert.JSONEq(t, `{"scope":"project"}`, string(get("/projects/proj/data").Value))
	e.user(t, "GET", fmt.Sprintf("/branches/%d/data?scope=flow", b.ID), nil).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
	e.user(t, "GET", "/flows/999999/data", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)

	// Fencing: another agent, and the agent after the job completed.
	bob := e.agent(t, "bob")
	e.postData(t, bob, j.ID, api.DataOp{Op: "get"}).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	e.complete(t, a, j.ID)
	e.postData(t, a, j.ID, api.DataOp{Op: "set", Value: raw(`{}`)}).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	assert.JSONEq(t, `{"b":[1,2],"count":1}`, string(get(fmt.Sprintf("/flows/%d/data", f.ID)).Value))
}

package server

import (
	"context"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Limits of a results batch.
const (
	maxResultItems   = 10000    // tests + issues per batch
	maxTestName      = 1024     // bytes
	maxResultMessage = 64 << 10 // bytes of a test's message or cmd
	maxIssuePath     = 1024
	maxIssueMessage  = 4096
	maxValues        = 100 // metrics per test
)

// checkBatch validates an agent's batch and converts it; nothing is stored
// when anything is wrong.
func checkBatch(b api.ResultsBatch, j ci.Job) ([]ci.TestResult, []ci.Issue, error) {
	if n := len(b.Tests) + len(b.Issues); n > maxResultItems {
		return nil, nil, badRequest("results batch has %d tests and issues, at most %d are allowed: send them in several batches", n, maxResultItems)
	}
	if b.Step < 0 || b.Step >= len(j.Steps) {
		return nil, nil, badRequest("step %d does not exist in job %d (%d steps)", b.Step, j.ID, len(j.Steps))
	}
	tests := make([]ci.TestResult, len(b.Tests))
	for i, t := range b.Tests {
		switch {
		case t.Name == "":
			return nil, nil, badRequest("tests[%d] has no name: every test result needs one", i)
		case len(t.Name) > maxTestName:
			return nil, nil, badRequest("tests[%d] name is %d bytes long, at most %d are allowed", i, len(t.Name), maxTestName)
		case !utf8.ValidString(t.Name):
			return nil, nil, badRequest("tests[%d] name is not valid UTF-8", i)
		case !ci.TestStatus(t.Status).Valid():
			return nil, nil, badRequest("test %q: status %q is unknown: use %s", t.Name, t.Status, statusList())
		case len(t.Message) > maxResultMessage || len(t.Cmd) > maxResultMessage:
			return nil, nil, badRequest("test %q: message and cmd are limited to %d bytes each", t.Name, maxResultMessage)
		case t.Duration < 0:
			return nil, nil, badRequest("test %q: duration %g is negative", t.Name, t.Duration)
		case len(t.Values) > maxValues:
			return nil, nil, badRequest("test %q has %d values, at most %d are allowed", t.Name, len(t.Values), maxValues)
		}
		var vals map[string]ci.TestValue
		for k, v := range t.Values {
			if k == "" {
				return nil, nil, badRequest("test %q has a value without a name", t.Name)
			}
			if vals == nil {
				vals = map[string]ci.TestValue{}
			}
			vals[k] = ci.TestValue(v)
		}
		tests[i] = ci.TestResult{Name: t.Name, Status: ci.TestStatus(t.Status), Message: t.Message, Cmd: t.Cmd, Duration: t.Duration, Values: vals}
	}
	issues := make([]ci.Issue, len(b.Issues))
	for i, is := range b.Issues {
		switch {
		case is.Path == "" || len(is.Path) > maxIssuePath:
			return nil, nil, badRequest("issues[%d]: path must be 1 to %d bytes long", i, maxIssuePath)
		case is.Type == "":
			return nil, nil, badRequest("issues[%d] (%s:%d) has no type: use error, warning, convention, refactor, ...", i, is.Path, is.Line)
		case len(is.Message) > maxIssueMessage || len(is.Symbol) > maxTestName || len(is.Type) > 64:
			return nil, nil, badRequest("issues[%d] (%s:%d): message is limited to %d bytes, symbol to %d, type to 64", i, is.Path, is.Line, maxIssueMessage, maxTestName)
		case is.Line < 0 || is.Column < 0:
			return nil, nil, badRequest("issues[%d] (%s): line and column must not be negative", i, is.Path)
		}
		issues[i] = ci.Issue{Path: is.Path, Line: is.Line, Column: is.Column, Type: is.Type, Symbol: is.Symbol, Message: is.Message}
	}
	return tests, issues, nil
}

func statusList() string {
	s := ""
	for i, st := range ci.TestStatuses {
		if i > 0 {
			s += ", "
		}
		s += string(st)
	}
	return s
}

// agentResults stores a batch of test results and issues of a running job.
func (s *Server) agentResults(w http.ResponseWriter, r *http.Request) error {
	var req api.ResultsBatch
	if err := decode(r, &req); err != nil {
		return err
	}
	j, err := s.agentJob(r, req.Attempt)
	if err != nil {
		return err
	}
	tests, issues, err := checkBatch(req, j)
	if err != nil {
		return err
	}
	// The store fences the batch by attempt in the transaction that stores it.
	if err := s.cfg.Store.PutResults(r.Context(), j.ID, req.Attempt, req.Step, tests, issues); err != nil {
		return staleOr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func apiResult(t ci.TestResult) api.TestResult {
	var vals map[string]api.TestValue
	for k, v := range t.Values {
		if vals == nil {
			vals = map[string]api.TestValue{}
		}
		vals[k] = api.TestValue(v)
	}
	return api.TestResult{
		ID: t.ID, JobID: t.JobID, JobName: t.JobName, RunID: t.RunID, FlowID: t.FlowID, FlowKind: string(t.FlowKind),
		Name: t.Name, Status: string(t.Status), Message: t.Message, Cmd: t.Cmd, Duration: t.Duration, Values: vals,
		Change: string(t.Change), Instability: t.Instability, Age: t.Age, Relevancy: t.Relevancy, Analyzed: t.Analyzed,
		Created: t.Created,
	}
}

func apiResults(ts []ci.TestResult) []api.TestResult {
	out := make([]api.TestResult, len(ts))
	for i, t := range ts {
		out[i] = apiResult(t)
	}
	return out
}

func apiIssue(i ci.Issue) api.Issue {
	return api.Issue{ID: i.ID, JobID: i.JobID, JobName: i.JobName, Path: i.Path, Line: i.Line, Column: i.Column,
		Type: i.Type, Symbol: i.Symbol, Message: i.Message, Age: i.Age, New: i.New()}
}

// jobParam reads ?job=: a job id or a job name.
func jobParam(v string) (id int64, name string) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
		return n, ""
	}
	return 0, v
}

func (s *Server) listRunResults(w http.ResponseWriter, r *http.Request) error {
	run, err := s.runByID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.ResultFilter{Status: ci.TestStatus(q.Get("status")), Change: ci.TestChange(q.Get("change")), Name: q.Get("name"), Sort: q.Get("sort")}
	if f.Status != "" && !f.Status.Valid() {
		return badRequest("status=%q is unknown: use %s", f.Status, statusList())
	}
	if f.Change != "" && !f.Change.Valid() {
		return badRequest("change=%q is unknown: use new, fix, regr or no-change", f.Change)
	}
	switch f.Sort {
	case "", "relevancy", "name", "status":
	default:
		return badRequest("sort=%q is unknown: use relevancy (default), name or status", f.Sort)
	}
	if v := q.Get("min_instability"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("min_instability=%q: give a number >= 0", v)
		}
		f.MinInstability = n
	}
	if v := q.Get("job"); v != "" {
		f.JobID, f.JobName = jobParam(v)
	}
	rs, err := s.cfg.Store.ListRunResults(r.Context(), run.ID, f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiResults(rs))
}

func (s *Server) listRunIssues(w http.ResponseWriter, r *http.Request) error {
	run, err := s.runByID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var f store.IssueFilter
	switch v := q.Get("new"); v {
	case "", "0", "false":
	case "1", "true":
		f.NewOnly = true
	default:
		return badRequest("new=%q: use 1 or 0", v)
	}
	if v := q.Get("job"); v != "" {
		f.JobID, f.JobName = jobParam(v)
	}
	is, err := s.cfg.Store.ListRunIssues(r.Context(), run.ID, f)
	if err != nil {
		return err
	}
	out := make([]api.Issue, len(is))
	for i, x := range is {
		out[i] = apiIssue(x)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) testHistory(w http.ResponseWriter, r *http.Request) error {
	b, err := s.branchByID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	name := q.Get("name")
	if name == "" {
		return badRequest("name= is missing: give the test's name")
	}
	kind := ci.FlowKind(q.Get("kind"))
	if kind != "" && kind != ci.FlowCI && kind != ci.FlowDEV {
		return badRequest("kind=%q: use ci or dev", kind)
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("limit=%q: give a number >= 0 (0: all)", v)
		}
		limit = n
	}
	rs, err := s.cfg.Store.TestHistory(r.Context(), b.ID, name, kind, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiResults(rs))
}

// runResults is the results summary of a run for RunDetail.
func (s *Server) runResults(ctx context.Context, runID int64) (*ci.RunResultCounts, error) {
	c, err := s.cfg.Store.RunResultCounts(ctx, runID)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

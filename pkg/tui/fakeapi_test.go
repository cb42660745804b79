package tui

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// fakeAPI serves the few routes the TUI uses from memory.
type fakeAPI struct {
	mu     sync.Mutex
	agents []api.Agent
	flows  map[int64]api.FlowDetail
	logs   map[int64]string
	groups []string
	calls  []string
	errors []string // requests the fake does not serve
	// logReads are the log parts served.
	logReads []logRead
}

// logRead is a part of a log the fake served.
type logRead struct{ offset, n int }

// testNow is the fixed clock of the model tests.
var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := testNow.Add(-d); return &t }

func newFakeAPI() *fakeAPI {
	return &fakeAPI{groups: []string{"all", "linux", "macos"}, flows: testFlows(), logs: map[int64]string{303: testLog(40)}, agents: []api.Agent{
		{ID: 1, Name: "builder-1", State: ci.AgentIdle, Authorized: true, Address: "10.0.0.11",
			Groups: []string{"all", "linux"}, Executors: []string{"local", "docker"}, LastSeen: at(3 * time.Second),
			HostInfo: ci.HostInfo{OS: "linux", System: "debian-12", Docker: "28.5.2"}},
		{ID: 2, Name: "builder-2", State: ci.AgentBuilding, Authorized: true, Address: "10.0.0.12", JobID: 42,
			Groups: []string{"all"}, Executors: []string{"local", "docker", "lxd"}, LastSeen: at(1 * time.Second),
			HostInfo: ci.HostInfo{OS: "linux", System: "ubuntu-24.04", Docker: "27.1.0", LXD: "5.21"}},
		{ID: 3, Name: "mac-mini", State: ci.AgentDisabled, Authorized: true, Disabled: true, Address: "10.0.0.20",
			Groups: []string{"all"}, Executors: []string{"local"}, LastSeen: at(5 * time.Minute),
			HostInfo: ci.HostInfo{OS: "darwin", System: "macos-15"}},
		{ID: 4, Name: "new-host", State: ci.AgentDiscovered, Address: "10.0.0.30",
			Groups: []string{}, Executors: []string{"local"}, LastSeen: at(2 * time.Second),
			HostInfo: ci.HostInfo{OS: "linux", System: "fedora-41"}},
	}}
}

func (f *fakeAPI) find(ref string) *api.Agent {
	for i := range f.agents {
		if strconv.FormatInt(f.agents[i].ID, 10) == ref || f.agents[i].Name == ref {
			return &f.agents[i]
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, what string) {
	writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": what + " does not exist"}})
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.errors = append(f.errors, r.Method+" "+r.URL.String())
		f.mu.Unlock()
		notFound(w, "route "+r.URL.Path)
	})
	mux.HandleFunc("GET /api/v1/projects", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []ci.Project{{ID: 1, Name: "demo", Description: "the demo project"}, {ID: 2, Name: "quiet"}})
	})
	mux.HandleFunc("GET /api/v1/projects/{p}/branches", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("p") {
		case "demo":
			writeJSON(w, http.StatusOK, []ci.Branch{{ID: 7, ProjectID: 1, Name: "main", RepoBranch: "main"}, {ID: 9, ProjectID: 1, Name: "feature/x", RepoBranch: "fx"}})
		case "quiet":
			writeJSON(w, http.StatusOK, []ci.Branch{{ID: 8, ProjectID: 2, Name: "main", RepoBranch: "main"}})
		default:
			notFound(w, "project "+r.PathValue("p"))
		}
	})
	mux.HandleFunc("GET /api/v1/branches/{b}/flows", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.URL.Query().Get("with") != "runs" {
			f.errors = append(f.errors, "flows without runs: "+r.URL.String())
		}
		out := []api.FlowDetail{}
		ids := slices.Sorted(maps.Keys(f.flows))
		slices.Reverse(ids)
		for _, id := range ids {
			fl := f.flows[id]
			if strconv.FormatInt(fl.BranchID, 10) == r.PathValue("b") && string(fl.Kind) == r.URL.Query().Get("kind") {
				out = append(out, fl)
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/v1/flows/{f}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id, _ := strconv.ParseInt(r.PathValue("f"), 10, 64)
		fl, ok := f.flows[id]
		if !ok {
			notFound(w, "flow "+r.PathValue("f"))
			return
		}
		writeJSON(w, http.StatusOK, fl)
	})
	mux.HandleFunc("GET /api/v1/branches/{b}/stages", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("b") != "7" {
			writeJSON(w, http.StatusOK, []ci.Stage{})
			return
		}
		writeJSON(w, http.StatusOK, []ci.Stage{
			{ID: 1, BranchID: 7, Name: "build", Enabled: true, Schema: json.RawMessage(`{"parent":"root","parameters":[
				{"name":"TARGET","type":"string","default":"release","description":"what to build"},
				{"name":"JOBS","type":"int","default":"4"}]}`)},
			{ID: 2, BranchID: 7, Name: "tests", Enabled: true, Schema: json.RawMessage(`{"parent":"build","parameters":[
				{"name":"SUITE","type":"string","default":"all","description":"pytest -k expression"},
				{"name":"TARGET","type":"string","default":"debug"}]}`)},
			{ID: 3, BranchID: 7, Name: "old", Enabled: false, Schema: json.RawMessage(`{"parameters":[{"name":"GONE","default":"x"}]}`)},
		})
	})
	mux.HandleFunc("POST /api/v1/branches/{b}/flows", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var in api.CreateFlow
		_ = json.NewDecoder(r.Body).Decode(&in)
		keys := slices.Sorted(maps.Keys(in.Args))
		var args []string
		for _, k := range keys {
			args = append(args, k+"="+in.Args[k])
		}
		f.calls = append(f.calls, fmt.Sprintf("create %s flow on %s %s", in.Kind, r.PathValue("b"), strings.Join(args, " ")))
		fl := api.FlowDetail{Flow: ci.Flow{ID: 110, BranchID: 7, Kind: in.Kind, State: ci.FlowInProgress, KindSeq: 13, Args: in.Args, Created: testNow},
			Project: "demo", Branch: "main", Runs: []api.RunDetail{{Run: ci.Run{ID: 210, FlowID: 110, State: ci.RunInProgress}, Name: "build",
				Jobs: []api.JobDetail{{Job: ci.Job{ID: 310, RunID: 210, Name: "compile", State: ci.JobQueued}}}}}}
		f.flows[fl.ID] = fl
		writeJSON(w, http.StatusCreated, fl)
	})
	mux.HandleFunc("GET /api/v1/runs/{id}/results", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, "results "+r.PathValue("id")+" "+r.URL.RawQuery)
		f.mu.Unlock()
		q := r.URL.Query()
		out := []api.TestResult{}
		for _, tr := range testResults() {
			if q.Get("status") != "" && tr.Status != q.Get("status") || q.Get("change") != "" && tr.Change != q.Get("change") {
				continue
			}
			if n := strings.Trim(q.Get("name"), "*"); n != "" && !strings.Contains(tr.Name, n) {
				continue
			}
			out = append(out, tr)
		}
		switch q.Get("sort") {
		case "name":
			slices.SortFunc(out, func(a, b api.TestResult) int { return strings.Compare(a.Name, b.Name) })
		case "status":
			slices.SortFunc(out, func(a, b api.TestResult) int { return strings.Compare(a.Status, b.Status) })
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/v1/branches/{b}/tests/history", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, "history "+r.PathValue("b")+" "+r.URL.RawQuery)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, testHistory(r.URL.Query().Get("name")))
	})
	mux.HandleFunc("DELETE /api/v1/groups/{g}/agents/{a}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, fmt.Sprintf("ungroup %s %s", r.PathValue("g"), r.PathValue("a")))
		a := f.find(r.PathValue("a"))
		if a == nil {
			notFound(w, "agent "+r.PathValue("a"))
			return
		}
		a.Groups = slices.DeleteFunc(a.Groups, func(g string) bool { return g == r.PathValue("g") })
		writeJSON(w, http.StatusOK, api.Group{Name: r.PathValue("g"), Agents: []string{}})
	})
	for _, a := range []string{"jobs/{id}/cancel", "jobs/{id}/rerun", "runs/{id}/start", "runs/{id}/cancel", "runs/{id}/rerun"} {
		mux.HandleFunc("POST /api/v1/"+a, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls = append(f.calls, strings.Replace(a, "{id}", r.PathValue("id"), 1))
			id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
			writeJSON(w, http.StatusOK, map[string]any{"id": id})
		})
	}
	mux.HandleFunc("GET /api/v1/jobs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		text, ok := f.logs[id]
		f.mu.Unlock()
		if !ok {
			notFound(w, "job "+r.PathValue("id"))
			return
		}
		q := r.URL.Query()
		num := func(k string) int {
			n, _ := strconv.Atoi(q.Get(k))
			return n
		}
		off := min(num("offset"), len(text))
		end := len(text)
		if n := num("limit"); n > 0 {
			end = min(end, off+n)
		}
		if n := num("tail"); n > 0 {
			off = max(0, len(text)-n)
		}
		f.mu.Lock()
		f.logReads = append(f.logReads, logRead{offset: off, n: end - off})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Log-Offset", strconv.Itoa(off))
		_, _ = io.WriteString(w, text[off:end])
	})
	mux.HandleFunc("GET /api/v1/groups", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []api.Group{}
		for i, g := range f.groups {
			grp := api.Group{ID: int64(i + 1), Name: g, Agents: []string{}}
			for _, a := range f.agents {
				if a.Authorized && slices.Contains(a.Groups, g) {
					grp.Agents = append(grp.Agents, a.Name)
				}
			}
			out = append(out, grp)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /api/v1/groups", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var in api.CreateGroup
		_ = json.NewDecoder(r.Body).Decode(&in)
		f.calls = append(f.calls, "create group "+in.Name)
		if slices.Contains(f.groups, in.Name) {
			writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]string{"code": "conflict", "message": "group " + in.Name + " exists"}})
			return
		}
		f.groups = append(f.groups, in.Name)
		writeJSON(w, http.StatusCreated, api.Group{Name: in.Name, Agents: []string{}})
	})
	mux.HandleFunc("DELETE /api/v1/groups/{g}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, "delete group "+r.PathValue("g"))
		f.groups = slices.DeleteFunc(f.groups, func(g string) bool { return g == r.PathValue("g") })
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		want := r.URL.Query().Get("discovered") == "1"
		out := []api.Agent{}
		for _, a := range f.agents {
			if a.Authorized != want {
				out = append(out, a)
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	action := func(name string, fn func(a *api.Agent)) {
		mux.HandleFunc("POST /api/v1/agents/{a}/"+name, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls = append(f.calls, name+" "+r.PathValue("a"))
			a := f.find(r.PathValue("a"))
			if a == nil {
				notFound(w, "agent "+r.PathValue("a"))
				return
			}
			fn(a)
			writeJSON(w, http.StatusOK, a)
		})
	}
	action("authorize", func(a *api.Agent) { a.Authorized, a.State, a.Groups = true, ci.AgentIdle, []string{"all"} })
	action("enable", func(a *api.Agent) { a.Disabled, a.State = false, ci.AgentIdle })
	action("disable", func(a *api.Agent) { a.Disabled, a.State = true, ci.AgentDisabled })
	mux.HandleFunc("DELETE /api/v1/agents/{a}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, "delete "+r.PathValue("a"))
		a := f.find(r.PathValue("a"))
		if a == nil {
			notFound(w, "agent "+r.PathValue("a"))
			return
		}
		id := a.ID
		f.agents = slices.DeleteFunc(f.agents, func(x api.Agent) bool { return x.ID == id })
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v1/groups/{g}/agents/{a}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, fmt.Sprintf("group %s %s", r.PathValue("g"), r.PathValue("a")))
		if r.PathValue("g") == "missing" {
			notFound(w, `group "missing"`)
			return
		}
		a := f.find(r.PathValue("a"))
		if a == nil {
			notFound(w, "agent "+r.PathValue("a"))
			return
		}
		a.Groups = append(a.Groups, r.PathValue("g"))
		writeJSON(w, http.StatusOK, api.Group{Name: r.PathValue("g"), Agents: []string{a.Name}})
	})
	return mux
}

func (f *fakeAPI) serve(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return srv
}

// Errors lists the requests the fake did not serve.
func (f *fakeAPI) Errors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errors)
}

// testLog is a job log of n lines of two steps with one error line.
func testLog(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		switch {
		case i == 1:
			b.WriteString("==> step 0: git (clone)\n")
		case i == n/2:
			b.WriteString("==> step 1: shell (pytest)\n")
		case i == n/2+5:
			b.WriteString("ERROR: test_login failed: 500 != 200\n")
		default:
			fmt.Fprintf(&b, "line %d of the job output\n", i)
		}
	}
	return b.String()
}

func testFlows() map[int64]api.FlowDetail {
	sec := func(d time.Duration) *time.Time { return at(d) }
	job := func(id, run int64, name string, state ci.JobState, res ci.JobResult, agent string, dur float64) api.JobDetail {
		return api.JobDetail{Job: ci.Job{ID: id, RunID: run, Name: name, State: state, Result: res, System: "debian-12"}, Agent: agent, Duration: dur}
	}
	return map[int64]api.FlowDetail{
		100: {Flow: ci.Flow{ID: 100, BranchID: 7, Kind: ci.FlowCI, State: ci.FlowCompleted, KindSeq: 11, Created: *sec(2 * time.Hour)},
			Project: "demo", Branch: "main", Runs: []api.RunDetail{
				{Run: ci.Run{ID: 200, FlowID: 100, State: ci.RunCompleted}, Name: "build",
					Jobs: []api.JobDetail{job(300, 200, "compile", ci.JobCompleted, ci.JobOK, "builder-1", 40)}},
			}},
		101: {Flow: ci.Flow{ID: 101, BranchID: 7, Kind: ci.FlowCI, State: ci.FlowCompleted, KindSeq: 12, Label: "abc123 fix login", Created: *sec(10 * time.Minute)},
			Project: "demo", Branch: "main", Runs: []api.RunDetail{
				{Run: ci.Run{ID: 201, FlowID: 101, State: ci.RunCompleted}, Name: "build",
					Jobs: []api.JobDetail{job(301, 201, "compile", ci.JobCompleted, ci.JobOK, "builder-1", 42)}},
				{Run: ci.Run{ID: 202, FlowID: 101, State: ci.RunCompleted, JobsError: 1}, Name: "tests",
					Jobs: []api.JobDetail{
						job(302, 202, "unit", ci.JobCompleted, ci.JobOK, "builder-2", 65),
						job(303, 202, "integration", ci.JobCompleted, ci.JobFailed, "builder-1", 185),
					}},
				{Run: ci.Run{ID: 203, FlowID: 101, State: ci.RunManual}, Name: "deploy"},
			}},
		102: {Flow: ci.Flow{ID: 102, BranchID: 7, Kind: ci.FlowDEV, State: ci.FlowInProgress, KindSeq: 3, Created: *sec(30 * time.Second)},
			Project: "demo", Branch: "main", Runs: []api.RunDetail{
				{Run: ci.Run{ID: 204, FlowID: 102, State: ci.RunInProgress}, Name: "build",
					Jobs: []api.JobDetail{job(304, 204, "compile", ci.JobRunning, "", "builder-2", 12), job(305, 204, "lint", ci.JobQueued, "", "", 0)}},
			}},
	}
}

func (f *fakeAPI) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// testResults are the results of run 202 (tests of CI 12), by relevancy.
func testResults() []api.TestResult {
	r := func(name, status, change string, age, instab, relev int, dur float64, msg string) api.TestResult {
		return api.TestResult{RunID: 202, FlowID: 101, FlowKind: "ci", JobName: "integration", Name: name, Status: status,
			Change: change, Age: age, Instability: instab, Relevancy: relev, Duration: dur, Message: msg, Analyzed: true, Created: *at(10 * time.Minute)}
	}
	return []api.TestResult{
		r("tests/test_login.py::test_login", "failed", "regr", 0, 1, 12, 2.5, "assert 500 == 200\nfull traceback"),
		r("tests/test_api.py::test_rate_limit", "error", "no-change", 3, 4, 9, 0.3, "fixture redis not found"),
		r("tests/test_api.py::test_paging", "unstable", "fix", 0, 6, 5, 1.2, ""),
		r("tests/test_models.py::test_user_roundtrip", "passed", "fix", 0, 2, 3, 0.1, ""),
		r("tests/test_models.py::test_slugs", "passed", "no-change", 8, 0, 0, 0.05, ""),
	}
}

// testHistory is the history of a test in branch 7, newest first.
func testHistory(name string) []api.TestResult {
	statuses := []string{"failed", "passed", "passed", "failed", "unstable", "passed", "passed", "passed", "error", "passed", "passed", "passed"}
	out := []api.TestResult{}
	for i, st := range statuses {
		out = append(out, api.TestResult{FlowID: int64(101 - i), FlowKind: "ci", JobName: "integration", Name: name, Status: st,
			Duration: float64(1 + i%5), Created: *at(time.Duration(i+1) * time.Hour), Message: map[bool]string{true: "assert 500 == 200"}[st == "failed"]})
	}
	return out
}

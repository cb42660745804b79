package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/server"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

const (
	adminPassword = "correct horse battery staple"
	regKey        = "test-registration-key-0123456789"
	// longWait is the wait of long polls that must return early: a test that
	// measures "promptly" requires an answer well before it.
	longWait = 10 * time.Second
	// prompt is how fast a long poll must answer once its event happened.
	prompt = 3 * time.Second
)

// adminHash is computed once: PBKDF2 is deliberately slow, more so under -race.
var adminHash = sync.OnceValues(func() (string, error) { return auth.HashPassword(adminPassword) })

// env is a kkd wired like daemon.Serve (store, hub, dispatcher, engine, logs,
// server) behind a real HTTP server, with an admin user and an API token.
type env struct {
	st      *sqlite.Store
	hub     *notify.Hub
	disp    *scheduler.Dispatcher
	eng     *engine.Engine
	srv     *server.Server
	base    string // server URL + api.Prefix
	token   string // admin API token
	adminID int64
	// shutdown cancels the server's base context, as kkd does when it stops.
	shutdown context.CancelFunc
}

// newEnv builds an env; opts adjust the server's config (its clock, say).
func newEnv(t testing.TB, opts ...func(*server.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	log := slog.New(slog.DiscardHandler)
	hub := notify.New()
	disp := scheduler.New(scheduler.Config{Store: st, Logger: log, Lease: 30 * time.Second})
	eng := engine.New(engine.Config{Store: st, Hub: hub, Dispatcher: disp, Logger: log})
	cfg := server.Config{
		Store: st, Engine: eng, Dispatcher: disp, Hub: hub, Logger: log, Version: "test",
		Logs: &logs.Service{Store: st, Hub: hub, Logger: log}, RegistrationKeys: []string{regKey},
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := server.New(cfg)

	runCtx, stop := context.WithCancel(ctx)
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.BaseContext = func(net.Listener) context.Context { return runCtx }
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(stop) // runs first: ends held long polls, then the server closes
	disp.Start(runCtx)

	hash, err := adminHash()
	require.NoError(t, err)
	u := ci.User{Name: "admin", PasswordHash: hash, Admin: true}
	require.NoError(t, st.CreateUser(ctx, &u))
	tok := auth.NewToken("kkt")
	require.NoError(t, st.CreateToken(ctx, &ci.Token{UserID: u.ID, Hash: auth.HashToken(tok), Name: "test"}))
	return &env{st: st, hub: hub, disp: disp, eng: eng, srv: srv, base: ts.URL + api.Prefix, token: tok, adminID: u.ID, shutdown: stop}
}

// request builds a request; body is nil (none), a string or []byte (raw) or
// anything else (JSON-encoded).
func request(t testing.TB, method, url string, body any, token string) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) call(t testing.TB, method, path string, body any, token string) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(request(t, method, e.base+path, body, token))
	require.NoError(t, err)
	defer resp.Body.Close()
	return readResponse(t, resp)
}

func readResponse(t testing.TB, resp *http.Response) response {
	t.Helper()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (e *env) now() time.Time { return time.Now() }

// user calls a user route with the admin token.
func (e *env) user(t testing.TB, method, path string, body any) response {
	t.Helper()
	return e.call(t, method, path, body, e.token)
}

// ok requires a 2xx status and decodes the JSON body into out (when not nil).
func (r response) ok(t testing.TB, status int, out any) {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	if out != nil {
		require.NoError(t, json.Unmarshal(r.body, out), "body: %s", r.body)
	}
}

// envelope requires an error response of this status and code and returns it.
func (r response) envelope(t testing.TB, status int, code string) api.Error {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"), "content type %q", r.header.Get("Content-Type"))
	return requireEnvelope(t, r.status, r.body, code)
}

// requireEnvelope checks that body is exactly {"error": {...}} with a code
// matching status and a non-empty message.
func requireEnvelope(t testing.TB, status int, body []byte, code string) api.Error {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var eb api.ErrorBody
	require.NoError(t, dec.Decode(&eb), "not an error envelope: %s", body)
	require.NotEmpty(t, eb.Error.Code, "envelope without code: %s", body)
	require.NotEmpty(t, eb.Error.Message, "envelope without message: %s", body)
	require.Equal(t, status, api.StatusOf(eb.Error.Code), "code %q does not match status %d", eb.Error.Code, status)
	if code != "" {
		require.Equal(t, code, eb.Error.Code, "message: %s", eb.Error.Message)
	}
	return eb.Error
}

// stageCode is a root stage with one job of n shell steps in agents group group.
func stageCode(group string, steps int) string {
	var b strings.Builder
	for i := range steps {
		fmt.Fprintf(&b, "{\"tool\": \"shell\", \"name\": \"step%d\", \"cmd\": \"echo %d\"},\n", i, i)
	}
	return `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "build",
            "steps": [` + b.String() + `],
            "environments": [{"agents_group": "` + group + `", "system": "any", "config": "default"}],
        }],
    }
`
}

func (e *env) project(t testing.TB, name string) ci.Project {
	t.Helper()
	var p ci.Project
	e.user(t, "POST", "/projects", api.CreateProject{Name: name}).ok(t, http.StatusCreated, &p)
	return p
}

func (e *env) branch(t testing.TB, project, name string) ci.Branch {
	t.Helper()
	var b ci.Branch
	e.user(t, "POST", "/projects/"+project+"/branches", api.CreateBranch{Name: name}).ok(t, http.StatusCreated, &b)
	return b
}

func (e *env) stage(t testing.TB, branchID int64, name, code string) ci.Stage {
	t.Helper()
	var s ci.Stage
	e.user(t, "PUT", fmt.Sprintf("/branches/%d/stages/%s", branchID, name), api.PutStage{Code: code}).ok(t, http.StatusOK, &s)
	return s
}

func (e *env) flow(t testing.TB, branchID int64) api.FlowDetail {
	t.Helper()
	var f api.FlowDetail
	e.user(t, "POST", fmt.Sprintf("/branches/%d/flows", branchID), nil).ok(t, http.StatusCreated, &f)
	return f
}

// fixture is a project "proj" with branch "main" and stage "build" (one job
// of `steps` steps, group all).
type fixture struct {
	project ci.Project
	branch  ci.Branch
	stage   ci.Stage
}

func (e *env) fixture(t testing.TB, steps int) fixture {
	t.Helper()
	p := e.project(t, "proj")
	b := e.branch(t, "proj", "main")
	s := e.stage(t, b.ID, "build", stageCode("all", steps))
	return fixture{project: p, branch: b, stage: s}
}

// queueJob starts a flow on the fixture's branch and returns its one job.
func (e *env) queueJob(t testing.TB, fx fixture) api.JobDetail {
	t.Helper()
	f := e.flow(t, fx.branch.ID)
	require.Len(t, f.Runs, 1)
	require.Len(t, f.Runs[0].Jobs, 1)
	j := f.Runs[0].Jobs[0]
	// An agent waiting for work may have claimed it already.
	require.Contains(t, []ci.JobState{ci.JobQueued, ci.JobAssigned}, j.State)
	return j
}

// testAgent is an agent's identity on the wire.
type testAgent struct {
	id     int64
	name   string
	uuid   string
	secret string
	cred   string
}

func newAgentIdentity(name string) testAgent {
	return testAgent{name: name, uuid: uuid.NewString(), secret: auth.NewSecret(32)}
}

func (a testAgent) register(key string, groups ...string) api.Register {
	return api.Register{
		UUID: a.uuid, Name: a.name, EnrollSecret: a.secret, RegistrationKey: key, Groups: groups,
		HostInfo: ci.HostInfo{OS: "linux", System: "debian-12", Arch: "amd64", CPUs: 2, Hostname: a.name},
	}
}

// agent registers an agent with the registration key and returns it with its credential.
func (e *env) agent(t testing.TB, name string, groups ...string) testAgent {
	t.Helper()
	a := newAgentIdentity(name)
	var rr api.RegisterResponse
	e.call(t, "POST", "/agent/register", a.register(regKey, groups...), "").ok(t, http.StatusOK, &rr)
	require.True(t, rr.Authorized, "message: %s", rr.Message)
	require.NotEmpty(t, rr.Credential)
	a.id, a.cred = rr.AgentID, rr.Credential
	return a
}

// claim long-polls for work and requires an assignment.
func (e *env) claim(t testing.TB, a testAgent) api.Assignment {
	t.Helper()
	var asg api.Assignment
	e.call(t, "POST", fmt.Sprintf("/agent/work?wait=%d", int(longWait/time.Second)), nil, a.cred).ok(t, http.StatusOK, &asg)
	return asg
}

func (e *env) job(t testing.TB, id int64) ci.Job {
	t.Helper()
	j, err := e.st.GetJob(context.Background(), id)
	require.NoError(t, err)
	return j
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// async runs a call in the background and delivers its response and duration.
type asyncResult struct {
	resp    response
	elapsed time.Duration
	err     error
}

func (e *env) async(t testing.TB, method, path string, body any, token string) <-chan asyncResult {
	t.Helper()
	ch := make(chan asyncResult, 1)
	req := request(t, method, e.base+path, body, token) // built here: t is not used off this goroutine
	go func() {
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- asyncResult{err: err}
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		ch <- asyncResult{resp: response{status: resp.StatusCode, header: resp.Header, body: raw}, elapsed: time.Since(start), err: err}
	}()
	return ch
}

// await waits for an async call; it must answer within limit.
func await(t testing.TB, ch <-chan asyncResult, limit time.Duration) asyncResult {
	t.Helper()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		return r
	case <-time.After(limit):
		t.Fatalf("no answer within %v", limit)
		return asyncResult{}
	}
}

// snapshot is the state that bad requests must leave alone.
type snapshot struct {
	Projects []ci.Project
	Branches []ci.Branch
	Stages   []ci.Stage
	Flows    []ci.Flow
	Jobs     []ci.Job
	Groups   []ci.Group
	Agents   []ci.Agent
	Logs     []ci.LogChunk
}

func (e *env) snapshot(t testing.TB) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	s.Projects, err = e.st.ListProjects(ctx)
	require.NoError(t, err)
	for _, p := range s.Projects {
		bs, err := e.st.ListBranches(ctx, p.ID)
		require.NoError(t, err)
		s.Branches = append(s.Branches, bs...)
	}
	for _, b := range s.Branches {
		ss, err := e.st.ListStages(ctx, b.ID)
		require.NoError(t, err)
		s.Stages = append(s.Stages, ss...)
		fs, err := e.st.ListFlows(ctx, b.ID, store.ListFlowsOpts{})
		require.NoError(t, err)
		s.Flows = append(s.Flows, fs...)
		for _, f := range fs {
			runs, err := e.st.ListRuns(ctx, f.ID)
			require.NoError(t, err)
			for _, r := range runs {
				js, err := e.st.ListJobs(ctx, r.ID)
				require.NoError(t, err)
				s.Jobs = append(s.Jobs, js...)
				for _, j := range js {
					cs, err := e.st.ReadLogs(ctx, j.ID, -1, -1, store.LogPos{}, 0)
					require.NoError(t, err)
					s.Logs = append(s.Logs, cs...)
				}
			}
		}
	}
	s.Groups, err = e.st.ListGroups(ctx)
	require.NoError(t, err)
	s.Agents, err = e.st.ListAgents(ctx, store.ListAgentsOpts{})
	require.NoError(t, err)
	return s
}

// unchanged requires the store to hold what before holds; on a difference it
// names the changed collections and shows them as JSON.
func (e *env) unchanged(t testing.TB, before snapshot) {
	t.Helper()
	after := e.snapshot(t)
	bv, av := reflect.ValueOf(before), reflect.ValueOf(after)
	var diffs []string
	for i := range bv.NumField() {
		if reflect.DeepEqual(bv.Field(i).Interface(), av.Field(i).Interface()) {
			continue
		}
		b, _ := json.Marshal(bv.Field(i).Interface())
		a, _ := json.Marshal(av.Field(i).Interface())
		diffs = append(diffs, fmt.Sprintf("%s changed:\n  before: %.1500s\n  after:  %.1500s", bv.Type().Field(i).Name, b, a))
	}
	if len(diffs) > 0 {
		t.Fatalf("the store changed:\n%s", strings.Join(diffs, "\n"))
	}
}

package dbcopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/pgtest"
	"github.com/kraken-go/kk/pkg/store/postgres"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}

// testKey is the secret key of the tests' cipher.
var testKey = bytes.Repeat([]byte{7}, secrets.KeySize)

func cipher(t *testing.T) *secrets.Cipher {
	t.Helper()
	c, err := secrets.New(testKey)
	require.NoError(t, err)
	return c
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// world is what populate made, to look it up in both stores.
type world struct {
	project  ci.Project
	branch   ci.Branch
	flows    []int64
	runs     []int64
	jobs     []int64
	agents   []int64
	groups   []string
	user     string
	tokenKey string
}

// newSQLite opens a store on a new file and returns it with the file's path.
func newSQLite(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kk.db")
	s, err := sqlite.Open(t.Context(), path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func openPG(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// populate fills s through the store interface with some of everything.
func populate(t *testing.T, s store.Store) world {
	t.Helper()
	ctx := t.Context()
	var w world
	w.project = ci.Project{Name: "kraken", Description: "the project"}
	require.NoError(t, s.CreateProject(ctx, &w.project))
	other := ci.Project{Name: "other"}
	require.NoError(t, s.CreateProject(ctx, &other))
	w.branch = ci.Branch{ProjectID: w.project.ID, Name: "main", RepoBranch: "master", Env: map[string]string{"GOFLAGS": "-mod=mod"}}
	require.NoError(t, s.CreateBranch(ctx, &w.branch))
	// Spacing and key order of json documents are kept byte for byte.
	st := ci.Stage{BranchID: w.branch.ID, Name: "build", Enabled: true, Code: "def stage(): pass",
		Schema: json.RawMessage(`{"parent": "root",  "jobs":[{"name":"b"}], "a": 1}`), Parent: "root"}
	require.NoError(t, s.PutStage(ctx, &st))
	off := ci.Stage{BranchID: w.branch.ID, Name: "deploy", Enabled: false, Parent: "build"}
	require.NoError(t, s.PutStage(ctx, &off))

	f := ci.Flow{BranchID: w.branch.ID, Kind: ci.FlowCI, Args: map[string]string{"COMMIT": "abc"},
		TriggerData: json.RawMessage(`{"repo": "x",   "commits": [1,2]}`)}
	require.NoError(t, s.CreateFlow(ctx, &f))
	require.NoError(t, s.SetFlowLabel(ctx, f.ID, "#1 ci"))
	dev := ci.Flow{BranchID: w.branch.ID, Kind: ci.FlowDEV}
	require.NoError(t, s.CreateFlow(ctx, &dev))
	w.flows = []int64{f.ID, dev.ID}

	job := func(name string) *ci.Job {
		return &ci.Job{Name: name, Group: ci.GroupAll, System: ci.SystemAny, Executor: ci.ExecutorLocal, Timeout: 600,
			Steps: []ci.Step{
				{Tool: "shell", Name: "hello", Fields: map[string]any{"cmd": "echo hello", "attempts": float64(2)}},
				{Tool: "pytest", Fields: map[string]any{"params": []any{"-x"}}},
			}}
	}
	j1, j2, j3 := job("build"), job("test"), job("lint")
	r := ci.Run{FlowID: f.ID, StageID: st.ID, StageName: "build", State: ci.RunInProgress, Reason: "manual", Args: map[string]string{"X": "1"}}
	require.NoError(t, s.CreateRun(ctx, &r, []*ci.Job{j1, j2, j3}))
	require.NoError(t, s.SetRunLabel(ctx, r.ID, "build #1"))
	require.NoError(t, s.SetRunNote(ctx, r.ID, "a note"))
	manual := ci.Run{FlowID: dev.ID, StageName: "deploy", State: ci.RunManual, Reason: "manual"}
	require.NoError(t, s.CreateRun(ctx, &manual, nil))
	w.runs = []int64{r.ID, manual.ID}
	w.jobs = []int64{j1.ID, j2.ID, j3.ID}

	register := func(name string, authorized bool) ci.Agent {
		a, err := s.RegisterAgent(ctx, ci.Agent{UUID: "uuid-" + name, Name: name, Address: "10.0.0.1",
			HostInfo: ci.HostInfo{OS: "linux", System: "debian-12", CPUs: 4, MemoryMiB: 8192}, EnrollHash: "enroll-" + name}, now())
		require.NoError(t, err)
		if authorized {
			a, err = s.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
			require.NoError(t, err)
		}
		return a
	}
	a1, a2, a3 := register("alpha", true), register("beta", true), register("gamma", false)
	require.NoError(t, s.SetAgentCredential(ctx, a1.ID, "cred-alpha"))
	require.NoError(t, s.TouchAgent(ctx, a2.ID, now(), nil))
	w.agents = []int64{a1.ID, a2.ID, a3.ID}
	g := ci.Group{Name: "linux"}
	require.NoError(t, s.CreateGroup(ctx, &g))
	require.NoError(t, s.AddAgentToGroup(ctx, g.ID, a1.ID))
	require.NoError(t, s.AddAgentToGroup(ctx, g.ID, a3.ID))
	w.groups = []string{ci.GroupAll, "linux"}

	// j1 stays running on alpha: the agent's current job (agents.job_id).
	_, err := s.ClaimJob(ctx, j1.ID, a1.ID, time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.StartJob(ctx, j1.ID, 1, now()))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for seq := range int64(3) {
		_, err := s.AppendLog(ctx, ci.LogChunk{JobID: j1.ID, Attempt: 1, Step: 0, Seq: seq, Data: big[:len(big)-int(seq)]})
		require.NoError(t, err)
	}
	_, err = s.AppendLog(ctx, ci.LogChunk{JobID: j1.ID, Attempt: 1, Step: 1, Seq: 0, Data: []byte("$ pytest\n")})
	require.NoError(t, err)

	// j2 loses its agent once, then completes with results on its second attempt.
	_, err = s.ClaimJob(ctx, j2.ID, a2.ID, time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.StartJob(ctx, j2.ID, 1, now()))
	_, err = s.AppendLog(ctx, ci.LogChunk{JobID: j2.ID, Attempt: 1, Step: 0, Seq: 0, Data: []byte("first attempt\n")})
	require.NoError(t, err)
	_, out, err := s.FailAttempt(ctx, store.AttemptFailure{JobID: j2.ID, Attempt: 1, At: now(), Outcome: ci.JobAgentLost,
		Reason: "agent lost", Retry: true})
	require.NoError(t, err)
	require.Equal(t, store.FailRequeued, out)
	_, err = s.ClaimJob(ctx, j2.ID, a2.ID, time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.StartJob(ctx, j2.ID, 2, now()))
	exit := 0
	require.NoError(t, s.UpdateStep(ctx, j2.ID, 2, ci.Step{Index: 0, Status: ci.StepOK, ExitCode: &exit, Started: new(now()), Finished: new(now())}))
	for seq, line := range []string{"hello\n", "\x00binary\xff\n", "ünïcode\n"} {
		_, err := s.AppendLog(ctx, ci.LogChunk{JobID: j2.ID, Attempt: 2, Step: 0, Seq: int64(seq), Data: []byte(line)})
		require.NoError(t, err)
	}
	median := 1.25
	require.NoError(t, s.PutResults(ctx, j2.ID, 2, 1, []ci.TestResult{
		{Name: "pkg.TestA", Status: ci.TestPassed, Duration: 0.125, Values: map[string]ci.TestValue{"ops": {Value: 3.5, Median: &median}}},
		{Name: "pkg.TestB", Status: ci.TestFailed, Message: "boom", Cmd: "go test -run B", Duration: 2},
	}, []ci.Issue{{Path: "a.go", Line: 3, Column: 7, Type: "error", Symbol: "unused", Message: "x is unused"}}))
	_, err = s.CreateArtifact(ctx, &store.Artifact{JobID: j2.ID, Path: "out/report.html", Size: 42, SHA256: strings.Repeat("a", 64),
		Public: true, ReportEntry: true, BlobKey: "artifacts/1/report"}, 2)
	require.NoError(t, err)
	_, err = s.CreateArtifact(ctx, &store.Artifact{JobID: j2.ID, Path: "bin/tool", Size: 7, SHA256: strings.Repeat("b", 64), BlobKey: "artifacts/1/tool"}, 2)
	require.NoError(t, err)
	_, err = s.PutCache(ctx, j2.ID, 2, &store.CacheEntry{BranchID: w.branch.ID, Key: "go-mod", Size: 99, SHA256: strings.Repeat("c", 64),
		BlobKey: "caches/go-mod", Expires: now().Add(24 * time.Hour)})
	require.NoError(t, err)
	_, changed, err := s.CompleteJob(ctx, j2.ID, 2, ci.JobOK, "", now())
	require.NoError(t, err)
	require.True(t, changed)
	rs, err := s.ListJobResults(ctx, j2.ID)
	require.NoError(t, err)
	is, err := s.ListJobIssues(ctx, j2.ID)
	require.NoError(t, err)
	require.Len(t, is, 1)
	require.NoError(t, s.SaveAnalysis(ctx, j2.ID, []store.ResultAnalysis{
		{ID: rs[0].ID, Change: ci.ChangeNew, Instability: 1, Age: 0, Relevancy: 5},
		{ID: rs[1].ID, Change: ci.ChangeRegr, Instability: 2, Age: 1, Relevancy: 9},
	}, []store.IssueAnalysis{{ID: is[0].ID, Age: 0}}, now()))

	// j3 is cancelled while queued.
	_, _, err = s.RequestCancel(ctx, j3.ID, now(), "not needed")
	require.NoError(t, err)

	u := ci.User{Name: "admin", PasswordHash: "$argon2id$hash", Admin: true}
	require.NoError(t, s.CreateUser(ctx, &u))
	w.user = u.Name
	w.tokenKey = "token-hash-1"
	require.NoError(t, s.CreateToken(ctx, &ci.Token{UserID: u.ID, Hash: w.tokenKey, Name: "ci"}))

	c := cipher(t)
	for _, sec := range []struct{ name, value string }{{"API_TOKEN", "s3cret"}, {"SSH_KEY", "-----BEGIN KEY-----"}} {
		sealed, err := c.Seal(w.project.ID, sec.name, []byte(sec.value))
		require.NoError(t, err)
		_, err = s.PutSecret(ctx, &store.Secret{ProjectID: w.project.ID, Name: sec.name, Kind: "simple", Sealed: sealed})
		require.NoError(t, err)
	}

	for _, sc := range []store.DataScope{{Kind: "project", OwnerID: w.project.ID}, {Kind: "flow", OwnerID: f.ID},
		{Kind: "branch-ci", OwnerID: w.branch.ID}} {
		_, err := s.PutData(ctx, sc, json.RawMessage(`{"k":  [1, 2.5, "three"],"z":null}`), 0)
		require.NoError(t, err)
	}
	return w
}

// maxIDs returns max(id) of every identity table of a PostgreSQL database.
func maxIDs(t *testing.T, url string) map[string]int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	out := map[string]int64{}
	for _, table := range []string{"projects", "branches", "stages", "flows", "runs", "agents", "jobs", "groups", "users",
		"tokens", "artifacts", "secrets", "test_cases", "test_results", "issues"} {
		var m int64
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT coalesce(max(id), 0) FROM `+table).Scan(&m))
		out[table] = m
	}
	return out
}

// same calls read on both stores and requires equal answers.
func same[T any](t *testing.T, what string, a, b store.Store, read func(s store.Store) (T, error)) T {
	t.Helper()
	va, err := read(a)
	require.NoError(t, err, "%s on sqlite", what)
	vb, err := read(b)
	require.NoError(t, err, "%s on postgres", what)
	require.Equal(t, va, vb, what)
	return va
}

// requireSame compares what every read method returns on both stores.
func requireSame(t *testing.T, w world, a, b store.Store) {
	t.Helper()
	ctx := t.Context()
	projects := same(t, "ListProjects", a, b, func(s store.Store) ([]ci.Project, error) { return s.ListProjects(ctx) })
	require.Len(t, projects, 2)
	same(t, "GetProjectByName", a, b, func(s store.Store) (ci.Project, error) { return s.GetProjectByName(ctx, "kraken") })
	branches := same(t, "ListBranches", a, b, func(s store.Store) ([]ci.Branch, error) { return s.ListBranches(ctx, w.project.ID) })
	require.Len(t, branches, 1)
	stages := same(t, "ListStages", a, b, func(s store.Store) ([]ci.Stage, error) { return s.ListStages(ctx, w.branch.ID) })
	require.Len(t, stages, 2)
	require.JSONEq(t, `{"parent":"root","jobs":[{"name":"b"}],"a":1}`, string(stages[0].Schema))
	require.Equal(t, `{"parent": "root",  "jobs":[{"name":"b"}], "a": 1}`, string(stages[0].Schema), "json is kept byte for byte")
	same(t, "ListFlows", a, b, func(s store.Store) ([]ci.Flow, error) { return s.ListFlows(ctx, w.branch.ID, store.ListFlowsOpts{}) })
	for _, id := range w.flows {
		same(t, "GetFlow", a, b, func(s store.Store) (ci.Flow, error) { return s.GetFlow(ctx, id) })
		runs := same(t, "ListRuns", a, b, func(s store.Store) ([]ci.Run, error) { return s.ListRuns(ctx, id) })
		require.NotEmpty(t, runs)
		same(t, "ListFlowArtifacts", a, b, func(s store.Store) ([]store.Artifact, error) { return s.ListFlowArtifacts(ctx, id) })
		same(t, "GetData flow", a, b, func(s store.Store) (string, error) {
			d, v, err := s.GetData(ctx, store.DataScope{Kind: "flow", OwnerID: id})
			return fmt.Sprintf("%d %s", v, d), err
		})
	}
	for _, id := range w.runs {
		same(t, "GetRun", a, b, func(s store.Store) (ci.Run, error) { return s.GetRun(ctx, id) })
		same(t, "ListJobs", a, b, func(s store.Store) ([]ci.Job, error) { return s.ListJobs(ctx, id) })
		same(t, "ListRunArtifacts", a, b, func(s store.Store) ([]store.Artifact, error) { return s.ListRunArtifacts(ctx, id) })
		rs := same(t, "ListRunResults", a, b, func(s store.Store) ([]ci.TestResult, error) {
			return s.ListRunResults(ctx, id, store.ResultFilter{})
		})
		same(t, "ListRunIssues", a, b, func(s store.Store) ([]ci.Issue, error) { return s.ListRunIssues(ctx, id, store.IssueFilter{}) })
		same(t, "RunResultCounts", a, b, func(s store.Store) (ci.RunResultCounts, error) { return s.RunResultCounts(ctx, id) })
		same(t, "PendingAnalysis", a, b, func(s store.Store) ([]ci.Job, error) { return s.PendingAnalysis(ctx, id) })
		if id == w.runs[0] {
			require.Len(t, rs, 2)
			require.True(t, rs[0].Analyzed)
		}
	}
	for _, id := range w.jobs {
		job := same(t, "GetJob", a, b, func(s store.Store) (ci.Job, error) { return s.GetJob(ctx, id) })
		require.Len(t, job.Steps, 2)
		same(t, "ListJobAttempts", a, b, func(s store.Store) ([]ci.JobAttempt, error) { return s.ListJobAttempts(ctx, id) })
		// Chunks by position, size and digest (a failure would print megabytes).
		logs := same(t, "ReadLogs", a, b, func(s store.Store) ([]string, error) {
			cs, err := s.ReadLogs(ctx, id, 0, -1, store.LogPos{}, 0)
			var out []string
			for _, c := range cs {
				out = append(out, fmt.Sprintf("%d/%d/%d/%d %d bytes %x", c.JobID, c.Attempt, c.Step, c.Seq, len(c.Data), sha256.Sum256(c.Data)))
			}
			return out, err
		})
		if id == w.jobs[0] {
			require.Len(t, logs, 4)
			require.Contains(t, logs[0], fmt.Sprintf(" %d bytes ", 1<<20))
		}
		same(t, "ListJobArtifacts", a, b, func(s store.Store) ([]store.Artifact, error) { return s.ListJobArtifacts(ctx, id) })
		same(t, "ListJobResults", a, b, func(s store.Store) ([]ci.TestResult, error) { return s.ListJobResults(ctx, id) })
		same(t, "ListJobIssues", a, b, func(s store.Store) ([]ci.Issue, error) { return s.ListJobIssues(ctx, id) })
		same(t, "CIHistory", a, b, func(s store.Store) (map[string][]ci.TestResult, error) { return s.CIHistory(ctx, id, 10) })
		same(t, "CIBaseline", a, b, func(s store.Store) (map[string]ci.TestResult, error) { return s.CIBaseline(ctx, id) })
	}
	same(t, "TestHistory", a, b, func(s store.Store) ([]ci.TestResult, error) {
		return s.TestHistory(ctx, w.branch.ID, "pkg.TestB", ci.FlowCI, 10)
	})
	same(t, "ListQueuedJobs", a, b, func(s store.Store) ([]ci.Job, error) { return s.ListQueuedJobs(ctx, 0) })
	active := same(t, "ListActiveJobs", a, b, func(s store.Store) ([]ci.Job, error) { return s.ListActiveJobs(ctx) })
	require.Len(t, active, 1)
	same(t, "ListArchivableLogs", a, b, func(s store.Store) ([]int64, error) { return s.ListArchivableLogs(ctx, 0, 0) })

	agents := same(t, "ListAgents", a, b, func(s store.Store) ([]ci.Agent, error) { return s.ListAgents(ctx, store.ListAgentsOpts{}) })
	require.Len(t, agents, 3)
	for _, id := range w.agents {
		same(t, "GetAgent", a, b, func(s store.Store) (ci.Agent, error) { return s.GetAgent(ctx, id) })
	}
	alpha := same(t, "GetAgentByCredential", a, b, func(s store.Store) (ci.Agent, error) { return s.GetAgentByCredential(ctx, "cred-alpha") })
	require.Equal(t, w.jobs[0], alpha.JobID, "the agent's current job is copied")
	same(t, "ListGroups", a, b, func(s store.Store) ([]ci.Group, error) { return s.ListGroups(ctx) })
	for _, name := range w.groups {
		g := same(t, "GetGroupByName", a, b, func(s store.Store) (ci.Group, error) { return s.GetGroupByName(ctx, name) })
		same(t, "ListGroupAgents", a, b, func(s store.Store) ([]ci.Agent, error) { return s.ListGroupAgents(ctx, g.ID) })
	}

	same(t, "GetUserByName", a, b, func(s store.Store) (ci.User, error) { return s.GetUserByName(ctx, w.user) })
	at := now()
	same(t, "GetToken", a, b, func(s store.Store) (string, error) {
		tok, u, err := s.GetToken(ctx, w.tokenKey, at)
		return fmt.Sprintf("%+v %+v", tok, u), err
	})

	same(t, "ListCaches", a, b, func(s store.Store) ([]store.CacheEntry, error) { return s.ListCaches(ctx, w.branch.ID) })
	same(t, "GetCache", a, b, func(s store.Store) (store.CacheEntry, error) { return s.GetCache(ctx, w.branch.ID, "go-mod", now()) })

	same(t, "ListSecrets", a, b, func(s store.Store) ([]store.Secret, error) { return s.ListSecrets(ctx, w.project.ID) })
	sealed := same(t, "ListSealedSecrets", a, b, func(s store.Store) ([]store.Secret, error) { return s.ListSealedSecrets(ctx, w.project.ID) })
	require.Len(t, sealed, 2)
	c := cipher(t)
	for _, want := range []struct{ name, value string }{{"API_TOKEN", "s3cret"}, {"SSH_KEY", "-----BEGIN KEY-----"}} {
		sec := same(t, "GetSecret", a, b, func(s store.Store) (store.Secret, error) { return s.GetSecret(ctx, w.project.ID, want.name) })
		plain, err := c.Open(sec.ProjectID, sec.Name, sec.Sealed)
		require.NoError(t, err, "the same key opens the copied secret")
		require.Equal(t, want.value, string(plain))
	}
	for _, sc := range []store.DataScope{{Kind: "project", OwnerID: w.project.ID}, {Kind: "branch-ci", OwnerID: w.branch.ID}} {
		doc := same(t, "GetData", a, b, func(s store.Store) (string, error) {
			d, v, err := s.GetData(ctx, sc)
			return fmt.Sprintf("%d %s", v, d), err
		})
		require.Equal(t, `1 {"k":  [1, 2.5, "three"],"z":null}`, doc)
	}
}

func TestCopy(t *testing.T) {
	t.Parallel()
	src, path := newSQLite(t)
	w := populate(t, src)
	url := pgtest.URL(t)

	var progress bytes.Buffer
	stats, err := Copy(t.Context(), Config{SQLitePath: path, PostgresURL: url, Progress: &progress})
	require.NoError(t, err)
	t.Logf("progress:\n%s", progress.String())
	require.Len(t, stats.Tables, len(Tables()))
	require.Greater(t, stats.Rows, int64(40))
	require.Contains(t, progress.String(), "log_chunks")
	require.Contains(t, progress.String(), "rows/s")

	dst := openPG(t, url)
	requireSame(t, w, src, dst)

	// New rows get fresh ids: every identity sequence is past the copied ids.
	ctx := t.Context()
	before := maxIDs(t, url)
	p := ci.Project{Name: "new"}
	require.NoError(t, dst.CreateProject(ctx, &p))
	require.Equal(t, before["projects"]+1, p.ID)
	b := ci.Branch{ProjectID: p.ID, Name: "main"}
	require.NoError(t, dst.CreateBranch(ctx, &b))
	require.Equal(t, before["branches"]+1, b.ID)
	f := ci.Flow{BranchID: w.branch.ID, Kind: ci.FlowCI}
	require.NoError(t, dst.CreateFlow(ctx, &f))
	require.Equal(t, before["flows"]+1, f.ID)
	require.Equal(t, []int64{3, 2}, []int64{f.Seq, f.KindSeq}, "the branch counters are copied")
	j := &ci.Job{Name: "j", Group: ci.GroupAll, System: ci.SystemAny, Executor: ci.ExecutorLocal, Steps: []ci.Step{{Tool: "shell"}}}
	r := ci.Run{FlowID: f.ID, StageName: "build", State: ci.RunInProgress}
	require.NoError(t, dst.CreateRun(ctx, &r, []*ci.Job{j}))
	require.Equal(t, before["runs"]+1, r.ID)
	require.Equal(t, before["jobs"]+1, j.ID)
	require.Equal(t, int64(2), r.Seq, "the run counter is copied")
	g := ci.Group{Name: "new"}
	require.NoError(t, dst.CreateGroup(ctx, &g))
	require.Equal(t, before["groups"]+1, g.ID)
	u := ci.User{Name: "new"}
	require.NoError(t, dst.CreateUser(ctx, &u))
	require.Equal(t, before["users"]+1, u.ID)
	a, err := dst.RegisterAgent(ctx, ci.Agent{UUID: "uuid-new", Name: "new"}, now())
	require.NoError(t, err)
	require.Equal(t, before["agents"]+1, a.ID)
	sec := store.Secret{ProjectID: p.ID, Name: "S", Kind: "simple", Sealed: []byte("x")}
	require.NoError(t, dst.CreateSecret(ctx, &sec))
	require.Equal(t, before["secrets"]+1, sec.ID)
	_, err = dst.CreateArtifact(ctx, &store.Artifact{JobID: j.ID, Path: "a", SHA256: strings.Repeat("d", 64), BlobKey: "k"}, 0)
	require.NoError(t, err)
	arts, err := dst.ListJobArtifacts(ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, before["artifacts"]+1, arts[0].ID)
	require.NoError(t, dst.PutResults(ctx, j.ID, 0, 0, []ci.TestResult{{Name: "pkg.TestA", Status: ci.TestPassed}},
		[]ci.Issue{{Path: "b.go", Line: 1, Type: "error"}}))
	rs, err := dst.ListJobResults(ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, before["test_results"]+1, rs[0].ID)
	is, err := dst.ListJobIssues(ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, before["issues"]+1, is[0].ID)
	require.NoError(t, dst.PutResults(ctx, j.ID, 0, 0, []ci.TestResult{{Name: "pkg.TestNew", Status: ci.TestPassed}}, nil))
	// (Upserts of test cases may use up sequence values on conflicts.)
	require.Greater(t, maxIDs(t, url)["test_cases"], before["test_cases"])
	require.NoError(t, dst.CreateToken(ctx, &ci.Token{UserID: u.ID, Hash: "h2"}))
	require.Equal(t, before["tokens"]+1, maxIDs(t, url)["tokens"])
	st := ci.Stage{BranchID: b.ID, Name: "s"}
	require.NoError(t, dst.PutStage(ctx, &st))
	require.Equal(t, before["stages"]+1, st.ID)
}

// tableCounts counts the rows of every copied table.
func tableCounts(t *testing.T, url string) map[string]int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	out := map[string]int64{}
	for _, table := range Tables() {
		var n int64
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n))
		out[table] = n
	}
	return out
}

// emptyCounts is what tableCounts gives on a migrated, empty database.
func emptyCounts() map[string]int64 {
	out := map[string]int64{}
	for _, table := range Tables() {
		out[table] = 0
	}
	out["groups"] = 1 // "all"
	return out
}

func TestCopyRefusesNonEmptyTarget(t *testing.T) {
	t.Parallel()
	src, path := newSQLite(t)
	populate(t, src)

	t.Run("kkd database", func(t *testing.T) {
		t.Parallel()
		url := pgtest.URL(t)
		dst := openPG(t, url)
		u := ci.User{Name: "admin"}
		require.NoError(t, dst.CreateUser(t.Context(), &u))
		before := tableCounts(t, url)
		_, err := Copy(t.Context(), Config{SQLitePath: path, PostgresURL: url})
		require.ErrorIs(t, err, ErrTargetNotEmpty)
		require.ErrorContains(t, err, "table users has rows")
		require.Equal(t, before, tableCounts(t, url))
	})
	t.Run("other database", func(t *testing.T) {
		t.Parallel()
		url := pgtest.URL(t)
		conn, err := pgx.Connect(t.Context(), url)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(t.Context(), `CREATE TABLE notes (x int); INSERT INTO notes VALUES (1)`)
		require.NoError(t, err)
		_, err = Copy(t.Context(), Config{SQLitePath: path, PostgresURL: url})
		require.ErrorIs(t, err, ErrTargetNotEmpty)
		require.ErrorContains(t, err, "table notes has rows")
		var migrated *string
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT to_regclass('schema_migrations')::text`).Scan(&migrated))
		require.Nil(t, migrated, "a refused target is not migrated")
	})
}

// cancelOn is a progress writer that cancels when a line names table.
type cancelOn struct {
	mu     sync.Mutex
	table  string
	cancel context.CancelFunc
	seen   []string
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := string(p)
	c.seen = append(c.seen, line)
	if strings.HasPrefix(line, c.table+" ") {
		c.cancel()
	}
	return len(p), nil
}

func TestCopyCancelledLeavesTargetEmpty(t *testing.T) {
	t.Parallel()
	src, path := newSQLite(t)
	w := populate(t, src)
	url := pgtest.URL(t)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancelled once jobs (and the tables before) are copied, in the transaction.
	progress := &cancelOn{table: "jobs", cancel: cancel}
	_, err := Copy(ctx, Config{SQLitePath: path, PostgresURL: url, Progress: progress})
	require.ErrorIs(t, err, context.Canceled)
	require.GreaterOrEqual(t, len(progress.seen), slices.Index(Tables(), "jobs")+1)
	require.Equal(t, emptyCounts(), tableCounts(t, url))

	// The target is still good for a copy.
	_, err = Copy(t.Context(), Config{SQLitePath: path, PostgresURL: url})
	require.NoError(t, err)
	requireSame(t, w, src, openPG(t, url))
}

func TestCopyRefusesSourceAtOtherVersion(t *testing.T) {
	t.Parallel()
	src, path := newSQLite(t)
	populate(t, src)
	require.NoError(t, src.Close())
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec(`DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	url := pgtest.URL(t)
	_, err = Copy(t.Context(), Config{SQLitePath: path, PostgresURL: url})
	require.ErrorContains(t, err, "kkd migrate up --db sqlite://"+path)

	_, err = Copy(t.Context(), Config{SQLitePath: filepath.Join(t.TempDir(), "missing.db"), PostgresURL: url})
	require.ErrorContains(t, err, "there is no SQLite database")
}

// TestTables checks Tables against both dialects' schemas: the same tables,
// and every table after those its foreign keys reference.
func TestTables(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	want := Tables()
	sorted := slices.Sorted(slices.Values(want))
	order := map[string]int{}
	for i, table := range want {
		order[table] = i
	}
	checkFK := func(dialect, table, ref string) {
		if table == "agents" && ref == "jobs" {
			return // the cycle Copy breaks
		}
		require.Less(t, order[ref], order[table], "%s: %s references %s, so it must come after it in Tables", dialect, table, ref)
	}

	_, path := newSQLite(t)
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	require.NoError(t, err)
	var lite []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		if !notCopied[n] {
			lite = append(lite, n)
		}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, sorted, lite, "SQLite tables: add a new table to dbcopy.Tables")
	for _, table := range lite {
		rows, err := db.QueryContext(ctx, `SELECT "table" FROM pragma_foreign_key_list(?)`, table)
		require.NoError(t, err)
		for rows.Next() {
			var ref string
			require.NoError(t, rows.Scan(&ref))
			checkFK("sqlite", table, ref)
		}
		require.NoError(t, rows.Err())
	}

	url := pgtest.URL(t)
	openPG(t, url)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	prow, err := conn.Query(ctx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name`)
	require.NoError(t, err)
	pg, err := pgx.CollectRows(prow, pgx.RowTo[string])
	require.NoError(t, err)
	pg = slices.DeleteFunc(pg, func(n string) bool { return notCopied[n] })
	require.Equal(t, sorted, pg, "PostgreSQL tables: add a new table to dbcopy.Tables")
	frow, err := conn.Query(ctx, `SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'`)
	require.NoError(t, err)
	fks, err := pgx.CollectRows(frow, func(r pgx.CollectableRow) ([2]string, error) {
		var v [2]string
		err := r.Scan(&v[0], &v[1])
		return v, err
	})
	require.NoError(t, err)
	require.NotEmpty(t, fks)
	for _, fk := range fks {
		checkFK("postgres", fk[0], fk[1])
	}
}

// BenchmarkCopy copies a database with 10,000 flows with a run each and
// 2,000 log chunks of 64 KiB (125 MiB of logs):
//
//	go test ./pkg/store/dbcopy -run '^$' -bench Copy -benchtime 1x
func BenchmarkCopy(b *testing.B) {
	ctx := b.Context()
	path := filepath.Join(b.TempDir(), "kk.db")
	s, err := sqlite.Open(ctx, path, nil)
	require.NoError(b, err)
	p := ci.Project{Name: "p"}
	require.NoError(b, s.CreateProject(ctx, &p))
	br := ci.Branch{ProjectID: p.ID, Name: "main"}
	require.NoError(b, s.CreateBranch(ctx, &br))
	var job *ci.Job
	for i := range 10000 {
		f := ci.Flow{BranchID: br.ID, Kind: ci.FlowCI, Args: map[string]string{"i": fmt.Sprint(i)}}
		require.NoError(b, s.CreateFlow(ctx, &f))
		j := &ci.Job{Name: "j", Group: ci.GroupAll, System: ci.SystemAny, Executor: ci.ExecutorLocal, Steps: []ci.Step{{Tool: "shell"}}}
		r := ci.Run{FlowID: f.ID, StageName: "build", State: ci.RunInProgress}
		require.NoError(b, s.CreateRun(ctx, &r, []*ci.Job{j}))
		job = j
	}
	a, err := s.RegisterAgent(ctx, ci.Agent{UUID: "u", Name: "a"}, now())
	require.NoError(b, err)
	_, err = s.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(b, err)
	_, err = s.ClaimJob(ctx, job.ID, a.ID, time.Hour)
	require.NoError(b, err)
	data := bytes.Repeat([]byte("log line of a build step\n"), 64<<10/25)
	for seq := range int64(2000) {
		_, err := s.AppendLog(ctx, ci.LogChunk{JobID: job.ID, Attempt: 1, Seq: seq, Data: data})
		require.NoError(b, err)
	}
	require.NoError(b, s.Close())
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		url := pgtest.URL(b)
		b.StartTimer()
		var progress bytes.Buffer
		st, err := Copy(ctx, Config{SQLitePath: path, PostgresURL: url, Progress: &progress})
		require.NoError(b, err)
		b.ReportMetric(float64(st.Rows)/st.Elapsed.Seconds(), "rows/s")
		b.Logf("\n%s", progress.String())
	}
}

package planner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/secrets"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/planner"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

type fixture struct {
	t      *testing.T
	ctx    context.Context
	st     store.Store
	eng    *engine.Engine
	branch ci.Branch
	clock  *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	p := ci.Project{Name: "proj"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main", RepoBranch: "master"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	disp := scheduler.New(scheduler.Config{Store: st, Logger: log})
	eng := engine.New(engine.Config{Store: st, Hub: notify.New(), Dispatcher: disp, Logger: log})
	return &fixture{t: t, ctx: ctx, st: st, eng: eng, branch: b, clock: &clock{}}
}

// stage stores a stage with the triggers (a Starlark dict body) and one job.
func (f *fixture) stage(name, parent, triggers string) ci.Stage {
	f.t.Helper()
	code := fmt.Sprintf(`def stage(ctx):
    return {
        "parent": %q,
        "triggers": %s,
        "jobs": [{"name": "j", "steps": [{"tool": "shell", "cmd": "true"}],
                  "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}],
    }
`, parent, triggers)
	c := schema.Context{IsCI: true, Project: "proj", Branch: f.branch.Name, BranchName: f.branch.RepoBranch, Stage: name}
	sch, err := f.eng.EvalStage(f.ctx, name+".py", []byte(code), c)
	require.NoError(f.t, err)
	raw, err := json.Marshal(sch)
	require.NoError(f.t, err)
	s := ci.Stage{BranchID: f.branch.ID, Name: name, Enabled: true, Code: code, Schema: raw, Parent: sch.Parent}
	require.NoError(f.t, f.st.PutStage(f.ctx, &s))
	return s
}

func (f *fixture) planner() *planner.Planner {
	return planner.New(planner.Config{Store: f.st, Engine: f.eng, Now: f.clock.Now, RepoDir: f.t.TempDir()})
}

// tick runs one Tick and waits for the repo polls it started.
func (f *fixture) tick(p *planner.Planner) time.Time {
	f.t.Helper()
	next, err := p.Tick(f.ctx)
	require.NoError(f.t, err)
	p.Wait()
	return next
}

// runs returns the branch's runs of stage, oldest first, with their flows.
func (f *fixture) runs(stage string) []ci.Run {
	f.t.Helper()
	flows, err := f.st.ListFlows(f.ctx, f.branch.ID, store.ListFlowsOpts{})
	require.NoError(f.t, err)
	var out []ci.Run
	for i := len(flows) - 1; i >= 0; i-- {
		rs, err := f.st.ListRuns(f.ctx, flows[i].ID)
		require.NoError(f.t, err)
		for _, r := range rs {
			if r.StageName == stage {
				out = append(out, r)
			}
		}
	}
	return out
}

// startClock sets the clock an hour after the stage was stored (so the
// trigger is planned from the planner's first sight) at minute m + sec.
func (f *fixture) startClock(s ci.Stage, sec int) time.Time {
	t0 := s.Updated.Add(time.Hour).Truncate(time.Minute).Add(time.Duration(sec) * time.Second)
	f.clock.Set(t0)
	return t0
}

func TestCronFiresOncePerMinuteAndCatchesUpOnce(t *testing.T) {
	f := newFixture(t)
	s := f.stage("nightly", "root", `{"cron": "* * * * *"}`)
	t0 := f.startClock(s, 30)
	p := f.planner()

	boundary := t0.Truncate(time.Minute).Add(time.Minute)
	require.Equal(t, boundary, f.tick(p), "the timer is set to the next minute boundary")
	require.Empty(t, f.runs("nightly"))

	f.clock.Set(boundary)
	require.Equal(t, boundary.Add(time.Minute), f.tick(p))
	require.Len(t, f.runs("nightly"), 1)
	require.Equal(t, "cron", f.runs("nightly")[0].Reason)
	f.tick(p)
	require.Len(t, f.runs("nightly"), 1, "the same instant fires once")

	// A second replica (a leader change) at the same instant: no second fire.
	other := f.planner()
	f.tick(other)
	require.Len(t, f.runs("nightly"), 1)

	// kkd down for ten minutes: one catch-up run, not ten.
	f.clock.Set(boundary.Add(10*time.Minute + 20*time.Second))
	restarted := f.planner()
	require.Equal(t, boundary.Add(11*time.Minute), f.tick(restarted))
	require.Len(t, f.runs("nightly"), 2)
	f.tick(restarted)
	f.tick(p) // the old leader, still thinking it leads, fires nothing either
	require.Len(t, f.runs("nightly"), 2)

	states, err := f.st.ListTriggerStates(f.ctx, f.branch.ID)
	require.NoError(t, err)
	require.Len(t, states, 1)
	require.Equal(t, boundary.Add(10*time.Minute), states[0].LastFired)
}

func TestConcurrentPlannersFireOnce(t *testing.T) {
	f := newFixture(t)
	s := f.stage("tick", "root", `{"interval": "1m"}`)
	t0 := f.startClock(s, 0)
	ps := make([]*planner.Planner, 4)
	for i := range ps {
		ps[i] = f.planner()
		f.tick(ps[i])
	}
	for round := 1; round <= 3; round++ {
		f.clock.Set(t0.Add(time.Duration(round) * time.Minute))
		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Go(func() {
				_, err := p.Tick(f.ctx)
				require.NoError(t, err)
			})
		}
		wg.Wait()
		require.Len(t, f.runs("tick"), round, "round %d", round)
	}
}

func TestDateFiresOnceAndIntervalStartsFromSince(t *testing.T) {
	f := newFixture(t)
	probe := f.stage("probe", "root", `{"parent": False}`)
	t0 := f.startClock(probe, 0)
	date := t0.Add(90 * time.Second).Format("2006-01-02 15:04:05")
	f.stage("once", "root", fmt.Sprintf(`{"date": %q}`, date))
	f.stage("past", "root", fmt.Sprintf(`{"date": %q}`, t0.Add(-time.Hour).Format("2006-01-02 15:04:05")))
	f.stage("every", "root", `{"interval": "45s"}`)
	p := f.planner()

	require.Equal(t, t0.Add(45*time.Second), f.tick(p))
	f.clock.Set(t0.Add(45 * time.Second))
	require.Equal(t, t0.Add(90*time.Second), f.tick(p))
	require.Len(t, f.runs("every"), 1)
	require.Equal(t, "interval", f.runs("every")[0].Reason)
	f.clock.Set(t0.Add(90 * time.Second))
	f.tick(p)
	require.Len(t, f.runs("once"), 1)
	require.Equal(t, "date", f.runs("once")[0].Reason)
	require.Len(t, f.runs("every"), 2)
	f.clock.Set(t0.Add(24 * time.Hour))
	f.tick(p)
	require.Len(t, f.runs("once"), 1, "a date fires once")
	require.Len(t, f.runs("every"), 3, "missed intervals: one catch-up")
	require.Empty(t, f.runs("past"), "a date already past when applied never fires")
	require.Empty(t, f.runs("probe"))

	sched := planner.Schedule(mustStages(t, f), mustStates(t, f), f.clock.Now())
	byStage := map[string]planner.Entry{}
	for _, e := range sched {
		byStage[e.Stage] = e
	}
	require.True(t, byStage["once"].Next.IsZero())
	require.Equal(t, t0.Add(90*time.Second), byStage["once"].LastFired)
	require.Contains(t, byStage["past"].Note, "past")
	require.Equal(t, t0.Add(24*time.Hour), byStage["every"].LastFired, "the catch-up fire is the latest missed instant")
	require.Equal(t, t0.Add(24*time.Hour+45*time.Second), byStage["every"].Next, "the phase is kept")
	require.NotContains(t, byStage, "probe")
}

func TestChildStageJoinsTheLatestFlow(t *testing.T) {
	f := newFixture(t)
	f.stage("build", "root", `{"parent": True}`)
	child := f.stage("deploy", "build", `{"interval": "1m"}`)
	t0 := f.startClock(child, 0)
	fl, err := f.eng.CreateFlow(f.ctx, f.branch, ci.FlowCI, nil)
	require.NoError(t, err)
	p := f.planner()
	f.tick(p)
	f.clock.Set(t0.Add(time.Minute))
	f.tick(p)
	runs := f.runs("deploy")
	require.Len(t, runs, 1)
	require.Equal(t, fl.ID, runs[0].FlowID)
	f.clock.Set(t0.Add(2 * time.Minute))
	f.tick(p)
	require.Len(t, f.runs("deploy"), 1, "the flow has a run of the stage already")
}

func TestRepoTriggerFiresOnNewCommitsOnly(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	require.NoError(t, err)
	commit := func(msg string) string {
		wt, err := repo.Worktree()
		require.NoError(t, err)
		require.NoError(t, writeFile(filepath.Join(dir, "f.txt"), msg))
		_, err = wt.Add("f.txt")
		require.NoError(t, err)
		h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "Ann", Email: "ann@example.com", When: time.Now()}})
		require.NoError(t, err)
		return h.String()
	}
	first := commit("first")
	url := "file://" + dir
	s := f.stage("poll", "root", fmt.Sprintf(`{"repo": {"url": %q, "interval": "2s"}}`, url))
	t0 := f.startClock(s, 0)
	p := f.planner()

	f.tick(p) // polls at once: records the head, starts nothing
	require.Equal(t, t0.Add(2*time.Second), f.tick(p))
	require.Empty(t, f.runs("poll"))
	f.clock.Set(t0.Add(2 * time.Second))
	f.tick(p)
	f.tick(p)
	require.Empty(t, f.runs("poll"), "no new commit, no run")

	second := commit("second")
	third := commit("third")
	f.clock.Set(t0.Add(4 * time.Second))
	f.tick(p)
	f.tick(p)
	runs := f.runs("poll")
	require.Len(t, runs, 1)
	require.Equal(t, planner.ReasonRepo, runs[0].Reason)
	fl, err := f.st.GetFlow(f.ctx, runs[0].FlowID)
	require.NoError(t, err)
	var td struct {
		Repo, Before, After, Branch string
		Commits                     []struct {
			ID, Message string
			Author      struct{ Name string }
		}
	}
	require.NoError(t, json.Unmarshal(fl.TriggerData, &td))
	require.Equal(t, url, td.Repo)
	require.Equal(t, "master", td.Branch, "the branch's repository branch by default")
	require.Equal(t, first, td.Before)
	require.Equal(t, third, td.After)
	require.Len(t, td.Commits, 2)
	require.Equal(t, second, td.Commits[0].ID, "oldest first, as a push")
	require.Equal(t, third, td.Commits[1].ID)
	require.Equal(t, "Ann", td.Commits[1].Author.Name)
	require.Equal(t, "third", td.Commits[1].Message)

	f.clock.Set(t0.Add(6 * time.Second))
	f.tick(p)
	f.tick(p)
	require.Len(t, f.runs("poll"), 1, "the same commits start nothing again")
}

func mustStages(t *testing.T, f *fixture) []ci.Stage {
	ss, err := f.st.ListStages(f.ctx, f.branch.ID)
	require.NoError(t, err)
	return ss
}

func mustStates(t *testing.T, f *fixture) []store.TriggerState {
	ss, err := f.st.ListTriggerStates(f.ctx, f.branch.ID)
	require.NoError(t, err)
	return ss
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func TestReplanDropsRemovedTriggers(t *testing.T) {
	f := newFixture(t)
	s := f.stage("x", "root", `{"cron": "0 3 * * *"}`)
	f.startClock(s, 0)
	p := f.planner()
	f.tick(p)
	require.Len(t, mustStates(t, f), 1)
	f.stage("x", "root", `{"interval": "1h"}`)
	f.tick(p)
	states := mustStates(t, f)
	require.Len(t, states, 1)
	require.Equal(t, "interval", states[0].Kind)
	f.stage("x", "root", `{"parent": True}`)
	f.tick(p)
	require.Empty(t, mustStates(t, f))
}

// TestRepoTriggerTokenSecret polls a repository served over smart HTTP (git
// http-backend) behind basic auth with the token of a project secret.
func TestRepoTriggerTokenSecret(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	require.NoError(t, err, "the git CLI serves the repository")
	f := newFixture(t)
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	require.NoError(t, err)
	commit := func(msg string) string {
		wt, err := repo.Worktree()
		require.NoError(t, err)
		require.NoError(t, writeFile(filepath.Join(dir, "f.txt"), msg))
		_, err = wt.Add("f.txt")
		require.NoError(t, err)
		h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "Ann", Email: "ann@example.com", When: time.Now()}})
		require.NoError(t, err)
		return h.String()
	}
	commit("first")
	const token, wrong = "s3cr3t-planner-token", "wr0ng-planner-token"
	backend := &cgi.Handler{
		Path: gitBin, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(dir), "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || pass != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(dir)

	cipher, err := secrets.New(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	for name, value := range map[string]string{"tok": token, "bad": wrong} {
		plain, err := json.Marshal(api.SecretValue{Kind: api.SecretSimple, Value: value})
		require.NoError(t, err)
		sealed, err := cipher.Seal(f.branch.ProjectID, name, plain)
		require.NoError(t, err)
		_, err = f.st.PutSecret(f.ctx, &store.Secret{ProjectID: f.branch.ProjectID, Name: name, Kind: api.SecretSimple, Sealed: sealed})
		require.NoError(t, err)
	}
	trig := func(secret string) string {
		return fmt.Sprintf(`{"repo": {"url": %q, "branch": "master", "interval": "2s", "token_secret": %q}}`, url, secret)
	}
	s := f.stage("authed", "root", trig("tok"))
	f.stage("wrong", "root", trig("bad"))
	f.stage("missing", "root", trig("nope"))
	t0 := f.startClock(s, 0)
	var logs bytes.Buffer
	p := planner.New(planner.Config{Store: f.st, Engine: f.eng, Now: f.clock.Now, RepoDir: t.TempDir(), Secrets: cipher,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	f.tick(p) // records the head
	commit("second")
	f.clock.Set(t0.Add(2 * time.Second))
	f.tick(p)
	f.tick(p)
	require.Len(t, f.runs("authed"), 1, "the token opens the repository; log:\n%s", logs.String())
	require.Empty(t, f.runs("wrong"))
	require.Empty(t, f.runs("missing"))
	out := logs.String()
	require.Contains(t, out, "authentication required", "the wrong token's poll fails")
	require.Contains(t, out, `access token secret \"nope\" does not exist`)
	require.NotContains(t, out, token, "the token is never logged")
	require.NotContains(t, out, wrong)
	require.Equal(t, 2, strings.Count(out, `does not exist`), "a missing secret is retried at the trigger's interval, not at every tick")
}

package stagerepo_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/stagerepo"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

// gitRepo is a repository in a temp dir with branch main.
type gitRepo struct {
	t   *testing.T
	dir string
	r   *git.Repository
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	dir := t.TempDir()
	r, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	require.NoError(t, err)
	return &gitRepo{t: t, dir: dir, r: r}
}

func (g *gitRepo) url() string { return "file://" + g.dir }

// commit writes the file and commits it; it returns the commit sha.
func (g *gitRepo) commit(path, content string) string {
	g.t.Helper()
	full := filepath.Join(g.dir, path)
	require.NoError(g.t, os.MkdirAll(filepath.Dir(full), 0o755))
	require.NoError(g.t, os.WriteFile(full, []byte(content), 0o644))
	wt, err := g.r.Worktree()
	require.NoError(g.t, err)
	_, err = wt.Add(path)
	require.NoError(g.t, err)
	h, err := wt.Commit("change "+path, &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}})
	require.NoError(g.t, err)
	return h.String()
}

func stageCode(job string) string {
	return `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{"name": "` + job + `", "steps": [{"tool": "shell", "cmd": "echo hi"}],
                  "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}],
    }
`
}

type fixture struct {
	ctx    context.Context
	st     *sqlite.Store
	loader *stagerepo.Loader
	now    time.Time
	branch ci.Branch
}

func newFixture(t *testing.T) *fixture {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	p := ci.Project{Name: "proj"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main", RepoBranch: "main"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	eng := engine.New(engine.Config{Store: st, Hub: notify.New(), Dispatcher: scheduler.New(scheduler.Config{Store: st, Logger: log}), Logger: log})
	f := &fixture{ctx: ctx, st: st, branch: b, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.loader = stagerepo.New(stagerepo.Config{Store: st, Engine: eng, Logger: log, Now: func() time.Time { return f.now }})
	return f
}

// apply stores a repo-backed stage as the server's apply does.
func (f *fixture) apply(t *testing.T, repo ci.StageRepo) ci.Stage {
	t.Helper()
	st := ci.Stage{BranchID: f.branch.ID, Name: "build", Enabled: true, Code: "placeholder", Parent: "root", Repo: &repo}
	require.NoError(t, f.st.PutStage(f.ctx, &st))
	return st
}

func TestGitFetch(t *testing.T) {
	g := newGitRepo(t)
	sha := g.commit(".kk/build.py", "one")
	got, err := stagerepo.GitFetch(t.Context(), stagerepo.Source{URL: g.url(), Branch: "main", Path: ".kk/build.py"})
	require.NoError(t, err)
	require.Equal(t, "one", string(got.Code))
	require.Equal(t, sha, got.Version)

	sha2 := g.commit(".kk/build.py", "two")
	got, err = stagerepo.GitFetch(t.Context(), stagerepo.Source{URL: g.url(), Branch: "main", Path: "/.kk/build.py"})
	require.NoError(t, err)
	require.Equal(t, "two", string(got.Code))
	require.Equal(t, sha2, got.Version)

	_, err = stagerepo.GitFetch(t.Context(), stagerepo.Source{URL: g.url(), Branch: "main", Path: "nope.py"})
	require.ErrorContains(t, err, `file "nope.py" does not exist in branch main`)
	_, err = stagerepo.GitFetch(t.Context(), stagerepo.Source{URL: g.url(), Branch: "dev", Path: ".kk/build.py"})
	require.ErrorContains(t, err, `branch "dev" does not exist`)
	_, err = stagerepo.GitFetch(t.Context(), stagerepo.Source{URL: "file://" + t.TempDir() + "/missing", Branch: "main", Path: "x"})
	require.Error(t, err)
}

func TestRefreshKeepsLastGoodCode(t *testing.T) {
	f := newFixture(t)
	g := newGitRepo(t)
	v1 := g.commit("ci/build.py", stageCode("one"))
	st := f.apply(t, ci.StageRepo{URL: g.url(), Branch: "main", Path: "ci/build.py", RefreshSeconds: 600})

	got, err := f.loader.Refresh(f.ctx, st.ID)
	require.NoError(t, err)
	require.Equal(t, stageCode("one"), got.Code)
	require.Equal(t, v1, got.Repo.Version)
	require.Empty(t, got.Repo.Error)
	require.Contains(t, string(got.Schema), `"one"`)

	g.commit("ci/build.py", "def stage(ctx):\n    return {\"parent\": \"root\", \"jobs\": [{\"name\": 1}]}\n")
	got, err = f.loader.Refresh(f.ctx, st.ID)
	require.NoError(t, err)
	require.Equal(t, stageCode("one"), got.Code, "a broken commit keeps the last good code")
	require.Equal(t, v1, got.Repo.Version)
	require.Contains(t, got.Repo.Error, "ci/build.py:2:")
	require.Contains(t, got.Repo.Error, "schema has")
	stored, err := f.st.GetStage(f.ctx, st.ID)
	require.NoError(t, err)
	require.Equal(t, got.Repo.Error, stored.Repo.Error)

	v3 := g.commit("ci/build.py", stageCode("three"))
	got, err = f.loader.Refresh(f.ctx, st.ID)
	require.NoError(t, err)
	require.Equal(t, v3, got.Repo.Version)
	require.Empty(t, got.Repo.Error)
	require.Contains(t, string(got.Schema), `"three"`)
}

func TestRefreshDueAndBeforeRun(t *testing.T) {
	f := newFixture(t)
	g := newGitRepo(t)
	g.commit("build.py", stageCode("one"))
	st := f.apply(t, ci.StageRepo{URL: g.url(), Branch: "main", Path: "build.py", RefreshSeconds: 600})
	require.Equal(t, 1, f.loader.RefreshDue(f.ctx), "never refreshed: due")
	require.Equal(t, 0, f.loader.RefreshDue(f.ctx), "just refreshed")
	f.now = f.now.Add(9 * time.Minute)
	require.Equal(t, 0, f.loader.RefreshDue(f.ctx))
	f.now = f.now.Add(time.Minute)
	v2 := g.commit("build.py", stageCode("two"))
	require.Equal(t, 1, f.loader.RefreshDue(f.ctx), "interval elapsed")
	got, err := f.st.GetStage(f.ctx, st.ID)
	require.NoError(t, err)
	require.Equal(t, v2, got.Repo.Version)

	// BeforeRun: fresh stages are run as they are, older ones refreshed.
	v3 := g.commit("build.py", stageCode("three"))
	same := f.loader.BeforeRun(f.ctx, got)
	require.Equal(t, v2, same.Repo.Version)
	f.now = f.now.Add(time.Minute)
	ran := f.loader.BeforeRun(f.ctx, got)
	require.Equal(t, v3, ran.Repo.Version)
	require.Contains(t, ran.Code, "three")

	plain := ci.Stage{Name: "x"}
	require.Equal(t, plain, f.loader.BeforeRun(f.ctx, plain))
}

func TestRefreshPush(t *testing.T) {
	f := newFixture(t)
	g := newGitRepo(t)
	g.commit("build.py", stageCode("one"))
	st := f.apply(t, ci.StageRepo{URL: g.url(), Branch: "main", Path: "build.py"})
	require.Empty(t, f.loader.RefreshPush(f.ctx, f.branch.ProjectID, []string{g.url()}, "other"), "another branch")
	require.Empty(t, f.loader.RefreshPush(f.ctx, f.branch.ProjectID, []string{"https://example.com/x.git"}, "main"), "another repo")
	require.Empty(t, f.loader.RefreshPush(f.ctx, f.branch.ProjectID+1, []string{g.url()}, "main"), "another project")
	got := f.loader.RefreshPush(f.ctx, f.branch.ProjectID, []string{"", g.url() + ".git/"}, "main")
	require.Len(t, got, 1)
	require.Equal(t, st.ID, got[0].ID)
	require.NotEmpty(t, got[0].Repo.Version)
}

func TestSameRepo(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://github.com/acme/shop.git", "git@github.com:acme/shop.git", true},
		{"https://github.com/Acme/Shop", "https://user:tok@github.com/acme/shop.git/", true},
		{"file:///tmp/r", "/tmp/r", true},
		{"https://github.com/acme/shop", "https://github.com/acme/shop2", false},
		{"", "", false},
	} {
		require.Equal(t, tc.same, stagerepo.SameRepo(tc.a, tc.b), "%s vs %s", tc.a, tc.b)
	}
}

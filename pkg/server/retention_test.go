package server_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/retention"
	"github.com/kraken-go/kk/pkg/server"
	"github.com/kraken-go/kk/pkg/stagerepo"
)

func TestBranchRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.project(t, "p")
	e.branch(t, "p", "main")
	var b ci.Branch
	e.user(t, "PUT", "/projects/p/branches/main/retention", ci.Retention{KeepFlowsDays: 120, KeepLogsDays: 7}).ok(t, http.StatusOK, &b)
	require.Equal(t, ci.Retention{KeepFlowsDays: 120, KeepLogsDays: 7}, b.Retention)

	for _, bad := range []any{ci.Retention{KeepLogsDays: -1}, ci.Retention{KeepArtifactsDays: 40000}, map[string]any{"keep_days": 3}} {
		ae := e.user(t, "PUT", "/projects/p/branches/main/retention", bad).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
		require.NotEmpty(t, ae.Message)
	}
	got, err := e.st.GetBranch(t.Context(), b.ID)
	require.NoError(t, err)
	require.Equal(t, ci.Retention{KeepFlowsDays: 120, KeepLogsDays: 7}, got.Retention, "bad input changes nothing")
}

func TestRunRetentionNeedsAdmin(t *testing.T) {
	t.Parallel()
	blobs, err := blob.OpenDir(t.TempDir())
	require.NoError(t, err)
	e := newEnv(t, func(c *server.Config) {
		c.Retention = retention.New(retention.Config{Store: c.Store, Blobs: blobs, Logger: c.Logger})
	})
	var rep api.RetentionReport
	e.user(t, "POST", "/admin/retention", nil).ok(t, http.StatusOK, &rep)
	require.Zero(t, rep.Flows)

	u := ci.User{Name: "dev"}
	require.NoError(t, e.st.CreateUser(t.Context(), &u))
	tok := auth.NewToken("kkt")
	require.NoError(t, e.st.CreateToken(t.Context(), &ci.Token{UserID: u.ID, Hash: auth.HashToken(tok), Name: "t"}))
	e.call(t, "POST", "/admin/retention", nil, tok).envelope(t, http.StatusForbidden, api.CodeForbidden)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestStageFromRepoValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *server.Config) {
		c.StageRepos = stagerepo.New(stagerepo.Config{Store: c.Store, Engine: c.Engine, Logger: c.Logger})
	})
	e.project(t, "p")
	b := e.branch(t, "p", "main")
	path := "/branches/" + itoa(b.ID) + "/stages/build"
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.py"), []byte("def stage(ctx):\n    return {\"parent\": \"root\", \"jobz\": []}\n"), 0o644))
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "x"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	ok := api.StageRepoSpec{URL: "file://" + dir, Branch: "main", Path: "b.py"}
	for _, tc := range []struct {
		req  api.PutStage
		want string
	}{
		{api.PutStage{Repo: &api.StageRepoSpec{Branch: "main", Path: "b.py"}}, "repo url is empty"},
		{api.PutStage{Repo: &api.StageRepoSpec{URL: ok.URL, Path: "b.py"}}, "repo branch is empty"},
		{api.PutStage{Repo: &api.StageRepoSpec{URL: ok.URL, Branch: "main"}}, "repo path is empty"},
		{api.PutStage{Repo: &api.StageRepoSpec{URL: ok.URL, Branch: "main", Path: "../x"}}, "must not contain"},
		{api.PutStage{Repo: &api.StageRepoSpec{URL: ok.URL, Branch: "main", Path: "b.py", Refresh: "10s"}}, "shorter than"},
		{api.PutStage{Repo: &api.StageRepoSpec{URL: ok.URL, Branch: "main", Path: "b.py", Refresh: "soon"}}, "give a duration"},
		{api.PutStage{Code: "x", Repo: &ok}, "not both"},
		{api.PutStage{Repo: &api.StageRepoSpec{URL: ok.URL, Branch: "main", Path: "nope.py"}}, `file "nope.py" does not exist`},
		{api.PutStage{Repo: &api.StageRepoSpec{URL: ok.URL, Branch: "main", Path: "b.py", TokenSecret: "tok"}}, `secret "tok" does not exist`},
	} {
		ae := e.user(t, "PUT", path, tc.req).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
		require.Contains(t, ae.Message, tc.want)
	}
	ae := e.user(t, "PUT", path, api.PutStage{Repo: &ok}).envelope(t, http.StatusBadRequest, api.CodeInvalidSchema)
	require.NotEmpty(t, ae.Details)
	require.Equal(t, "b.py", ae.Details[0].File)
	require.Equal(t, 2, ae.Details[0].Line)
	stages, err := e.st.ListStages(t.Context(), b.ID)
	require.NoError(t, err)
	require.Empty(t, stages, "bad input stores nothing")

	st := e.stage(t, b.ID, "plain", "def stage(ctx):\n    return {\"parent\": \"root\", \"jobs\": []}\n")
	ae = e.user(t, "POST", "/stages/"+itoa(st.ID)+"/refresh", nil).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
	require.Contains(t, ae.Message, "not backed by a repository")
}

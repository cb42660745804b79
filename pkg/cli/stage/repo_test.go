package stage_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func TestApplyFromRepo(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects/demo/branches/main", 200, ci.Branch{ID: 7, Name: "main"})
	var got api.PutStage
	a.Handle("PUT /api/v1/branches/7/stages/{name}", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		clitest.JSON(w, 200, ci.Stage{ID: 4, BranchID: 7, Name: r.PathValue("name"), Enabled: true, Parent: "root",
			Repo: &ci.StageRepo{URL: got.Repo.URL, Branch: "main", Path: got.Repo.Path, Version: "0123456789abcdef0123"}})
	})
	res := clitest.NewEnv(t, a).Run(t, "stage", "apply", "demo/main", "--repo", "https://git.example/acme.git",
		"--repo-branch", "main", "--repo-path", ".kraken/build.py", "--repo-token-secret", "tok", "--refresh", "10m")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "PUT /api/v1/branches/7/stages/build", "named after the repo path")
	require.NotNil(t, got.Repo)
	assert.Equal(t, api.StageRepoSpec{URL: "https://git.example/acme.git", Branch: "main", Path: ".kraken/build.py", TokenSecret: "tok", Refresh: "10m"}, *got.Repo)
	assert.Empty(t, got.Code)
	assert.Contains(t, res.Stderr, "from .kraken/build.py at 0123456789ab")
	assert.Contains(t, res.Stdout, "Repo version:")
}

func TestApplyFromRepoUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"stage", "apply", "demo/main", "--repo", "u", "--repo-branch", "main"},                             // no path
		{"stage", "apply", "demo/main", "--repo", "u", "--repo-path", "x.py"},                               // no branch
		{"stage", "apply", "demo/main", "f.py", "--repo", "u", "--repo-branch", "b", "--repo-path", "x.py"}, // a file too
		{"stage", "apply", "demo/main", "f.py", "--refresh", "10m"},                                         // --refresh without --repo
	} {
		res := clitest.NewEnv(t, clitest.NewAPI(t)).Run(t, args...)
		assert.Equal(t, cmdutil.ExitUsage, res.Code, "%v: %s", args, res.Stderr)
	}
}

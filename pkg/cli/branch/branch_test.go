package branch_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects/demo/branches", 200, []ci.Branch{
		{ID: 7, ProjectID: 1, Name: "main", RepoBranch: "main"},
		{ID: 8, ProjectID: 1, Name: "feature/x", RepoBranch: "feature/x"},
	})
	a.Handle("GET /api/v1/projects/{p}/branches/{b}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("p") == "demo" && r.PathValue("b") == "feature/x" {
			clitest.JSON(w, 200, ci.Branch{ID: 8, ProjectID: 1, Name: "feature/x", RepoBranch: "fx"})
			return
		}
		clitest.Error(w, 404, api.CodeNotFound, "branch "+r.PathValue("b")+" not found")
	})
	a.Handle("POST /api/v1/projects/{p}/branches", func(w http.ResponseWriter, r *http.Request) {
		var in api.CreateBranch
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		rb := in.RepoBranch
		if rb == "" {
			rb = in.Name
		}
		clitest.JSON(w, 201, ci.Branch{ID: 9, ProjectID: 1, Name: in.Name, RepoBranch: rb, Env: in.Env})
	})
	a.Handle("DELETE /api/v1/projects/{p}/branches/{b}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(204)
	})
	return a
}

func TestShowBranchWithSlash(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "branch", "show", "demo/feature/x", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.EqualValues(t, 8, got["id"])
	assert.Equal(t, "feature/x", got["name"])
	assert.Contains(t, a.Requests(), "GET /api/v1/projects/demo/branches/feature%2Fx")
}

func TestShowTable(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "branch", "show", "demo/feature/x")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "Name:         feature/x\n")
	assert.Contains(t, res.Stdout, "Repo branch:  fx\n")
}

func TestCreate(t *testing.T) {
	t.Parallel()
	var body string
	a := fakeAPI(t)
	a.Handle("POST /api/v1/projects/other/branches", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		clitest.JSON(w, 201, ci.Branch{ID: 10, Name: "feature/y", RepoBranch: "y"})
	})
	res := clitest.NewEnv(t, a).Run(t, "branch", "create", "other/feature/y", "--repo-branch", "y", "--env", "A=1", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.JSONEq(t, `{"name":"feature/y","repo_branch":"y","env":{"A":"1"}}`, body)
	assert.Contains(t, res.Stderr, "created branch other/feature/y")
}

func TestList(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "branch", "list", "demo", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 2)
	for _, b := range got {
		assert.Contains(t, b, "id")
		assert.Contains(t, b, "name")
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "branch", "delete", "demo/feature/x")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "DELETE /api/v1/projects/demo/branches/feature%2Fx")
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "branch", "show", "demo/nope")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "branch nope not found")
	assert.Contains(t, res.Stderr, "kk branch list PROJECT")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{
		"branch create",
		"branch create demo",
		"branch create demo/",
		"branch create /main",
		"branch create demo/main --env novalue",
		"branch list",
		"branch show a/b c/d",
	} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}

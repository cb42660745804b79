package group_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/groups", 200, []api.Group{{ID: 1, Name: "all", Agents: []string{"host-1"}}, {ID: 2, Name: "empty"}})
	a.Handle("POST /api/v1/groups", func(w http.ResponseWriter, r *http.Request) {
		var in api.CreateGroup
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		if in.Name == "all" {
			clitest.Error(w, 409, api.CodeConflict, `group "all" exists`)
			return
		}
		clitest.JSON(w, 201, api.Group{ID: 3, Name: in.Name})
	})
	a.Handle("DELETE /api/v1/groups/{g}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	a.Reply("PUT /api/v1/groups/linux/agents/host-1", 200, api.Group{ID: 3, Name: "linux", Agents: []string{"host-1"}})
	a.Reply("DELETE /api/v1/groups/linux/agents/host-1", 200, api.Group{ID: 3, Name: "linux"})
	return a
}

func TestListJSON(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "group", "list", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 2)
	for _, g := range got {
		assert.Contains(t, g, "id")
		assert.Contains(t, g, "name")
	}
	assert.Equal(t, []any{}, got[1]["agents"])
}

func TestCreateDelete(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := clitest.NewEnv(t, a)
	res := e.Run(t, "group", "create", "linux", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.JSONEq(t, `{"id":3,"name":"linux","agents":[]}`, res.Stdout)
	res = e.Run(t, "group", "delete", "linux")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "DELETE /api/v1/groups/linux")
}

func TestCreateConflict(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "group", "create", "all")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, `group "all" exists`)
}

func TestAddRemove(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := clitest.NewEnv(t, a)
	res := e.Run(t, "group", "add", "linux", "host-1")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "Agents:  host-1")
	assert.Contains(t, res.Stderr, "added agent host-1 to group linux")
	res = e.Run(t, "group", "remove", "linux", "host-1", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.JSONEq(t, `{"id":3,"name":"linux","agents":[]}`, res.Stdout)
	assert.Equal(t, []string{"PUT /api/v1/groups/linux/agents/host-1", "DELETE /api/v1/groups/linux/agents/host-1"}, a.Requests())
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{"group create", "group add linux", "group remove", "group list x", "group delete"} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}

package agent_test

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

func hostInfo() ci.HostInfo {
	return ci.HostInfo{OS: "linux", Distro: "debian", DistroVersion: "12", System: "debian-12", Arch: "amd64",
		CPUs: 8, MemoryMiB: 16000, Hostname: "host-1", Isolation: "bare-metal", Docker: "27.0"}
}

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	host := hostInfo()
	idle := api.Agent{ID: 1, Name: "host-1", UUID: "u1", State: ci.AgentIdle, Authorized: true,
		Groups: []string{"all", "linux"}, HostInfo: host, Executors: []string{"local", "docker"}}
	discovered := api.Agent{ID: 2, Name: "host-2", UUID: "u2", State: ci.AgentDiscovered, HostInfo: host}
	a.Handle("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("discovered") == "1" {
			clitest.JSON(w, 200, []api.Agent{discovered})
			return
		}
		clitest.JSON(w, 200, []api.Agent{idle})
	})
	a.Handle("GET /api/v1/agents/{a}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("a") == "host-1" || r.PathValue("a") == "1" {
			clitest.JSON(w, 200, idle)
			return
		}
		clitest.Error(w, 404, api.CodeNotFound, `agent "`+r.PathValue("a")+`" not found`)
	})
	a.Handle("POST /api/v1/agents/host-2/authorize", func(w http.ResponseWriter, r *http.Request) {
		var in api.AuthorizeAgent
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		ag := discovered
		ag.Authorized, ag.State, ag.Groups = true, ci.AgentIdle, append([]string{"all"}, in.Groups...)
		clitest.JSON(w, 200, ag)
	})
	disabled := idle
	disabled.Disabled, disabled.State = true, ci.AgentDisabled
	a.Reply("POST /api/v1/agents/host-1/disable", 200, disabled)
	a.Reply("POST /api/v1/agents/host-1/enable", 200, idle)
	a.Handle("DELETE /api/v1/agents/host-1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	a.Reply("POST /api/v1/agents/host-1/rotate-token", 200, idle)
	a.Handle("DELETE /api/v1/agents/busy", func(w http.ResponseWriter, r *http.Request) {
		clitest.Error(w, 409, api.CodeConflict, "agent busy is running job 7: wait for it, cancel it (`kk job cancel 7`) or delete the agent with --force, which cancels the job")
	})
	return a
}

func TestListJSON(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "agent", "list", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 1)
	for _, k := range []string{"id", "name", "state", "groups", "host_info"} {
		assert.Contains(t, got[0], k)
	}
	assert.Equal(t, "idle", got[0]["state"])
	assert.Equal(t, []any{"all", "linux"}, got[0]["groups"])
	assert.Equal(t, "debian-12", got[0]["host_info"].(map[string]any)["system"])
}

func TestListDiscovered(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "agent", "list", "--discovered", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "GET /api/v1/agents?discovered=1")
	var got []api.Agent
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 1)
	assert.Equal(t, "host-2", got[0].Name)
	assert.NotNil(t, got[0].Groups, "groups is an array even when the server sent none")
}

func TestListTable(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "agent", "list")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, ""+
		"ID  NAME    STATE  GROUPS     SYSTEM           EXECUTORS     ADDRESS  LAST SEEN\n"+
		"1   host-1  idle   all,linux  debian-12/amd64  local,docker  -        -\n", res.Stdout)
}

func TestShowByName(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "agent", "show", "host-1")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "State:          idle\n")
	assert.Contains(t, res.Stdout, "Resources:      8 CPUs, 16000 MiB\n")
}

func TestAuthorizeWithGroups(t *testing.T) {
	t.Parallel()
	var body string
	a := fakeAPI(t)
	a.Handle("POST /api/v1/agents/host-3/authorize", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		clitest.JSON(w, 200, api.Agent{ID: 3, Name: "host-3", State: ci.AgentIdle})
	})
	res := clitest.NewEnv(t, a).Run(t, "agent", "authorize", "host-3", "--group", "linux", "-g", "docker", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.JSONEq(t, `{"groups":["linux","docker"]}`, body)
	assert.Contains(t, res.Stderr, "authorized agent host-3")
}

func TestVerbs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ args, request, stderr, stdout string }{
		{"disable", "POST /api/v1/agents/host-1/disable", "disabled agent host-1", `"state": "disabled"`},
		{"enable", "POST /api/v1/agents/host-1/enable", "enabled agent host-1", `"state": "idle"`},
		{"delete", "DELETE /api/v1/agents/host-1", "deleted agent host-1", ""},
		{"delete --force", "DELETE /api/v1/agents/host-1?force=1", "deleted agent host-1", ""},
		{"rotate-token", "POST /api/v1/agents/host-1/rotate-token", "revoked the credential of agent host-1", `"state": "idle"`},
	} {
		t.Run(tc.args, func(t *testing.T) {
			t.Parallel()
			a := fakeAPI(t)
			args := append([]string{"agent"}, clitest.Args(tc.args)...)
			res := clitest.NewEnv(t, a).Run(t, append(args, "host-1", "-o", "json")...)
			require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
			assert.Equal(t, []string{tc.request}, a.Requests())
			assert.Contains(t, res.Stderr, tc.stderr)
			if tc.stdout == "" {
				assert.Empty(t, res.Stdout)
			} else {
				assert.Contains(t, res.Stdout, tc.stdout)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "agent", "show", "ghost")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, `agent "ghost" not found`)
	assert.Contains(t, res.Stderr, "kk agent list --discovered")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{"agent list x", "agent authorize", "agent enable", "agent delete a b", "agent list --discovered=maybe",
		"agent rotate-token", "agent rotate-token a b", "agent delete --force=maybe a"} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}

func TestDeleteBusyAgent(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "agent", "delete", "busy")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, `delete agent "busy": agent busy is running job 7`)
	assert.Contains(t, res.Stderr, "--force")
}

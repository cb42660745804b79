package project_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

const createdAt = "2026-01-02T03:04:05Z"

func created() time.Time {
	t, _ := time.Parse(time.RFC3339, createdAt)
	return t
}

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects", 200, []ci.Project{
		{ID: 1, Name: "demo", Description: "the demo", Created: created()},
		{ID: 2, Name: "other", Created: created()},
	})
	a.Handle("GET /api/v1/projects/{p}", func(w http.ResponseWriter, r *http.Request) {
		if p := r.PathValue("p"); p == "demo" || p == "1" {
			clitest.JSON(w, 200, ci.Project{ID: 1, Name: "demo", Created: created()})
			return
		}
		clitest.Error(w, 404, api.CodeNotFound, `project "`+r.PathValue("p")+`" not found`)
	})
	a.Handle("POST /api/v1/projects", func(w http.ResponseWriter, r *http.Request) {
		var in api.CreateProject
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		clitest.JSON(w, 201, ci.Project{ID: 3, Name: in.Name, Description: in.Description, Created: created()})
	})
	a.Handle("DELETE /api/v1/projects/{p}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	return a
}

func TestListJSON(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "project", "list", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 2)
	for _, p := range got {
		assert.Contains(t, p, "id")
		assert.Contains(t, p, "name")
	}
	assert.Equal(t, "demo", got[0]["name"])
	assert.Empty(t, res.Stderr)
}

func TestListEmptyIsArray(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects", 200, nil)
	res := clitest.NewEnv(t, a).Run(t, "project", "list", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.JSONEq(t, "[]", res.Stdout)
}

func TestListTable(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "project", "list")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, ""+
		"ID  NAME   DESCRIPTION  CREATED\n"+
		"1   demo   the demo     2026-01-02T03:04:05Z\n"+
		"2   other  -            2026-01-02T03:04:05Z\n", res.Stdout)
}

func TestListTableNoColorOnTTYWithNoColor(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := clitest.NewEnv(t, a)
	e.TTY = true
	res := e.Run(t, "project", "list")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "\x1b[1mID\x1b[0m", "headers are bold on a terminal")

	res = clitest.NewEnv(t, a).Run(t, "project", "list")
	assert.NotContains(t, res.Stdout, "\x1b[", "no colours when stdout is not a terminal")
}

func TestShowYAML(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "project", "show", "demo", "-o", "yaml")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(res.Stdout), &got))
	assert.Equal(t, 1, got["id"])
	assert.Equal(t, "demo", got["name"])
}

func TestShowNotFound(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "project", "show", "nope")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, `project "nope" not found`, "the server's message")
	assert.Contains(t, res.Stderr, "kk project list", "how to fix it")
	assert.Empty(t, res.Stdout)
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := clitest.NewEnv(t, a)
	e.Vars["KK_TOKEN"] = "wrong"
	res := e.Run(t, "project", "list")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "missing or invalid API token", "the server's message")
	assert.Contains(t, res.Stderr, "kk login --server "+a.URL+" --user admin --password-stdin")
}

func TestCreate(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "project", "create", "new", "--description", "a new one", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got ci.Project
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.Equal(t, ci.Project{ID: 3, Name: "new", Description: "a new one", Created: created()}, got)
	assert.Contains(t, res.Stderr, "created project new")
}

func TestDelete(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "project", "delete", "demo")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Empty(t, res.Stdout)
	assert.Contains(t, a.Requests(), "DELETE /api/v1/projects/demo")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{
		"project",
		"project frob",
		"project show",
		"project show a b",
		"project list extra",
		"project list --bogus",
		"project create",
		"-o xml project list",
	} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
			assert.Contains(t, res.Stderr, "--help")
			assert.Empty(t, res.Stdout)
		})
	}
}

func webhookAPI(t *testing.T) *clitest.API { return webhookAPIWith(t, "") }

// webhookAPIWith answers the webhook setup as a kkd with --public-url publicURL.
func webhookAPIWith(t *testing.T, publicURL string) *clitest.API {
	a := clitest.NewAPI(t)
	a.Handle("POST /api/v1/projects/{p}/webhook", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("p") != "demo" {
			clitest.Error(w, 404, api.CodeNotFound, `project "`+r.PathValue("p")+`" does not exist`)
			return
		}
		var in api.WebhookRequest
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		secret := "s1"
		if in.Rotate {
			secret = "s2"
		}
		clitest.JSON(w, 200, api.WebhookSetup{Project: "demo", Secret: secret, Created: in.Rotate, PublicURL: publicURL, Paths: map[string]string{
			"github": "/webhooks/demo/github", "gitlab": "/webhooks/demo/gitlab", "gitea": "/webhooks/demo/gitea"}})
	})
	return a
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	a := webhookAPI(t)
	env := clitest.NewEnv(t, a)

	res := env.Run(t, "project", "webhook", "demo")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "Secret: s1\n")
	for _, forge := range []string{"github", "gitlab", "gitea"} {
		assert.Contains(t, res.Stdout, a.URL+"/webhooks/demo/"+forge+"\n")
	}
	assert.Contains(t, res.Stdout, "Pull requests")
	assert.Empty(t, res.Stderr)

	res = env.Run(t, "project", "webhook", "demo", "--rotate", "--url", "https://ci.example.com/", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.Equal(t, "s2", got["secret"])
	assert.Equal(t, true, got["created"])
	assert.Equal(t, map[string]any{"github": "https://ci.example.com/webhooks/demo/github",
		"gitlab": "https://ci.example.com/webhooks/demo/gitlab", "gitea": "https://ci.example.com/webhooks/demo/gitea"}, got["urls"])
	assert.Contains(t, res.Stderr, "rotated the webhook secret")

	res = env.Run(t, "project", "webhook", "demo", "--url", "ci.example.com")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
	assert.Contains(t, res.Stderr, "--url")

	res = env.Run(t, "project", "webhook", "nope")
	assert.NotEqual(t, cmdutil.ExitOK, res.Code)
	assert.Contains(t, res.Stderr, "does not exist")
}

func TestWebhookUsesServerPublicURL(t *testing.T) {
	t.Parallel()
	env := clitest.NewEnv(t, webhookAPIWith(t, "https://ci.example.org/"))
	res := env.Run(t, "project", "webhook", "demo")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "https://ci.example.org/webhooks/demo/github\n")
	res = env.Run(t, "project", "webhook", "demo", "--url", "https://other.example.org")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "https://other.example.org/webhooks/demo/github\n", "--url wins")
}

func TestDeliveries(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	var gotLimit atomic.Value // the handler runs in the server's goroutine
	a.Handle("GET /api/v1/projects/{p}/deliveries", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("p") != "demo" {
			clitest.Error(w, 404, api.CodeNotFound, `project "`+r.PathValue("p")+`" does not exist`)
			return
		}
		gotLimit.Store(r.URL.Query().Get("limit"))
		clitest.JSON(w, 200, []api.WebhookDelivery{
			{Forge: "github", Event: "push", Delivery: "d-3", Received: created(), Outcome: api.WebhookStarted, Flows: []int64{7, 8}, Duplicates: 2},
			{Forge: "gitea", Event: "push", Delivery: "d-2", Received: created(), Outcome: api.WebhookNoBranch, Note: "no branch of project demo tracks x"},
			{Forge: "github", Event: "ping", Delivery: "d-1", Received: created(), Outcome: api.WebhookIgnored, Note: `event "ping"`, Duplicates: 1},
		})
	})
	env := clitest.NewEnv(t, a)

	res := env.Run(t, "project", "deliveries", "demo", "--limit", "3")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	require.Equal(t, "3", gotLimit.Load())
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	require.Len(t, lines, 4)
	for _, h := range []string{"TIME", "FORGE", "EVENT", "DELIVERY", "OUTCOME"} {
		require.Contains(t, lines[0], h)
	}
	require.Contains(t, lines[1], "started flows 7, 8 (+2 duplicates)")
	require.Contains(t, lines[2], "no branch matched")
	require.Contains(t, lines[3], `ignored: event "ping" (+1 duplicate)`)

	res = env.Run(t, "project", "deliveries", "demo", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	require.Empty(t, gotLimit.Load(), "no --limit: the server's default")
	var got []api.WebhookDelivery
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 3)
	require.Equal(t, []int64{7, 8}, got[0].Flows)

	res = env.Run(t, "project", "deliveries", "demo", "--limit", "-1")
	require.Equal(t, cmdutil.ExitUsage, res.Code)
	require.Contains(t, res.Stderr, "invalid --limit")
	res = env.Run(t, "project", "deliveries")
	require.Equal(t, cmdutil.ExitUsage, res.Code)
	require.Contains(t, res.Stderr, "kk project deliveries PROJECT")
	res = env.Run(t, "project", "deliveries", "nope")
	require.NotEqual(t, cmdutil.ExitOK, res.Code)
	require.Contains(t, res.Stderr, "does not exist")
}

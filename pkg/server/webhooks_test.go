package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/server"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/webhook"
)

// webhookEnv is an env with project proj, its webhook secret and branches
// tracking repository branches feature/x, release/2.x and main, each with a
// stage. A branch "empty" tracks "bare" and has no stage.
type webhookEnv struct {
	*env
	secret   string
	branches map[string]ci.Branch // by repo branch
}

func newWebhookEnv(t *testing.T) *webhookEnv {
	t.Helper()
	e := newSecretEnv(t)
	e.project(t, "proj")
	we := &webhookEnv{env: e, branches: map[string]ci.Branch{}}
	for name, repo := range map[string]string{"fx": "feature/x", "rel": "release/2.x", "main": "main", "empty": "bare"} {
		var b ci.Branch
		e.user(t, "POST", "/projects/proj/branches", api.CreateBranch{Name: name, RepoBranch: repo}).ok(t, http.StatusCreated, &b)
		if name != "empty" {
			e.stage(t, b.ID, "build", stageCode("all", 1))
		}
		we.branches[repo] = b
	}
	var setup api.WebhookSetup
	e.user(t, "POST", "/projects/proj/webhook", nil).ok(t, http.StatusOK, &setup)
	we.secret = setup.Secret
	return we
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", name))
	require.NoError(t, err)
	return b
}

// delivery is a forge's POST: event, delivery id and signature under secret
// ("" sends none).
type delivery struct {
	forge    webhook.Forge
	event    string
	id       string
	body     []byte
	secret   string
	mutateHd func(http.Header)
}

func (e *webhookEnv) post(t testing.TB, project string, d delivery) response {
	t.Helper()
	url := strings.TrimSuffix(e.base, api.Prefix) + api.WebhookPath(project, string(d.forge))
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	switch d.forge {
	case webhook.GitHub:
		req.Header.Set("X-GitHub-Event", d.event)
		req.Header.Set("X-GitHub-Delivery", d.id)
		if d.secret != "" {
			req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.Sign([]byte(d.secret), d.body))
		}
	case webhook.Gitea:
		req.Header.Set("X-Gitea-Event", d.event)
		req.Header.Set("X-Gitea-Delivery", d.id)
		if d.secret != "" {
			req.Header.Set("X-Gitea-Signature", webhook.Sign([]byte(d.secret), d.body))
		}
	case webhook.GitLab:
		req.Header.Set("X-Gitlab-Event", d.event)
		req.Header.Set("X-Gitlab-Event-UUID", d.id)
		if d.secret != "" {
			req.Header.Set("X-Gitlab-Token", d.secret)
		}
	default:
		req.Header.Set("X-GitHub-Event", d.event)
	}
	if d.mutateHd != nil {
		d.mutateHd(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return readResponse(t, resp)
}

// flows returns the flows of the branch tracking repoBranch, newest first.
func (e *webhookEnv) flows(t testing.TB, repoBranch string) []ci.Flow {
	t.Helper()
	fs, err := e.st.ListFlows(context.Background(), e.branches[repoBranch].ID, store.ListFlowsOpts{})
	require.NoError(t, err)
	return fs
}

// allFlows counts the flows of every branch.
func (e *webhookEnv) allFlows(t testing.TB) int {
	t.Helper()
	n := 0
	for repo := range e.branches {
		n += len(e.flows(t, repo))
	}
	return n
}

func TestWebhookStartsFlows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		forge      webhook.Forge
		event      string
		file       string
		repoBranch string
		kind       ci.FlowKind
		after      string
	}{
		{"github push to feature/x", webhook.GitHub, "push", "github-push.json", "feature/x", ci.FlowCI, "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"},
		{"github pull request", webhook.GitHub, "pull_request", "github-pull_request.json", "release/2.x", ci.FlowDEV, "8a3c2d1b0f9e8d7c6b5a49382716a5b4c3d2e1f0"},
		{"gitlab push to feature/x", webhook.GitLab, "Push Hook", "gitlab-push.json", "feature/x", ci.FlowCI, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
		{"gitlab merge request", webhook.GitLab, "Merge Request Hook", "gitlab-merge_request.json", "release/2.x", ci.FlowDEV, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
		{"gitea push to feature/x", webhook.Gitea, "push", "gitea-push.json", "feature/x", ci.FlowCI, "bffeb74224043ba2feb48d137756c8a9331c449a"},
		{"gitea pull request", webhook.Gitea, "pull_request", "gitea-pull_request.json", "main", ci.FlowDEV, "4b825dc642cb6eb9a060e54bf8d69288fbee4904"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newWebhookEnv(t)
			d := delivery{forge: tc.forge, event: tc.event, id: "d-" + string(tc.forge), body: readSample(t, tc.file), secret: e.secret}

			var res api.WebhookResult
			e.post(t, "proj", d).ok(t, http.StatusCreated, &res)
			require.Equal(t, api.WebhookStarted, res.Status, res.Message)
			require.Len(t, res.Flows, 1)
			require.Equal(t, e.branches[tc.repoBranch].Name, res.Flows[0].Branch)
			require.Equal(t, tc.kind, res.Flows[0].Kind)
			require.Equal(t, 1, e.allFlows(t), "only the branch tracking %s gets a flow", tc.repoBranch)

			fs := e.flows(t, tc.repoBranch)
			require.Len(t, fs, 1)
			require.Equal(t, res.Flows[0].ID, fs[0].ID)
			require.Equal(t, tc.kind, fs[0].Kind)
			var trig webhook.Trigger
			require.NoError(t, json.Unmarshal(fs[0].TriggerData, &trig))
			require.Equal(t, tc.after, trig.After, "the git tool checks out after")
			require.Equal(t, tc.repoBranch, trig.Branch)
			require.Equal(t, "d-"+string(tc.forge), trig.Delivery)
			if tc.kind == ci.FlowDEV {
				require.NotNil(t, trig.PullRequest)
				require.Equal(t, tc.after, trig.PullRequest.Head.SHA)
			} else {
				require.NotEmpty(t, trig.Commits)
			}

			// The forge redelivers: nothing new starts.
			e.post(t, "proj", d).ok(t, http.StatusOK, &res)
			require.Equal(t, api.WebhookDuplicate, res.Status)
			require.Contains(t, res.Message, "received before")
			require.Equal(t, 1, e.allFlows(t))

			// The same event under a new delivery id is a new delivery.
			d.id = "d2-" + string(tc.forge)
			e.post(t, "proj", d).ok(t, http.StatusCreated, &res)
			require.Len(t, e.flows(t, tc.repoBranch), 2)
		})
	}
}

func TestWebhookRefused(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t)
	push := readSample(t, "github-push.json")
	tampered := bytes.Replace(push, []byte("feature/x"), []byte("release/2.x"), 1)
	tests := []struct {
		name    string
		project string
		d       delivery
		status  int
		msg     string
	}{
		{"github wrong secret", "proj", delivery{forge: webhook.GitHub, event: "push", id: "a", body: push, secret: "wrong"}, http.StatusUnauthorized, "X-Hub-Signature-256 does not match"},
		{"github missing signature", "proj", delivery{forge: webhook.GitHub, event: "push", id: "b", body: push}, http.StatusUnauthorized, "X-Hub-Signature-256 is missing"},
		{"github tampered body", "proj", delivery{forge: webhook.GitHub, event: "push", id: "c", body: push, secret: e.secret,
			mutateHd: func(h http.Header) {
				h.Set("X-Hub-Signature-256", "sha256="+webhook.Sign([]byte(e.secret), tampered))
			}}, http.StatusUnauthorized, "does not match the body"},
		{"gitea wrong secret", "proj", delivery{forge: webhook.Gitea, event: "push", id: "d", body: readSample(t, "gitea-push.json"), secret: "wrong"}, http.StatusUnauthorized, "X-Gitea-Signature"},
		{"gitlab wrong token", "proj", delivery{forge: webhook.GitLab, event: "Push Hook", id: "e", body: readSample(t, "gitlab-push.json"), secret: "wrong"}, http.StatusUnauthorized, "X-Gitlab-Token"},
		{"gitlab missing token", "proj", delivery{forge: webhook.GitLab, event: "Push Hook", id: "f", body: readSample(t, "gitlab-push.json")}, http.StatusUnauthorized, "X-Gitlab-Token is missing"},
		{"unknown forge", "proj", delivery{forge: "bitbucket", event: "push", id: "g", body: push}, http.StatusNotFound, "unknown forge"},
		{"unknown project", "nope", delivery{forge: webhook.GitHub, event: "push", id: "h", body: push, secret: e.secret}, http.StatusUnauthorized, "X-Hub-Signature-256 does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, tc.project, tc.d)
			code := api.CodeUnauthorized
			if tc.status == http.StatusNotFound {
				code = api.CodeNotFound
			}
			ae := r.envelope(t, tc.status, code)
			require.Contains(t, ae.Message, tc.msg)
			require.NotContains(t, string(r.body), e.secret)
			require.Zero(t, e.allFlows(t), "a refused delivery changes nothing")
			_, err := e.st.GetDelivery(context.Background(), 1, string(tc.d.forge), tc.d.id)
			require.ErrorIs(t, err, ci.ErrNotFound, "a refused delivery is not recorded")
		})
	}
	// Refused deliveries did not use up their ids: the genuine one starts.
	var res api.WebhookResult
	e.post(t, "proj", delivery{forge: webhook.GitHub, event: "push", id: "a", body: push, secret: e.secret}).ok(t, http.StatusCreated, &res)
	require.Equal(t, 1, e.allFlows(t))
}

func TestWebhookWithoutSecret(t *testing.T) {
	t.Parallel()
	e := newSecretEnv(t)
	e.project(t, "proj")
	we := &webhookEnv{env: e}
	body := readSample(t, "github-push.json")
	// A project without a webhook secret and a project that does not exist
	// answer exactly like a wrong signature: the public URL does not tell
	// which projects exist.
	for _, forge := range []webhook.Forge{webhook.GitHub, webhook.Gitea, webhook.GitLab} {
		t.Run(string(forge), func(t *testing.T) {
			var bodies []string
			for _, project := range []string{"proj", "nope", "12345"} {
				r := we.post(t, project, delivery{forge: forge, event: "push", id: "x", body: body, secret: "guess"})
				ae := r.envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
				require.Contains(t, ae.Message, "kk project webhook PROJECT")
				require.NotContains(t, ae.Message, "project "+project)
				require.NotContains(t, ae.Message, "secret: create")
				bodies = append(bodies, string(r.body))
			}
			require.Equal(t, bodies[0], bodies[1], "no secret and no project answer alike")
			require.Equal(t, bodies[0], bodies[2])
		})
	}
}

func TestWebhookNothingToStart(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t)
	sign := func(forge webhook.Forge, event, id, body string) delivery {
		return delivery{forge: forge, event: event, id: id, body: []byte(body), secret: e.secret}
	}
	const sha = "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"
	tests := []struct {
		name   string
		d      delivery
		status string
		msg    string
	}{
		{"ping", sign(webhook.GitHub, "ping", "p1", `{"zen":"hi"}`), api.WebhookIgnored, `event "ping"`},
		{"tag push", sign(webhook.GitHub, "push", "p2", `{"ref":"refs/tags/v1","after":"`+sha+`"}`), api.WebhookIgnored, "tag"},
		{"deleted branch", sign(webhook.Gitea, "push", "p3", `{"ref":"refs/heads/feature/x","after":"0000000000000000000000000000000000000000"}`), api.WebhookIgnored, "deleted"},
		{"closed pull request", sign(webhook.GitHub, "pull_request", "p4", `{"action":"closed"}`), api.WebhookIgnored, `"closed"`},
		{"no branch tracks the ref", sign(webhook.GitHub, "push", "p5", `{"ref":"refs/heads/feature/y","after":"`+sha+`"}`), api.WebhookNoBranch, `no branch of project proj tracks repository branch "feature/y"`},
		{"last segment is no match", sign(webhook.GitLab, "Push Hook", "p6", `{"ref":"refs/heads/team/main","after":"`+sha+`"}`), api.WebhookNoBranch, `"team/main"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res api.WebhookResult
			e.post(t, "proj", tc.d).ok(t, http.StatusAccepted, &res)
			require.Equal(t, tc.status, res.Status)
			require.Contains(t, res.Message, tc.msg)
			require.Zero(t, e.allFlows(t))
			if tc.status == api.WebhookNoBranch {
				// Recorded: the forge's retry is a duplicate.
				e.post(t, "proj", tc.d).ok(t, http.StatusOK, &res)
				require.Equal(t, api.WebhookDuplicate, res.Status)
			}
		})
	}
}

func TestWebhookFlowFailureIsRetryable(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t)
	d := delivery{forge: webhook.GitHub, event: "push", id: "bare-1", secret: e.secret,
		body: []byte(`{"ref":"refs/heads/bare","after":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"}`)}
	ae := e.post(t, "proj", d).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
	require.Contains(t, ae.Message, "has no stages")
	// Once the branch has a stage, the forge's redelivery starts the flow.
	e.stage(t, e.branches["bare"].ID, "build", stageCode("all", 1))
	var res api.WebhookResult
	e.post(t, "proj", d).ok(t, http.StatusCreated, &res)
	require.Len(t, e.flows(t, "bare"), 1)
}

func TestWebhookBodyLimit(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t)
	big := append([]byte(`{"ref":"refs/heads/main","pad":"`), bytes.Repeat([]byte("x"), 5<<20)...)
	big = append(big, `"}`...)
	r := e.post(t, "proj", delivery{forge: webhook.GitHub, event: "push", id: "big", body: big, secret: e.secret})
	ae := r.envelope(t, http.StatusBadRequest, api.CodeBadRequest)
	require.Contains(t, ae.Message, "larger than")
	require.Zero(t, e.allFlows(t))
}

func TestWebhookSetup(t *testing.T) {
	t.Parallel()
	e := newSecretEnv(t)
	e.project(t, "proj")
	var first, again, rotated api.WebhookSetup
	e.user(t, "POST", "/projects/proj/webhook", nil).ok(t, http.StatusOK, &first)
	require.True(t, first.Created)
	require.Len(t, first.Secret, 64)
	require.Equal(t, map[string]string{"github": "/webhooks/proj/github", "gitlab": "/webhooks/proj/gitlab", "gitea": "/webhooks/proj/gitea"}, first.Paths)

	e.user(t, "POST", "/projects/proj/webhook", api.WebhookRequest{}).ok(t, http.StatusOK, &again)
	require.False(t, again.Created)
	require.Equal(t, first.Secret, again.Secret)

	e.user(t, "POST", "/projects/proj/webhook", api.WebhookRequest{Rotate: true}).ok(t, http.StatusOK, &rotated)
	require.True(t, rotated.Created)
	require.NotEqual(t, first.Secret, rotated.Secret)

	// The secret is stored sealed, never in plain text.
	sealed, err := e.st.GetWebhookSecret(context.Background(), 1)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), rotated.Secret)

	e.call(t, "POST", "/projects/proj/webhook", nil, "").envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
	e.user(t, "POST", "/projects/nope/webhook", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)

	noKey := newEnv(t, func(*server.Config) {})
	noKey.project(t, "proj")
	noKey.user(t, "POST", "/projects/proj/webhook", nil).envelope(t, http.StatusServiceUnavailable, api.CodeUnavailable)
}

func TestPublicURL(t *testing.T) {
	t.Parallel()
	c, err := secrets.New(bytes.Repeat([]byte{1}, secrets.KeySize))
	require.NoError(t, err)
	e := newEnv(t, func(cfg *server.Config) { cfg.Secrets, cfg.PublicURL = c, "https://ci.example.com" })
	e.project(t, "proj")
	var setup api.WebhookSetup
	e.user(t, "POST", "/projects/proj/webhook", nil).ok(t, http.StatusOK, &setup)
	require.Equal(t, "https://ci.example.com", setup.PublicURL)

	resp, err := http.Get(strings.TrimSuffix(e.base, api.Prefix) + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var health map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&health))
	require.Equal(t, "https://ci.example.com", health["public_url"])

	var none api.WebhookSetup
	plain := newSecretEnv(t)
	plain.project(t, "proj")
	plain.user(t, "POST", "/projects/proj/webhook", nil).ok(t, http.StatusOK, &none)
	require.Empty(t, none.PublicURL)
}

func TestWebhookDeliveriesList(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t)
	push := readSample(t, "github-push.json") // feature/x: one branch tracks it
	started := delivery{forge: webhook.GitHub, event: "push", id: "l-1", body: push, secret: e.secret}
	var res api.WebhookResult
	e.post(t, "proj", started).ok(t, http.StatusCreated, &res)
	e.post(t, "proj", started).ok(t, http.StatusOK, &res) // duplicate
	e.post(t, "proj", started).ok(t, http.StatusOK, &res) // duplicate
	const sha = "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"
	e.post(t, "proj", delivery{forge: webhook.Gitea, event: "push", id: "l-2", secret: e.secret,
		body: []byte(`{"ref":"refs/heads/nobody","after":"` + sha + `"}`)}).ok(t, http.StatusAccepted, &res)
	ping := delivery{forge: webhook.GitHub, event: "ping", id: "l-3", body: []byte(`{"zen":"hi"}`), secret: e.secret}
	e.post(t, "proj", ping).ok(t, http.StatusAccepted, &res)
	e.post(t, "proj", ping).ok(t, http.StatusAccepted, &res)
	require.Equal(t, api.WebhookIgnored, res.Status, "a repeated ignored event is still ignored")
	e.post(t, "proj", delivery{forge: webhook.GitHub, event: "push", id: "l-4", body: push, secret: "wrong"}).
		envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)

	var ds []api.WebhookDelivery
	e.user(t, "GET", "/projects/proj/deliveries", nil).ok(t, http.StatusOK, &ds)
	require.Len(t, ds, 3, "the refused delivery is not recorded")
	byID := map[string]api.WebhookDelivery{}
	for _, d := range ds {
		byID[d.Delivery] = d
	}
	require.Equal(t, api.WebhookStarted, byID["l-1"].Outcome)
	require.Len(t, byID["l-1"].Flows, 1)
	require.Equal(t, 2, byID["l-1"].Duplicates)
	require.Equal(t, "github", byID["l-1"].Forge)
	require.Equal(t, "push", byID["l-1"].Event)
	require.WithinDuration(t, time.Now(), byID["l-1"].Received, time.Minute)
	require.Equal(t, api.WebhookNoBranch, byID["l-2"].Outcome)
	require.Contains(t, byID["l-2"].Note, `"nobody"`)
	require.Empty(t, byID["l-2"].Flows)
	require.Equal(t, api.WebhookIgnored, byID["l-3"].Outcome)
	require.Equal(t, 1, byID["l-3"].Duplicates)
	require.Contains(t, byID["l-3"].Note, "ping")

	e.user(t, "GET", "/projects/proj/deliveries?limit=1", nil).ok(t, http.StatusOK, &ds)
	require.Len(t, ds, 1)
	for _, bad := range []string{"0", "x", "1001"} {
		ae := e.user(t, "GET", "/projects/proj/deliveries?limit="+bad, nil).envelope(t, http.StatusBadRequest, api.CodeBadRequest)
		require.Contains(t, ae.Message, "from 1 to 1000")
	}
	e.user(t, "GET", "/projects/nope/deliveries", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)
	e.call(t, "GET", "/projects/proj/deliveries", nil, "").envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
}

package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// webhookStage echoes the commit a webhook flow was started for.
const webhookStage = `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "show",
            "steps": [{"tool": "shell", "cmd": "echo built #{flow.trigger.after}"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

// postGitHub sends body to kkd as GitHub does: event, delivery id and the
// X-Hub-Signature-256 HMAC under secret.
func (c *cluster) postGitHub(project, event, delivery, secret string, body []byte) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.url+"/webhooks/"+project+"/github", bytes.NewReader(body))
	require.NoError(c.t, err)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	var out bytes.Buffer
	_, err = out.ReadFrom(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, out.Bytes()
}

type webhookFlow struct {
	ID          int64  `json:"id"`
	Kind        string `json:"kind"`
	TriggerData struct {
		Forge   string `json:"forge"`
		After   string `json:"after"`
		Branch  string `json:"branch"`
		Commits []struct {
			ID string `json:"id"`
		} `json:"commits"`
	} `json:"trigger_data"`
}

func TestWebhookGitHubPush(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.ok("project", "create", "hooks")
	c.ok("branch", "create", "hooks/fx", "--repo-branch", "feature/x")
	c.ok("branch", "create", "hooks/x", "--repo-branch", "x") // Kraken matched this one: the last segment of the ref
	for _, b := range []string{"hooks/fx", "hooks/x"} {
		c.ok("stage", "apply", b, writeFile(t, "build.py", webhookStage))
	}

	var setup struct {
		Secret string            `json:"secret"`
		URLs   map[string]string `json:"urls"`
	}
	c.okJSON(&setup, "project", "webhook", "hooks")
	require.Len(t, setup.Secret, 64)
	require.Equal(t, c.url+"/webhooks/hooks/github", setup.URLs["github"])
	text := c.ok("project", "webhook", "hooks")
	require.Contains(t, text, "Payload URL:   "+c.url+"/webhooks/hooks/github\n")
	require.Contains(t, text, "Secret: "+setup.Secret+"\n")

	body, err := os.ReadFile(filepath.Join("..", "..", "pkg", "webhook", "testdata", "github-push.json"))
	require.NoError(t, err)
	const commit = "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"

	// A wrong signature: 401, nothing starts.
	status, out := c.postGitHub("hooks", "push", "e2e-1", "not-the-secret", body)
	require.Equal(t, http.StatusUnauthorized, status, "%s", out)
	var flows []webhookFlow
	c.okJSON(&flows, "flow", "list", "hooks/fx")
	require.Empty(t, flows)

	status, out = c.postGitHub("hooks", "push", "e2e-1", setup.Secret, body)
	require.Equal(t, http.StatusCreated, status, "%s", out)
	c.okJSON(&flows, "flow", "list", "hooks/fx")
	require.Len(t, flows, 1)
	require.Equal(t, "ci", flows[0].Kind)
	require.Equal(t, "github", flows[0].TriggerData.Forge)
	require.Equal(t, commit, flows[0].TriggerData.After)
	require.Equal(t, "feature/x", flows[0].TriggerData.Branch)
	require.NotEmpty(t, flows[0].TriggerData.Commits)
	require.Equal(t, commit, flows[0].TriggerData.Commits[len(flows[0].TriggerData.Commits)-1].ID)
	c.okJSON(&flows, "flow", "list", "hooks/x")
	require.Empty(t, flows, "refs/heads/feature/x is not branch x")

	// GitHub redelivers: nothing new.
	status, out = c.postGitHub("hooks", "push", "e2e-1", setup.Secret, body)
	require.Equal(t, http.StatusOK, status, "%s", out)
	var res struct {
		Status string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(out, &res))
	require.Equal(t, "duplicate", res.Status)
	c.okJSON(&flows, "flow", "list", "hooks/fx")
	require.Len(t, flows, 1)

	// The secret survives a restart of kkd (it is stored sealed).
	c.restartKKD()
	status, out = c.postGitHub("hooks", "push", "e2e-2", setup.Secret, body)
	require.Equal(t, http.StatusCreated, status, "%s", out)
	c.okJSON(&flows, "flow", "list", "hooks/fx")
	require.Len(t, flows, 2)
}

package tools

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/webhook"
)

// TestTriggerCommitOfWebhooks: the trigger data kkd stores for a webhook
// delivery makes the git tool check out the pushed commit, or a pull
// request's head, in the repository's clone, HTTPS or SSH URL.
func TestTriggerCommitOfWebhooks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		forge      webhook.Forge
		header     string
		event      string
		file       string
		urls       []string
		wantCommit string
	}{
		{webhook.GitHub, "X-GitHub-Event", "push", "github-push.json",
			[]string{"https://github.com/octo-org/hello.git", "git@github.com:octo-org/hello.git", "https://github.com/octo-org/hello"},
			"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"},
		{webhook.GitHub, "X-GitHub-Event", "pull_request", "github-pull_request.json",
			[]string{"https://github.com/octo-org/hello.git", "https://github.com/mona/hello.git"},
			"8a3c2d1b0f9e8d7c6b5a49382716a5b4c3d2e1f0"},
		{webhook.GitLab, "X-Gitlab-Event", "Merge Request Hook", "gitlab-merge_request.json",
			[]string{"https://gitlab.example.com/mike/diaspora.git", "git@gitlab.example.com:mike/diaspora.git"},
			"da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
		{webhook.Gitea, "X-Gitea-Event", "push", "gitea-push.json",
			[]string{"https://gitea.example.com/gitea/webhooks.git"},
			"bffeb74224043ba2feb48d137756c8a9331c449a"},
	}
	for _, tc := range tests {
		t.Run(string(tc.forge)+"/"+tc.event, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", tc.file))
			require.NoError(t, err)
			h := http.Header{}
			h.Set(tc.header, tc.event)
			ev, err := webhook.Parse(tc.forge, h, body)
			require.NoError(t, err)
			raw, err := json.Marshal(ev.Trigger)
			require.NoError(t, err)
			for _, u := range tc.urls {
				got, ok := triggerCommit(raw, u)
				require.True(t, ok, u)
				require.Equal(t, tc.wantCommit, got, u)
			}
			_, ok := triggerCommit(raw, "https://example.org/other/repo.git")
			require.False(t, ok, "another repository gets its branch head")
		})
	}
}

package webhook_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/webhook"
)

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// signed returns the headers a forge sends for body under secret.
func signed(f webhook.Forge, secret string, body []byte) http.Header {
	h := http.Header{}
	switch f {
	case webhook.GitHub:
		h.Set("X-Hub-Signature-256", "sha256="+webhook.Sign([]byte(secret), body))
	case webhook.Gitea:
		h.Set("X-Gitea-Signature", webhook.Sign([]byte(secret), body))
	case webhook.GitLab:
		h.Set("X-Gitlab-Token", secret)
	}
	return h
}

type verifyCase struct {
	name   string
	header http.Header
	body   []byte
	secret string
	ok     bool
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	body := []byte(`{"ref":"refs/heads/main"}`)
	for _, f := range webhook.Forges() {
		tests := []verifyCase{
			{"valid", signed(f, secret, body), body, secret, true},
			{"wrong secret", signed(f, "other", body), body, secret, false},
			{"missing header", http.Header{}, body, secret, false},
			{"project without secret", signed(f, secret, body), body, "", false},
		}
		if f != webhook.GitLab { // GitLab's token does not cover the body
			tests = append(tests,
				verifyCase{"tampered body", signed(f, secret, body), []byte(`{"ref":"refs/heads/evil"}`), secret, false},
				verifyCase{"not hex", http.Header{"X-Hub-Signature-256": {"sha256=zz"}, "X-Gitea-Signature": {"zz"}}, body, secret, false},
			)
		}
		for _, tc := range tests {
			t.Run(string(f)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				err := webhook.Verify(f, tc.header, tc.body, []byte(tc.secret))
				if tc.ok {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, webhook.ErrSignature)
				require.NotContains(t, err.Error(), secret, "errors never show the secret")
			})
		}
	}
	t.Run("github without sha256= prefix", func(t *testing.T) {
		t.Parallel()
		h := http.Header{"X-Hub-Signature-256": {webhook.Sign([]byte(secret), body)}}
		require.ErrorIs(t, webhook.Verify(webhook.GitHub, h, body, []byte(secret)), webhook.ErrSignature)
	})
}

func TestDeliveryID(t *testing.T) {
	t.Parallel()
	body := []byte(`{}`)
	require.Equal(t, "gh-1", webhook.DeliveryID(webhook.GitHub, http.Header{"X-Github-Delivery": {"gh-1"}}, body))
	require.Equal(t, "gt-1", webhook.DeliveryID(webhook.Gitea, http.Header{"X-Gitea-Delivery": {"gt-1"}}, body))
	require.Equal(t, "gl-1", webhook.DeliveryID(webhook.GitLab, http.Header{"X-Gitlab-Event-Uuid": {"gl-1"}}, body))
	a := webhook.DeliveryID(webhook.GitLab, http.Header{}, body)
	require.True(t, strings.HasPrefix(a, "sha256:"))
	require.Equal(t, a, webhook.DeliveryID(webhook.GitLab, http.Header{}, body), "the body hash is stable")
	require.NotEqual(t, a, webhook.DeliveryID(webhook.GitLab, http.Header{}, []byte(`{"a":1}`)))
}

func TestParseSamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		forge   webhook.Forge
		event   string
		file    string
		kind    webhook.Kind
		branch  string
		after   string
		repo    string
		commits int
		pr      int
	}{
		{"github push", webhook.GitHub, "push", "github-push.json", webhook.KindPush, "feature/x",
			"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5", "https://github.com/octo-org/hello.git", 2, 0},
		{"github pull request", webhook.GitHub, "pull_request", "github-pull_request.json", webhook.KindPullRequest, "release/2.x",
			"8a3c2d1b0f9e8d7c6b5a49382716a5b4c3d2e1f0", "https://github.com/octo-org/hello.git", 0, 42},
		{"gitlab push", webhook.GitLab, "Push Hook", "gitlab-push.json", webhook.KindPush, "feature/x",
			"da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "https://gitlab.example.com/mike/diaspora.git", 1, 0},
		{"gitlab merge request", webhook.GitLab, "Merge Request Hook", "gitlab-merge_request.json", webhook.KindPullRequest, "release/2.x",
			"da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "https://gitlab.example.com/mike/diaspora.git", 0, 1},
		{"gitea push", webhook.Gitea, "push", "gitea-push.json", webhook.KindPush, "feature/x",
			"bffeb74224043ba2feb48d137756c8a9331c449a", "https://gitea.example.com/gitea/webhooks.git", 1, 0},
		{"gitea pull request", webhook.Gitea, "pull_request", "gitea-pull_request.json", webhook.KindPullRequest, "main",
			"4b825dc642cb6eb9a060e54bf8d69288fbee4904", "https://gitea.example.com/gitea/webhooks.git", 0, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := webhook.Parse(tc.forge, eventHeader(tc.forge, tc.event), sample(t, tc.file))
			require.NoError(t, err)
			require.Equal(t, tc.kind, ev.Kind, ev.Reason)
			require.Equal(t, tc.branch, ev.Branch)
			tr := ev.Trigger
			require.NotNil(t, tr)
			require.Equal(t, tc.after, tr.After)
			require.Equal(t, tc.repo, tr.Repo)
			require.Len(t, tr.Commits, tc.commits)
			require.Equal(t, string(tc.forge), tr.Forge)
			if tc.pr > 0 {
				require.NotNil(t, tr.PullRequest)
				require.Equal(t, tc.pr, tr.PullRequest.Number)
				require.Equal(t, tc.after, tr.PullRequest.Head.SHA)
				require.Equal(t, tc.branch, tr.PullRequest.Base.Ref)
			} else {
				require.Equal(t, "refs/heads/"+tc.branch, tr.Ref)
				require.Equal(t, tc.after, tr.Commits[len(tr.Commits)-1].ID)
				require.NotNil(t, tr.Pusher)
			}
			raw, err := json.Marshal(tr)
			require.NoError(t, err)
			require.Less(t, len(raw), 4096, "trigger data stays compact")
		})
	}
}

func eventHeader(f webhook.Forge, event string) http.Header {
	h := http.Header{}
	switch f {
	case webhook.GitHub:
		h.Set("X-GitHub-Event", event)
	case webhook.Gitea:
		h.Set("X-Gitea-Event", event)
	case webhook.GitLab:
		h.Set("X-Gitlab-Event", event)
	}
	return h
}

func TestParseIgnored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		forge  webhook.Forge
		event  string
		body   string
		reason string
	}{
		{"github ping", webhook.GitHub, "ping", `{"zen":"Keep it simple."}`, `"ping"`},
		{"github tag", webhook.GitHub, "push", `{"ref":"refs/tags/v1.0","after":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"}`, "tag"},
		{"github deleted branch", webhook.GitHub, "push", `{"ref":"refs/heads/feature/x","after":"0000000000000000000000000000000000000000","deleted":true}`, "deleted"},
		{"github closed pr", webhook.GitHub, "pull_request", `{"action":"closed","pull_request":{}}`, `"closed"`},
		{"gitea deleted branch", webhook.Gitea, "push", `{"ref":"refs/heads/x","after":"0000000000000000000000000000000000000000"}`, "deleted"},
		{"gitea issue", webhook.Gitea, "issues", `{}`, `"issues"`},
		{"gitlab tag push", webhook.GitLab, "Tag Push Hook", `{"ref":"refs/tags/v1"}`, "tag"},
		{"gitlab deleted branch", webhook.GitLab, "Push Hook", `{"ref":"refs/heads/x","after":"0000000000000000000000000000000000000000"}`, "deleted"},
		{"gitlab mr title edit", webhook.GitLab, "Merge Request Hook", `{"object_attributes":{"action":"update","target_branch":"main","last_commit":{"id":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}}}`, "without new commits"},
		{"gitlab mr merged", webhook.GitLab, "Merge Request Hook", `{"object_attributes":{"action":"merge"}}`, `"merge"`},
		{"gitlab note", webhook.GitLab, "Note Hook", `{}`, `"Note Hook"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := webhook.Parse(tc.forge, eventHeader(tc.forge, tc.event), []byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, webhook.KindIgnore, ev.Kind)
			require.Contains(t, ev.Reason, tc.reason)
			require.Nil(t, ev.Trigger)
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, f := range webhook.Forges() {
		_, err := webhook.Parse(f, http.Header{}, []byte(`{}`))
		require.Error(t, err, "%s without an event header", f)
	}
	_, err := webhook.Parse(webhook.GitHub, eventHeader(webhook.GitHub, "push"), []byte(`not json`))
	require.Error(t, err)
	_, err = webhook.Parse(webhook.GitHub, eventHeader(webhook.GitHub, "pull_request"), []byte(`{"action":"opened"}`))
	require.Error(t, err)
}

func TestCommitsKeepNewest(t *testing.T) {
	t.Parallel()
	var cs []string
	for i := range 30 {
		cs = append(cs, `{"id":"`+strings.Repeat(string(rune('a'+i%6)), 39)+string(rune('0'+i%10))+`","message":"`+strings.Repeat("m", 5000)+`"}`)
	}
	body := `{"ref":"refs/heads/main","after":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","commits":[` + strings.Join(cs, ",") + `]}`
	ev, err := webhook.Parse(webhook.GitHub, eventHeader(webhook.GitHub, "push"), []byte(body))
	require.NoError(t, err)
	require.Len(t, ev.Trigger.Commits, webhook.MaxCommits)
	require.Equal(t, 30, ev.Trigger.CommitsTotal)
	require.Less(t, len(ev.Trigger.Commits[0].Message), 2100)
}

func FuzzParse(f *testing.F) {
	for _, s := range []struct{ forge, event, file string }{
		{"github", "push", "github-push.json"}, {"github", "pull_request", "github-pull_request.json"},
		{"gitlab", "Push Hook", "gitlab-push.json"}, {"gitlab", "Merge Request Hook", "gitlab-merge_request.json"},
		{"gitea", "push", "gitea-push.json"}, {"gitea", "pull_request", "gitea-pull_request.json"},
	} {
		f.Add(s.forge, s.event, sample(f, s.file))
	}
	f.Fuzz(func(t *testing.T, forge, event string, body []byte) {
		fg, err := webhook.ParseForge(forge)
		if err != nil {
			return
		}
		ev, err := webhook.Parse(fg, eventHeader(fg, event), body)
		if err != nil {
			return
		}
		if ev.Kind != webhook.KindIgnore {
			require.NotNil(t, ev.Trigger)
			require.NotEmpty(t, ev.Branch)
			_, err := json.Marshal(ev.Trigger)
			require.NoError(t, err)
		}
	})
}

// sha1Sig is GitHub's legacy X-Hub-Signature value for body under secret.
func sha1Sig(secret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

func TestVerifyGitHubLegacySHA1(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	body := []byte(`{"ref":"refs/heads/main"}`)
	sha256Sig := "sha256=" + webhook.Sign([]byte(secret), body)
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		ok     bool
	}{
		{"sha1 alone", http.Header{"X-Hub-Signature": {sha1Sig(secret, body)}}, body, true},
		{"sha1 wrong secret", http.Header{"X-Hub-Signature": {sha1Sig("other", body)}}, body, false},
		{"sha1 tampered body", http.Header{"X-Hub-Signature": {sha1Sig(secret, body)}}, []byte(`{"ref":"x"}`), false},
		{"sha1 without prefix", http.Header{"X-Hub-Signature": {strings.TrimPrefix(sha1Sig(secret, body), "sha1=")}}, body, false},
		{"sha1 given a sha256 hmac", http.Header{"X-Hub-Signature": {"sha1=" + webhook.Sign([]byte(secret), body)}}, body, false},
		{"sha1 not hex", http.Header{"X-Hub-Signature": {"sha1=zz"}}, body, false},
		// With both, sha256 decides: a valid sha1 does not save a bad sha256.
		{"both valid", http.Header{"X-Hub-Signature": {sha1Sig(secret, body)}, "X-Hub-Signature-256": {sha256Sig}}, body, true},
		{"bad sha256, valid sha1", http.Header{"X-Hub-Signature": {sha1Sig(secret, body)}, "X-Hub-Signature-256": {"sha256=" + webhook.Sign([]byte("other"), body)}}, body, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := webhook.Verify(webhook.GitHub, tc.header, tc.body, []byte(secret))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, webhook.ErrSignature)
		})
	}
}

func TestGiteaHeaderVariants(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	body := sample(t, "gitea-push.json")
	sig := webhook.Sign([]byte(secret), body)
	for _, prefix := range []string{"X-Gitea-", "X-Forgejo-", "X-Gogs-"} {
		t.Run(prefix, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			h.Set(prefix+"Signature", sig)
			h.Set(prefix+"Event", "push")
			h.Set(prefix+"Delivery", "d-1")
			require.NoError(t, webhook.Verify(webhook.Gitea, h, body, []byte(secret)))
			h.Set(prefix+"Signature", webhook.Sign([]byte("other"), body))
			require.ErrorIs(t, webhook.Verify(webhook.Gitea, h, body, []byte(secret)), webhook.ErrSignature)
			require.Equal(t, "d-1", webhook.DeliveryID(webhook.Gitea, h, body))
			ev, err := webhook.Parse(webhook.Gitea, h, body)
			require.NoError(t, err)
			require.Equal(t, webhook.KindPush, ev.Kind)
		})
	}
}

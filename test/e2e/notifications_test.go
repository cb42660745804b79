package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/notifier/smtptest"
	"github.com/kraken-go/kk/pkg/store/pgtest"
)

// notifyStage has a job that passes or fails, and notifies by email and
// with a GitHub commit status (token from a project secret).
func notifyStage(cmd string) string {
	return `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "check",
            "steps": [{"tool": "shell", "cmd": "` + cmd + `"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
        "notification": {
            "email": "dev@example.com",
            "github": {"credentials": "bot:#{secrets.gh_token}"},
        },
    }
`
}

// githubStandIn records the commit statuses posted to it and answers with
// status.
type githubStandIn struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	posts  []statusPost
}

type statusPost struct {
	Path    string
	Auth    string
	State   string `json:"state"`
	Context string `json:"context"`
	Target  string `json:"target_url"`
}

func newGitHubStandIn(t *testing.T, status int) *githubStandIn {
	g := &githubStandIn{status: status}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p statusPost
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &p)
		p.Path, p.Auth = r.URL.Path, r.Header.Get("Authorization")
		g.mu.Lock()
		g.posts = append(g.posts, p)
		g.mu.Unlock()
		w.WriteHeader(g.status)
		_, _ = io.WriteString(w, `{"message":"stand-in"}`)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *githubStandIn) got() []statusPost {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]statusPost(nil), g.posts...)
}

type notificationJSON struct {
	Event   string `json:"event"`
	Channel string `json:"channel"`
	State   string `json:"state"`
	Message string `json:"message"`
}

type notifiedRun struct {
	ID            int64              `json:"id"`
	State         string             `json:"state"`
	JobsError     int                `json:"jobs_error"`
	Notifications []notificationJSON `json:"notifications"`
}

// pushFlow sets up project/branch (tracking feature/x, the sample push's
// branch) with the stage and the gh_token secret, starts an agent, sends
// the signed sample GitHub push and returns the flow's run id.
func pushFlow(t *testing.T, c *cluster, project, stage string) int64 {
	t.Helper()
	c.ok("project", "create", project)
	c.ok("branch", "create", project+"/fx", "--repo-branch", "feature/x")
	c.ok("secret", "create", project, "gh_token", "--from-file", writeFile(t, "tok.txt", "e2e-gh-token\n"))
	c.ok("stage", "apply", project+"/fx", writeFile(t, "check.py", stage))
	name := project + "-agent"
	c.startAgent(name)
	waitFor(t, 20*time.Second, "agent to be discovered", func() bool { return findAgent(c.agents(true), name) != nil })
	c.ok("agent", "authorize", name)

	var setup struct {
		Secret string `json:"secret"`
	}
	c.okJSON(&setup, "project", "webhook", project)
	body, err := os.ReadFile(filepath.Join("..", "..", "pkg", "webhook", "testdata", "github-push.json"))
	require.NoError(t, err)
	status, out := c.postGitHub(project, "push", "notify-1", setup.Secret, body)
	require.Equal(t, http.StatusCreated, status, "%s", out)
	var flows []flowJSON
	c.okJSON(&flows, "flow", "list", project+"/fx")
	require.Len(t, flows, 1)
	var f flowJSON
	c.okJSON(&f, "flow", "show", fmt.Sprint(flows[0].ID))
	require.Len(t, f.Runs, 1)
	return f.Runs[0].ID
}

// waitNotified polls kk run show until the run is completed and has n
// notifications that are no longer being sent.
func waitNotified(t *testing.T, c *cluster, runID int64, n int) notifiedRun {
	t.Helper()
	var r notifiedRun
	waitFor(t, 90*time.Second, "the run's notifications", func() bool {
		c.okJSON(&r, "run", "show", fmt.Sprint(runID))
		if r.State != "completed" || len(r.Notifications) != n {
			return false
		}
		for _, x := range r.Notifications {
			if x.State == "sending" {
				return false
			}
		}
		return true
	})
	return r
}

func notification(r notifiedRun, event, channel string) notificationJSON {
	for _, x := range r.Notifications {
		if x.Event == event && x.Channel == channel {
			return x
		}
	}
	return notificationJSON{}
}

const pushCommit = "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"

// TestNotificationsEmailAndGitHubStatus: a run with a failing job, started
// by a signed GitHub push, sends its email to an SMTP sink (STARTTLS, AUTH
// PLAIN) and sets pending, then failure, on the pushed commit.
func TestNotificationsEmailAndGitHubStatus(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t, smtptest.Options{User: "kk", Password: "p@ss"})
	gh := newGitHubStandIn(t, http.StatusCreated)
	c := newCluster(t,
		"--smtp-url", fmt.Sprintf("smtp://kk:p%%40ss@127.0.0.1:%s?from=ci@example.com&starttls=require&ca=%s", sink.Port(), sink.CAFile),
		"--github-api-url", gh.URL+"/api/v3",
		"--public-url", "https://ci.example.com")

	runID := pushFlow(t, c, "notes", notifyStage("echo checking; exit 3"))
	r := waitNotified(t, c, runID, 3)
	require.Equal(t, 1, r.JobsError)

	// GitHub: pending at the start, failure at the end (a job erred).
	posts := gh.got()
	require.Len(t, posts, 2)
	for _, p := range posts {
		require.Equal(t, "/api/v3/repos/octo-org/hello/statuses/"+pushCommit, p.Path)
		require.Equal(t, "Bearer e2e-gh-token", p.Auth, "the secret is resolved")
		require.Equal(t, "kraken / check [1]", p.Context)
		require.Equal(t, fmt.Sprintf("https://ci.example.com/api/v1/runs/%d", runID), p.Target)
	}
	require.Equal(t, "pending", posts[0].State)
	require.Equal(t, "failure", posts[1].State)

	// The email.
	var m smtptest.Message
	select {
	case m = <-sink.Messages:
	case <-time.After(10 * time.Second):
		t.Fatal("no email reached the sink")
	}
	require.True(t, m.TLS)
	require.Equal(t, "kk", m.User)
	require.Equal(t, "ci@example.com", m.From)
	require.Equal(t, []string{"dev@example.com"}, m.To)
	require.Contains(t, m.Data, "Subject: [kk] notes/fx CI flow 1, stage check: FAILURE (1 job erred)")
	for _, want := range []string{"Jobs:          1 total, 1 erred", "Commit:        " + pushCommit,
		fmt.Sprintf("https://ci.example.com/api/v1/runs/%d", runID), "check on any: failed"} {
		require.Contains(t, m.Data, want)
	}

	for _, ch := range []string{"start/github", "end/github", "end/email"} {
		ev, name, _ := strings.Cut(ch, "/")
		require.Equal(t, "sent", notification(r, ev, name).State, "%s: %+v", ch, r.Notifications)
	}
	text := c.ok("run", "show", fmt.Sprint(runID))
	require.Regexp(t, `end\s+email\s+sent\s+mailed to dev@example.com`, text)

	// kk project webhook uses kkd's --public-url.
	var setup struct {
		URLs map[string]string `json:"urls"`
	}
	c.okJSON(&setup, "project", "webhook", "notes")
	require.Equal(t, "https://ci.example.com/webhooks/notes/github", setup.URLs["github"])
}

// TestNotificationFailuresRecorded: the mail server refuses and the GitHub
// API answers 500; the run still completes normally and the failures are
// recorded on it.
func TestNotificationFailuresRecorded(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t, smtptest.Options{Refuse: true})
	gh := newGitHubStandIn(t, http.StatusInternalServerError)
	c := newCluster(t,
		"--smtp-url", fmt.Sprintf("smtp://127.0.0.1:%s?from=ci@example.com&ca=%s", sink.Port(), sink.CAFile),
		"--github-api-url", gh.URL)

	runID := pushFlow(t, c, "broken", notifyStage("echo fine"))
	r := waitNotified(t, c, runID, 3)
	require.Equal(t, 0, r.JobsError, "the job passed")
	var f []flowJSON
	c.okJSON(&f, "flow", "list", "broken/fx")
	require.Equal(t, "completed", f[0].State, "the flow completes although every notification failed")

	email := notification(r, "end", "email")
	require.Equal(t, "failed", email.State)
	require.Contains(t, email.Message, "550")
	for _, ev := range []string{"start", "end"} {
		n := notification(r, ev, "github")
		require.Equal(t, "failed", n.State, ev)
		require.Contains(t, n.Message, "HTTP 500")
		require.Contains(t, n.Message, "after 3 attempts")
	}
	require.Len(t, gh.got(), 6, "start and end, 3 attempts each")
	require.Regexp(t, `end\s+github\s+failed\s+github status: HTTP 500`, c.ok("run", "show", fmt.Sprint(runID)))
}

// TestNotificationsWithReplicas: two kkd replicas on one PostgreSQL
// database. The push reaches replica B, which starts the run and sends the
// pending status; the agent talks to replica A, which completes the run,
// analyses it and sends the end status. Each status is sent once.
func TestNotificationsWithReplicas(t *testing.T) {
	t.Parallel()
	gh := newGitHubStandIn(t, http.StatusCreated)
	db := pgtest.URL(t)
	storage := "file://" + t.TempDir()
	args := []string{"--db", db, "--storage", storage, "--agent-registration-key", "e2e-key", "--github-api-url", gh.URL}
	a := newCluster(t, args...)
	b := newCluster(t, args...)

	b.ok("project", "create", "rep")
	b.ok("branch", "create", "rep/fx", "--repo-branch", "feature/x")
	// A literal token: the replicas' secret keys differ in this test.
	b.ok("stage", "apply", "rep/fx", writeFile(t, "check.py", strings.Replace(notifyStage("exit 1"), "bot:#{secrets.gh_token}", "literal-token", 1)))
	a.startAgent("rep-agent", "--registration-key", "e2e-key")
	waitFor(t, 30*time.Second, "the agent to be idle", func() bool {
		ag := findAgent(b.agents(false), "rep-agent")
		return ag != nil && ag.State == "idle"
	})
	var setup struct {
		Secret string `json:"secret"`
	}
	b.okJSON(&setup, "project", "webhook", "rep")
	body, err := os.ReadFile(filepath.Join("..", "..", "pkg", "webhook", "testdata", "github-push.json"))
	require.NoError(t, err)
	status, out := b.postGitHub("rep", "push", "rep-1", setup.Secret, body)
	require.Equal(t, http.StatusCreated, status, "%s", out)
	var flows []flowJSON
	b.okJSON(&flows, "flow", "list", "rep/fx")
	require.Len(t, flows, 1)
	var f flowJSON
	b.okJSON(&f, "flow", "show", fmt.Sprint(flows[0].ID))

	// Email has no server on these replicas: recorded as failed, with github's two.
	r := waitNotified(t, b, f.Runs[0].ID, 3)
	require.Equal(t, "failed", notification(r, "end", "email").State)
	require.Contains(t, notification(r, "end", "email").Message, "--smtp-url")
	posts := gh.got()
	require.Len(t, posts, 2, "each status once")
	require.Equal(t, "pending", posts[0].State)
	require.Equal(t, "failure", posts[1].State)
	require.Equal(t, "Bearer literal-token", posts[1].Auth)
	sent := func(c *cluster, event string) bool {
		return strings.Contains(c.kkd.Output(), "msg=\"notification sent\" component=notifier run_id="+fmt.Sprint(f.Runs[0].ID)+" event="+event+" channel=github")
	}
	require.True(t, sent(b, "start"), "the replica that started the run sent the pending status")
	require.True(t, sent(a, "end"), "the replica that completed the run sent the end status")
	require.False(t, sent(a, "start") || sent(b, "end"))
}

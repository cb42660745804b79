package notifier

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/notifier/smtptest"
	"github.com/kraken-go/kk/pkg/store/sqlite"
	"github.com/kraken-go/kk/pkg/webhook"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

// summary is a failing end summary of a push-triggered flow.
func summary(event ci.NotifyEvent) *Summary {
	fin := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &Summary{
		Event: event, ProjectID: 1, Project: "demo", Branch: "main", Stage: "build",
		Flow:    ci.Flow{ID: 7, Kind: ci.FlowCI, KindSeq: 3, Label: "bld-3"},
		Run:     ci.Run{ID: 9, Label: "9", JobsTotal: 3, JobsError: 1, Finished: &fin},
		Counts:  ci.RunResultCounts{TestsTotal: 10, TestsPassed: 8, Regr: 1, Fix: 2, IssuesNew: 0},
		Errors:  []JobError{{Name: "unit", System: "debian", Result: "failed", Message: "step 1 exited with 2"}},
		Trigger: &webhook.Trigger{Forge: "github", Event: "push", Branch: "main", After: sha, Repo: "https://github.com/acme/widget.git", Compare: "https://github.com/acme/widget/compare/a...b"},
		RunURL:  "https://kk.example.com/api/v1/runs/9",
	}
}

func fastNotifier(cfg Config) *Notifier {
	cfg.RetryWait = time.Millisecond
	cfg.Timeout = 5 * time.Second
	return New(cfg)
}

// recorder is an HTTP stand-in that records requests and answers with the
// statuses given, then 200 (or 201).
type recorder struct {
	mu       sync.Mutex
	reqs     []recorded
	statuses []int
	answer   string
}

type recorded struct {
	Path, Auth string
	Body       map[string]any
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, recorded{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: m})
	status := http.StatusCreated
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	answer := rc.answer
	rc.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (rc *recorder) got() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

func TestGitHubStatus(t *testing.T) {
	t.Parallel()
	creds := map[string]any{"credentials": "bot:tok3n"}
	tests := []struct {
		name    string
		event   ci.NotifyEvent
		edit    func(*Summary)
		state   string
		wantErr string
	}{
		{name: "pending at start", event: ci.NotifyStart, state: "pending"},
		{name: "failure: regressions", event: ci.NotifyEnd, edit: func(s *Summary) { s.Run.JobsError = 0 }, state: "failure"},
		{name: "failure: job errors alone (Kraken ignores them)", event: ci.NotifyEnd, edit: func(s *Summary) { s.Counts.Regr = 0 }, state: "failure"},
		{name: "failure: new issues", event: ci.NotifyEnd, edit: func(s *Summary) { s.Run.JobsError, s.Counts.Regr, s.Counts.IssuesNew = 0, 0, 2 }, state: "failure"},
		{name: "success", event: ci.NotifyEnd, edit: func(s *Summary) { s.Run.JobsError, s.Counts.Regr = 0, 0 }, state: "success"},
		{name: "pull request head", event: ci.NotifyEnd, edit: func(s *Summary) {
			s.Trigger.After = "ffff"
			s.Trigger.PullRequest = &webhook.PullRequest{Number: 4, Head: webhook.PRRef{SHA: sha}}
		}, state: "failure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := &recorder{}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			n := fastNotifier(Config{GitHubAPI: srv.URL + "/api/v3"})
			s := summary(tc.event)
			if tc.edit != nil {
				tc.edit(s)
			}
			msg, err := n.sendGitHub(context.Background(), creds, s)
			require.NoError(t, err)
			require.Contains(t, msg, tc.state)
			reqs := rc.got()
			require.Len(t, reqs, 1)
			require.Equal(t, "/api/v3/repos/acme/widget/statuses/"+sha, reqs[0].Path)
			require.Equal(t, "Bearer tok3n", reqs[0].Auth)
			require.Equal(t, tc.state, reqs[0].Body["state"])
			require.Equal(t, "kraken / build [bld-3]", reqs[0].Body["context"])
			require.Equal(t, s.RunURL, reqs[0].Body["target_url"])
		})
	}
}

func TestGitHubStatusFailures(t *testing.T) {
	t.Parallel()
	t.Run("5xx is retried, then reported", func(t *testing.T) {
		t.Parallel()
		rc := &recorder{statuses: []int{500, 502, 503}, answer: `{"message":"boom"}`}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n := fastNotifier(Config{GitHubAPI: srv.URL})
		_, err := n.sendGitHub(context.Background(), map[string]any{"credentials": "t"}, summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "HTTP 503")
		require.ErrorContains(t, err, "after 3 attempts")
		require.Len(t, rc.got(), 3)
	})
	t.Run("5xx then success", func(t *testing.T) {
		t.Parallel()
		rc := &recorder{statuses: []int{500}}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n := fastNotifier(Config{GitHubAPI: srv.URL})
		_, err := n.sendGitHub(context.Background(), map[string]any{"credentials": "t"}, summary(ci.NotifyEnd))
		require.NoError(t, err)
		require.Len(t, rc.got(), 2)
	})
	t.Run("4xx is not retried", func(t *testing.T) {
		t.Parallel()
		rc := &recorder{statuses: []int{401}, answer: `{"message":"Bad credentials"}`}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n := fastNotifier(Config{GitHubAPI: srv.URL})
		_, err := n.sendGitHub(context.Background(), map[string]any{"credentials": "t"}, summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "HTTP 401: {\"message\":\"Bad credentials\"}")
		require.Len(t, rc.got(), 1)
	})
	t.Run("no trigger commit: skipped", func(t *testing.T) {
		t.Parallel()
		n := fastNotifier(Config{GitHubAPI: "http://127.0.0.1:1"})
		s := summary(ci.NotifyEnd)
		s.Trigger = nil
		_, err := n.sendGitHub(context.Background(), map[string]any{"credentials": "t"}, s)
		var skip *skipError
		require.ErrorAs(t, err, &skip)
	})
	t.Run("empty credentials", func(t *testing.T) {
		t.Parallel()
		n := fastNotifier(Config{})
		_, err := n.sendGitHub(context.Background(), map[string]any{"credentials": ""}, summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "credentials are empty")
	})
}

func TestOwnerRepo(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://github.com/acme/widget.git":      "acme/widget",
		"https://ghe.corp/acme/widget":            "acme/widget",
		"git@github.com:acme/widget.git":          "acme/widget",
		"https://github.com/acme/widget/":         "acme/widget",
		"ssh://git@github.com/acme/widget.git":    "acme/widget",
		"https://gitea.local/org/sub/project.git": "sub/project",
	} {
		got, err := ownerRepo(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := ownerRepo("https://github.com/")
	require.Error(t, err)
}

func TestSlack(t *testing.T) {
	t.Parallel()
	t.Run("posts with the stage's token", func(t *testing.T) {
		t.Parallel()
		rc := &recorder{answer: `{"ok":true}`}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n := fastNotifier(Config{SlackAPI: srv.URL, SlackToken: "kkd-token"})
		msg, err := n.sendSlack(context.Background(), map[string]any{"channel": "#ci", "token": "stage-token"}, summary(ci.NotifyEnd))
		require.NoError(t, err)
		require.Equal(t, "posted to #ci", msg)
		reqs := rc.got()
		require.Len(t, reqs, 1)
		require.Equal(t, "/chat.postMessage", reqs[0].Path)
		require.Equal(t, "Bearer stage-token", reqs[0].Auth)
		require.Equal(t, "#ci", reqs[0].Body["channel"])
		require.Contains(t, reqs[0].Body["text"], "FAILURE")
	})
	t.Run("kkd's token; ok=false is an error", func(t *testing.T) {
		t.Parallel()
		rc := &recorder{answer: `{"ok":false,"error":"channel_not_found"}`}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n := fastNotifier(Config{SlackAPI: srv.URL, SlackToken: "kkd-token"})
		_, err := n.sendSlack(context.Background(), map[string]any{"channel": "#nope"}, summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "channel_not_found")
		require.Len(t, rc.got(), 1, "not retried")
		require.Equal(t, "Bearer kkd-token", rc.got()[0].Auth)
	})
	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		n := fastNotifier(Config{})
		_, err := n.sendSlack(context.Background(), map[string]any{"channel": "#ci"}, summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "--slack-token")
	})
}

func TestDiscord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		edit  func(*Summary)
		color float64
	}{
		{"failed: red", nil, colorRed},
		{"passed: green", func(s *Summary) { s.Run.JobsError, s.Counts.Regr = 0, 0 }, colorGreen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := &recorder{statuses: []int{204}}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			n := fastNotifier(Config{})
			s := summary(ci.NotifyEnd)
			if tc.edit != nil {
				tc.edit(s)
			}
			_, err := n.sendDiscord(context.Background(), map[string]any{"webhook": srv.URL + "/api/webhooks/1/secret"}, s)
			require.NoError(t, err)
			reqs := rc.got()
			require.Len(t, reqs, 1)
			embed := reqs[0].Body["embeds"].([]any)[0].(map[string]any)
			require.Equal(t, tc.color, embed["color"])
			var names []string
			for _, f := range embed["fields"].([]any) {
				names = append(names, f.(map[string]any)["name"].(string))
			}
			require.Equal(t, []string{"Jobs erred", "Tests passed", "Regressions", "Fixes", "New issues", "Commit"}, names)
		})
	}
	t.Run("errors do not show the webhook URL", func(t *testing.T) {
		t.Parallel()
		n := fastNotifier(Config{Attempts: 1})
		_, err := n.sendDiscord(context.Background(), map[string]any{"webhook": "http://127.0.0.1:1/api/webhooks/1/s3cr3t"}, summary(ci.NotifyEnd))
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cr3t")
	})
}

func TestParseSMTPURL(t *testing.T) {
	t.Parallel()
	c, err := ParseSMTPURL("smtp://u%40x:p%3Ass@mail.example.com?from=kk@example.com&starttls=require")
	require.NoError(t, err)
	require.Equal(t, SMTPConfig{Host: "mail.example.com", Port: "587", RequireTLS: true, User: "u@x", Password: "p:ss", From: "kk@example.com", TLS: c.TLS}, *c)
	c, err = ParseSMTPURL("smtps://mail.example.com?from=kk@example.com")
	require.NoError(t, err)
	require.True(t, c.ImplicitTLS)
	require.Equal(t, "465", c.Port)
	for _, bad := range []string{
		"http://mail.example.com?from=kk@example.com",
		"smtp://?from=kk@example.com",
		"smtp://mail.example.com",
		"smtp://mail.example.com?from=kk@example.com&starttls=maybe",
		"smtp://mail.example.com?from=kk@example.com&ca=" + filepath.Join(t.TempDir(), "none.pem"),
	} {
		_, err := ParseSMTPURL(bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "--smtp-url", bad)
	}
}

func smtpConfig(sink *smtptest.Sink, implicit bool) *SMTPConfig {
	return &SMTPConfig{Host: "127.0.0.1", Port: sink.Port(), ImplicitTLS: implicit, RequireTLS: !implicit, User: "kk", Password: "pw", From: "kk@example.com",
		TLS: &tls.Config{ServerName: "127.0.0.1", RootCAs: sink.Pool, MinVersion: tls.VersionTLS12}}
}

func TestEmail(t *testing.T) {
	t.Parallel()
	for _, implicit := range []bool{false, true} {
		name := "starttls"
		if implicit {
			name = "implicit tls"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sink := smtptest.Start(t, smtptest.Options{User: "kk", Password: "pw", ImplicitTLS: implicit})
			n := fastNotifier(Config{SMTP: smtpConfig(sink, implicit)})
			msg, err := n.sendEmail(context.Background(), []any{"dev@example.com", "qa@example.com"}, summary(ci.NotifyEnd))
			require.NoError(t, err)
			require.Equal(t, "mailed to dev@example.com, qa@example.com", msg)
			m := <-sink.Messages
			require.True(t, m.TLS)
			require.Equal(t, "kk", m.User)
			require.Equal(t, "kk@example.com", m.From)
			require.Equal(t, []string{"dev@example.com", "qa@example.com"}, m.To)
			require.Contains(t, m.Data, "Subject: [kk] demo/main CI flow bld-3, stage build: FAILURE (1 job erred, 1 regression)")
			for _, want := range []string{"Tests passed:  8/10 (80.0%)", "Regressions:   1", "Fixes:         2", "New issues:    0",
				"unit on debian: failed: step 1 exited with 2", "https://kk.example.com/api/v1/runs/9", "Content-Type: text/html"} {
				require.Contains(t, m.Data, want)
			}
		})
	}
	t.Run("refused: permanent, recorded once", func(t *testing.T) {
		t.Parallel()
		sink := smtptest.Start(t, smtptest.Options{User: "kk", Password: "pw", Refuse: true})
		n := fastNotifier(Config{SMTP: smtpConfig(sink, false)})
		_, err := n.sendEmail(context.Background(), "dev@example.com", summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "550")
		require.ErrorContains(t, err, "refused by smtptest")
		require.NotContains(t, err.Error(), "attempts")
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		sink := smtptest.Start(t, smtptest.Options{User: "kk", Password: "other"})
		n := fastNotifier(Config{SMTP: smtpConfig(sink, false)})
		_, err := n.sendEmail(context.Background(), "dev@example.com", summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "535")
	})
	t.Run("no server configured", func(t *testing.T) {
		t.Parallel()
		n := fastNotifier(Config{})
		_, err := n.sendEmail(context.Background(), "dev@example.com", summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "--smtp-url")
	})
	t.Run("bad address", func(t *testing.T) {
		t.Parallel()
		n := fastNotifier(Config{})
		_, err := n.sendEmail(context.Background(), "not-an-address", summary(ci.NotifyEnd))
		require.ErrorContains(t, err, "is not an email address")
	})
}

// TestNotifyRecordsOnce drives notify with a real store: each channel is
// claimed once (a second notify sends nothing), and results are recorded.
func TestNotifyRecordsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, r := runFixture(t)

	gh := &recorder{}
	ghSrv := httptest.NewServer(gh)
	defer ghSrv.Close()
	bad := &recorder{statuses: []int{500, 500, 500}}
	badSrv := httptest.NewServer(bad)
	defer badSrv.Close()
	cfgs := map[string]any{
		"github":  map[string]any{"credentials": "tok"},
		"discord": map[string]any{"webhook": badSrv.URL + "/hook"},
		"slack":   map[string]any{"channel": "#ci", "token": "#{secrets.missing}"},
	}
	n := fastNotifier(Config{Store: st, GitHubAPI: ghSrv.URL,
		Evaluate: func(context.Context, int64) (map[string]any, error) { return cfgs, nil }})

	n.notify(ctx, task{r.ID, ci.NotifyStart})
	n.notify(ctx, task{r.ID, ci.NotifyStart})
	require.Len(t, gh.got(), 1, "the start status is sent once")
	require.Equal(t, "pending", gh.got()[0].Body["state"])

	n.notify(ctx, task{r.ID, ci.NotifyEnd})
	n.notify(ctx, task{r.ID, ci.NotifyEnd})
	require.Len(t, gh.got(), 2)
	require.Equal(t, "success", gh.got()[1].Body["state"], "no jobs, no regressions")
	require.Len(t, bad.got(), 3, "discord tried 3 times, once")

	list, err := st.ListNotifications(ctx, r.ID)
	require.NoError(t, err)
	got := map[string]ci.Notification{}
	for _, x := range list {
		got[string(x.Event)+"/"+x.Channel] = x
	}
	require.Len(t, got, 4)
	require.Equal(t, ci.NotifySent, got["start/github"].State)
	require.Equal(t, ci.NotifySent, got["end/github"].State)
	require.Equal(t, ci.NotifyFailed, got["end/discord"].State)
	require.Contains(t, got["end/discord"].Message, "HTTP 500")
	require.Equal(t, ci.NotifyFailed, got["end/slack"].State)
	require.True(t, strings.Contains(got["end/slack"].Message, `secret "missing"`), got["end/slack"].Message)
}

// runFixture creates a run of a push-triggered flow in a real store.
func runFixture(t *testing.T) (*sqlite.Store, ci.Run) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	p := ci.Project{Name: "demo"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main", RepoBranch: "main"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	trig, _ := json.Marshal(summary(ci.NotifyEnd).Trigger)
	f := ci.Flow{BranchID: b.ID, Kind: ci.FlowCI, TriggerData: trig}
	require.NoError(t, st.CreateFlow(ctx, &f))
	r := ci.Run{FlowID: f.ID, StageName: "build", State: ci.RunInProgress, Reason: "flow"}
	require.NoError(t, st.CreateRun(ctx, &r, nil))
	return st, r
}

// TestStartBeforeEnd: a run's end status is posted after its start status
// even when the start is slow (same worker).
func TestStartBeforeEnd(t *testing.T) {
	t.Parallel()
	st, r := runFixture(t)
	var mu sync.Mutex
	var states []string
	second := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(req.Body).Decode(&body)
		mu.Lock()
		states = append(states, body["state"].(string))
		n := len(states)
		mu.Unlock()
		if n == 1 { // hold the first one until the second arrives, or a while
			select {
			case <-second:
			case <-time.After(500 * time.Millisecond):
			}
		} else {
			close(second)
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	n := fastNotifier(Config{Store: st, GitHubAPI: srv.URL, Workers: 4,
		Evaluate: func(context.Context, int64) (map[string]any, error) {
			return map[string]any{"github": map[string]any{"credentials": "tok"}}, nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); n.Wait() }()
	n.Start(ctx)
	n.RunStarted(r.ID)
	n.RunEnded(r.ID)
	select {
	case <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("the end status was not posted")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"pending", "success"}, states)
}

// TestEndWaitsForAnotherReplicasStart: while the run's start status is
// being sent (by another replica), the end status waits for it.
func TestEndWaitsForAnotherReplicasStart(t *testing.T) {
	t.Parallel()
	st, r := runFixture(t)
	ctx := context.Background()
	start := ci.Notification{RunID: r.ID, Event: ci.NotifyStart, Channel: "github"}
	ok, err := st.ClaimNotification(ctx, start)
	require.NoError(t, err)
	require.True(t, ok)
	rc := &recorder{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n := fastNotifier(Config{Store: st, GitHubAPI: srv.URL,
		Evaluate: func(context.Context, int64) (map[string]any, error) {
			return map[string]any{"github": map[string]any{"credentials": "tok"}}, nil
		}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.notify(ctx, task{r.ID, ci.NotifyEnd})
	}()
	select {
	case <-done:
		t.Fatal("the end was sent while the start was being sent")
	case <-time.After(400 * time.Millisecond):
	}
	require.Empty(t, rc.got())
	start.State = ci.NotifySent
	require.NoError(t, st.SetNotificationResult(ctx, start))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the end was not sent after the start")
	}
	require.Len(t, rc.got(), 1)
}

package notifier

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kraken-go/kk/pkg/ci"
)

// sendGitHub sets a commit status on the flow's trigger commit: pending at
// the run's start, success or failure at its end (failure: a job erred, a
// test regressed or an issue is new). Context: "kraken / STAGE [FLOW LABEL]".
func (n *Notifier) sendGitHub(ctx context.Context, cfg any, s *Summary) (string, error) {
	creds := field(cfg, "credentials")
	token := creds
	if _, t, ok := strings.Cut(creds, ":"); ok { // Kraken's "user:token"
		token = t
	}
	if token == "" {
		return "", permanent(fmt.Errorf("github: credentials are empty: set notification.github.credentials to a token, e.g. \"#{secrets.github_token}\""))
	}
	sha := s.Commit()
	if sha == "" {
		return "", skipf("the flow has no trigger commit (it was not started by a push or pull request webhook)")
	}
	if s.Trigger.Forge != "github" {
		return "", skipf("the flow was triggered by %s, not github", s.Trigger.Forge)
	}
	repo, err := ownerRepo(s.Trigger.Repo)
	if err != nil {
		return "", permanent(fmt.Errorf("github: %w", err))
	}
	state, desc := "pending", "running"
	if s.Event == ci.NotifyEnd {
		state = s.Result()
		desc = fmt.Sprintf("jobs erred %d, tests %s, regressions %d, fixes %d, new issues %d",
			s.Run.JobsError, s.PassRatio(), s.Counts.Regr, s.Counts.Fix, s.Counts.IssuesNew)
	}
	if len(desc) > 140 { // GitHub's limit
		desc = desc[:140]
	}
	body := map[string]string{
		"state":       state,
		"description": desc,
		"context":     fmt.Sprintf("kraken / %s [%s]", s.Stage, s.FlowLabel()),
	}
	if s.RunURL != "" {
		body["target_url"] = s.RunURL
	}
	target := strings.TrimRight(n.cfg.GitHubAPI, "/") + "/repos/" + repo + "/statuses/" + url.PathEscape(sha)
	h := http.Header{"Authorization": {"Bearer " + token}, "Accept": {"application/vnd.github+json"}}
	err = n.retry(ctx, func(ctx context.Context) error {
		return n.postJSON(ctx, "github status", target, h, body, nil)
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s on %s@%s (%s)", state, repo, short(sha), body["context"]), nil
}

// ownerRepo returns "OWNER/NAME" of a repository URL
// (https://HOST/OWNER/NAME(.git), git@HOST:OWNER/NAME.git).
func ownerRepo(repo string) (string, error) {
	p := repo
	if u, err := url.Parse(repo); err == nil && u.Host != "" {
		p = u.Path
	} else if _, after, ok := strings.Cut(repo, ":"); ok && strings.Contains(repo, "@") {
		p = after
	}
	parts := strings.Split(strings.Trim(strings.TrimSuffix(p, ".git"), "/"), "/")
	if len(parts) < 2 || parts[len(parts)-2] == "" || parts[len(parts)-1] == "" {
		return "", fmt.Errorf("cannot tell the repository's owner and name from %q", repo)
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1], nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Kind is what a delivery asks for.
type Kind int

const (
	// KindIgnore: nothing to do (another event or action, a tag, a deleted
	// branch); Event.Reason says why.
	KindIgnore Kind = iota
	// KindPush: a CI flow on the branches that track Event.Branch.
	KindPush
	// KindPullRequest: a DEV flow on the branches that track the pull
	// (merge) request's base branch, Event.Branch.
	KindPullRequest
)

// Event is what Parse found in a delivery.
type Event struct {
	Name   string // the forge's event name (X-GitHub-Event, ...)
	Kind   Kind
	Branch string // the repository branch a flow runs for (full name, "feature/x")
	Reason string // for KindIgnore
	// Trigger is the flow's trigger data; set for KindPush and KindPullRequest.
	Trigger *Trigger
}

// Trigger is the compact trigger data kkd stores with a webhook's flow (in
// Kraken's shape: the git tool checks out After when the step's repository
// is Repo, Repository or one of the pull request's; stages read it as
// ctx.flow.trigger).
type Trigger struct {
	Forge        string       `json:"forge"`
	Event        string       `json:"event"`
	Action       string       `json:"action,omitempty"`
	Delivery     string       `json:"delivery,omitempty"`
	Ref          string       `json:"ref,omitempty"`
	Branch       string       `json:"branch"`
	Before       string       `json:"before,omitempty"`
	After        string       `json:"after"`
	Repo         string       `json:"repo"`
	Repository   *RepoURLs    `json:"repository,omitempty"`
	Compare      string       `json:"compare,omitempty"`
	Pusher       *Person      `json:"pusher,omitempty"`
	Commits      []Commit     `json:"commits,omitempty"`
	CommitsTotal int          `json:"commits_total,omitempty"`
	PullRequest  *PullRequest `json:"pull_request,omitempty"`
}

// RepoURLs are the addresses of a repository.
type RepoURLs struct {
	CloneURL string `json:"clone_url,omitempty"`
	HTMLURL  string `json:"html_url,omitempty"`
	SSHURL   string `json:"ssh_url,omitempty"`
}

// Person is a commit author or the pusher.
type Person struct {
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	Username string `json:"username,omitempty"`
}

// Commit is one pushed commit.
type Commit struct {
	ID        string `json:"id"`
	Message   string `json:"message,omitempty"`
	URL       string `json:"url,omitempty"`
	Timestamp string `json:"timestamp,omitempty"`
	Author    Person `json:"author"`
}

// PullRequest is a pull (merge) request.
type PullRequest struct {
	Number int    `json:"number"`
	Title  string `json:"title,omitempty"`
	URL    string `json:"url,omitempty"`
	Author string `json:"author,omitempty"`
	Head   PRRef  `json:"head"`
	Base   PRRef  `json:"base"`
}

// PRRef is a side of a pull request.
type PRRef struct {
	Ref  string    `json:"ref"`
	SHA  string    `json:"sha,omitempty"`
	Repo *RepoURLs `json:"repo,omitempty"`
}

// Limits of the trigger data.
const (
	// MaxCommits is how many pushed commits are kept (the newest).
	MaxCommits = 20
	// maxMessage bounds a commit message or title, in bytes.
	maxMessage = 2000
)

// Parse reads the delivery's event. An error means the body is not the
// JSON the event header announces.
func Parse(f Forge, h http.Header, body []byte) (Event, error) {
	switch f {
	case GitHub:
		return parseGitHubLike(f, h.Get("X-GitHub-Event"), body, map[string]bool{"opened": true, "synchronize": true, "reopened": true})
	case Gitea:
		_, ev := giteaHeader(h, "Event")
		return parseGitHubLike(f, ev, body, map[string]bool{"opened": true, "synchronize": true, "synchronized": true, "reopened": true})
	case GitLab:
		return parseGitLab(h.Get("X-Gitlab-Event"), body)
	}
	return Event{}, fmt.Errorf("unknown forge %q", f)
}

func ignore(name, format string, args ...any) Event {
	return Event{Name: name, Kind: KindIgnore, Reason: fmt.Sprintf(format, args...)}
}

type ghRepo struct {
	CloneURL string `json:"clone_url"`
	HTMLURL  string `json:"html_url"`
	SSHURL   string `json:"ssh_url"`
}

func (r *ghRepo) urls() *RepoURLs {
	if r == nil || (r.CloneURL == "" && r.HTMLURL == "" && r.SSHURL == "") {
		return nil
	}
	return &RepoURLs{CloneURL: r.CloneURL, HTMLURL: r.HTMLURL, SSHURL: r.SSHURL}
}

type ghCommit struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	URL       string `json:"url"`
	Timestamp string `json:"timestamp"`
	Author    Person `json:"author"`
}

type ghPush struct {
	Ref        string     `json:"ref"`
	Before     string     `json:"before"`
	After      string     `json:"after"`
	Deleted    bool       `json:"deleted"`
	Compare    string     `json:"compare"`
	CompareURL string     `json:"compare_url"` // Gitea
	Commits    []ghCommit `json:"commits"`
	Repository *ghRepo    `json:"repository"`
	Pusher     *struct {
		Name     string `json:"name"`
		Email    string `json:"email"`
		Login    string `json:"login"`     // Gitea
		FullName string `json:"full_name"` // Gitea
		Username string `json:"username"`  // Gitea
	} `json:"pusher"`
}

type ghPR struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	PullRequest *struct {
		Number  int    `json:"number"`
		Title   string `json:"title"`
		HTMLURL string `json:"html_url"`
		User    *struct {
			Login string `json:"login"`
		} `json:"user"`
		Head ghPRRef `json:"head"`
		Base ghPRRef `json:"base"`
	} `json:"pull_request"`
	Repository *ghRepo `json:"repository"`
}

type ghPRRef struct {
	Ref  string  `json:"ref"`
	SHA  string  `json:"sha"`
	Repo *ghRepo `json:"repo"`
}

// parseGitHubLike parses GitHub's and Gitea's push and pull_request events,
// which share their shape.
func parseGitHubLike(f Forge, name string, body []byte, prActions map[string]bool) (Event, error) {
	switch name {
	case "":
		return Event{}, fmt.Errorf("the event header (X-GitHub-Event or X-Gitea-Event) is missing")
	case "push":
		var p ghPush
		if err := json.Unmarshal(body, &p); err != nil {
			return Event{}, fmt.Errorf("decode %s push event: %w", f, err)
		}
		branch, ev, ok := pushBranch(name, p.Ref, p.After, p.Deleted)
		if !ok {
			return ev, nil
		}
		t := &Trigger{Forge: string(f), Event: name, Ref: p.Ref, Branch: branch, Before: p.Before, After: p.After,
			Repository: p.Repository.urls(), Compare: firstOf(p.Compare, p.CompareURL)}
		if r := t.Repository; r != nil {
			t.Repo = firstOf(r.CloneURL, r.HTMLURL, r.SSHURL)
		}
		if pu := p.Pusher; pu != nil {
			t.Pusher = &Person{Name: firstOf(pu.Name, pu.FullName, pu.Login), Email: pu.Email, Username: firstOf(pu.Username, pu.Login)}
		}
		cs := make([]Commit, 0, len(p.Commits))
		for _, c := range p.Commits {
			cs = append(cs, Commit{ID: c.ID, Message: clip(c.Message), URL: c.URL, Timestamp: c.Timestamp, Author: c.Author})
		}
		t.Commits, t.CommitsTotal = newest(cs)
		return Event{Name: name, Kind: KindPush, Branch: branch, Trigger: t}, nil
	case "pull_request":
		var p ghPR
		if err := json.Unmarshal(body, &p); err != nil {
			return Event{}, fmt.Errorf("decode %s pull_request event: %w", f, err)
		}
		if !prActions[p.Action] {
			return ignore(name, "pull request action %q starts no flow (opened, reopened and new commits do)", p.Action), nil
		}
		pr := p.PullRequest
		if pr == nil || pr.Base.Ref == "" || pr.Head.SHA == "" {
			return Event{}, fmt.Errorf("the %s pull_request event has no pull_request with base ref and head sha", f)
		}
		base := strings.TrimPrefix(pr.Base.Ref, "refs/heads/")
		t := &Trigger{Forge: string(f), Event: name, Action: p.Action, Branch: base, After: pr.Head.SHA,
			Repository: firstRepo(pr.Base.Repo, p.Repository)}
		if r := t.Repository; r != nil {
			t.Repo = firstOf(r.CloneURL, r.HTMLURL, r.SSHURL)
		}
		t.PullRequest = &PullRequest{Number: firstInt(pr.Number, p.Number), Title: clip(pr.Title), URL: pr.HTMLURL,
			Head: PRRef{Ref: pr.Head.Ref, SHA: pr.Head.SHA, Repo: pr.Head.Repo.urls()},
			Base: PRRef{Ref: base, SHA: pr.Base.SHA, Repo: pr.Base.Repo.urls()}}
		if pr.User != nil {
			t.PullRequest.Author = pr.User.Login
		}
		return Event{Name: name, Kind: KindPullRequest, Branch: base, Trigger: t}, nil
	}
	return ignore(name, "event %q starts no flow (push and pull_request do)", name), nil
}

type glRepo struct {
	GitHTTPURL string `json:"git_http_url"`
	GitSSHURL  string `json:"git_ssh_url"`
	WebURL     string `json:"web_url"`
	Homepage   string `json:"homepage"`
}

func (r *glRepo) urls() *RepoURLs {
	if r == nil || (r.GitHTTPURL == "" && r.GitSSHURL == "" && r.WebURL == "" && r.Homepage == "") {
		return nil
	}
	return &RepoURLs{CloneURL: r.GitHTTPURL, HTMLURL: firstOf(r.WebURL, r.Homepage), SSHURL: r.GitSSHURL}
}

type glPush struct {
	ObjectKind   string     `json:"object_kind"`
	Ref          string     `json:"ref"`
	Before       string     `json:"before"`
	After        string     `json:"after"`
	UserName     string     `json:"user_name"`
	UserUsername string     `json:"user_username"`
	UserEmail    string     `json:"user_email"`
	Project      *glRepo    `json:"project"`
	Repository   *glRepo    `json:"repository"`
	Commits      []ghCommit `json:"commits"`
	TotalCommits int        `json:"total_commits_count"`
}

type glMR struct {
	User *struct {
		Username string `json:"username"`
	} `json:"user"`
	Project *glRepo `json:"project"`
	Attrs   *struct {
		IID          int     `json:"iid"`
		Title        string  `json:"title"`
		URL          string  `json:"url"`
		Action       string  `json:"action"`
		OldRev       string  `json:"oldrev"`
		SourceBranch string  `json:"source_branch"`
		TargetBranch string  `json:"target_branch"`
		Source       *glRepo `json:"source"`
		Target       *glRepo `json:"target"`
		LastCommit   *struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
}

func parseGitLab(name string, body []byte) (Event, error) {
	switch name {
	case "":
		return Event{}, fmt.Errorf("the event header X-Gitlab-Event is missing")
	case "Tag Push Hook":
		return ignore(name, "tag pushes start no flow"), nil
	case "Push Hook":
		var p glPush
		if err := json.Unmarshal(body, &p); err != nil {
			return Event{}, fmt.Errorf("decode gitlab push event: %w", err)
		}
		branch, ev, ok := pushBranch(name, p.Ref, p.After, false)
		if !ok {
			return ev, nil
		}
		t := &Trigger{Forge: string(GitLab), Event: name, Ref: p.Ref, Branch: branch, Before: p.Before, After: p.After,
			Repository: firstGL(p.Project, p.Repository)}
		if r := t.Repository; r != nil {
			t.Repo = firstOf(r.CloneURL, r.HTMLURL, r.SSHURL)
		}
		if p.UserName != "" || p.UserUsername != "" {
			t.Pusher = &Person{Name: p.UserName, Email: p.UserEmail, Username: p.UserUsername}
		}
		cs := make([]Commit, 0, len(p.Commits))
		for _, c := range p.Commits {
			cs = append(cs, Commit{ID: c.ID, Message: clip(c.Message), URL: c.URL, Timestamp: c.Timestamp, Author: c.Author})
		}
		t.Commits, t.CommitsTotal = newest(cs)
		t.CommitsTotal = max(t.CommitsTotal, p.TotalCommits)
		return Event{Name: name, Kind: KindPush, Branch: branch, Trigger: t}, nil
	case "Merge Request Hook":
		var p glMR
		if err := json.Unmarshal(body, &p); err != nil {
			return Event{}, fmt.Errorf("decode gitlab merge request event: %w", err)
		}
		a := p.Attrs
		if a == nil {
			return Event{}, fmt.Errorf("the gitlab merge request event has no object_attributes")
		}
		switch {
		case a.Action == "open" || a.Action == "reopen":
		case a.Action == "update" && a.OldRev != "":
			// An update with oldrev brought new commits; others edit the title, labels...
		case a.Action == "update":
			return ignore(name, "merge request update without new commits starts no flow"), nil
		default:
			return ignore(name, "merge request action %q starts no flow (open, reopen and update with new commits do)", a.Action), nil
		}
		if a.TargetBranch == "" || a.LastCommit == nil || a.LastCommit.ID == "" {
			return Event{}, fmt.Errorf("the gitlab merge request event has no target_branch or last_commit")
		}
		t := &Trigger{Forge: string(GitLab), Event: name, Action: a.Action, Branch: a.TargetBranch, After: a.LastCommit.ID,
			Repository: firstGL(a.Target, p.Project)}
		if r := t.Repository; r != nil {
			t.Repo = firstOf(r.CloneURL, r.HTMLURL, r.SSHURL)
		}
		t.PullRequest = &PullRequest{Number: a.IID, Title: clip(a.Title), URL: a.URL,
			Head: PRRef{Ref: a.SourceBranch, SHA: a.LastCommit.ID, Repo: a.Source.urls()},
			Base: PRRef{Ref: a.TargetBranch, Repo: a.Target.urls()}}
		if p.User != nil {
			t.PullRequest.Author = p.User.Username
		}
		return Event{Name: name, Kind: KindPullRequest, Branch: a.TargetBranch, Trigger: t}, nil
	}
	return ignore(name, "event %q starts no flow (Push Hook and Merge Request Hook do)", name), nil
}

// pushBranch returns the branch of a push to refs/heads/..., or ok=false
// with the KindIgnore event for tags and deleted branches.
func pushBranch(name, ref, after string, deleted bool) (string, Event, bool) {
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	switch {
	case strings.HasPrefix(ref, "refs/tags/"):
		return "", ignore(name, "tag pushes start no flow (%s)", ref), false
	case !ok || branch == "":
		return "", ignore(name, "ref %q is not a branch", ref), false
	case deleted || strings.Trim(after, "0") == "":
		return "", ignore(name, "branch %s was deleted", branch), false
	}
	return branch, Event{}, true
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstInt(vs ...int) int {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}

func firstRepo(rs ...*ghRepo) *RepoURLs {
	for _, r := range rs {
		if u := r.urls(); u != nil {
			return u
		}
	}
	return nil
}

func firstGL(rs ...*glRepo) *RepoURLs {
	for _, r := range rs {
		if u := r.urls(); u != nil {
			return u
		}
	}
	return nil
}

// newest keeps the last MaxCommits commits (forges list the oldest first).
func newest(cs []Commit) ([]Commit, int) {
	n := len(cs)
	if n > MaxCommits {
		cs = cs[n-MaxCommits:]
	}
	return cs, n
}

// clip cuts s to maxMessage bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

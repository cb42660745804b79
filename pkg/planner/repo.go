package planner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/stagerepo"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/webhook"
)

// Limits of a repo poll, as Kraken's: at most this many commits, none older
// than two weeks.
const (
	maxCommits   = webhook.MaxCommits
	maxCommitAge = 14 * 24 * time.Hour
	pollTimeout  = 2 * time.Minute
)

// RepoPoller reads a repository's branch for repo triggers.
type RepoPoller interface {
	// Poll fetches the branch of the repository at url (with token as the
	// HTTP basic auth password when not "") and returns its head commit and
	// the commits after since (exclusive; "" for none), newest first, at
	// most max of them and none older than maxAge before the head. Errors
	// never contain the token.
	Poll(ctx context.Context, url, branch, token, since string, max int, maxAge time.Duration) (head string, commits []webhook.Commit, err error)
}

// GitPoller polls with go-git. With a Dir it keeps a bare clone per
// repository there and fetches into it; without, it fetches into memory.
// Polls of one repository (several stages may watch it) take turns: they
// share its clone.
type GitPoller struct {
	Dir string

	mu    sync.Mutex
	repos map[string]*sync.Mutex // by url
}

// lock takes the turn of url's clone; the returned func gives it back.
func (g *GitPoller) lock(url string) func() {
	g.mu.Lock()
	if g.repos == nil {
		g.repos = map[string]*sync.Mutex{}
	}
	m := g.repos[url]
	if m == nil {
		m = &sync.Mutex{}
		g.repos[url] = m
	}
	g.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Poll implements RepoPoller.
func (g *GitPoller) Poll(ctx context.Context, url, branch, token, since string, max int, maxAge time.Duration) (string, []webhook.Commit, error) {
	head, commits, err := g.poll(ctx, url, branch, token, since, max, maxAge)
	if err != nil && token != "" && strings.Contains(err.Error(), token) {
		err = errors.New(strings.ReplaceAll(err.Error(), token, "***"))
	}
	return head, commits, err
}

func (g *GitPoller) poll(ctx context.Context, url, branch, token, since string, max int, maxAge time.Duration) (string, []webhook.Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	defer g.lock(url)()
	repo, err := g.open(url)
	if err != nil {
		return "", nil, err
	}
	ref := plumbing.NewRemoteReferenceName("origin", branch)
	spec := config.RefSpec("+" + plumbing.NewBranchReferenceName(branch).String() + ":" + ref.String())
	opts := &git.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Tags: git.NoTags, Force: true}
	if token != "" {
		// As GitHub, GitLab and Gitea take access tokens (pkg/stagerepo).
		opts.Auth = &githttp.BasicAuth{Username: "kk", Password: token}
	}
	err = repo.FetchContext(ctx, opts)
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return "", nil, fmt.Errorf("fetch branch %q of %s: %w", branch, url, err)
	}
	h, err := repo.Reference(ref, true)
	if err != nil {
		return "", nil, fmt.Errorf("branch %q of %s: %w", branch, url, err)
	}
	head := h.Hash().String()
	if since == "" || since == head {
		return head, nil, nil
	}
	it, err := repo.Log(&git.LogOptions{From: h.Hash()})
	if err != nil {
		return "", nil, fmt.Errorf("log of %s: %w", url, err)
	}
	defer it.Close()
	var out []webhook.Commit
	var headTime time.Time
	stop := errors.New("stop")
	err = it.ForEach(func(c *object.Commit) error {
		if headTime.IsZero() {
			headTime = c.Committer.When
		}
		if c.Hash.String() == since || len(out) >= max || (maxAge > 0 && headTime.Sub(c.Committer.When) > maxAge) {
			return stop
		}
		out = append(out, webhook.Commit{
			ID: c.Hash.String(), Message: trim(c.Message, 2000), Timestamp: c.Author.When.UTC().Format(time.RFC3339),
			Author: webhook.Person{Name: c.Author.Name, Email: c.Author.Email},
		})
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return "", nil, fmt.Errorf("log of %s: %w", url, err)
	}
	return head, out, nil
}

// open returns the repository to fetch url into.
func (g *GitPoller) open(url string) (*git.Repository, error) {
	rc := &config.RemoteConfig{Name: "origin", URLs: []string{url}}
	if g.Dir == "" {
		repo, err := git.Init(memory.NewStorage(), nil)
		if err != nil {
			return nil, fmt.Errorf("init repository: %w", err)
		}
		if _, err := repo.CreateRemote(rc); err != nil {
			return nil, fmt.Errorf("add remote %s: %w", url, err)
		}
		return repo, nil
	}
	sum := sha256.Sum256([]byte(url))
	dir := filepath.Join(g.Dir, hex.EncodeToString(sum[:8]))
	repo, err := git.PlainOpen(dir)
	if err == nil {
		return repo, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if repo, err = git.PlainInit(dir, true); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	if _, err := repo.CreateRemote(rc); err != nil {
		return nil, fmt.Errorf("add remote %s: %w", url, err)
	}
	return repo, nil
}

func trim(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n]
	}
	return s
}

// repoTriggerData is the trigger data of a repo trigger's run: the push-like
// trigger of the first repository with new commits (the git tool checks out
// its After commit), and for the repos: [...] form every such repository.
type repoTriggerData struct {
	webhook.Trigger
	Repos []webhook.Trigger `json:"repos,omitempty"`
}

// pollResult is what a background repo poll hands back to Tick.
type pollResult struct {
	stageID int64
	state   store.TriggerState // the state after the poll
	stale   bool               // another replica changed it: re-read
}

// token reads the access token of repo trigger r of stage s ("" without
// token_secret).
func (p *Planner) token(ctx context.Context, s ci.Stage, r rule) (string, error) {
	if r.tokenSecret == "" {
		return "", nil
	}
	b, err := p.cfg.Store.GetBranch(ctx, s.BranchID)
	if err != nil {
		return "", fmt.Errorf("get branch: %w", err)
	}
	pr, err := p.cfg.Store.GetProject(ctx, b.ProjectID)
	if err != nil {
		return "", fmt.Errorf("get project: %w", err)
	}
	return stagerepo.ReadToken(ctx, p.cfg.Store, p.cfg.Secrets, pr, r.tokenSecret)
}

// startPoll polls the repo trigger r of ps in the background.
func (p *Planner) startPoll(ctx context.Context, ps *plannedStage, r rule, st store.TriggerState, now time.Time) {
	id := ps.stage.ID
	p.mu.Lock()
	p.polling[id] = true
	p.mu.Unlock()
	p.polls.Add(1)
	go func() {
		defer p.polls.Done()
		res := p.poll(ctx, ps.stage, r, st, now)
		p.mu.Lock()
		p.results = append(p.results, res)
		delete(p.polling, id)
		p.mu.Unlock()
		p.kick()
	}()
}

// poll polls the repositories of a repo trigger and starts a run when one has
// new commits since the last poll. The first poll only records the heads.
func (p *Planner) poll(ctx context.Context, s ci.Stage, r rule, st store.TriggerState, now time.Time) pollResult {
	log := p.cfg.Logger.With("stage", s.Name, "stage_id", s.ID, "trigger", KindRepo)
	prev := map[string]string{}
	if st.Repo != "" {
		if err := json.Unmarshal([]byte(st.Repo), &prev); err != nil {
			log.Warn("planner: stored repo state unreadable; starting over", "err", err)
			prev = map[string]string{}
		}
	}
	defBranch := ""
	next := map[string]string{}
	for k, v := range prev {
		next[k] = v
	}
	var changed []webhook.Trigger
	repos := r.repos
	token, err := p.token(ctx, s, r)
	if err != nil {
		// Recorded as a poll (at the trigger's interval), like a failed fetch.
		log.Warn("planner: repo trigger not polled", "err", err)
		repos = nil
	}
	for _, spec := range repos {
		branch := spec.Branch
		if branch == "" {
			if defBranch == "" {
				b, err := p.cfg.Store.GetBranch(ctx, s.BranchID)
				if err != nil {
					log.Error("planner: get branch", "err", err)
					return pollResult{stageID: s.ID, state: st}
				}
				defBranch = b.RepoBranch
			}
			branch = defBranch
		}
		key := spec.URL + "#" + branch
		since := prev[key]
		head, commits, err := p.cfg.Repos.Poll(ctx, spec.URL, branch, token, since, maxCommits, maxCommitAge)
		if err != nil {
			log.Warn("planner: repo poll failed", "url", spec.URL, "branch", branch, "err", err)
			continue
		}
		next[key] = head
		if since == "" || since == head {
			continue
		}
		// Oldest first, as a push webhook lists them.
		for i, j := 0, len(commits)-1; i < j; i, j = i+1, j-1 {
			commits[i], commits[j] = commits[j], commits[i]
		}
		changed = append(changed, webhook.Trigger{
			Forge: "repo", Event: "push", Ref: plumbing.NewBranchReferenceName(branch).String(), Branch: branch,
			Before: since, After: head, Repo: spec.URL, Commits: commits, CommitsTotal: len(commits),
		})
	}
	nextJSON, _ := json.Marshal(next)
	var fired time.Time
	if len(changed) > 0 {
		fired = now
	}
	ok, err := p.cfg.Store.SwapTriggerRepo(ctx, s.ID, r.text, st.Repo, string(nextJSON), now, fired)
	if err != nil {
		log.Error("planner: record repo poll", "err", err)
		return pollResult{stageID: s.ID, state: st, stale: true}
	}
	if !ok {
		log.Info("planner: repo poll recorded by another replica meanwhile")
		return pollResult{stageID: s.ID, state: st, stale: true}
	}
	st.Repo, st.Checked = string(nextJSON), now
	if len(changed) == 0 {
		return pollResult{stageID: s.ID, state: st}
	}
	st.LastFired = fired
	data := repoTriggerData{Trigger: changed[0]}
	if len(changed) > 1 {
		data.Repos = changed
	}
	raw, err := json.Marshal(data)
	if err != nil {
		log.Error("planner: encode trigger data", "err", err)
		return pollResult{stageID: s.ID, state: st}
	}
	got, err := p.cfg.Engine.TriggerStage(ctx, s, ReasonRepo, raw)
	if err != nil {
		log.Error("planner: start repo-triggered run", "err", err)
		return pollResult{stageID: s.ID, state: st}
	}
	p.logFire(s, r, now, 0, got)
	return pollResult{stageID: s.ID, state: st}
}

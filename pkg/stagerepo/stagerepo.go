// Package stagerepo keeps stages whose code lives in a file of a git
// repository ("schema from repo") up to date. A Loader fetches the file
// (a shallow, in-memory clone with go-git; an access token from a project
// secret goes as the HTTP basic auth password), evaluates and validates it
// like `kk stage apply` does, and stores the code with the commit sha
// (StageRepo.Version). A refresh that fails (the repository cannot be
// fetched, the file is gone, the schema has problems) keeps the last good
// code and records the error (StageRepo.Error, with FILE:LINE:COL of each
// schema problem).
//
// Refreshes happen on apply, periodically (RefreshSeconds, from the
// leader's Run loop), when a push webhook of the repository's branch
// arrives (RefreshPush, before the webhook's flow is created) and before a
// run of the stage starts (BeforeRun, skipped when the stage was refreshed
// moments ago).
package stagerepo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/store"
)

// MinRefresh is the shortest periodic refresh interval.
const MinRefresh = time.Minute

// Config of a Loader.
type Config struct {
	Store   store.Store
	Engine  *engine.Engine
	Secrets *secrets.Cipher // nil: token secrets cannot be read
	Logger  *slog.Logger
	Now     func() time.Time // default time.Now
	Fetch   FetchFunc        // default GitFetch
	// FetchTimeout bounds one fetch (default 2 min).
	FetchTimeout time.Duration
	// Tick is how often Run looks for due refreshes (default 15 s).
	Tick time.Duration
	// FreshFor is how long after a refresh BeforeRun does not refresh again
	// (default 30 s): the roots of one flow, or a webhook's flow, need one.
	FreshFor time.Duration
}

// Loader loads and refreshes repo-backed stages.
type Loader struct {
	cfg   Config
	mu    sync.Mutex
	locks map[int64]*sync.Mutex // one refresh of a stage at a time
}

// New returns a Loader.
func New(cfg Config) *Loader {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Fetch == nil {
		cfg.Fetch = GitFetch
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 2 * time.Minute
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 15 * time.Second
	}
	if cfg.FreshFor <= 0 {
		cfg.FreshFor = 30 * time.Second
	}
	return &Loader{cfg: cfg, locks: map[int64]*sync.Mutex{}}
}

// Loaded is a stage file fetched, evaluated and validated.
type Loaded struct {
	Code    string
	Stage   *schema.Stage
	Version string
}

// FetchError says why a repository could not be read (as opposed to
// schema.Problems: it was read but does not evaluate).
type FetchError struct{ Err error }

func (e *FetchError) Error() string { return e.Err.Error() }
func (e *FetchError) Unwrap() error { return e.Err }

// Load fetches repo's file and evaluates it as stage name of branch b.
// Errors are a *FetchError or schema.Problems (positions name the file's
// path in the repository), or a store error.
func (l *Loader) Load(ctx context.Context, p ci.Project, b ci.Branch, name string, repo ci.StageRepo) (Loaded, error) {
	token, err := l.token(ctx, p, repo.TokenSecret)
	if err != nil {
		return Loaded{}, err
	}
	fctx, cancel := context.WithTimeout(ctx, l.cfg.FetchTimeout)
	defer cancel()
	got, err := l.cfg.Fetch(fctx, Source{URL: repo.URL, Branch: repo.Branch, Path: repo.Path, Token: token})
	if err != nil {
		return Loaded{}, &FetchError{err}
	}
	code := string(got.Code)
	if strings.TrimSpace(code) == "" {
		return Loaded{}, &FetchError{fmt.Errorf("file %q at commit %s is empty", repo.Path, short(got.Version))}
	}
	c := schema.Context{IsCI: true, Project: p.Name, Branch: b.Name, BranchName: b.RepoBranch, Env: b.Env, Stage: name,
		Secrets: l.cfg.Engine.SecretRefs(ctx, p.ID, code)}
	st, err := l.cfg.Engine.EvalStage(ctx, repo.Path, got.Code, c)
	if err != nil {
		return Loaded{Version: got.Version}, err
	}
	if st.Parent == name {
		return Loaded{Version: got.Version}, schema.Problems{{File: repo.Path, Key: "parent", Message: "a stage cannot be its own parent"}}
	}
	return Loaded{Code: code, Stage: st, Version: got.Version}, nil
}

// token reads the access token secret (a simple secret of the project).
func (l *Loader) token(ctx context.Context, p ci.Project, name string) (string, error) {
	return ReadToken(ctx, l.cfg.Store, l.cfg.Secrets, p, name)
}

// ReadToken reads the access token secret name of project p (a simple
// secret; "" for no name). Its errors (a *FetchError) say how to fix the
// secret and never contain its value.
func ReadToken(ctx context.Context, st store.Store, c *secrets.Cipher, p ci.Project, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	sec, err := st.GetSecret(ctx, p.ID, name)
	if errors.Is(err, ci.ErrNotFound) {
		return "", &FetchError{fmt.Errorf("access token secret %q does not exist in project %s: create it with `kk secret create %s %s`", name, p.Name, p.Name, name)}
	}
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", &FetchError{fmt.Errorf("kkd has no secret key, so it cannot read the access token secret %q", name)}
	}
	plain, err := c.Open(p.ID, sec.Name, sec.Sealed)
	if err != nil {
		return "", &FetchError{fmt.Errorf("access token secret %q of project %s cannot be decrypted: create it again with `kk secret create %s %s --force`", name, p.Name, p.Name, name)}
	}
	var v api.SecretValue
	if err := json.Unmarshal(plain, &v); err != nil || v.Kind != api.SecretSimple {
		return "", &FetchError{fmt.Errorf("access token secret %q of project %s must be a simple secret (a token), not %q", name, p.Name, sec.Kind)}
	}
	return v.Value, nil
}

// ErrorText renders a Load error for StageRepo.Error: the fetch problem, or
// every schema problem as FILE:LINE:COL: key: message, one per line.
func ErrorText(version string, err error) string {
	var ps schema.Problems
	if errors.As(err, &ps) {
		at := ""
		if version != "" {
			at = " at commit " + short(version)
		}
		return fmt.Sprintf("schema has %d problem(s)%s:\n%s", len(ps), at, ps.Error())
	}
	return err.Error()
}

func (l *Loader) lock(id int64) func() {
	l.mu.Lock()
	m := l.locks[id]
	if m == nil {
		m = &sync.Mutex{}
		l.locks[id] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Refresh fetches and evaluates the stage's file again and stores the
// result: new code and version, or the error with the last good code kept.
// It returns the stage as stored. An error is returned only when the stage
// cannot be read or written; a failed refresh is in Repo.Error.
func (l *Loader) Refresh(ctx context.Context, stageID int64) (ci.Stage, error) {
	defer l.lock(stageID)()
	st, err := l.cfg.Store.GetStage(ctx, stageID)
	if err != nil {
		return st, err
	}
	if st.Repo == nil {
		return st, fmt.Errorf("stage %q is not backed by a repository: %w", st.Name, ci.ErrInvalid)
	}
	b, err := l.cfg.Store.GetBranch(ctx, st.BranchID)
	if err != nil {
		return st, err
	}
	p, err := l.cfg.Store.GetProject(ctx, b.ProjectID)
	if err != nil {
		return st, err
	}
	prev := st.Updated
	repo := *st.Repo
	now := l.cfg.Now().UTC().Truncate(time.Millisecond)
	repo.Refreshed = &now
	log := l.cfg.Logger.With("stage_id", st.ID, "stage", st.Name, "branch_id", st.BranchID, "repo", Redact(repo.URL), "repo_branch", repo.Branch)
	got, err := l.Load(ctx, p, b, st.Name, repo)
	var ps schema.Problems
	var fe *FetchError
	switch {
	case err == nil:
		raw, err := json.Marshal(got.Stage)
		if err != nil {
			return st, fmt.Errorf("encode schema: %w", err)
		}
		if got.Version != repo.Version {
			log.Info("stage refreshed from repository", "version", got.Version, "was", repo.Version)
		}
		repo.Version, repo.Error = got.Version, ""
		st.Code, st.Schema, st.Parent = got.Code, raw, got.Stage.Parent
	case errors.As(err, &ps) || errors.As(err, &fe):
		repo.Error = ErrorText(got.Version, err)
		log.Warn("stage refresh failed: keeping the last good code", "version", repo.Version, "err", repo.Error)
	default:
		return st, err
	}
	st.Repo = &repo
	if err := l.cfg.Store.UpdateStageRepo(ctx, &st, prev); err != nil {
		if errors.Is(err, ci.ErrConflict) {
			// Applied meanwhile: that version wins.
			return l.cfg.Store.GetStage(ctx, stageID)
		}
		return st, err
	}
	return st, nil
}

// RefreshPush refreshes the project's stages whose repository is one of
// urls and whose branch is branch (a push webhook), and returns them.
func (l *Loader) RefreshPush(ctx context.Context, projectID int64, urls []string, branch string) []ci.Stage {
	stages, err := l.cfg.Store.ListRepoStages(ctx)
	if err != nil {
		l.cfg.Logger.Error("list repo stages for a push", "err", err)
		return nil
	}
	projects := map[int64]int64{} // branch → project
	var out []ci.Stage
	for _, st := range stages {
		if st.Repo.Branch != branch || !matchesAny(st.Repo.URL, urls) {
			continue
		}
		pid, ok := projects[st.BranchID]
		if !ok {
			b, err := l.cfg.Store.GetBranch(ctx, st.BranchID)
			if err != nil {
				continue
			}
			pid = b.ProjectID
			projects[st.BranchID] = pid
		}
		if pid != projectID {
			continue
		}
		got, err := l.Refresh(ctx, st.ID)
		if err != nil {
			l.cfg.Logger.Error("refresh stage after a push", "stage_id", st.ID, "err", err)
			continue
		}
		out = append(out, got)
	}
	return out
}

func matchesAny(u string, urls []string) bool {
	for _, x := range urls {
		if x != "" && SameRepo(u, x) {
			return true
		}
	}
	return false
}

// RefreshDue refreshes every stage whose refresh interval has elapsed and
// returns how many it refreshed.
func (l *Loader) RefreshDue(ctx context.Context) int {
	stages, err := l.cfg.Store.ListRepoStages(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.cfg.Logger.Error("list repo stages", "err", err)
		}
		return 0
	}
	now := l.cfg.Now()
	n := 0
	for _, st := range stages {
		every := time.Duration(st.Repo.RefreshSeconds) * time.Second
		if every <= 0 || (st.Repo.Refreshed != nil && now.Sub(*st.Repo.Refreshed) < every) {
			continue
		}
		if _, err := l.Refresh(ctx, st.ID); err != nil && ctx.Err() == nil && !errors.Is(err, ci.ErrNotFound) {
			l.cfg.Logger.Error("periodic stage refresh", "stage_id", st.ID, "err", err)
		}
		n++
	}
	return n
}

// Run refreshes due stages every Tick until ctx ends (leader only).
func (l *Loader) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.Tick)
	defer t.Stop()
	for {
		l.RefreshDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// BeforeRun refreshes a repo-backed stage before a run of it starts, unless
// it was refreshed within FreshFor, and returns the stage to run. When the
// refresh cannot be stored the stage is run as it is.
func (l *Loader) BeforeRun(ctx context.Context, s ci.Stage) ci.Stage {
	if s.Repo == nil {
		return s
	}
	if r := s.Repo.Refreshed; r != nil && l.cfg.Now().Sub(*r) < l.cfg.FreshFor {
		return s
	}
	got, err := l.Refresh(ctx, s.ID)
	if err != nil {
		l.cfg.Logger.Warn("refresh stage before its run: running the stored code", "stage_id", s.ID, "err", err)
		return s
	}
	return got
}

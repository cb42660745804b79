package stagerepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
)

// maxFileSize bounds a stage file read from a repository.
const maxFileSize = 1 << 20

// Source is a file of a branch of a git repository.
type Source struct {
	URL    string
	Branch string
	Path   string
	// Token, when set, is sent as the password of HTTP basic auth (the
	// way GitHub, GitLab and Gitea take access tokens).
	Token string
}

// Fetched is a file read from a repository.
type Fetched struct {
	Code    []byte
	Version string // the branch's commit sha
}

// FetchFunc reads a Source.
type FetchFunc func(ctx context.Context, src Source) (Fetched, error)

// GitFetch clones the branch shallowly (depth 1, that branch only, no
// working tree, in memory) and reads the file at Path of its head commit.
func GitFetch(ctx context.Context, src Source) (Fetched, error) {
	opts := &git.CloneOptions{
		URL:           src.URL,
		ReferenceName: plumbing.NewBranchReferenceName(src.Branch),
		SingleBranch:  true,
		Depth:         1,
		Tags:          git.NoTags,
		NoCheckout:    true,
	}
	if src.Token != "" {
		opts.Auth = &githttp.BasicAuth{Username: "kk", Password: src.Token}
	}
	repo, err := git.CloneContext(ctx, memory.NewStorage(), nil, opts)
	if err != nil {
		if errors.Is(err, plumbing.ErrReferenceNotFound) || strings.Contains(err.Error(), "couldn't find remote ref") {
			return Fetched{}, fmt.Errorf("clone %s: branch %q does not exist in the repository", Redact(src.URL), src.Branch)
		}
		return Fetched{}, fmt.Errorf("clone %s branch %s: %v", Redact(src.URL), src.Branch, redactErr(err, src.Token))
	}
	head, err := repo.Reference(plumbing.NewBranchReferenceName(src.Branch), true)
	if err != nil {
		// A depth-1 clone of one branch may only have HEAD.
		head, err = repo.Head()
		if err != nil {
			return Fetched{}, fmt.Errorf("clone %s: no head commit of branch %q: %v", Redact(src.URL), src.Branch, err)
		}
	}
	commit, err := repo.CommitObject(head.Hash())
	if err != nil {
		return Fetched{}, fmt.Errorf("read commit %s: %w", head.Hash(), err)
	}
	p := path.Clean(strings.TrimPrefix(src.Path, "/"))
	f, err := commit.File(p)
	if errors.Is(err, object.ErrFileNotFound) {
		return Fetched{}, fmt.Errorf("file %q does not exist in branch %s of %s at commit %s", p, src.Branch, Redact(src.URL), short(head.Hash().String()))
	}
	if err != nil {
		return Fetched{}, fmt.Errorf("read %q at commit %s: %w", p, short(head.Hash().String()), err)
	}
	if f.Size > maxFileSize {
		return Fetched{}, fmt.Errorf("file %q is %d bytes: a stage file may have at most %d", p, f.Size, maxFileSize)
	}
	r, err := f.Reader()
	if err != nil {
		return Fetched{}, fmt.Errorf("read %q: %w", p, err)
	}
	defer r.Close()
	code, err := io.ReadAll(r)
	if err != nil {
		return Fetched{}, fmt.Errorf("read %q: %w", p, err)
	}
	return Fetched{Code: code, Version: head.Hash().String()}, nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// Redact removes credentials from a URL for messages.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

func redactErr(err error, token string) string {
	msg := err.Error()
	if token != "" {
		msg = strings.ReplaceAll(msg, token, "***")
	}
	return msg
}

// NormalizeURL reduces a repository URL to host/path for comparison: no
// scheme, user, port, .git suffix or trailing slash, lower case; scp-like
// user@host:path becomes host/path and file:///p becomes /p.
func NormalizeURL(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		if at := strings.Index(s, "@"); at >= 0 {
			s = s[at+1:]
		}
		if !strings.HasPrefix(s, "/") {
			s = strings.Replace(s, ":", "/", 1)
		}
	} else if u, err := url.Parse(s); err == nil {
		s = u.Hostname() + u.Path
		if u.Scheme == "file" {
			s = u.Path
		}
	}
	s = strings.TrimSuffix(strings.TrimRight(s, "/"), ".git")
	return strings.ToLower(s)
}

// SameRepo tells whether two URLs name the same repository.
func SameRepo(a, b string) bool {
	na := NormalizeURL(a)
	return na != "" && na == NormalizeURL(b)
}

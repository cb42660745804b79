package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/stagerepo"
)

// repoFromSpec validates a stage's repository spec.
func repoFromSpec(spec api.StageRepoSpec) (ci.StageRepo, error) {
	repo := ci.StageRepo{URL: strings.TrimSpace(spec.URL), Branch: strings.TrimSpace(spec.Branch),
		Path: strings.TrimSpace(spec.Path), TokenSecret: strings.TrimSpace(spec.TokenSecret)}
	switch {
	case repo.URL == "":
		return repo, badRequest("repo url is empty: give the repository's clone URL (--repo URL)")
	case repo.Branch == "":
		return repo, badRequest("repo branch is empty: give the branch to read the stage from (--repo-branch BRANCH)")
	case repo.Path == "":
		return repo, badRequest("repo path is empty: give the stage file's path in the repository (--repo-path PATH)")
	case strings.Contains(repo.Path, ".."):
		return repo, badRequest("repo path %q must not contain \"..\": give a path inside the repository", repo.Path)
	}
	if spec.Refresh != "" && spec.Refresh != "0" {
		d, err := time.ParseDuration(spec.Refresh)
		if err != nil {
			return repo, badRequest("refresh interval %q: %v: give a duration such as 10m or 1h, or 0 for none", spec.Refresh, err)
		}
		if d < stagerepo.MinRefresh {
			return repo, badRequest("refresh interval %s is shorter than %s: give at least 1m, or 0 to refresh only on pushes and before runs", d, stagerepo.MinRefresh)
		}
		repo.RefreshSeconds = int64(d / time.Second)
	}
	return repo, nil
}

// putRepoStage creates or replaces a stage whose code lives in a git
// repository: the file is fetched and must evaluate now, or nothing changes.
func (s *Server) putRepoStage(w http.ResponseWriter, r *http.Request, b ci.Branch, name string, req api.PutStage) error {
	if s.cfg.StageRepos == nil {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "this kkd cannot load stages from repositories")
	}
	if strings.TrimSpace(req.Code) != "" {
		return badRequest("give either the stage code or a repository, not both")
	}
	repo, err := repoFromSpec(*req.Repo)
	if err != nil {
		return err
	}
	p, err := s.cfg.Store.GetProject(r.Context(), b.ProjectID)
	if err != nil {
		return err
	}
	got, err := s.cfg.StageRepos.Load(r.Context(), p, b, name, repo)
	var fe *stagerepo.FetchError
	if errors.As(err, &fe) {
		return badRequest("stage %s: %v", name, fe)
	}
	if err != nil {
		return schemaError("stage "+name+" ("+repo.Path+" at "+shortSHA(got.Version)+")", err)
	}
	if err := s.checkStageRefs(r, b, name, repo.Path, got.Stage); err != nil {
		return err
	}
	raw, err := json.Marshal(got.Stage)
	if err != nil {
		return err
	}
	enabled := true
	if req.Enabled != nil {
		enabled = *req.Enabled
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	repo.Version, repo.Refreshed = got.Version, &now
	stage := ci.Stage{BranchID: b.ID, Name: name, Enabled: enabled, Code: got.Code, Schema: raw, Parent: got.Stage.Parent, Repo: &repo}
	if err := s.cfg.Store.PutStage(r.Context(), &stage); err != nil {
		return err
	}
	s.cfg.Logger.Info("stage applied from repository", "branch_id", b.ID, "stage", name, "repo", stagerepo.Redact(repo.URL),
		"repo_branch", repo.Branch, "path", repo.Path, "version", repo.Version, "user", userFrom(r).Name)
	return writeJSON(w, http.StatusOK, stage)
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	if sha == "" {
		return "?"
	}
	return sha
}

// refreshStage fetches a repo-backed stage again.
func (s *Server) refreshStage(w http.ResponseWriter, r *http.Request) error {
	st, err := s.stageByID(r)
	if err != nil {
		return err
	}
	if st.Repo == nil {
		return badRequest("stage %s is not backed by a repository: apply it with --repo to load it from one", st.Name)
	}
	if s.cfg.StageRepos == nil {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "this kkd cannot load stages from repositories")
	}
	got, err := s.cfg.StageRepos.Refresh(r.Context(), st.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, got)
}

// refreshPushed refreshes the project's stages that come from the pushed
// repository branch, before the push's flow is created.
func (s *Server) refreshPushed(r *http.Request, p ci.Project, urls []string, branch string) {
	if s.cfg.StageRepos == nil {
		return
	}
	for _, st := range s.cfg.StageRepos.RefreshPush(r.Context(), p.ID, urls, branch) {
		s.cfg.Logger.Info("stage refreshed by a push", "stage", st.Name, "branch_id", st.BranchID,
			"version", st.Repo.Version, "error", st.Repo.Error)
	}
}

package server

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/ci"
)

// validName is what project, group and stage names may look like.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// validBranchName also allows '/', as in feature/x.
var validBranchName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$`)

// validEnvName is what a branch env variable may be called: a POSIX shell
// name, so it can be exported to every step as is.
var validEnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// dummyPasswordHash is checked against when the user does not exist, so that a
// login takes as long for an unknown user as for a wrong password and does not
// reveal which user names exist.
var dummyPasswordHash = sync.OnceValue(func() string {
	h, err := auth.HashPassword(auth.NewSecret(16))
	if err != nil {
		return ""
	}
	return h
})

func checkName(kind, name string) error {
	if !validName.MatchString(name) {
		return badRequest("%s name %q is invalid: use letters, digits, '.', '_' and '-' (up to 100 characters, starting with a letter or digit)", kind, name)
	}
	return nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req api.LoginRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	u, err := s.cfg.Store.GetUserByName(r.Context(), req.User)
	if err != nil && !errors.Is(err, ci.ErrNotFound) {
		return err
	}
	if err != nil {
		auth.CheckPassword(dummyPasswordHash(), req.Password)
		return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "wrong user name or password")
	}
	if !auth.CheckPassword(u.PasswordHash, req.Password) {
		return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "wrong user name or password")
	}
	tok := auth.NewToken("kkt")
	t := ci.Token{UserID: u.ID, Hash: auth.HashToken(tok), Name: "login from " + remoteIP(r)}
	if err := s.cfg.Store.CreateToken(r.Context(), &t); err != nil {
		return err
	}
	s.cfg.Logger.Info("user logged in", "user", u.Name, "remote", remoteIP(r))
	return writeJSON(w, http.StatusOK, api.LoginResponse{Token: tok, User: api.User{ID: u.ID, Name: u.Name, Admin: u.Admin}})
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r)
	return writeJSON(w, http.StatusOK, api.User{ID: u.ID, Name: u.Name, Admin: u.Admin})
}

// project resolves {p}: an id or a name.
func (s *Server) project(r *http.Request) (ci.Project, error) {
	ref := r.PathValue("p")
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		p, err := s.cfg.Store.GetProject(r.Context(), id)
		if err == nil || !errors.Is(err, ci.ErrNotFound) {
			return p, err
		}
	}
	p, err := s.cfg.Store.GetProjectByName(r.Context(), ref)
	if errors.Is(err, ci.ErrNotFound) {
		return p, notFoundf("project %q does not exist: see `kk project list`", ref)
	}
	return p, err
}

// branch resolves {p}/{b}.
func (s *Server) branch(r *http.Request) (ci.Project, ci.Branch, error) {
	p, err := s.project(r)
	if err != nil {
		return p, ci.Branch{}, err
	}
	ref := r.PathValue("b")
	b, err := s.cfg.Store.GetBranchByName(r.Context(), p.ID, ref)
	if errors.Is(err, ci.ErrNotFound) {
		if id, perr := strconv.ParseInt(ref, 10, 64); perr == nil {
			if b, err = s.cfg.Store.GetBranch(r.Context(), id); err == nil && b.ProjectID == p.ID {
				return p, b, nil
			}
		}
		return p, b, notFoundf("branch %q does not exist in project %q: see `kk branch list %s`", ref, p.Name, p.Name)
	}
	return p, b, err
}

// branchByID resolves {id} as a branch id.
func (s *Server) branchByID(r *http.Request) (ci.Branch, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return ci.Branch{}, err
	}
	b, err := s.cfg.Store.GetBranch(r.Context(), id)
	if errors.Is(err, ci.ErrNotFound) {
		return b, notFoundf("branch %d does not exist", id)
	}
	return b, err
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.cfg.Store.ListProjects(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, nonNil(ps))
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateProject
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkName("project", req.Name); err != nil {
		return err
	}
	p := ci.Project{Name: req.Name, Description: req.Description}
	if err := s.cfg.Store.CreateProject(r.Context(), &p); err != nil {
		if errors.Is(err, ci.ErrConflict) {
			return conflictf("project %q already exists", req.Name)
		}
		return err
	}
	s.cfg.Logger.Info("project created", "project", p.Name, "user", userFrom(r).Name)
	return writeJSON(w, http.StatusCreated, p)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteProject(r.Context(), p.ID); err != nil {
		return err
	}
	s.cfg.Logger.Info("project deleted", "project", p.Name, "user", userFrom(r).Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listBranches(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	bs, err := s.cfg.Store.ListBranches(r.Context(), p.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, nonNil(bs))
}

func (s *Server) createBranch(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	var req api.CreateBranch
	if err := decode(r, &req); err != nil {
		return err
	}
	if !validBranchName.MatchString(req.Name) {
		return badRequest("branch name %q is invalid: use letters, digits, '.', '_', '-' and '/' (up to 200 characters)", req.Name)
	}
	// Both end up in the environment of every step; a NUL byte cannot.
	if strings.ContainsRune(req.RepoBranch, 0) {
		return badRequest("repo_branch %q contains a NUL byte", req.RepoBranch)
	}
	for k, v := range req.Env {
		if !validEnvName.MatchString(k) {
			return badRequest("env variable name %q is invalid: use letters, digits and '_', not starting with a digit", k)
		}
		if strings.ContainsRune(v, 0) {
			return badRequest("env variable %s contains a NUL byte", k)
		}
	}
	if req.RepoBranch == "" {
		req.RepoBranch = req.Name
	}
	b := ci.Branch{ProjectID: p.ID, Name: req.Name, RepoBranch: req.RepoBranch, Env: req.Env}
	if err := s.cfg.Store.CreateBranch(r.Context(), &b); err != nil {
		if errors.Is(err, ci.ErrConflict) {
			return conflictf("branch %q already exists in project %q", req.Name, p.Name)
		}
		return err
	}
	return writeJSON(w, http.StatusCreated, b)
}

func (s *Server) getBranch(w http.ResponseWriter, r *http.Request) error {
	_, b, err := s.branch(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

func (s *Server) deleteBranch(w http.ResponseWriter, r *http.Request) error {
	_, b, err := s.branch(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteBranch(r.Context(), b.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// nonNil makes JSON lists [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/schema"
)

// schemaError turns evaluation problems into a 400 invalid_schema error.
func schemaError(what string, err error) error {
	var ps schema.Problems
	if !errors.As(err, &ps) {
		return err
	}
	plural := "s"
	if len(ps) == 1 {
		plural = ""
	}
	ae := api.Errorf(http.StatusBadRequest, api.CodeInvalidSchema, "%s is invalid (%d problem%s)", what, len(ps), plural)
	for _, p := range ps {
		ae.Details = append(ae.Details, api.ErrorDetail{File: p.File, Line: p.Line, Col: p.Col, Key: p.Key, Message: p.Message})
	}
	return ae
}

func (s *Server) listStages(w http.ResponseWriter, r *http.Request) error {
	b, err := s.branchByID(r)
	if err != nil {
		return err
	}
	st, err := s.cfg.Store.ListStages(r.Context(), b.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, nonNil(st))
}

func (s *Server) putStage(w http.ResponseWriter, r *http.Request) error {
	b, err := s.branchByID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := checkName("stage", name); err != nil {
		return err
	}
	if name == "root" {
		// "root" as a parent means "no parent": a stage of that name could
		// never be anyone's parent.
		return badRequest("stage name %q is reserved (a parent of \"root\" means a stage has no parent): choose another name", name)
	}
	var req api.PutStage
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Repo != nil {
		return s.putRepoStage(w, r, b, name, req)
	}
	if strings.TrimSpace(req.Code) == "" {
		return badRequest("stage code is empty: send the schema code (def stage(ctx): return {...})")
	}
	p, err := s.cfg.Store.GetProject(r.Context(), b.ProjectID)
	if err != nil {
		return err
	}
	file := req.Filename
	if file == "" {
		file = name + ".py"
	}
	c := schema.Context{IsCI: true, Project: p.Name, Branch: b.Name, BranchName: b.RepoBranch, Env: b.Env, Stage: name,
		Secrets: s.cfg.Engine.SecretRefs(r.Context(), p.ID, req.Code)}
	st, err := s.cfg.Engine.EvalStage(r.Context(), file, []byte(req.Code), c)
	if err != nil {
		return schemaError("stage "+name, err)
	}
	if err := s.checkStageRefs(r, b, name, file, st); err != nil {
		return err
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	enabled := true
	if req.Enabled != nil {
		enabled = *req.Enabled
	}
	stage := ci.Stage{BranchID: b.ID, Name: name, Enabled: enabled, Code: req.Code, Schema: raw, Parent: st.Parent}
	if err := s.cfg.Store.PutStage(r.Context(), &stage); err != nil {
		return err
	}
	s.cfg.Logger.Info("stage applied", "branch_id", b.ID, "stage", name, "user", userFrom(r).Name)
	return writeJSON(w, http.StatusOK, stage)
}

// checkStageRefs checks what only the server knows: the parent stage and the
// agents groups exist (Kraken's extra checks).
func (s *Server) checkStageRefs(r *http.Request, b ci.Branch, name, file string, st *schema.Stage) error {
	var ps schema.Problems
	if st.Parent != "root" {
		if st.Parent == name {
			ps = append(ps, schema.Problem{File: file, Key: "parent", Message: "a stage cannot be its own parent"})
		} else if _, err := s.cfg.Store.GetStageByName(r.Context(), b.ID, st.Parent); errors.Is(err, ci.ErrNotFound) {
			ps = append(ps, schema.Problem{File: file, Key: "parent", Message: "parent stage \"" + st.Parent + "\" does not exist in branch " + b.Name + ": apply it first, or use \"root\""})
		} else if err != nil {
			return err
		} else if chain, err := s.parentCycle(r, b, name, st.Parent); err != nil {
			return err
		} else if chain != "" {
			ps = append(ps, schema.Problem{File: file, Key: "parent", Message: "parent \"" + st.Parent + "\" makes a cycle (" + chain + "): no stage of it could ever run"})
		}
	}
	seen := map[string]bool{}
	for i, j := range st.Jobs {
		for k, env := range j.Environments {
			g := env.AgentsGroup
			if g == ci.GroupAll || strings.Contains(g, "#{") || seen[g] {
				continue
			}
			seen[g] = true
			if _, err := s.cfg.Store.GetGroupByName(r.Context(), g); errors.Is(err, ci.ErrNotFound) {
				ps = append(ps, schema.Problem{File: file, Key: keyPath(i, k), Message: "agents group \"" + g + "\" does not exist: create it with `kk group create " + g + "`"})
			} else if err != nil {
				return err
			}
		}
	}
	if len(ps) > 0 {
		return schemaError("stage "+name, ps)
	}
	return nil
}

// parentCycle follows the stored parents from parent upwards and returns the
// chain when it comes back to stage name (which would get parent as its parent).
func (s *Server) parentCycle(r *http.Request, b ci.Branch, name, parent string) (string, error) {
	chain := []string{name, parent}
	seen := map[string]bool{name: true}
	for cur := parent; cur != "root" && !seen[cur]; {
		seen[cur] = true
		st, err := s.cfg.Store.GetStageByName(r.Context(), b.ID, cur)
		if errors.Is(err, ci.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		cur = st.Parent
		chain = append(chain, cur)
		if cur == name {
			return strings.Join(chain, " -> "), nil
		}
	}
	return "", nil
}

func keyPath(job, env int) string {
	return fmt.Sprintf("jobs[%d].environments[%d].agents_group", job, env)
}

func (s *Server) stageByID(r *http.Request) (ci.Stage, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return ci.Stage{}, err
	}
	st, err := s.cfg.Store.GetStage(r.Context(), id)
	if errors.Is(err, ci.ErrNotFound) {
		return st, notFoundf("stage %d does not exist", id)
	}
	return st, err
}

func (s *Server) getStage(w http.ResponseWriter, r *http.Request) error {
	st, err := s.stageByID(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) deleteStage(w http.ResponseWriter, r *http.Request) error {
	st, err := s.stageByID(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteStage(r.Context(), st.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) schemaCheck(w http.ResponseWriter, r *http.Request) error {
	var req api.SchemaCheck
	if err := decode(r, &req); err != nil {
		return err
	}
	file := req.Filename
	if file == "" {
		file = "stage.py"
	}
	c := schema.Context{IsCI: !req.Dev, Args: req.Args}
	st, err := s.cfg.Engine.EvalStage(r.Context(), file, []byte(req.Code), c)
	if err != nil {
		return schemaError(file, err)
	}
	return writeJSON(w, http.StatusOK, st)
}

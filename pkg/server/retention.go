package server

import (
	"net/http"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// maxKeepDays bounds a retention setting (about 100 years).
const maxKeepDays = 36500

// putBranchRetention stores a branch's retention settings (days; 0: the
// default).
func (s *Server) putBranchRetention(w http.ResponseWriter, r *http.Request) error {
	_, b, err := s.branch(r)
	if err != nil {
		return err
	}
	var req ci.Retention
	if err := decode(r, &req); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		days int
	}{{"keep_flows_days", req.KeepFlowsDays}, {"keep_logs_days", req.KeepLogsDays}, {"keep_artifacts_days", req.KeepArtifactsDays}} {
		if f.days < 0 || f.days > maxKeepDays {
			return badRequest("%s is %d: give a number of days from 1 to %d, or 0 for the default", f.name, f.days, maxKeepDays)
		}
	}
	got, err := s.cfg.Store.SetBranchRetention(r.Context(), b.ID, req)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("branch retention set", "branch_id", b.ID, "retention", got.Retention, "user", userFrom(r).Name)
	return writeJSON(w, http.StatusOK, got)
}

// runRetention applies retention now (admins only) and reports what it deleted.
func (s *Server) runRetention(w http.ResponseWriter, r *http.Request) error {
	if !userFrom(r).Admin {
		return api.Errorf(http.StatusForbidden, api.CodeForbidden, "only an admin can run retention")
	}
	if s.cfg.Retention == nil {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "this kkd has no blob store, so it cannot run retention")
	}
	rep, err := s.cfg.Retention.Run(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

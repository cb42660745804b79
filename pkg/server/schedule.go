package server

import (
	"net/http"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/planner"
)

// schedule lists the time and repo triggers of a branch's stages with their
// last and next fire times (from the planner's stored states).
func (s *Server) schedule(w http.ResponseWriter, r *http.Request) error {
	b, err := s.branchByID(r)
	if err != nil {
		return err
	}
	stages, err := s.cfg.Store.ListStages(r.Context(), b.ID)
	if err != nil {
		return err
	}
	states, err := s.cfg.Store.ListTriggerStates(r.Context(), b.ID)
	if err != nil {
		return err
	}
	out := []api.ScheduleEntry{}
	for _, e := range planner.Schedule(stages, states, time.Now().UTC()) {
		out = append(out, api.ScheduleEntry{StageID: e.StageID, Stage: e.Stage, Enabled: e.Enabled, Trigger: e.Kind,
			Rule: e.Rule, LastFired: timePtr(e.LastFired), LastPoll: timePtr(e.LastPoll),
			Next: timePtr(e.Next), Note: e.Note})
	}
	return writeJSON(w, http.StatusOK, out)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

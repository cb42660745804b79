package server

import (
	"net/http"
	"time"
)

// healthz answers 200 {"status":"ok","database":"ok"} while the database is
// reachable and 503 {"status":"database unreachable",...} during an outage,
// with the error and since when, so a load balancer routes around this kkd.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	st := s.cfg.Health.State()
	if st.Up {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "database": "ok", "version": s.cfg.Version})
	}
	body := map[string]string{
		"status":   "database unreachable",
		"database": "unreachable",
		"since":    st.Since.UTC().Format(time.RFC3339),
		"version":  s.cfg.Version,
	}
	if st.Err != nil {
		body["error"] = st.Err.Error()
	}
	return writeJSON(w, http.StatusServiceUnavailable, body)
}

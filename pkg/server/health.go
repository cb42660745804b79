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
		body := map[string]string{"status": "ok", "database": "ok", "version": s.cfg.Version}
		if s.cfg.PublicURL != "" {
			body["public_url"] = s.cfg.PublicURL
		}
		return writeJSON(w, http.StatusOK, body)
	}
	body := map[string]string{
		"status":   "database unreachable",
		"database": "unreachable",
		"since":    st.Since.UTC().Format(time.RFC3339),
		"version":  s.cfg.Version,
	}
	if s.cfg.PublicURL != "" {
		body["public_url"] = s.cfg.PublicURL
	}
	if st.Err != nil {
		body["error"] = st.Err.Error()
	}
	return writeJSON(w, http.StatusServiceUnavailable, body)
}

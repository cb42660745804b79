// Package server is kkd's HTTP layer: thin handlers that decode requests,
// authenticate, call the store or the engine, and encode responses. Every error
// is a JSON envelope (pkg/api.ErrorBody); see pkg/api for the route table.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/agentdist"
	"github.com/kraken-go/kk/pkg/agentinstall"
	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/dbhealth"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/retention"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/stagerepo"
	"github.com/kraken-go/kk/pkg/store"
)

// Config of a Server.
type Config struct {
	Store      store.Store
	Engine     *engine.Engine
	Dispatcher *scheduler.Dispatcher
	Logs       *logs.Service
	Blobs      blob.Store // artifacts and caches (nil: their routes answer 503)
	Hub        *notify.Hub
	Logger     *slog.Logger
	Version    string
	// PublicURL is kkd's address as users and forges reach it (kkd
	// --public-url); shown by /healthz and the webhook setup.
	PublicURL string
	// RegistrationKeys let agents enrol without manual authorization.
	RegistrationKeys []string
	// AgentBinaries says where the kkagent binaries served under /install/ are.
	AgentBinaries agentdist.Config
	// StartedAt is when this kkd process started (agents not seen since are "missing").
	StartedAt time.Time
	// MaxWait caps long-poll waits (default 30 s).
	MaxWait time.Duration
	Now     func() time.Time
	// Secrets seals and opens project secrets; nil: secrets cannot be stored.
	Secrets *secrets.Cipher
	// Health tracks database outages: /healthz reports them and requests
	// that run into one (503 unavailable) report it instead of logging an
	// error each. Nil: the database is taken to be always reachable.
	Health *dbhealth.Monitor
	// StageRepos loads stages from git repositories (nil: `kk stage apply
	// --repo` answers 503).
	StageRepos *stagerepo.Loader
	// Retention runs the retention on demand (nil: its route answers 503).
	Retention *retention.Enforcer
}

// Server serves the API.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	presence presence
	creds    *credCache
}

// Limits on request bodies.
const (
	maxJSONBody = 8 << 20 // stage code can be large
	maxLogChunk = 8 << 20
)

// New builds the server and its routes.
func New(cfg Config) *Server {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StartedAt.IsZero() {
		cfg.StartedAt = cfg.Now()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	var revoked <-chan struct{}
	if cfg.Hub != nil {
		// Never unsubscribed: the subscription lives as long as the server.
		revoked, _ = cfg.Hub.Subscribe(CredentialsKey)
	}
	s.creds = newCredCache(cfg.Now, revoked)
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type ctxKey int

const (
	userKey ctxKey = iota
	agentKey
)

// handlerFunc is a handler that returns an error rendered as the JSON envelope.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) routes() {
	p := api.Prefix
	pub := func(pattern string, h handlerFunc) { s.mux.Handle(pattern, s.wrap(h)) }
	user := func(pattern string, h handlerFunc) { s.mux.Handle(pattern, s.wrap(s.requireUser(h))) }
	agent := func(pattern string, h handlerFunc) { s.mux.Handle(pattern, s.wrap(s.requireAgent(h, true))) }
	// agentFresh is for handlers that use the agent's state (current job,
	// disabled), which the credential cache does not keep.
	agentFresh := func(pattern string, h handlerFunc) { s.mux.Handle(pattern, s.wrap(s.requireAgent(h, false))) }

	pub("POST "+p+"/login", s.login)
	user("GET "+p+"/whoami", s.whoami)

	user("GET "+p+"/projects", s.listProjects)
	user("POST "+p+"/projects", s.createProject)
	user("GET "+p+"/projects/{p}", s.getProject)
	user("DELETE "+p+"/projects/{p}", s.deleteProject)
	user("GET "+p+"/projects/{p}/branches", s.listBranches)
	user("POST "+p+"/projects/{p}/branches", s.createBranch)
	user("GET "+p+"/projects/{p}/branches/{b}", s.getBranch)
	user("DELETE "+p+"/projects/{p}/branches/{b}", s.deleteBranch)

	user("GET "+p+"/projects/{p}/secrets", s.listSecrets)
	user("POST "+p+"/projects/{p}/secrets", s.createSecret)
	user("PUT "+p+"/projects/{p}/secrets/{name}", s.putSecret)
	user("DELETE "+p+"/projects/{p}/secrets/{name}", s.deleteSecret)

	user("GET "+p+"/branches/{id}/stages", s.listStages)
	user("PUT "+p+"/branches/{id}/stages/{name}", s.putStage)
	user("GET "+p+"/stages/{id}", s.getStage)
	user("DELETE "+p+"/stages/{id}", s.deleteStage)
	user("GET "+p+"/branches/{id}/schedule", s.schedule)
	user("POST "+p+"/stages/{id}/refresh", s.refreshStage)
	user("PUT "+p+"/projects/{p}/branches/{b}/retention", s.putBranchRetention)
	user("POST "+p+"/admin/retention", s.runRetention)
	user("POST "+p+"/schema/check", s.schemaCheck)

	user("POST "+p+"/branches/{id}/flows", s.createFlow)
	user("GET "+p+"/branches/{id}/flows", s.listFlows)
	user("GET "+p+"/flows/{id}", s.getFlow)
	user("GET "+p+"/runs/{id}", s.getRun)
	user("POST "+p+"/runs/{id}/start", s.startRun)
	user("POST "+p+"/runs/{id}/cancel", s.cancelRun)
	user("POST "+p+"/runs/{id}/rerun", s.rerunRun)
	user("GET "+p+"/jobs/{id}", s.getJob)
	user("POST "+p+"/jobs/{id}/cancel", s.cancelJob)
	user("POST "+p+"/jobs/{id}/rerun", s.rerunJob)
	user("GET "+p+"/jobs/{id}/logs", s.jobLogs)

	user("GET "+p+"/agents", s.listAgents)
	user("GET "+p+"/agents/{a}", s.getAgent)
	user("POST "+p+"/agents/{a}/authorize", s.authorizeAgent)
	user("POST "+p+"/agents/{a}/enable", s.enableAgent)
	user("POST "+p+"/agents/{a}/disable", s.disableAgent)
	user("DELETE "+p+"/agents/{a}", s.deleteAgent)
	user("POST "+p+"/agents/{a}/rotate-token", s.rotateAgentToken)
	user("GET "+p+"/groups", s.listGroups)
	user("POST "+p+"/groups", s.createGroup)
	user("DELETE "+p+"/groups/{g}", s.deleteGroup)
	user("PUT "+p+"/groups/{g}/agents/{a}", s.addGroupAgent)
	user("DELETE "+p+"/groups/{g}/agents/{a}", s.removeGroupAgent)

	pub("POST "+p+"/agent/register", s.agentRegister)
	agentFresh("POST "+p+"/agent/work", s.agentWork)
	agent("POST "+p+"/agent/jobs/{id}/start", s.agentStart)
	agent("POST "+p+"/agent/jobs/{id}/heartbeat", s.agentHeartbeat)
	agent("POST "+p+"/agent/jobs/{id}/steps/{idx}/logs", s.agentLogs)
	agent("POST "+p+"/agent/jobs/{id}/steps/{idx}", s.agentStep)
	agent("POST "+p+"/agent/jobs/{id}/complete", s.agentComplete)
	s.artifactRoutes(p, pub, user, agent)
	agent("POST "+p+"/agent/jobs/{id}/results", s.agentResults)
	agent("POST "+p+"/agent/jobs/{id}/data", s.agentData)
	user("GET "+p+"/runs/{id}/results", s.listRunResults)
	user("GET "+p+"/runs/{id}/issues", s.listRunIssues)
	user("GET "+p+"/branches/{id}/tests/history", s.testHistory)
	user("GET "+p+"/flows/{id}/data", s.flowData)
	user("GET "+p+"/branches/{id}/data", s.branchData)
	user("GET "+p+"/projects/{p}/data", s.projectData)
	s.webhookRoutes(user, pub)

	// Agent distribution: public, binaries and the install script are no secrets.
	bins := agentdist.NewHandler(s.cfg.AgentBinaries)
	s.mux.Handle("GET "+agentdist.BinaryRoute, bins)
	s.mux.Handle("GET "+agentdist.SHA256Route, bins)
	s.mux.Handle("GET /install/kraken-agent-install.sh", agentinstall.ScriptHandler(nil))

	pub("GET /healthz", s.healthz)
	pub("/", func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(http.StatusNotFound, api.CodeNotFound, "no route %s %s: see the API routes in docs/api.md", r.Method, r.URL.Path)
	})
}

func (s *Server) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			// A bug in a handler must still answer with the JSON envelope,
			// not a dropped connection. http.ErrAbortHandler keeps its meaning.
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Logger.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				s.writeError(w, r, fmt.Errorf("handler panic: %v", v))
			}
		}()
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The request's context ended under the handler: the client hung up
		// (nobody reads this) or kkd is shutting down, which a client should
		// retry rather than report as an internal error.
		err = api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the request was interrupted (kkd is shutting down or the client went away): retry it")
	}
	ae := api.FromError(err)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) && s.cfg.Health.Report(err) {
		// A database outage: the monitor logs it once, not per request.
		s.cfg.Logger.Debug("request failed: database unreachable", "method", r.Method, "path", r.URL.Path, "err", err)
	} else if ae.Status >= 500 {
		s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	_ = writeJSON(w, ae.Status, api.ErrorBody{Error: *ae})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	return enc.Encode(v)
}

// decode reads a JSON body strictly: unknown fields and trailing data are errors.
func decode(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, maxJSONBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "request body is empty: send a JSON object")
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "request body is larger than %d bytes", maxJSONBody)
		}
		return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "malformed JSON body: %v", err)
	}
	// Anything but white space after the object is an error. dec.More alone
	// misses a stray '}' or ']', which it reports as "no more elements".
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "malformed JSON body: unexpected data after the JSON object")
	}
	return nil
}

// decodeOptional decodes a body that may be empty.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := decode(r, v)
	var ae *api.Error
	if errors.As(err, &ae) && strings.HasPrefix(ae.Message, "request body is empty") {
		return nil
	}
	return err
}

func badRequest(format string, args ...any) error {
	return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, format, args...)
}

func pathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("%s %q in the path is not a valid id: use a positive number", name, v)
	}
	return id, nil
}

// waitParam reads ?wait=SECONDS, capped at MaxWait.
func (s *Server) waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseFloat(v, 64)
	// NaN fails every comparison and ±Inf or huge values overflow a Duration:
	// both are rejected or capped before the conversion.
	if err != nil || math.IsNaN(n) || n < 0 {
		return 0, badRequest("wait=%q: give a number of seconds", v)
	}
	if n >= s.cfg.MaxWait.Seconds() {
		return s.cfg.MaxWait, nil
	}
	return time.Duration(n * float64(time.Second)), nil
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

func (s *Server) requireUser(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok := bearer(r)
		if tok == "" {
			return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "missing API token: log in with `kk login --server URL --user NAME --password-stdin` or pass --token / KK_TOKEN")
		}
		_, u, err := s.cfg.Store.GetToken(r.Context(), auth.HashToken(tok), s.cfg.Now())
		if err != nil {
			if errors.Is(err, ci.ErrNotFound) {
				return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid API token: log in again with `kk login`")
			}
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), userKey, u)))
	}
}

// requireAgent authenticates the agent by its credential. With cached, an
// agent verified less than credTTL ago is not read again and the handler gets
// only its identity (ID, UUID, name); see credCache.
func (s *Server) requireAgent(h handlerFunc, cached bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok := bearer(r)
		if tok == "" {
			return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "missing agent credential: register first")
		}
		hash := auth.HashToken(tok)
		if cached {
			if a, ok := s.creds.get(hash); ok {
				return h(w, r.WithContext(context.WithValue(r.Context(), agentKey, a)))
			}
		}
		gen := s.creds.generation()
		a, err := s.cfg.Store.GetAgentByCredential(r.Context(), hash)
		if err != nil {
			if errors.Is(err, ci.ErrNotFound) {
				return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid agent credential: register again")
			}
			return err
		}
		if !a.Authorized {
			return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "agent %s is not authorized", a.Name)
		}
		s.creds.put(hash, a, gen)
		return h(w, r.WithContext(context.WithValue(r.Context(), agentKey, a)))
	}
}

func userFrom(r *http.Request) ci.User   { u, _ := r.Context().Value(userKey).(ci.User); return u }
func agentFrom(r *http.Request) ci.Agent { a, _ := r.Context().Value(agentKey).(ci.Agent); return a }

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// notFoundf is a 404 error whose message says what was missing and how to find it.
func notFoundf(format string, args ...any) error {
	return api.Errorf(http.StatusNotFound, api.CodeNotFound, format, args...)
}

// conflictf is a 409 error.
func conflictf(format string, args ...any) error {
	return api.Errorf(http.StatusConflict, api.CodeConflict, format, args...)
}

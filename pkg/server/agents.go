package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// AuthKey is the hub key signalled when an agent's authorization changes.
func AuthKey(agentID int64) string { return fmt.Sprintf("agent-auth:%d", agentID) }

// agentView renders an agent with its derived state.
func (s *Server) agentView(ctx context.Context, a ci.Agent) api.Agent {
	var job *ci.Job
	if a.JobID != 0 {
		if j, err := s.cfg.Store.GetJob(ctx, a.JobID); err == nil {
			job = &j
		}
	}
	state, seen := s.agentState(a, job)
	groups := a.Groups
	if groups == nil {
		groups = []string{}
	}
	return api.Agent{
		ID: a.ID, Name: a.Name, UUID: a.UUID, State: state,
		Address: a.Address, Authorized: a.Authorized, Disabled: a.Disabled, Groups: groups,
		HostInfo: a.HostInfo, Executors: a.HostInfo.Executors(), JobID: a.JobID,
		LastSeen: seen, Created: a.Created,
	}
}

// agent resolves {a}: an id or a name.
func (s *Server) agent(ctx context.Context, ref string) (ci.Agent, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		a, err := s.cfg.Store.GetAgent(ctx, id)
		if err == nil || !errors.Is(err, ci.ErrNotFound) {
			return a, err
		}
	}
	a, err := s.cfg.Store.GetAgentByName(ctx, ref)
	if errors.Is(err, ci.ErrNotFound) {
		return a, notFoundf("agent %q does not exist: see `kk agent list` (and `kk agent list --discovered`)", ref)
	}
	return a, err
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	var opts store.ListAgentsOpts
	switch v := r.URL.Query().Get("discovered"); v {
	case "":
	case "1", "true":
		f := false
		opts.Authorized = &f
	case "0", "false":
		t := true
		opts.Authorized = &t
	default:
		return badRequest("discovered=%q: use true or false", v)
	}
	as, err := s.cfg.Store.ListAgents(r.Context(), opts)
	if err != nil {
		return err
	}
	out := make([]api.Agent, 0, len(as))
	for _, a := range as {
		out = append(out, s.agentView(r.Context(), a))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	a, err := s.agent(r.Context(), r.PathValue("a"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.agentView(r.Context(), a))
}

// groupsByName resolves group names, failing on the first missing one.
func (s *Server) groupsByName(ctx context.Context, names []string) ([]ci.Group, error) {
	var gs []ci.Group
	for _, n := range names {
		g, err := s.cfg.Store.GetGroupByName(ctx, n)
		if errors.Is(err, ci.ErrNotFound) {
			return nil, notFoundf("group %q does not exist: create it with `kk group create %s`", n, n)
		}
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// authorize marks the agent authorized and puts it in group all and groups.
func (s *Server) authorize(ctx context.Context, a ci.Agent, groups []ci.Group) (ci.Agent, error) {
	all, err := s.cfg.Store.GetGroupByName(ctx, ci.GroupAll)
	if err != nil {
		return a, fmt.Errorf("get group all: %w", err)
	}
	for _, g := range append([]ci.Group{all}, groups...) {
		if err := s.cfg.Store.AddAgentToGroup(ctx, g.ID, a.ID); err != nil {
			return a, fmt.Errorf("add agent %s to group %s: %w", a.Name, g.Name, err)
		}
	}
	t := true
	a, err = s.cfg.Store.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: &t})
	if err != nil {
		return a, err
	}
	s.cfg.Hub.Publish(AuthKey(a.ID))
	s.cfg.Dispatcher.Refresh(a)
	return a, nil
}

func (s *Server) authorizeAgent(w http.ResponseWriter, r *http.Request) error {
	a, err := s.agent(r.Context(), r.PathValue("a"))
	if err != nil {
		return err
	}
	var req api.AuthorizeAgent
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	gs, err := s.groupsByName(r.Context(), req.Groups)
	if err != nil {
		return err
	}
	a, err = s.authorize(r.Context(), a, gs)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("agent authorized", "agent_id", a.ID, "agent", a.Name, "groups", a.Groups, "user", userFrom(r).Name)
	return writeJSON(w, http.StatusOK, s.agentView(r.Context(), a))
}

func (s *Server) setDisabled(w http.ResponseWriter, r *http.Request, disabled bool) error {
	a, err := s.agent(r.Context(), r.PathValue("a"))
	if err != nil {
		return err
	}
	a, err = s.cfg.Store.UpdateAgent(r.Context(), a.ID, store.AgentUpdate{Disabled: &disabled})
	if err != nil {
		return err
	}
	s.revokeCreds()
	s.cfg.Dispatcher.Refresh(a)
	s.cfg.Logger.Info("agent updated", "agent_id", a.ID, "agent", a.Name, "disabled", disabled, "user", userFrom(r).Name)
	return writeJSON(w, http.StatusOK, s.agentView(r.Context(), a))
}

func (s *Server) enableAgent(w http.ResponseWriter, r *http.Request) error {
	return s.setDisabled(w, r, false)
}

func (s *Server) disableAgent(w http.ResponseWriter, r *http.Request) error {
	return s.setDisabled(w, r, true)
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	a, err := s.agent(ctx, r.PathValue("a"))
	if err != nil {
		return err
	}
	force := false
	switch v := r.URL.Query().Get("force"); v {
	case "", "0", "false":
	case "1", "true":
		force = true
	default:
		return badRequest("force=%q: use true or false", v)
	}
	if force && a.JobID != 0 {
		if a, err = s.cancelAgentJob(ctx, a); err != nil {
			return err
		}
	}
	if err := s.cfg.Store.DeleteAgent(ctx, a.ID); err != nil {
		if errors.Is(err, ci.ErrConflict) {
			cur, _ := s.cfg.Store.GetAgent(ctx, a.ID)
			return conflictf("agent %s is running job %d: wait for it, cancel it (`kk job cancel %d`) or delete the agent with --force, which cancels the job", a.Name, cur.JobID, cur.JobID)
		}
		return err
	}
	s.revokeCreds()
	a.Authorized = false
	s.cfg.Dispatcher.Refresh(a)
	s.cfg.Logger.Info("agent deleted", "agent_id", a.ID, "agent", a.Name, "force", force, "user", userFrom(r).Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// cancelAgentJob frees an agent that is about to be deleted: it is disabled
// first (so no new job is claimed for it meanwhile), then its current job is
// completed cancelled. The agent learns it on its heartbeat, as for any cancel.
func (s *Server) cancelAgentJob(ctx context.Context, a ci.Agent) (ci.Agent, error) {
	yes := true
	a, err := s.cfg.Store.UpdateAgent(ctx, a.ID, store.AgentUpdate{Disabled: &yes})
	if err != nil {
		return a, err
	}
	s.cfg.Dispatcher.Refresh(a)
	if a.JobID == 0 {
		return a, nil
	}
	j, err := s.cfg.Store.GetJob(ctx, a.JobID)
	if err != nil {
		return a, err
	}
	msg := fmt.Sprintf("cancelled: its agent %s was deleted (kk agent delete --force)", a.Name)
	if _, err := s.cfg.Engine.CompleteJob(ctx, j.ID, j.Attempt, ci.JobCancelled, msg); err != nil && !errors.Is(err, ci.ErrStaleAttempt) {
		return a, err
	}
	s.cfg.Logger.Warn("job cancelled: its agent is being deleted", "job_id", j.ID, "attempt", j.Attempt, "agent_id", a.ID, "agent", a.Name)
	return s.cfg.Store.GetAgent(ctx, a.ID)
}

// rotateAgentToken revokes the agent's credential. The agent's next call is
// refused with 401; the agent then registers again with its enroll secret
// and receives a new credential. Its held work poll ends at once, so no job
// is handed out on the revoked credential.
func (s *Server) rotateAgentToken(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	a, err := s.agent(ctx, r.PathValue("a"))
	if err != nil {
		return err
	}
	if !a.Authorized {
		return conflictf("agent %s is not authorized, so it has no credential to rotate: authorize it with `kk agent authorize %s`", a.Name, a.Name)
	}
	if err := s.cfg.Store.SetAgentCredential(ctx, a.ID, ""); err != nil {
		return err
	}
	s.revokeCreds()
	revoked := a
	revoked.Authorized = false // ends its held work poll; its next poll gets 401
	s.cfg.Dispatcher.Refresh(revoked)
	s.cfg.Logger.Info("agent credential revoked for rotation", "agent_id", a.ID, "agent", a.Name, "user", userFrom(r).Name)
	return writeJSON(w, http.StatusOK, s.agentView(ctx, a))
}

func (s *Server) groupView(ctx context.Context, g ci.Group) (api.Group, error) {
	as, err := s.cfg.Store.ListGroupAgents(ctx, g.ID)
	if err != nil {
		return api.Group{}, err
	}
	v := api.Group{ID: g.ID, Name: g.Name, Agents: []string{}}
	for _, a := range as {
		v.Agents = append(v.Agents, a.Name)
	}
	sort.Strings(v.Agents)
	return v, nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.cfg.Store.ListGroups(r.Context())
	if err != nil {
		return err
	}
	out := make([]api.Group, 0, len(gs))
	for _, g := range gs {
		v, err := s.groupView(r.Context(), g)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateGroup
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkName("group", req.Name); err != nil {
		return err
	}
	g := ci.Group{Name: req.Name}
	if err := s.cfg.Store.CreateGroup(r.Context(), &g); err != nil {
		if errors.Is(err, ci.ErrConflict) {
			return conflictf("group %q already exists", req.Name)
		}
		return err
	}
	return writeJSON(w, http.StatusCreated, api.Group{ID: g.ID, Name: g.Name, Agents: []string{}})
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.groupsByName(r.Context(), []string{r.PathValue("g")})
	if err != nil {
		return err
	}
	if gs[0].Name == ci.GroupAll {
		return badRequest("group %q is built in and cannot be deleted", ci.GroupAll)
	}
	if err := s.cfg.Store.DeleteGroup(r.Context(), gs[0].ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) changeMembership(w http.ResponseWriter, r *http.Request, add bool) error {
	gs, err := s.groupsByName(r.Context(), []string{r.PathValue("g")})
	if err != nil {
		return err
	}
	a, err := s.agent(r.Context(), r.PathValue("a"))
	if err != nil {
		return err
	}
	g := gs[0]
	if !add && g.Name == ci.GroupAll {
		return badRequest("every authorized agent is in group %q: disable the agent (`kk agent disable %s`) to keep it from getting work", ci.GroupAll, a.Name)
	}
	if add {
		err = s.cfg.Store.AddAgentToGroup(r.Context(), g.ID, a.ID)
	} else {
		err = s.cfg.Store.RemoveAgentFromGroup(r.Context(), g.ID, a.ID)
	}
	if err != nil {
		return err
	}
	if a, err = s.cfg.Store.GetAgent(r.Context(), a.ID); err == nil {
		s.cfg.Dispatcher.Refresh(a)
	}
	v, err := s.groupView(r.Context(), g)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) addGroupAgent(w http.ResponseWriter, r *http.Request) error {
	return s.changeMembership(w, r, true)
}

func (s *Server) removeGroupAgent(w http.ResponseWriter, r *http.Request) error {
	return s.changeMembership(w, r, false)
}

package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// registerLock is the key of the transaction-level advisory lock under which
// RegisterAgent picks a free name ("kkagnt").
const registerLock int64 = 0x6b6b61676e74

const agentCols = `id, uuid, name, address, authorized, disabled, host_info, job_id, last_seen, created,
	enroll_hash, credential_hash`

func scanAgent(sc pgx.Row) (ci.Agent, error) {
	var a ci.Agent
	var info string
	var jobID *int64
	if err := sc.Scan(&a.ID, &a.UUID, &a.Name, &a.Address, &a.Authorized, &a.Disabled, &info, &jobID,
		&a.LastSeen, &a.Created, &a.EnrollHash, &a.CredentialHash); err != nil {
		return ci.Agent{}, err
	}
	if err := json.Unmarshal([]byte(info), &a.HostInfo); err != nil {
		return ci.Agent{}, fmt.Errorf("agent %d host info: %w", a.ID, err)
	}
	if jobID != nil {
		a.JobID = *jobID
	}
	a.Groups = []string{}
	return a, nil
}

func encodeHostInfo(h ci.HostInfo) (string, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode host info: %w", err)
	}
	return string(b), nil
}

// fillGroups sets Groups (sorted by name) of the agents from one query.
func fillGroups(ctx context.Context, s *Store, q querier, agents []ci.Agent) error {
	if len(agents) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(agents))
	ids := make([]int64, len(agents))
	for i, a := range agents {
		idx[a.ID] = i
		ids[i] = a.ID
	}
	type member struct {
		agent int64
		group string
	}
	rows, err := queryAll(ctx, s, q, func(r pgx.Row) (member, error) {
		var m member
		err := r.Scan(&m.agent, &m.group)
		return m, err
	}, `SELECT ag.agent_id, g.name FROM agent_groups ag JOIN groups g ON g.id = ag.group_id
		WHERE ag.agent_id = ANY($1) ORDER BY g.name`, ids)
	if err != nil {
		return fmt.Errorf("read agent groups: %w", err)
	}
	for _, m := range rows {
		if i, ok := idx[m.agent]; ok {
			agents[i].Groups = append(agents[i].Groups, m.group)
		}
	}
	return nil
}

// getAgent reads one agent with its groups; where is a condition on agents.
func getAgent(ctx context.Context, s *Store, q querier, what string, key any, where string, args ...any) (ci.Agent, error) {
	a, err := scanAgent(q.QueryRow(ctx, `SELECT `+agentCols+` FROM agents WHERE `+where, args...))
	if err != nil {
		return ci.Agent{}, notFound(err, what, key)
	}
	agents := []ci.Agent{a}
	if err := fillGroups(ctx, s, q, agents); err != nil {
		return ci.Agent{}, err
	}
	return agents[0], nil
}

func (s *Store) readAgent(ctx context.Context, what string, key any, where string, args ...any) (ci.Agent, error) {
	var a ci.Agent
	err := s.read(ctx, func(tx querier) error {
		var err error
		a, err = getAgent(ctx, s, tx, what, key, where, args...)
		return err
	})
	if err != nil {
		return ci.Agent{}, fmt.Errorf("get agent: %w", err)
	}
	return a, nil
}

// listAgents reads agents with their groups in one snapshot.
func (s *Store) listAgents(ctx context.Context, query string, args ...any) ([]ci.Agent, error) {
	var out []ci.Agent
	err := s.read(ctx, func(tx querier) error {
		var err error
		if out, err = queryAll(ctx, s, tx, scanAgent, query, args...); err != nil {
			return err
		}
		return fillGroups(ctx, s, tx, out)
	})
	return out, err
}

// RegisterAgent inserts a new (unauthorized) agent or, for a known UUID,
// updates its address, host info and LastSeen. A new agent whose name is taken
// by another agent gets the first free name among name-2, name-3, ...; an empty
// name defaults to the host name, then to the UUID. New agents are inserted
// under an advisory lock, so concurrent registrations never pick one name.
func (s *Store) RegisterAgent(ctx context.Context, a ci.Agent, at time.Time) (ci.Agent, error) {
	if a.UUID == "" {
		return ci.Agent{}, fmt.Errorf("register agent: uuid is empty: %w", ci.ErrInvalid)
	}
	info, err := encodeHostInfo(a.HostInfo)
	if err != nil {
		return ci.Agent{}, fmt.Errorf("register agent %s: %w", a.UUID, err)
	}
	at = ts(at)
	var out ci.Agent
	err = s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE agents SET address = $1, host_info = $2, last_seen = $3 WHERE uuid = $4`,
			a.Address, info, at, a.UUID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, registerLock); err != nil {
				return fmt.Errorf("take the registration lock: %w", err)
			}
			// Under the lock, a registration of the same UUID that committed
			// meanwhile is visible: then this one is an update after all.
			tag, err := tx.Exec(ctx, `UPDATE agents SET address = $1, host_info = $2, last_seen = $3 WHERE uuid = $4`,
				a.Address, info, at, a.UUID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				name, err := freeAgentName(ctx, tx, agentBaseName(a))
				if err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `
					INSERT INTO agents (uuid, name, address, host_info, last_seen, created, enroll_hash)
					VALUES ($1, $2, $3, $4, $5, $5, $6)`,
					a.UUID, name, a.Address, info, at, a.EnrollHash); err != nil {
					return err
				}
			}
		}
		out, err = getAgent(ctx, s, tx, "agent", a.UUID, `uuid = $1`, a.UUID)
		return err
	})
	if err != nil {
		return ci.Agent{}, fmt.Errorf("register agent %s: %w", a.UUID, err)
	}
	return out, nil
}

func agentBaseName(a ci.Agent) string {
	switch {
	case a.Name != "":
		return a.Name
	case a.HostInfo.Hostname != "":
		return a.HostInfo.Hostname
	}
	return a.UUID
}

// freeAgentName returns base, or base-N with the smallest N >= 2 that no agent
// uses.
func freeAgentName(ctx context.Context, tx querier, base string) (string, error) {
	name := base
	for n := 2; ; n++ {
		taken, err := exists(ctx, tx, `SELECT 1 FROM agents WHERE name = $1`, name)
		if err != nil {
			return "", err
		}
		if !taken {
			return name, nil
		}
		name = base + "-" + strconv.Itoa(n)
	}
}

// GetAgent returns the agent with this ID.
func (s *Store) GetAgent(ctx context.Context, id int64) (ci.Agent, error) {
	return s.readAgent(ctx, "agent", id, `id = $1`, id)
}

// GetAgentByUUID returns the agent with this UUID.
func (s *Store) GetAgentByUUID(ctx context.Context, uuid string) (ci.Agent, error) {
	return s.readAgent(ctx, "agent with uuid", uuid, `uuid = $1`, uuid)
}

// GetAgentByName returns the agent with this name.
func (s *Store) GetAgentByName(ctx context.Context, name string) (ci.Agent, error) {
	return s.readAgent(ctx, "agent", strconv.Quote(name), `name = $1`, name)
}

// GetAgentByCredential returns the agent whose credential hash is hash. An
// empty hash matches no agent.
func (s *Store) GetAgentByCredential(ctx context.Context, hash string) (ci.Agent, error) {
	if hash == "" {
		return ci.Agent{}, fmt.Errorf("get agent: empty credential: %w", ci.ErrNotFound)
	}
	return s.readAgent(ctx, "agent with credential", "(hidden)", `credential_hash = $1 AND credential_hash <> ''`, hash)
}

// ListAgents returns agents ordered by name.
func (s *Store) ListAgents(ctx context.Context, opts store.ListAgentsOpts) ([]ci.Agent, error) {
	q := `SELECT ` + agentCols + ` FROM agents`
	var args []any
	if opts.Authorized != nil {
		q += ` WHERE authorized = $1`
		args = append(args, *opts.Authorized)
	}
	out, err := s.listAgents(ctx, q+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// UpdateAgent changes the given fields. An agent that becomes authorized
// joins the group "all".
func (s *Store) UpdateAgent(ctx context.Context, id int64, u store.AgentUpdate) (ci.Agent, error) {
	if u.Name != nil {
		if err := checkName("agent", *u.Name); err != nil {
			return ci.Agent{}, fmt.Errorf("update agent %d: %w", id, err)
		}
	}
	var out ci.Agent
	err := s.write(ctx, func(tx querier) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM agents WHERE id = $1 FOR NO KEY UPDATE`, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("agent %d: %w", id, ci.ErrNotFound)
		}
		if u.Name != nil {
			_, err := tx.Exec(ctx, `UPDATE agents SET name = $1 WHERE id = $2`, *u.Name, id)
			if isUnique(err) {
				return fmt.Errorf("agent name %q is taken: %w", *u.Name, ci.ErrConflict)
			}
			if err != nil {
				return err
			}
		}
		if u.Authorized != nil {
			if _, err := tx.Exec(ctx, `UPDATE agents SET authorized = $1 WHERE id = $2`, *u.Authorized, id); err != nil {
				return err
			}
			if *u.Authorized {
				if _, err := tx.Exec(ctx, `
					INSERT INTO agent_groups (group_id, agent_id) SELECT id, $1 FROM groups WHERE name = $2
					ON CONFLICT DO NOTHING`, id, ci.GroupAll); err != nil {
					return err
				}
			}
		}
		if u.Disabled != nil {
			if _, err := tx.Exec(ctx, `UPDATE agents SET disabled = $1 WHERE id = $2`, *u.Disabled, id); err != nil {
				return err
			}
		}
		out, err = getAgent(ctx, s, tx, "agent", id, `id = $1`, id)
		return err
	})
	if err != nil {
		return ci.Agent{}, fmt.Errorf("update agent %d: %w", id, err)
	}
	return out, nil
}

// SetAgentCredential stores the hash of the agent's credential ("" revokes).
func (s *Store) SetAgentCredential(ctx context.Context, id int64, hash string) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE agents SET credential_hash = $1 WHERE id = $2`, hash, id)
		if isUnique(err) {
			return fmt.Errorf("credential hash is in use: %w", ci.ErrConflict)
		}
		if err != nil {
			return err
		}
		return mustAffect(tag, "agent", id)
	})
	if err != nil {
		return fmt.Errorf("set credential of agent %d: %w", id, err)
	}
	return nil
}

// TouchAgent sets LastSeen and, when info is not nil, the host info.
func (s *Store) TouchAgent(ctx context.Context, id int64, at time.Time, info *ci.HostInfo) error {
	query := `UPDATE agents SET last_seen = $1 WHERE id = $2`
	args := []any{ts(at), id}
	if info != nil {
		enc, err := encodeHostInfo(*info)
		if err != nil {
			return fmt.Errorf("touch agent %d: %w", id, err)
		}
		query = `UPDATE agents SET last_seen = $1, host_info = $3 WHERE id = $2`
		args = append(args, enc)
	}
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, query, args...)
		if err != nil {
			return err
		}
		return mustAffect(tag, "agent", id)
	})
	if err != nil {
		return fmt.Errorf("touch agent %d: %w", id, err)
	}
	return nil
}

// DeleteAgent deletes the agent and its memberships; a conflict while it has a
// current job. Jobs it ran keep no reference to it (AgentID 0).
func (s *Store) DeleteAgent(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx querier) error {
		var job *int64
		err := tx.QueryRow(ctx, `SELECT job_id FROM agents WHERE id = $1 FOR UPDATE`, id).Scan(&job)
		if err != nil {
			return notFound(err, "agent", id)
		}
		if job != nil {
			return fmt.Errorf("agent is running job %d: cancel the job or wait for it: %w", *job, ci.ErrConflict)
		}
		_, err = tx.Exec(ctx, `DELETE FROM agents WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete agent %d: %w", id, err)
	}
	return nil
}

// Groups.

const groupCols = `id, name, created`

func scanGroup(sc pgx.Row) (ci.Group, error) {
	var g ci.Group
	if err := sc.Scan(&g.ID, &g.Name, &g.Created); err != nil {
		return ci.Group{}, err
	}
	return g, nil
}

// CreateGroup inserts g and sets g.ID and g.Created.
func (s *Store) CreateGroup(ctx context.Context, g *ci.Group) error {
	if err := checkName("group", g.Name); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	now := s.now()
	err := s.write(ctx, func(tx querier) error {
		err := tx.QueryRow(ctx, `INSERT INTO groups (name, created) VALUES ($1, $2) RETURNING id`,
			g.Name, now).Scan(&g.ID)
		if isUnique(err) {
			return fmt.Errorf("a group with this name exists: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create group %q: %w", g.Name, err)
	}
	g.Created = now
	return nil
}

// GetGroupByName returns the group with this name.
func (s *Store) GetGroupByName(ctx context.Context, name string) (ci.Group, error) {
	g, err := scanGroup(s.q().QueryRow(ctx, `SELECT `+groupCols+` FROM groups WHERE name = $1`, name))
	if err != nil {
		return ci.Group{}, fmt.Errorf("get group: %w", notFound(err, "group", strconv.Quote(name)))
	}
	return g, nil
}

// ListGroups returns the groups ordered by name.
func (s *Store) ListGroups(ctx context.Context) ([]ci.Group, error) {
	out, err := queryAll(ctx, s, s.q(), scanGroup, `SELECT `+groupCols+` FROM groups ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// DeleteGroup deletes the group and its memberships; the group "all" cannot
// be deleted (ErrInvalid).
func (s *Store) DeleteGroup(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx querier) error {
		var name string
		if err := tx.QueryRow(ctx, `SELECT name FROM groups WHERE id = $1 FOR UPDATE`, id).Scan(&name); err != nil {
			return notFound(err, "group", id)
		}
		if name == ci.GroupAll {
			return fmt.Errorf("group %q is built in and cannot be deleted: %w", ci.GroupAll, ci.ErrInvalid)
		}
		_, err := tx.Exec(ctx, `DELETE FROM groups WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete group %d: %w", id, err)
	}
	return nil
}

// checkGroupAgent returns ErrNotFound when the group or the agent is missing.
func checkGroupAgent(ctx context.Context, tx querier, groupID, agentID int64) error {
	var g, a bool
	err := tx.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM groups WHERE id = $1), EXISTS (SELECT 1 FROM agents WHERE id = $2)`,
		groupID, agentID).Scan(&g, &a)
	switch {
	case err != nil:
		return err
	case !g:
		return fmt.Errorf("group %d: %w", groupID, ci.ErrNotFound)
	case !a:
		return fmt.Errorf("agent %d: %w", agentID, ci.ErrNotFound)
	}
	return nil
}

// AddAgentToGroup adds the agent to the group; adding it again is a no-op.
func (s *Store) AddAgentToGroup(ctx context.Context, groupID, agentID int64) error {
	err := s.write(ctx, func(tx querier) error {
		if err := checkGroupAgent(ctx, tx, groupID, agentID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx,
			`INSERT INTO agent_groups (group_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, groupID, agentID)
		if isForeignKey(err) {
			// The group or agent was deleted since the check.
			return fmt.Errorf("group %d or agent %d: %w", groupID, agentID, ci.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("add agent %d to group %d: %w", agentID, groupID, err)
	}
	return nil
}

// RemoveAgentFromGroup removes the agent from the group; removing it again is
// a no-op.
func (s *Store) RemoveAgentFromGroup(ctx context.Context, groupID, agentID int64) error {
	err := s.write(ctx, func(tx querier) error {
		if err := checkGroupAgent(ctx, tx, groupID, agentID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM agent_groups WHERE group_id = $1 AND agent_id = $2`, groupID, agentID)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove agent %d from group %d: %w", agentID, groupID, err)
	}
	return nil
}

// ListGroupAgents returns the group's agents ordered by name.
func (s *Store) ListGroupAgents(ctx context.Context, groupID int64) ([]ci.Agent, error) {
	var out []ci.Agent
	err := s.read(ctx, func(tx querier) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM groups WHERE id = $1`, groupID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("group %d: %w", groupID, ci.ErrNotFound)
		}
		out, err = queryAll(ctx, s, tx, scanAgent, `SELECT `+agentCols+` FROM agents
			WHERE id IN (SELECT agent_id FROM agent_groups WHERE group_id = $1) ORDER BY name`, groupID)
		if err != nil {
			return err
		}
		return fillGroups(ctx, s, tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("list agents of group %d: %w", groupID, err)
	}
	return out, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

const agentCols = `id, uuid, name, address, authorized, disabled, host_info, job_id, last_seen, created,
	enroll_hash, credential_hash`

func scanAgent(sc scanner) (ci.Agent, error) {
	var a ci.Agent
	var info string
	var jobID, lastSeen sql.NullInt64
	var created int64
	if err := sc.Scan(&a.ID, &a.UUID, &a.Name, &a.Address, &a.Authorized, &a.Disabled, &info, &jobID,
		&lastSeen, &created, &a.EnrollHash, &a.CredentialHash); err != nil {
		return ci.Agent{}, err
	}
	if err := json.Unmarshal([]byte(info), &a.HostInfo); err != nil {
		return ci.Agent{}, fmt.Errorf("agent %d host info: %w", a.ID, err)
	}
	a.JobID = jobID.Int64
	a.LastSeen = fromNullMS(lastSeen)
	a.Created = fromMS(created)
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
func fillGroups(ctx context.Context, q querier, agents []ci.Agent) error {
	if len(agents) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(agents))
	for i, a := range agents {
		idx[a.ID] = i
	}
	query := `SELECT ag.agent_id, g.name FROM agent_groups ag JOIN groups g ON g.id = ag.group_id`
	var args []any
	if len(agents) == 1 {
		query += ` WHERE ag.agent_id = ?`
		args = append(args, agents[0].ID)
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY g.name`, args...)
	if err != nil {
		return fmt.Errorf("read agent groups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return fmt.Errorf("read agent groups: %w", err)
		}
		if i, ok := idx[id]; ok {
			agents[i].Groups = append(agents[i].Groups, name)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read agent groups: %w", err)
	}
	return nil
}

// getAgent reads one agent with its groups; where is a condition on agents.
func getAgent(ctx context.Context, q querier, what string, key any, where string, args ...any) (ci.Agent, error) {
	a, err := scanAgent(q.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE `+where, args...))
	if err != nil {
		return ci.Agent{}, notFound(err, what, key)
	}
	agents := []ci.Agent{a}
	if err := fillGroups(ctx, q, agents); err != nil {
		return ci.Agent{}, err
	}
	return agents[0], nil
}

func (s *Store) readAgent(ctx context.Context, what string, key any, where string, args ...any) (ci.Agent, error) {
	var a ci.Agent
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = getAgent(ctx, tx, what, key, where, args...)
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
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		if out, err = queryAll(ctx, tx, scanAgent, query, args...); err != nil {
			return err
		}
		return fillGroups(ctx, tx, out)
	})
	return out, err
}

// RegisterAgent inserts a new (unauthorized) agent or, for a known UUID,
// updates its address, host info and LastSeen. A new agent whose name is taken
// by another agent gets the first free name among name-2, name-3, ...; an empty
// name defaults to the host name, then to the UUID.
func (s *Store) RegisterAgent(ctx context.Context, a ci.Agent, at time.Time) (ci.Agent, error) {
	if a.UUID == "" {
		return ci.Agent{}, fmt.Errorf("register agent: uuid is empty: %w", ci.ErrInvalid)
	}
	info, err := encodeHostInfo(a.HostInfo)
	if err != nil {
		return ci.Agent{}, fmt.Errorf("register agent %s: %w", a.UUID, err)
	}
	var out ci.Agent
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET address = ?, host_info = ?, last_seen = ? WHERE uuid = ?`,
			a.Address, info, ms(at), a.UUID)
		if err != nil {
			return err
		}
		if ok, err := affected(res); err != nil {
			return err
		} else if !ok {
			name, err := freeAgentName(ctx, tx, agentBaseName(a))
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO agents (uuid, name, address, host_info, last_seen, created, enroll_hash)
				VALUES (?, ?, ?, ?, ?, ?, ?)`,
				a.UUID, name, a.Address, info, ms(at), ms(at), a.EnrollHash); err != nil {
				return err
			}
		}
		out, err = getAgent(ctx, tx, "agent", a.UUID, `uuid = ?`, a.UUID)
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
func freeAgentName(ctx context.Context, tx *sql.Tx, base string) (string, error) {
	name := base
	for n := 2; ; n++ {
		taken, err := exists(ctx, tx, `SELECT 1 FROM agents WHERE name = ?`, name)
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
	return s.readAgent(ctx, "agent", id, `id = ?`, id)
}

// GetAgentByUUID returns the agent with this UUID.
func (s *Store) GetAgentByUUID(ctx context.Context, uuid string) (ci.Agent, error) {
	return s.readAgent(ctx, "agent with uuid", uuid, `uuid = ?`, uuid)
}

// GetAgentByName returns the agent with this name.
func (s *Store) GetAgentByName(ctx context.Context, name string) (ci.Agent, error) {
	return s.readAgent(ctx, "agent", strconv.Quote(name), `name = ?`, name)
}

// GetAgentByCredential returns the agent whose credential hash is hash. An
// empty hash matches no agent.
func (s *Store) GetAgentByCredential(ctx context.Context, hash string) (ci.Agent, error) {
	if hash == "" {
		return ci.Agent{}, fmt.Errorf("get agent: empty credential: %w", ci.ErrNotFound)
	}
	return s.readAgent(ctx, "agent with credential", "(hidden)", `credential_hash = ? AND credential_hash <> ''`, hash)
}

// ListAgents returns agents ordered by name.
func (s *Store) ListAgents(ctx context.Context, opts store.ListAgentsOpts) ([]ci.Agent, error) {
	q := `SELECT ` + agentCols + ` FROM agents`
	var args []any
	if opts.Authorized != nil {
		q += ` WHERE authorized = ?`
		args = append(args, boolInt(*opts.Authorized))
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM agents WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("agent %d: %w", id, ci.ErrNotFound)
		}
		if u.Name != nil {
			_, err := tx.ExecContext(ctx, `UPDATE agents SET name = ? WHERE id = ?`, *u.Name, id)
			if isUnique(err) {
				return fmt.Errorf("agent name %q is taken: %w", *u.Name, ci.ErrConflict)
			}
			if err != nil {
				return err
			}
		}
		if u.Authorized != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE agents SET authorized = ? WHERE id = ?`,
				boolInt(*u.Authorized), id); err != nil {
				return err
			}
			if *u.Authorized {
				if _, err := tx.ExecContext(ctx, `
					INSERT INTO agent_groups (group_id, agent_id) SELECT id, ? FROM groups WHERE name = ?
					ON CONFLICT DO NOTHING`, id, ci.GroupAll); err != nil {
					return err
				}
			}
		}
		if u.Disabled != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE agents SET disabled = ? WHERE id = ?`,
				boolInt(*u.Disabled), id); err != nil {
				return err
			}
		}
		out, err = getAgent(ctx, tx, "agent", id, `id = ?`, id)
		return err
	})
	if err != nil {
		return ci.Agent{}, fmt.Errorf("update agent %d: %w", id, err)
	}
	return out, nil
}

// SetAgentCredential stores the hash of the agent's credential ("" revokes).
func (s *Store) SetAgentCredential(ctx context.Context, id int64, hash string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET credential_hash = ? WHERE id = ?`, hash, id)
		if isUnique(err) {
			return fmt.Errorf("credential hash is in use: %w", ci.ErrConflict)
		}
		if err != nil {
			return err
		}
		return mustAffect(res, "agent", id)
	})
	if err != nil {
		return fmt.Errorf("set credential of agent %d: %w", id, err)
	}
	return nil
}

// TouchAgent sets LastSeen and, when info is not nil, the host info.
func (s *Store) TouchAgent(ctx context.Context, id int64, at time.Time, info *ci.HostInfo) error {
	query := `UPDATE agents SET last_seen = ? WHERE id = ?`
	args := []any{ms(at), id}
	if info != nil {
		enc, err := encodeHostInfo(*info)
		if err != nil {
			return fmt.Errorf("touch agent %d: %w", id, err)
		}
		query = `UPDATE agents SET last_seen = ?, host_info = ? WHERE id = ?`
		args = []any{ms(at), enc, id}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		return mustAffect(res, "agent", id)
	})
	if err != nil {
		return fmt.Errorf("touch agent %d: %w", id, err)
	}
	return nil
}

// DeleteAgent deletes the agent and its memberships; a conflict while it has a
// current job. Jobs it ran keep no reference to it (AgentID 0).
func (s *Store) DeleteAgent(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var job sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT job_id FROM agents WHERE id = ?`, id).Scan(&job)
		if err != nil {
			return notFound(err, "agent", id)
		}
		if job.Valid {
			return fmt.Errorf("agent is running job %d: cancel the job or wait for it: %w", job.Int64, ci.ErrConflict)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM agents WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete agent %d: %w", id, err)
	}
	return nil
}

// Groups.

const groupCols = `id, name, created`

func scanGroup(sc scanner) (ci.Group, error) {
	var g ci.Group
	var created int64
	if err := sc.Scan(&g.ID, &g.Name, &created); err != nil {
		return ci.Group{}, err
	}
	g.Created = fromMS(created)
	return g, nil
}

// CreateGroup inserts g and sets g.ID and g.Created.
func (s *Store) CreateGroup(ctx context.Context, g *ci.Group) error {
	if err := checkName("group", g.Name); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	now := s.now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO groups (name, created) VALUES (?, ?) RETURNING id`,
			g.Name, ms(now)).Scan(&g.ID)
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
	g, err := scanGroup(s.r.QueryRowContext(ctx, `SELECT `+groupCols+` FROM groups WHERE name = ?`, name))
	if err != nil {
		return ci.Group{}, fmt.Errorf("get group: %w", notFound(err, "group", strconv.Quote(name)))
	}
	return g, nil
}

// ListGroups returns the groups ordered by name.
func (s *Store) ListGroups(ctx context.Context) ([]ci.Group, error) {
	out, err := queryAll(ctx, s.r, scanGroup, `SELECT `+groupCols+` FROM groups ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// DeleteGroup deletes the group and its memberships; the group "all" cannot
// be deleted (ErrInvalid).
func (s *Store) DeleteGroup(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var name string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM groups WHERE id = ?`, id).Scan(&name); err != nil {
			return notFound(err, "group", id)
		}
		if name == ci.GroupAll {
			return fmt.Errorf("group %q is built in and cannot be deleted: %w", ci.GroupAll, ci.ErrInvalid)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM groups WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete group %d: %w", id, err)
	}
	return nil
}

// checkGroupAgent returns ErrNotFound when the group or the agent is missing.
func checkGroupAgent(ctx context.Context, tx *sql.Tx, groupID, agentID int64) error {
	var g, a int
	err := tx.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM groups WHERE id = ?), (SELECT count(*) FROM agents WHERE id = ?)`,
		groupID, agentID).Scan(&g, &a)
	switch {
	case err != nil:
		return err
	case g == 0:
		return fmt.Errorf("group %d: %w", groupID, ci.ErrNotFound)
	case a == 0:
		return fmt.Errorf("agent %d: %w", agentID, ci.ErrNotFound)
	}
	return nil
}

// AddAgentToGroup adds the agent to the group; adding it again is a no-op.
func (s *Store) AddAgentToGroup(ctx context.Context, groupID, agentID int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := checkGroupAgent(ctx, tx, groupID, agentID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO agent_groups (group_id, agent_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, groupID, agentID)
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := checkGroupAgent(ctx, tx, groupID, agentID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM agent_groups WHERE group_id = ? AND agent_id = ?`, groupID, agentID)
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
	err := s.read(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM groups WHERE id = ?`, groupID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("group %d: %w", groupID, ci.ErrNotFound)
		}
		out, err = queryAll(ctx, tx, scanAgent, `SELECT `+agentCols+` FROM agents
			WHERE id IN (SELECT agent_id FROM agent_groups WHERE group_id = ?) ORDER BY name`, groupID)
		if err != nil {
			return err
		}
		return fillGroups(ctx, tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("list agents of group %d: %w", groupID, err)
	}
	return out, nil
}

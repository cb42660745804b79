package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

func agentCases() []testCase {
	return []testCase{
		{"register inserts a discovered agent", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			at := now()
			info := ci.HostInfo{OS: "linux", Distro: "debian", DistroVersion: "12", System: "debian-12",
				Arch: "amd64", CPUs: 8, MemoryMiB: 16384, Hostname: "build1", Isolation: "bare-metal", Docker: "27.0"}
			a, err := s.RegisterAgent(ctx, ci.Agent{UUID: "u-1", Name: "build1", Address: "10.0.0.5",
				HostInfo: info, EnrollHash: "enroll-1",
				Authorized: true, Disabled: true, CredentialHash: "ignored", JobID: 99, // ignored
			}, at)
			require.NoError(t, err)
			require.NotZero(t, a.ID)
			require.Equal(t, "u-1", a.UUID)
			require.Equal(t, "build1", a.Name)
			require.Equal(t, "10.0.0.5", a.Address)
			require.False(t, a.Authorized)
			require.False(t, a.Disabled)
			require.Equal(t, info, a.HostInfo)
			require.Equal(t, "enroll-1", a.EnrollHash)
			require.Empty(t, a.CredentialHash)
			require.Zero(t, a.JobID)
			requireTime(t, at, a.LastSeen)
			require.Equal(t, []string{}, a.Groups)
			require.Equal(t, ci.AgentDiscovered, a.State(at, true, nil))

			for _, get := range []func() (ci.Agent, error){
				func() (ci.Agent, error) { return s.GetAgent(ctx, a.ID) },
				func() (ci.Agent, error) { return s.GetAgentByUUID(ctx, "u-1") },
				func() (ci.Agent, error) { return s.GetAgentByName(ctx, "build1") },
			} {
				got, err := get()
				require.NoError(t, err)
				require.Equal(t, a, got)
			}
		}},
		{"register again keeps identity, name and authorization", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			first, err := s.RegisterAgent(f.ctx, ci.Agent{UUID: "u-1", Name: "build1", Address: "old",
				EnrollHash: "enroll-1"}, now())
			require.NoError(t, err)
			_, err = s.UpdateAgent(f.ctx, first.ID, store.AgentUpdate{Authorized: new(true)})
			require.NoError(t, err)
			require.NoError(t, s.SetAgentCredential(f.ctx, first.ID, "cred-1"))

			at := now().Add(time.Minute)
			info := ci.HostInfo{OS: "linux", CPUs: 4}
			again, err := s.RegisterAgent(f.ctx, ci.Agent{UUID: "u-1", Name: "renamed", Address: "new",
				HostInfo: info, EnrollHash: "enroll-2"}, at)
			require.NoError(t, err)
			require.Equal(t, first.ID, again.ID)
			require.Equal(t, "build1", again.Name)
			require.True(t, again.Authorized)
			require.Equal(t, "enroll-1", again.EnrollHash)
			require.Equal(t, "cred-1", again.CredentialHash)
			require.Equal(t, "new", again.Address)
			require.Equal(t, info, again.HostInfo)
			requireTime(t, at, again.LastSeen)
			require.Equal(t, first.Created, again.Created)
			require.Equal(t, []string{ci.GroupAll}, again.Groups)
		}},
		{"a taken name gets a suffix", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			var names []string
			for _, uuid := range []string{"u-1", "u-2", "u-3"} {
				a, err := s.RegisterAgent(ctx, ci.Agent{UUID: uuid, Name: "host"}, now())
				require.NoError(t, err)
				names = append(names, a.Name)
			}
			require.Equal(t, []string{"host", "host-2", "host-3"}, names)
			a, err := s.RegisterAgent(ctx, ci.Agent{UUID: "u-4", HostInfo: ci.HostInfo{Hostname: "box"}}, now())
			require.NoError(t, err)
			require.Equal(t, "box", a.Name, "the host name is the default name")
			a, err = s.RegisterAgent(ctx, ci.Agent{UUID: "u-5"}, now())
			require.NoError(t, err)
			require.NotEmpty(t, a.Name)
			_, err = s.RegisterAgent(ctx, ci.Agent{Name: "x"}, now())
			require.ErrorIs(t, err, ci.ErrInvalid, "a UUID is required")
		}},
		{"concurrent registrations of one name", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			const n = 10
			agents := make([]ci.Agent, n)
			requireNoErrors(t, parallel(n, func(i int) error {
				var err error
				agents[i], err = s.RegisterAgent(ctx, ci.Agent{UUID: "u-" + string(rune('a'+i)), Name: "same"}, now())
				return err
			}))
			seen := map[string]bool{}
			for _, a := range agents {
				require.False(t, seen[a.Name], "name %q given twice", a.Name)
				seen[a.Name] = true
			}
		}},
		{"credential lookup", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			a, b := f.agent("a", true), f.agent("b", true)
			_, err := s.GetAgentByCredential(f.ctx, "")
			require.ErrorIs(t, err, ci.ErrNotFound, "an agent without a credential is never found")
			require.NoError(t, s.SetAgentCredential(f.ctx, a.ID, "hash-a"))
			got, err := s.GetAgentByCredential(f.ctx, "hash-a")
			require.NoError(t, err)
			require.Equal(t, a.ID, got.ID)
			require.Equal(t, "hash-a", got.CredentialHash)
			require.Equal(t, []string{ci.GroupAll}, got.Groups)
			require.ErrorIs(t, s.SetAgentCredential(f.ctx, b.ID, "hash-a"), ci.ErrConflict)

			require.NoError(t, s.SetAgentCredential(f.ctx, a.ID, "hash-a2"))
			_, err = s.GetAgentByCredential(f.ctx, "hash-a")
			require.ErrorIs(t, err, ci.ErrNotFound, "the old credential is gone")
			require.NoError(t, s.SetAgentCredential(f.ctx, a.ID, ""))
			_, err = s.GetAgentByCredential(f.ctx, "hash-a2")
			require.ErrorIs(t, err, ci.ErrNotFound, "revoked")
			require.NoError(t, s.SetAgentCredential(f.ctx, b.ID, ""), "several agents without credential")
			require.ErrorIs(t, s.SetAgentCredential(f.ctx, 42, "x"), ci.ErrNotFound)
		}},
		{"list ordered by name and filtered", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			f.agent("zed", true)
			f.agent("amy", false)
			f.agent("bob", true)
			tests := []struct {
				name string
				opts store.ListAgentsOpts
				want []string
			}{
				{"all", store.ListAgentsOpts{}, []string{"amy", "bob", "zed"}},
				{"authorized", store.ListAgentsOpts{Authorized: new(true)}, []string{"bob", "zed"}},
				{"discovered", store.ListAgentsOpts{Authorized: new(false)}, []string{"amy"}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					list, err := s.ListAgents(f.ctx, tc.opts)
					require.NoError(t, err)
					require.Equal(t, tc.want, agentNames(list))
					for _, a := range list {
						require.NotNil(t, a.Groups)
					}
				})
			}
		}},
		{"update", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			a := f.agent("a", false)
			f.agent("taken", false)
			got, err := s.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Name: new("renamed")})
			require.NoError(t, err)
			require.Equal(t, "renamed", got.Name)
			require.False(t, got.Authorized)
			require.Empty(t, got.Groups)

			got, err = s.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Authorized: new(true), Disabled: new(true)})
			require.NoError(t, err)
			require.Equal(t, "renamed", got.Name)
			require.True(t, got.Authorized)
			require.True(t, got.Disabled)
			require.Equal(t, []string{ci.GroupAll}, got.Groups, "an authorized agent joins all")
			require.Equal(t, got, f.getAgent(a.ID))

			got, err = s.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Disabled: new(false)})
			require.NoError(t, err)
			require.False(t, got.Disabled)
			require.True(t, got.Authorized)

			_, err = s.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Name: new("taken")})
			require.ErrorIs(t, err, ci.ErrConflict)
			_, err = s.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Name: new("")})
			require.ErrorIs(t, err, ci.ErrInvalid)
			_, err = s.UpdateAgent(f.ctx, 42, store.AgentUpdate{})
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"touch", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			a := f.agent("a", true)
			at := now().Add(time.Minute)
			require.NoError(t, s.TouchAgent(f.ctx, a.ID, at, nil))
			got := f.getAgent(a.ID)
			requireTime(t, at, got.LastSeen)
			require.Equal(t, a.HostInfo, got.HostInfo, "nil info leaves it alone")

			info := ci.HostInfo{OS: "linux", LXD: "5.0"}
			require.NoError(t, s.TouchAgent(f.ctx, a.ID, at.Add(time.Second), &info))
			got = f.getAgent(a.ID)
			require.Equal(t, info, got.HostInfo)
			requireTime(t, at.Add(time.Second), got.LastSeen)
			require.ErrorIs(t, s.TouchAgent(f.ctx, 42, at, nil), ci.ErrNotFound)
		}},
		{"delete conflicts while the agent has a job", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			a := f.agent("a", true)
			g := ci.Group{Name: "g"}
			require.NoError(t, s.CreateGroup(f.ctx, &g))
			require.NoError(t, s.AddAgentToGroup(f.ctx, g.ID, a.ID))
			j := f.claim(jobs[0].ID, a.ID)
			require.ErrorIs(t, s.DeleteAgent(f.ctx, a.ID), ci.ErrConflict)
			f.complete(j.ID, ci.JobOK)

			require.NoError(t, s.DeleteAgent(f.ctx, a.ID))
			_, err := s.GetAgent(f.ctx, a.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)
			members, err := s.ListGroupAgents(f.ctx, g.ID)
			require.NoError(t, err)
			require.Empty(t, members)
			require.Zero(t, f.job(j.ID).AgentID, "the job no longer points at the deleted agent")
			require.ErrorIs(t, s.DeleteAgent(f.ctx, a.ID), ci.ErrNotFound)

			// The UUID and name are free again.
			again, err := s.RegisterAgent(f.ctx, ci.Agent{UUID: a.UUID, Name: "a"}, now())
			require.NoError(t, err)
			require.Equal(t, "a", again.Name)
			require.False(t, again.Authorized)
		}},
		{"not found", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			_, err := s.GetAgent(ctx, 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetAgentByUUID(ctx, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetAgentByName(ctx, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetAgentByCredential(ctx, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
	}
}

func groupCases() []testCase {
	return []testCase{
		{"all exists and cannot be deleted", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			all, err := s.GetGroupByName(ctx, ci.GroupAll)
			require.NoError(t, err)
			require.NotZero(t, all.ID)
			require.False(t, all.Created.IsZero())
			require.ErrorIs(t, s.DeleteGroup(ctx, all.ID), ci.ErrInvalid)
			require.ErrorIs(t, s.CreateGroup(ctx, &ci.Group{Name: ci.GroupAll}), ci.ErrConflict)
			groups, err := s.ListGroups(ctx)
			require.NoError(t, err)
			require.Equal(t, []ci.Group{all}, groups)
		}},
		{"create list delete", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			for _, name := range []string{"linux", "arm", "windows"} {
				g := ci.Group{Name: name}
				require.NoError(t, s.CreateGroup(ctx, &g))
				require.NotZero(t, g.ID)
				requireRecent(t, g.Created)
				got, err := s.GetGroupByName(ctx, name)
				require.NoError(t, err)
				require.Equal(t, g, got)
			}
			require.ErrorIs(t, s.CreateGroup(ctx, &ci.Group{Name: "arm"}), ci.ErrConflict)
			require.ErrorIs(t, s.CreateGroup(ctx, &ci.Group{}), ci.ErrInvalid)
			groups, err := s.ListGroups(ctx)
			require.NoError(t, err)
			var names []string
			for _, g := range groups {
				names = append(names, g.Name)
			}
			require.Equal(t, []string{"all", "arm", "linux", "windows"}, names)

			arm, err := s.GetGroupByName(ctx, "arm")
			require.NoError(t, err)
			require.NoError(t, s.DeleteGroup(ctx, arm.ID))
			_, err = s.GetGroupByName(ctx, "arm")
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.ErrorIs(t, s.DeleteGroup(ctx, arm.ID), ci.ErrNotFound)
		}},
		{"membership is idempotent and groups come sorted", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			a, b := f.agent("b-agent", true), f.agent("a-agent", false)
			zeta, beta := ci.Group{Name: "zeta"}, ci.Group{Name: "beta"}
			require.NoError(t, s.CreateGroup(f.ctx, &zeta))
			require.NoError(t, s.CreateGroup(f.ctx, &beta))
			for range 2 {
				require.NoError(t, s.AddAgentToGroup(f.ctx, zeta.ID, a.ID))
				require.NoError(t, s.AddAgentToGroup(f.ctx, beta.ID, a.ID))
			}
			require.NoError(t, s.AddAgentToGroup(f.ctx, zeta.ID, b.ID))
			require.Equal(t, []string{"all", "beta", "zeta"}, f.getAgent(a.ID).Groups)
			require.Equal(t, []string{"zeta"}, f.getAgent(b.ID).Groups)

			members, err := s.ListGroupAgents(f.ctx, zeta.ID)
			require.NoError(t, err)
			require.Equal(t, []string{"a-agent", "b-agent"}, agentNames(members))
			require.Equal(t, []string{"all", "beta", "zeta"}, members[1].Groups)
			list, err := s.ListAgents(f.ctx, store.ListAgentsOpts{})
			require.NoError(t, err)
			require.Equal(t, []string{"zeta"}, list[0].Groups)
			require.Equal(t, []string{"all", "beta", "zeta"}, list[1].Groups)

			for range 2 {
				require.NoError(t, s.RemoveAgentFromGroup(f.ctx, zeta.ID, a.ID))
			}
			require.Equal(t, []string{"all", "beta"}, f.getAgent(a.ID).Groups)

			require.NoError(t, s.DeleteGroup(f.ctx, beta.ID))
			require.Equal(t, []string{"all"}, f.getAgent(a.ID).Groups, "deleting a group removes memberships")
		}},
		{"membership of missing group or agent", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			a := f.agent("a", true)
			all, err := s.GetGroupByName(f.ctx, ci.GroupAll)
			require.NoError(t, err)
			require.ErrorIs(t, s.AddAgentToGroup(f.ctx, 42, a.ID), ci.ErrNotFound)
			require.ErrorIs(t, s.AddAgentToGroup(f.ctx, all.ID, 42), ci.ErrNotFound)
			require.ErrorIs(t, s.RemoveAgentFromGroup(f.ctx, 42, a.ID), ci.ErrNotFound)
			_, err = s.ListGroupAgents(f.ctx, 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetGroupByName(f.ctx, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
	}
}

func userCases() []testCase {
	return []testCase{
		{"users", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			n, err := s.CountUsers(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			u := ci.User{Name: "admin", PasswordHash: "pbkdf2$x", Admin: true}
			require.NoError(t, s.CreateUser(ctx, &u))
			require.NotZero(t, u.ID)
			requireRecent(t, u.Created)
			got, err := s.GetUserByName(ctx, "admin")
			require.NoError(t, err)
			require.Equal(t, u, got)
			require.ErrorIs(t, s.CreateUser(ctx, &ci.User{Name: "admin"}), ci.ErrConflict)
			require.ErrorIs(t, s.CreateUser(ctx, &ci.User{}), ci.ErrInvalid)
			require.NoError(t, s.CreateUser(ctx, &ci.User{Name: "dev"}))
			n, err = s.CountUsers(ctx)
			require.NoError(t, err)
			require.Equal(t, 2, n)
			_, err = s.GetUserByName(ctx, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"tokens", func(t *testing.T, s store.Store) {
			ctx := t.Context()
			u := ci.User{Name: "dev"}
			require.NoError(t, s.CreateUser(ctx, &u))
			tok := ci.Token{UserID: u.ID, Hash: "h1", Name: "laptop"}
			require.NoError(t, s.CreateToken(ctx, &tok))
			require.NotZero(t, tok.ID)
			requireRecent(t, tok.Created)
			require.Nil(t, tok.LastUsed)
			require.ErrorIs(t, s.CreateToken(ctx, &ci.Token{UserID: u.ID, Hash: "h1"}), ci.ErrConflict)
			require.ErrorIs(t, s.CreateToken(ctx, &ci.Token{UserID: 42, Hash: "h2"}), ci.ErrNotFound)
			require.ErrorIs(t, s.CreateToken(ctx, &ci.Token{UserID: u.ID}), ci.ErrInvalid)

			t0 := now().Add(time.Hour)
			got, gotUser, err := s.GetToken(ctx, "h1", t0)
			require.NoError(t, err)
			require.Equal(t, u, gotUser)
			require.Equal(t, tok.ID, got.ID)
			require.Equal(t, "laptop", got.Name)
			requireTime(t, t0, got.LastUsed)

			tests := []struct {
				name string
				at   time.Time
				want time.Time
			}{
				{"within a minute: not written", t0.Add(30 * time.Second), t0},
				{"clock behind: not moved back", t0.Add(-time.Hour), t0},
				{"after a minute: written", t0.Add(61 * time.Second), t0.Add(61 * time.Second)},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got, _, err := s.GetToken(ctx, "h1", tc.at)
					require.NoError(t, err)
					requireTime(t, tc.want, got.LastUsed)
					// And as stored:
					again, _, err := s.GetToken(ctx, "h1", tc.want)
					require.NoError(t, err)
					requireTime(t, tc.want, again.LastUsed)
				})
			}

			require.NoError(t, s.DeleteToken(ctx, tok.ID))
			_, _, err = s.GetToken(ctx, "h1", now())
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.ErrorIs(t, s.DeleteToken(ctx, tok.ID), ci.ErrNotFound)
			_, _, err = s.GetToken(ctx, "", now())
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
	}
}

func contextCases() []testCase {
	return []testCase{
		{"cancelled context", func(t *testing.T, s store.Store) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			require.ErrorIs(t, s.CreateProject(ctx, &ci.Project{Name: "p"}), context.Canceled)
			_, err := s.ListProjects(ctx)
			require.ErrorIs(t, err, context.Canceled)
			_, err = s.GetJob(ctx, 1)
			require.ErrorIs(t, err, context.Canceled)
			list, err := s.ListProjects(t.Context())
			require.NoError(t, err)
			require.Empty(t, list, "nothing was written")
		}},
	}
}

func agentNames(agents []ci.Agent) []string {
	out := []string{}
	for _, a := range agents {
		out = append(out, a.Name)
	}
	return out
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/pgtest"
	"github.com/kraken-go/kk/pkg/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}

// openURL opens a store on url and closes it at the end of the test.
func openURL(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// migratedURL returns the URL of a new database with the schema: a copy of
// one migrated database (copying is faster than migrating every time).
func migratedURL(t testing.TB) string {
	t.Helper()
	return pgtest.TemplateURL(t, "postgres-store", func(ctx context.Context, url string) error {
		s, err := Open(ctx, Config{URL: url})
		if err != nil {
			return err
		}
		return s.Close()
	})
}

// openTest opens a store on a new, migrated database.
func openTest(t testing.TB) *Store {
	t.Helper()
	return openURL(t, Config{URL: migratedURL(t)})
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

// fixture builds what claims need on s: n queued jobs and agents, authorized.
func fixture(t *testing.T, s *Store, nJobs, nAgents int) ([]*ci.Job, []ci.Agent) {
	t.Helper()
	ctx := t.Context()
	p := ci.Project{Name: "p"}
	require.NoError(t, s.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main"}
	require.NoError(t, s.CreateBranch(ctx, &b))
	f := ci.Flow{BranchID: b.ID, Kind: ci.FlowCI}
	require.NoError(t, s.CreateFlow(ctx, &f))
	jobs := make([]*ci.Job, nJobs)
	for i := range jobs {
		jobs[i] = &ci.Job{Name: fmt.Sprintf("job-%d", i), Group: ci.GroupAll, System: ci.SystemAny,
			Executor: ci.ExecutorLocal, Steps: []ci.Step{{Tool: "shell", Fields: map[string]any{"cmd": "true"}}}}
	}
	r := ci.Run{FlowID: f.ID, StageName: "build", State: ci.RunInProgress}
	require.NoError(t, s.CreateRun(ctx, &r, jobs))
	agents := make([]ci.Agent, nAgents)
	for i := range agents {
		a, err := s.RegisterAgent(ctx, ci.Agent{UUID: fmt.Sprintf("uuid-%d", i), Name: fmt.Sprintf("agent-%d", i)}, time.Now())
		require.NoError(t, err)
		agents[i], err = s.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
		require.NoError(t, err)
	}
	return jobs, agents
}

// TestClaimsAcrossPools races claims of the same jobs from several stores,
// each with its own connection pool, as several kkd processes would: every
// job is given to exactly one agent.
func TestClaimsAcrossPools(t *testing.T) {
	t.Parallel()
	url := migratedURL(t)
	const nPools, perPool, nJobs = 6, 3, 24
	stores := make([]*Store, nPools)
	for i := range stores {
		stores[i] = openURL(t, Config{URL: url})
	}
	jobs, agents := fixture(t, stores[0], nJobs, nPools*perPool)
	ctx := t.Context()

	t.Run("all claimers on one job at once", func(t *testing.T) {
		for _, job := range jobs[:nJobs/2] {
			start := make(chan struct{})
			var wg sync.WaitGroup
			var won atomic.Int32
			var winner atomic.Int64
			errs := make([]error, len(agents))
			for i, a := range agents {
				s := stores[i%nPools]
				wg.Go(func() {
					<-start
					j, err := s.ClaimJob(ctx, job.ID, a.ID, time.Minute)
					if errors.Is(err, ci.ErrConflict) {
						return
					}
					if err != nil {
						errs[i] = err
						return
					}
					won.Add(1)
					winner.Store(j.AgentID)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				require.NoError(t, err, "claimer %d", i)
			}
			require.EqualValues(t, 1, won.Load(), "claims of job %d", job.ID)
			j, err := stores[0].GetJob(ctx, job.ID)
			require.NoError(t, err)
			require.Equal(t, ci.JobAssigned, j.State)
			require.Equal(t, 1, j.Attempt)
			require.Equal(t, winner.Load(), j.AgentID)
			attempts, err := stores[0].ListJobAttempts(ctx, job.ID)
			require.NoError(t, err)
			require.Len(t, attempts, 1)
			// Free the agent for the next round.
			_, changed, err := stores[1].CompleteJob(ctx, j.ID, j.Attempt, ci.JobOK, "", time.Now())
			require.NoError(t, err)
			require.True(t, changed)
		}
	})

	t.Run("workers drain the queue", func(t *testing.T) {
		claims := make([]atomic.Int32, nJobs)
		index := map[int64]int{}
		for i, j := range jobs {
			index[j.ID] = i
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, len(agents))
		for i, a := range agents {
			s := stores[i%nPools]
			wg.Go(func() {
				<-start
				errs[i] = func() error {
					for {
						queued, err := s.ListQueuedJobs(ctx, 0)
						if err != nil || len(queued) == 0 {
							return err
						}
						for _, q := range queued {
							j, err := s.ClaimJob(ctx, q.ID, a.ID, time.Minute)
							if errors.Is(err, ci.ErrConflict) {
								continue
							}
							if err != nil {
								return err
							}
							claims[index[j.ID]].Add(1)
							if _, _, err := s.CompleteJob(ctx, j.ID, j.Attempt, ci.JobOK, "", time.Now()); err != nil {
								return err
							}
							break
						}
					}
				}()
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "worker %d", i)
		}
		for i := nJobs / 2; i < nJobs; i++ {
			require.EqualValues(t, 1, claims[i].Load(), "claims of job %d", jobs[i].ID)
		}
		for i := range nJobs / 2 {
			require.Zero(t, claims[i].Load(), "job %d was completed before", jobs[i].ID)
		}
		for _, a := range agents {
			got, err := stores[0].GetAgent(ctx, a.ID)
			require.NoError(t, err)
			require.Zero(t, got.JobID)
		}
	})
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	ctx := t.Context()
	all, err := migrations()
	require.NoError(t, err)
	require.NotEmpty(t, all)
	for i, m := range all {
		require.Equal(t, i+1, m.version, "versions count from 1 without gaps")
	}

	s := openURL(t, Config{URL: url, NoMigrate: true})
	st, err := s.MigrationStatus(ctx)
	require.NoError(t, err)
	require.Len(t, st, len(all))
	for _, m := range st {
		require.Nil(t, m.Applied, "version %d before migrating", m.Version)
	}

	// Several kkd processes starting at once: each migration is applied once.
	const n = 6
	applied := make([][]Migration, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			s, err := Open(ctx, Config{URL: url, NoMigrate: true})
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			applied[i], errs[i] = s.Migrate(ctx)
		})
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range n {
		require.NoError(t, errs[i])
		total += len(applied[i])
	}
	require.Equal(t, len(all), total, "every migration applied exactly once")

	st, err = s.MigrationStatus(ctx)
	require.NoError(t, err)
	for i, m := range st {
		require.Equal(t, all[i].version, m.Version)
		require.Equal(t, all[i].name, m.Name)
		require.NotNil(t, m.Applied)
		require.WithinDuration(t, time.Now(), *m.Applied, time.Minute)
	}

	// Idempotent: nothing left to apply, on Migrate or on Open.
	again, err := s.Migrate(ctx)
	require.NoError(t, err)
	require.Empty(t, again)
	openURL(t, Config{URL: url})
	var rows int
	require.NoError(t, s.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&rows))
	require.Equal(t, len(all), rows)
}

func TestMigrationsRefuseNewerDatabase(t *testing.T) {
	t.Parallel()
	url := migratedURL(t)
	s := openURL(t, Config{URL: url})
	_, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name, applied) VALUES (9999, 'future', now())`)
	require.NoError(t, err)
	st, err := s.MigrationStatus(t.Context())
	require.NoError(t, err)
	last := st[len(st)-1]
	require.Equal(t, 9999, last.Version)
	require.Equal(t, "future", last.Name)
	_, err = Open(t.Context(), Config{URL: url})
	require.ErrorContains(t, err, "run a newer kkd")
}

// TestMigrateAttempts applies 0002 to a database at version 1 with a job
// that was claimed and logged, as the SQLite store's test of the same
// migration does.
func TestMigrateAttempts(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	ctx := t.Context()
	all, err := migrations()
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, createMigrationsTable)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, all[0].sql)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO schema_migrations VALUES (1, $1, now())`, all[0].name)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `
		INSERT INTO projects (id, name, created) VALUES (1, 'p', now());
		INSERT INTO branches (id, project_id, name, created) VALUES (1, 1, 'b', now());
		INSERT INTO flows (id, branch_id, kind, state, seq, kind_seq, created) VALUES (1, 1, 'ci', 'in_progress', 1, 1, now());
		INSERT INTO runs (id, flow_id, stage_name, state, seq, created) VALUES (1, 1, 's', 'in_progress', 1, now());
		INSERT INTO agents (id, uuid, name, created) VALUES (1, 'u', 'agent-1', now());
		INSERT INTO jobs (id, run_id, flow_id, name, state, agent_id, attempt, created, assigned)
			VALUES (1, 1, 1, 'j', 'running', 1, 2, now(), '2024-01-02T03:04:05.678Z');
		INSERT INTO jobs (id, run_id, flow_id, name, state, created) VALUES (2, 1, 1, 'q', 'queued', now());
		INSERT INTO log_chunks (job_id, step, seq, data) VALUES (1, 0, 0, 'hello');`)
	require.NoError(t, err)

	s := openURL(t, Config{URL: url})
	attempts, err := s.ListJobAttempts(ctx, 1)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
	require.Equal(t, 2, attempts[0].Attempt)
	require.Equal(t, "agent-1", attempts[0].Agent)
	require.Equal(t, time.Date(2024, 1, 2, 3, 4, 5, 678e6, time.UTC), attempts[0].Assigned)
	chunks, err := s.ReadLogs(ctx, 1, 0, -1, store.LogPos{}, 0)
	require.NoError(t, err)
	require.Equal(t, []ci.LogChunk{{JobID: 1, Attempt: 2, Step: 0, Seq: 0, Data: []byte("hello")}}, chunks)
	none, err := s.ListJobAttempts(ctx, 2)
	require.NoError(t, err)
	require.Empty(t, none)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	// A server that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var held sync.WaitGroup
	t.Cleanup(held.Wait) // runs after the Close below (cleanups run last first)
	t.Cleanup(func() { silent.Close() })
	held.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	})
	refused := closedPort(t)

	tests := []struct {
		name string
		url  string
		want []string
	}{
		{"connection refused", "postgres://kk:secret@" + refused + "/kk?sslmode=disable",
			[]string{refused, "connection refused", "check that the server is running", "listen_addresses"}},
		{"no answer", "postgres://kk:secret@" + silent.Addr().String() + "/kk?sslmode=disable&connect_timeout=1",
			[]string{silent.Addr().String(), "within 1s", "firewalls"}},
		{"socket missing", "postgres:///kk?host=" + t.TempDir() + "&sslmode=disable",
			[]string{"unix socket", "connection refused"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Open(t.Context(), Config{URL: tc.url})
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "secret", "the password stays out of errors")
		})
	}

	_, err = Open(t.Context(), Config{URL: "postgres://kk:secret@127.0.0.1:notaport/kk"})
	require.ErrorIs(t, err, ci.ErrInvalid)
	require.NotContains(t, err.Error(), "secret")
}

func TestMissingDatabase(t *testing.T) {
	t.Parallel()
	url, err := withDB(pgtest.URL(t), "kk_no_such_db")
	require.NoError(t, err)
	_, err = Open(t.Context(), Config{URL: url})
	require.ErrorContains(t, err, `has no database "kk_no_such_db"`)
	require.ErrorContains(t, err, "createdb")
}

// withDB replaces the database of a URL.
func withDB(url, db string) (string, error) {
	i := strings.LastIndex(url, "/")
	j := strings.Index(url, "?")
	if i < 0 || j < i {
		return "", fmt.Errorf("unexpected URL %q", url)
	}
	return url[:i+1] + db + url[j:], nil
}

func TestSettings(t *testing.T) {
	t.Parallel()
	url := migratedURL(t)
	show := func(s *Store, name string) string {
		var v string
		require.NoError(t, s.pool.QueryRow(t.Context(), "SHOW "+name).Scan(&v))
		return v
	}
	def := openURL(t, Config{URL: url})
	require.Equal(t, "30s", show(def, "statement_timeout"))
	require.Equal(t, "UTC", show(def, "timezone"))
	require.Equal(t, "kkd", show(def, "application_name"))

	cfg := openURL(t, Config{URL: url, StatementTimeout: 1500 * time.Millisecond})
	require.Equal(t, "1500ms", show(cfg, "statement_timeout"))

	fromURL := openURL(t, Config{URL: url + "&statement_timeout=250&pool_max_conns=3&application_name=kkd-eu",
		StatementTimeout: time.Hour})
	require.Equal(t, "250ms", show(fromURL, "statement_timeout"), "the URL wins")
	require.EqualValues(t, 3, fromURL.pool.Config().MaxConns)
	require.Equal(t, "kkd-eu", show(fromURL, "application_name"))
	require.Equal(t, DefaultConnectTimeout, fromURL.pool.Config().ConnConfig.ConnectTimeout)
}

// TestStatementTimeout holds a job's row lock in another transaction: a
// store method that needs it fails after the statement timeout with an error
// that names it, instead of hanging.
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	url := migratedURL(t)
	ctx := t.Context()
	s := openURL(t, Config{URL: url, StatementTimeout: 300 * time.Millisecond})
	jobs, _ := fixture(t, s, 1, 0)

	tx, err := s.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE`, jobs[0].ID)
	require.NoError(t, err)

	began := time.Now()
	_, _, err = s.RequestCancel(ctx, jobs[0].ID, time.Now(), "stop")
	require.Error(t, err)
	require.Less(t, time.Since(began), 10*time.Second)
	require.ErrorContains(t, err, "statement timeout (300ms")
	require.ErrorContains(t, err, "statement_timeout=MS")
	require.NoError(t, tx.Rollback(ctx))

	// Once the lock is gone the same call goes through.
	_, changed, err := s.RequestCancel(ctx, jobs[0].ID, time.Now(), "stop")
	require.NoError(t, err)
	require.True(t, changed)
}

// TestQueuePlan checks that the queue is read from its partial index.
func TestQueuePlan(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	fixture(t, s, 3, 0)
	tx, err := s.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	var plan strings.Builder
	rows, err := tx.Query(ctx, `EXPLAIN `+queuedJobsQuery, 10)
	require.NoError(t, err)
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan.WriteString(line + "\n")
	}
	require.NoError(t, rows.Err())
	require.Contains(t, plan.String(), "jobs_queue", plan.String())
	require.NotContains(t, plan.String(), "Sort", plan.String())
}

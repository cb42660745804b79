package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/storetest"
)

// openTest opens a store on a new file in the test's temporary directory and
// closes it at the end of the test.
func openTest(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "kk.db"))
}

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

func TestOpenRejectsMemory(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", ":memory:", "/tmp/x.db?mode=memory"} {
		_, err := Open(t.Context(), path, nil)
		require.ErrorIs(t, err, ci.ErrInvalid, "path %q", path)
	}
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	tests := []struct {
		pragma string
		db     func() querier
		want   string
	}{
		{"journal_mode", func() querier { return s.w }, "wal"},
		{"foreign_keys", func() querier { return s.w }, "1"},
		{"synchronous", func() querier { return s.w }, "1"}, // NORMAL
		{"wal_autocheckpoint", func() querier { return s.w }, strconv.Itoa(writerAutoCheckpoint)},
		{"synchronous", func() querier { return s.ckpt.db }, "1"},
		{"busy_timeout", func() querier { return s.w }, strconv.FormatInt(busyTimeout.Milliseconds(), 10)},
		{"foreign_keys", func() querier { return s.r }, "1"},
		{"query_only", func() querier { return s.r }, "1"},
		{"query_only", func() querier { return s.w }, "0"},
	}
	for _, tc := range tests {
		t.Run(tc.pragma, func(t *testing.T) {
			var got string
			require.NoError(t, tc.db().QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got))
			require.Equal(t, tc.want, got)
		})
	}
	// The read pool cannot write.
	_, err := s.r.ExecContext(t.Context(), `INSERT INTO groups (name, created) VALUES ('x', 0)`)
	require.Error(t, err)
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kk.db")
	all, err := migrations()
	require.NoError(t, err)
	require.NotEmpty(t, all)
	require.Equal(t, 1, all[0].version, "versions start at 1")
	for i, m := range all {
		require.Equal(t, i+1, m.version, "versions are consecutive")
	}

	s, err := Open(t.Context(), path, nil)
	require.NoError(t, err)
	first, err := s.MigrationStatus(t.Context())
	require.NoError(t, err)
	require.Len(t, first, len(all))
	for _, m := range first {
		require.NotNil(t, m.Applied, "migration %d", m.Version)
	}
	require.Equal(t, "init", first[0].Name)
	require.NoError(t, s.Close())

	// Reopening applies nothing again.
	s = openAt(t, path)
	again, err := s.MigrationStatus(t.Context())
	require.NoError(t, err)
	require.Equal(t, first, again)
	var rows int
	require.NoError(t, s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&rows))
	require.Equal(t, len(all), rows)
	groups, err := s.ListGroups(t.Context())
	require.NoError(t, err)
	require.Len(t, groups, 1, "the built-in group is created once")
}

func TestMigrationsRefuseNewerDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kk.db")
	s, err := Open(t.Context(), path, nil)
	require.NoError(t, err)
	_, err = s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied) VALUES (9999, 'future', 0)`)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	_, err = Open(t.Context(), path, nil)
	require.ErrorContains(t, err, "newer kkd")
}

func TestMigrationStatusPending(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	// Pretend the newest migration is not applied: status reports it pending.
	all, err := migrations()
	require.NoError(t, err)
	last := all[len(all)-1].version
	_, err = s.w.ExecContext(t.Context(), `DELETE FROM schema_migrations WHERE version = ?`, last)
	require.NoError(t, err)
	status, err := s.MigrationStatus(t.Context())
	require.NoError(t, err)
	require.Nil(t, status[len(status)-1].Applied)
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kk.db")
	s, err := Open(ctx, path, nil)
	require.NoError(t, err)

	p := ci.Project{Name: "p", Description: "d"}
	require.NoError(t, s.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main", Env: map[string]string{"K": "v"}}
	require.NoError(t, s.CreateBranch(ctx, &b))
	fl := ci.Flow{BranchID: b.ID, Kind: ci.FlowCI, Args: map[string]string{"A": "1"}}
	require.NoError(t, s.CreateFlow(ctx, &fl))
	jobs := []*ci.Job{{Name: "j", Steps: []ci.Step{{Tool: "shell", Fields: map[string]any{"cmd": "true"}}}}}
	r := ci.Run{FlowID: fl.ID, StageName: "build", State: ci.RunInProgress}
	require.NoError(t, s.CreateRun(ctx, &r, jobs))
	a, err := s.RegisterAgent(ctx, ci.Agent{UUID: "u", Name: "a"}, time.Now())
	require.NoError(t, err)
	a, err = s.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(t, err)
	claimed, err := s.ClaimJob(ctx, jobs[0].ID, a.ID, time.Minute)
	require.NoError(t, err)
	_, err = s.AppendLog(ctx, ci.LogChunk{JobID: jobs[0].ID, Attempt: 1, Step: 0, Seq: 0, Data: []byte("hello\n")})
	require.NoError(t, err)
	_, err = s.AppendLog(ctx, ci.LogChunk{JobID: jobs[0].ID, Attempt: 1, Step: 0, Seq: 1, Data: []byte("world\n")})
	require.NoError(t, err)
	// A cancel request survives a restart of kkd.
	claimed, changed, err := s.RequestCancel(ctx, jobs[0].ID, time.Now(), "")
	require.NoError(t, err)
	require.True(t, changed)
	claimed.Steps = jobs[0].Steps
	require.NoError(t, s.Close())

	s = openAt(t, path)
	gotP, err := s.GetProject(ctx, p.ID)
	require.NoError(t, err)
	require.Equal(t, p, gotP)
	gotB, err := s.GetBranch(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, b, gotB)
	gotF, err := s.GetFlow(ctx, fl.ID)
	require.NoError(t, err)
	require.Equal(t, fl, gotF)
	gotR, err := s.GetRun(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, gotR)
	gotJ, err := s.GetJob(ctx, jobs[0].ID)
	require.NoError(t, err)
	require.Equal(t, claimed, gotJ)
	require.NotNil(t, gotJ.CancelRequested)
	gotA, err := s.GetAgent(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, claimed.ID, gotA.JobID)
	attempts, err := s.ListJobAttempts(ctx, jobs[0].ID)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
	require.Equal(t, "a", attempts[0].Agent)
	logs, err := s.ReadLogs(ctx, jobs[0].ID, -1, -1, store.LogPos{}, 0)
	require.NoError(t, err)
	require.Len(t, logs, 2)
	require.Equal(t, "hello\nworld\n", string(logs[0].Data)+string(logs[1].Data))
	// Counters continue.
	fl2 := ci.Flow{BranchID: b.ID, Kind: ci.FlowCI}
	require.NoError(t, s.CreateFlow(ctx, &fl2))
	require.EqualValues(t, 2, fl2.Seq)
}

// TestQueryPlans checks that the hot queries read their index instead of
// scanning (and sorting) the jobs table.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	tests := []struct {
		name  string
		query string
		args  []any
		index string
	}{
		{"queue in FIFO order", queuedJobsQuery, []any{-1}, "jobs_queue"},
		{"queue page", queuedJobsAfterQuery, []any{1, 1, 5, -1}, "jobs_queue"},
		{"open jobs of a run", `SELECT 1 FROM jobs WHERE jobs.run_id = 1
			AND jobs.covered = 0 AND jobs.state <> 'completed'`, nil, "jobs_open"},
		{"expired leases", expiredJobsQuery, []any{5}, "jobs_active"},
		{"agent of a job", `UPDATE agents SET job_id = NULL WHERE job_id = 1`, nil, "agents_job"},
		{"credential", `SELECT 1 FROM agents WHERE credential_hash = 'x' AND credential_hash <> ''`, nil,
			"agents_credential"},
		{"log of an attempt's step", `SELECT data FROM log_chunks WHERE job_id = 1 AND (attempt, step, seq) > (1, 0, 5)
			AND attempt = 1 AND step = 0 ORDER BY attempt, step, seq`, nil, "sqlite_autoindex_log_chunks"},
		{"attempts of a job", `SELECT 1 FROM job_attempts WHERE job_id = 1 ORDER BY attempt`, nil, "sqlite_autoindex_job_attempts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.w.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+tc.query, tc.args...)
			require.NoError(t, err)
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
				plan = append(plan, detail)
			}
			require.NoError(t, rows.Err())
			joined := strings.Join(plan, "; ")
			require.Contains(t, joined, tc.index)
			require.NotContains(t, joined, "TEMP B-TREE", "no sort step")
		})
	}
}

// Durability: a child process commits data and reports it, then the parent
// kills it with SIGKILL in the middle of further writes. Everything reported
// as committed must be there after reopening, and the file must be intact.

const helperEnv = "KK_SQLITE_DURABILITY_HELPER_DB"

// TestDurabilityHelper is the child process of TestDurabilitySIGKILL. It does
// nothing when run normally.
func TestDurabilityHelper(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		return
	}
	ctx := context.Background()
	s, err := Open(ctx, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	p := ci.Project{Name: "durable"}
	if err := s.CreateProject(ctx, &p); err != nil {
		fail(err)
	}
	b := ci.Branch{ProjectID: p.ID, Name: "main"}
	if err := s.CreateBranch(ctx, &b); err != nil {
		fail(err)
	}
	fl := ci.Flow{BranchID: b.ID, Kind: ci.FlowCI}
	if err := s.CreateFlow(ctx, &fl); err != nil {
		fail(err)
	}
	jobs := []*ci.Job{{Name: "j", Steps: []ci.Step{{Tool: "shell"}}}}
	if err := s.CreateRun(ctx, &ci.Run{FlowID: fl.ID, StageName: "build", State: ci.RunInProgress}, jobs); err != nil {
		fail(err)
	}
	a, err := s.RegisterAgent(ctx, ci.Agent{UUID: "u", Name: "a"}, time.Now())
	if err != nil {
		fail(err)
	}
	if _, err := s.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)}); err != nil {
		fail(err)
	}
	if _, err := s.ClaimJob(ctx, jobs[0].ID, a.ID, time.Hour); err != nil {
		fail(err)
	}
	fmt.Printf("job %d\n", jobs[0].ID)
	chunk := make([]byte, 4096)
	deadline := time.Now().Add(time.Minute) // never outlive a vanished parent
	for seq := int64(0); time.Now().Before(deadline); seq++ {
		if _, err := s.AppendLog(ctx, ci.LogChunk{JobID: jobs[0].ID, Attempt: 1, Step: 0, Seq: seq, Data: chunk}); err != nil {
			fail(err)
		}
		// Reported only after the commit returned.
		if _, err := fmt.Printf("committed %d\n", seq); err != nil {
			os.Exit(3)
		}
	}
	os.Exit(4)
}

func TestDurabilitySIGKILL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kk.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	const target = 200
	var jobID int64
	last := int64(-1)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "job "); ok {
			jobID, err = strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
		}
		if v, ok := strings.CutPrefix(line, "committed "); ok {
			last, err = strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
			if last >= target {
				break
			}
		}
	}
	require.GreaterOrEqual(t, last, int64(target), "the helper stopped early (scan error: %v)", sc.Err())
	require.NoError(t, cmd.Process.Kill()) // SIGKILL, while it keeps writing
	killed = true
	err = cmd.Wait()
	require.Error(t, err, "the helper must die from the signal")

	s := openAt(t, path)
	ctx := t.Context()
	p, err := s.GetProjectByName(ctx, "durable")
	require.NoError(t, err)
	branches, err := s.ListBranches(ctx, p.ID)
	require.NoError(t, err)
	require.Len(t, branches, 1)
	j, err := s.GetJob(ctx, jobID)
	require.NoError(t, err)
	require.Len(t, j.Steps, 1)
	logs, err := s.ReadLogs(ctx, jobID, 1, 0, store.LogPos{}, 0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, int64(len(logs)), last+1, "every reported commit survived")
	for i, c := range logs {
		require.EqualValues(t, i, c.Seq, "no gap")
		require.Len(t, c.Data, 4096)
	}
	var check string
	require.NoError(t, s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check))
	require.Equal(t, "ok", check)
}

// Benchmarks.

// BenchmarkClaimComplete measures the claim-and-complete cycle of queued jobs
// by one agent, the scheduler's hot path.
func BenchmarkClaimComplete(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	p := ci.Project{Name: "p"}
	require.NoError(b, s.CreateProject(ctx, &p))
	br := ci.Branch{ProjectID: p.ID, Name: "main"}
	require.NoError(b, s.CreateBranch(ctx, &br))
	fl := ci.Flow{BranchID: br.ID, Kind: ci.FlowCI}
	require.NoError(b, s.CreateFlow(ctx, &fl))
	jobs := make([]*ci.Job, b.N)
	for i := range jobs {
		jobs[i] = &ci.Job{Name: "j" + strconv.Itoa(i), Steps: []ci.Step{{Tool: "shell"}, {Tool: "artifacts"}}}
	}
	require.NoError(b, s.CreateRun(ctx, &ci.Run{FlowID: fl.ID, StageName: "build", State: ci.RunInProgress}, jobs))
	a, err := s.RegisterAgent(ctx, ci.Agent{UUID: "u", Name: "a"}, time.Now())
	require.NoError(b, err)
	_, err = s.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(b, err)

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j, err := s.ClaimJob(ctx, jobs[i].ID, a.ID, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.CompleteJob(ctx, j.ID, j.Attempt, ci.JobOK, "", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkAppendLog measures log ingestion in 64 KiB chunks.
func BenchmarkAppendLog(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	jobID := claimedJob(b, s)
	data := []byte(strings.Repeat("building target 42: compiling module x ... ok\n", 64<<10/46+1)[:64<<10])

	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.AppendLog(ctx, ci.LogChunk{JobID: jobID, Attempt: 1, Step: 0, Seq: int64(i), Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// claimedJob creates a one-step job claimed by an agent (attempt 1) and
// returns its ID.
func claimedJob(t testing.TB, s *Store) int64 {
	t.Helper()
	ctx := context.Background()
	p := ci.Project{Name: "p"}
	require.NoError(t, s.CreateProject(ctx, &p))
	br := ci.Branch{ProjectID: p.ID, Name: "main"}
	require.NoError(t, s.CreateBranch(ctx, &br))
	fl := ci.Flow{BranchID: br.ID, Kind: ci.FlowCI}
	require.NoError(t, s.CreateFlow(ctx, &fl))
	jobs := []*ci.Job{{Name: "j", Steps: []ci.Step{{Tool: "shell"}}}}
	require.NoError(t, s.CreateRun(ctx, &ci.Run{FlowID: fl.ID, StageName: "build", State: ci.RunInProgress}, jobs))
	a, err := s.RegisterAgent(ctx, ci.Agent{UUID: "u", Name: "a"}, time.Now())
	require.NoError(t, err)
	_, err = s.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(t, err)
	_, err = s.ClaimJob(ctx, jobs[0].ID, a.ID, time.Hour)
	require.NoError(t, err)
	return jobs[0].ID
}

// TestBackgroundCheckpoint: log chunks committed by the writer are copied
// from the WAL into the database file by the background checkpointer, long
// before the writer's own checkpoint threshold, and read back intact.
func TestBackgroundCheckpoint(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kk.db")
	s := openAt(t, path)
	ctx := t.Context()
	jobID := claimedJob(t, s)
	before, err := os.Stat(path)
	require.NoError(t, err)

	const chunk = 256 << 10
	total := 2 * checkpointEvery
	require.Less(t, total, writerAutoCheckpoint*4096/2, "the writer must not reach its own checkpoint")
	var want []byte
	for seq := range total / chunk {
		data := bytes.Repeat([]byte{byte('a' + seq)}, chunk)
		want = append(want, data...)
		inserted, err := s.AppendLog(ctx, ci.LogChunk{JobID: jobID, Attempt: 1, Step: 0, Seq: int64(seq), Data: data})
		require.NoError(t, err)
		require.True(t, inserted)
	}
	// Only a checkpoint grows the database file by the chunks' pages.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := os.Stat(path)
		require.NoError(t, err)
		if st.Size()-before.Size() >= int64(checkpointEvery) {
			break
		}
		require.True(t, time.Now().Before(deadline), "database file grew by %d bytes; want >= %d after a background checkpoint",
			st.Size()-before.Size(), checkpointEvery)
		<-tick.C
	}
	chunks, err := s.ReadLogs(ctx, jobID, 1, 0, store.LogPos{Seq: -1}, 0)
	require.NoError(t, err)
	var got []byte
	for i, c := range chunks {
		require.Equal(t, int64(i), c.Seq)
		got = append(got, c.Data...)
	}
	require.True(t, bytes.Equal(want, got), "read back %d bytes, want %d", len(got), len(want))
}

// TestMigrateAttempts upgrades a database of schema version 1 that holds a
// running job with logs: its chunks land under the job's current attempt and
// the attempt shows in the history.
func TestMigrateAttempts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kk.db")
	all, err := migrations()
	require.NoError(t, err)
	db, err := sql.Open("sqlite", dsn(path))
	require.NoError(t, err)
	for _, q := range []string{createMigrationsTable, all[0].sql,
		`INSERT INTO schema_migrations (version, name, applied) VALUES (1, 'init', 0)`,
		`INSERT INTO projects (id, name, created) VALUES (1, 'p', 0)`,
		`INSERT INTO branches (id, project_id, name, created) VALUES (1, 1, 'main', 0)`,
		`INSERT INTO flows (id, branch_id, kind, state, seq, kind_seq, created) VALUES (1, 1, 'ci', 'in_progress', 1, 1, 0)`,
		`INSERT INTO runs (id, flow_id, stage_name, state, seq, created) VALUES (1, 1, 'build', 'in_progress', 1, 0)`,
		`INSERT INTO agents (id, uuid, name, authorized, created) VALUES (7, 'u', 'builder', 1, 0)`,
		`INSERT INTO jobs (id, run_id, flow_id, name, state, agent_id, attempt, created, assigned, started, lease_until)
			VALUES (1, 1, 1, 'j', 'running', 7, 2, 0, 1000, 2000, 99999999999999)`,
		`INSERT INTO jobs (id, run_id, flow_id, name, state, created) VALUES (2, 1, 1, 'queued', 'queued', 0)`,
		`INSERT INTO steps (job_id, idx, status) VALUES (1, 0, 'running')`,
		`UPDATE agents SET job_id = 1 WHERE id = 7`,
		`INSERT INTO log_chunks (job_id, step, seq, data) VALUES (1, 0, 0, CAST('hello ' AS BLOB)), (1, 0, 1, CAST('world' AS BLOB))`,
	} {
		_, err := db.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	require.NoError(t, db.Close())

	s := openAt(t, path)
	logs, err := s.ReadLogs(ctx, 1, -1, -1, store.LogPos{}, 0)
	require.NoError(t, err)
	require.Len(t, logs, 2)
	for _, c := range logs {
		require.Equal(t, 2, c.Attempt, "the chunks belong to the current attempt")
	}
	require.Equal(t, "hello world", string(logs[0].Data)+string(logs[1].Data))
	attempts, err := s.ListJobAttempts(ctx, 1)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
	require.Equal(t, 2, attempts[0].Attempt)
	require.Equal(t, "builder", attempts[0].Agent)
	require.EqualValues(t, 7, attempts[0].AgentID)
	require.Empty(t, attempts[0].Outcome)
	attempts, err = s.ListJobAttempts(ctx, 2)
	require.NoError(t, err)
	require.Empty(t, attempts, "a job never claimed has no history")
	j, err := s.GetJob(ctx, 1)
	require.NoError(t, err)
	require.Nil(t, j.CancelRequested)

	// The running attempt goes on where it was.
	inserted, err := s.AppendLog(ctx, ci.LogChunk{JobID: 1, Attempt: 2, Step: 0, Seq: 2, Data: []byte("!")})
	require.NoError(t, err)
	require.True(t, inserted)
	_, err = s.AppendLog(ctx, ci.LogChunk{JobID: 1, Attempt: 1, Step: 0, Seq: 3, Data: []byte("?")})
	require.ErrorIs(t, err, ci.ErrStaleAttempt)
	var check string
	require.NoError(t, s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check))
	require.Equal(t, "ok", check)
	var fk int
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT count(*) FROM pragma_foreign_key_check").Scan(&fk))
	require.Zero(t, fk)
}

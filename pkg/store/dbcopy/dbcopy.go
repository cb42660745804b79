// Package dbcopy copies a whole kkd database from SQLite to PostgreSQL, for an
// installation that outgrows the default (`kkd db copy`).
//
// # What Copy does
//
//  1. It checks the source: the SQLite file must exist and be at exactly the
//     schema version this binary knows (else: run `kkd migrate up` on it, or
//     use the newer kkd that wrote it).
//  2. It checks that the target holds no data (every table empty but the
//     built-in group "all" that the first migration creates), then applies
//     the PostgreSQL migrations, so both databases have the same schema.
//  3. In ONE transaction on the target, it copies every table (Tables, an
//     order in which each table comes after the tables it references) with
//     COPY, streaming the rows from one read transaction (one snapshot) of
//     the source: memory use does not grow with the size of a table. Primary
//     keys keep their values; every identity sequence is then set past the
//     largest copied id, so rows inserted later get fresh ids. Either the
//     whole database is copied or, on any error or cancellation, nothing.
//
// Values are converted by the type of the PostgreSQL column (read from
// information_schema): SQLite's INTEGER unix milliseconds become timestamptz,
// INTEGER 0/1 booleans, TEXT JSON json/jsonb (json keeps it byte for byte),
// BLOB bytea. Sealed secrets are copied as they are: their encryption binds
// project id and name, which are preserved, so the same secret key opens them.
// Blobs (artifacts, caches, archived logs) are not in the database: the new
// installation must use the same blob store.
//
// The one foreign key cycle of the schema, agents.job_id (an agent's current
// job) and jobs.agent_id, is broken by copying agents with job_id NULL and
// setting it once the jobs are in.
package dbcopy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/store/postgres"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

// Tables returns every table of kkd's schema but schema_migrations, in the
// order Copy copies them: each after the tables its foreign keys reference
// (except agents.job_id, see the package comment). A table added by a
// migration must be added here; a test compares this list with both
// dialects' schemas.
func Tables() []string {
	return []string{
		"projects",
		"branches",
		"stages",
		"stage_triggers",
		"branch_sequences",
		"flows",
		"runs",
		"agents", // job_id set after jobs
		"jobs",
		"steps",
		"log_chunks",
		"job_attempts",
		"groups",
		"agent_groups",
		"users",
		"tokens",
		"artifacts",
		"caches",
		"secrets",
		"test_cases",
		"test_results",
		"issues",
		"job_analysis",
		"data_docs",
		"webhook_secrets",
		"webhook_deliveries",
		"run_notifications",
	}
}

// notCopied are tables each store's migrations create and fill, never copied:
// the applied migrations, and the stages' write counter (the target's own
// triggers count the copied stages).
var notCopied = map[string]bool{"schema_migrations": true, "stages_revision": true}

// Config of Copy.
type Config struct {
	// SQLitePath is the source database file (it is only read).
	SQLitePath string
	// PostgresURL is the target database (postgres:// or postgresql://).
	PostgresURL string
	// Progress gets one line per copied table and a summary; nil: none.
	Progress io.Writer
	// Logger may be nil.
	Logger *slog.Logger
}

// TableStats is what Copy did to one table.
type TableStats struct {
	Table   string
	Rows    int64
	Elapsed time.Duration
}

// Stats is what Copy did.
type Stats struct {
	// Version is the schema version of both databases.
	Version int
	Tables  []TableStats
	Rows    int64
	Elapsed time.Duration
}

// ErrTargetNotEmpty is wrapped by Copy's error when the target holds data.
var ErrTargetNotEmpty = errors.New("target database is not empty")

// Copy copies the SQLite database at cfg.SQLitePath into the PostgreSQL
// database at cfg.PostgresURL (see the package comment). The target is
// left unchanged on every error but that the pending migrations of an
// empty target may have been applied.
func Copy(ctx context.Context, cfg Config) (Stats, error) {
	start := time.Now()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	if cfg.SQLitePath == "" || strings.ContainsAny(cfg.SQLitePath, "?#") {
		return Stats{}, fmt.Errorf("source: give the path of an SQLite database file (without ? or #), not %q", cfg.SQLitePath)
	}
	if _, err := os.Stat(cfg.SQLitePath); errors.Is(err, fs.ErrNotExist) {
		return Stats{}, fmt.Errorf("source: there is no SQLite database at %s: check the path (kkd keeps it in DATA_DIR/kk.db)", cfg.SQLitePath)
	} else if err != nil {
		return Stats{}, fmt.Errorf("source: %w", err)
	}

	// The target is reached first: it also tells the versions this kkd knows.
	target, err := postgres.Open(ctx, postgres.Config{URL: cfg.PostgresURL, Logger: logger, NoMigrate: true})
	if err != nil {
		return Stats{}, fmt.Errorf("target: %w", err)
	}
	defer target.Close()
	version, err := checkVersions(ctx, cfg.SQLitePath, target)
	if err != nil {
		return Stats{}, err
	}

	conn, err := connect(ctx, cfg.PostgresURL)
	if err != nil {
		return Stats{}, fmt.Errorf("target: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Before migrating: a database with data of some other application (or
	// an older kkd) is refused as it is.
	if err := checkEmpty(ctx, conn); err != nil {
		return Stats{}, err
	}
	applied, err := target.Migrate(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("target: %w", err)
	}
	for _, m := range applied {
		logger.Info("applied migration to the target", "version", m.Version, "name", m.Name)
	}

	src, err := openSource(ctx, cfg.SQLitePath)
	if err != nil {
		return Stats{}, err
	}
	defer src.Close()

	stats := Stats{Version: version}
	err = copyAll(ctx, src, conn, progress, &stats)
	stats.Elapsed = time.Since(start)
	if err != nil {
		return stats, err
	}
	rate := float64(stats.Rows) / max(stats.Elapsed.Seconds(), 1e-3)
	fmt.Fprintf(progress, "copied %d rows of %d tables in %s (%.0f rows/s), schema version %04d\n",
		stats.Rows, len(stats.Tables), stats.Elapsed.Round(time.Millisecond), rate, stats.Version)
	logger.Info("copied database", "rows", stats.Rows, "tables", len(stats.Tables), "elapsed", stats.Elapsed)
	return stats, nil
}

// checkVersions requires the source to have exactly the migrations this
// binary knows (the target's embedded ones, which mirror SQLite's), and
// returns the newest version.
func checkVersions(ctx context.Context, path string, target *postgres.Store) (int, error) {
	tms, err := target.MigrationStatus(ctx)
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	sms, err := sqlite.ReadMigrationStatus(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	version := 0
	for _, m := range tms {
		if m.Applied != nil && !slices.ContainsFunc(sms, func(s sqlite.Migration) bool { return s.Version == m.Version }) {
			return 0, fmt.Errorf("target: database has schema version %d, which this kkd does not know: refusing to copy into it", m.Version)
		}
		version = max(version, m.Version)
	}
	var pending []string
	for _, m := range sms {
		if !slices.ContainsFunc(tms, func(t postgres.Migration) bool { return t.Version == m.Version }) {
			if m.Applied != nil {
				return 0, fmt.Errorf("source: database has schema version %d, which this kkd does not know: copy it with the newer kkd that migrated it", m.Version)
			}
			return 0, fmt.Errorf("source: migration %04d_%s has no PostgreSQL counterpart in this kkd", m.Version, m.Name)
		}
		if m.Applied == nil {
			pending = append(pending, fmt.Sprintf("%04d_%s", m.Version, m.Name))
		}
	}
	if len(pending) > 0 {
		return 0, fmt.Errorf("source: the SQLite database is not at schema version %04d (pending: %s): run `kkd migrate up --db sqlite://%s` on it first (with kkd stopped)",
			version, strings.Join(pending, ", "), path)
	}
	return version, nil
}

// connect opens the connection that runs the copy. Unless the URL sets one,
// it has no statement timeout: one COPY may take long on a big table.
func connect(ctx context.Context, url string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if _, ok := cc.RuntimeParams["statement_timeout"]; !ok {
		cc.RuntimeParams["statement_timeout"] = "0"
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "kkd db copy"
	}
	cc.RuntimeParams["timezone"] = "UTC"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// openSource opens the SQLite file for reading only, on one connection.
func openSource(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	return db, nil
}

// pgQuerier is what *pgx.Conn and pgx.Tx have in common.
type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// checkEmpty returns an error wrapping ErrTargetNotEmpty, naming a table,
// when a table of the target's schema has rows; the group "all" alone (made
// by the first migration) counts as empty.
func checkEmpty(ctx context.Context, q pgQuerier) error {
	rows, err := q.Query(ctx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		return fmt.Errorf("target: list tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("target: list tables: %w", err)
	}
	for _, t := range names {
		if notCopied[t] {
			continue
		}
		query := `SELECT EXISTS (SELECT 1 FROM ` + pgx.Identifier{t}.Sanitize() + `)`
		if t == "groups" {
			query = `SELECT EXISTS (SELECT 1 FROM groups WHERE name <> 'all')`
		}
		var has bool
		if err := q.QueryRow(ctx, query).Scan(&has); err != nil {
			return fmt.Errorf("target: check table %s: %w", t, err)
		}
		if has {
			return fmt.Errorf("target: table %s has rows: %w; copy into a new, empty database (createdb -O USER DB) that no kkd has been started on", t, ErrTargetNotEmpty)
		}
	}
	return nil
}

// column is a column of a target table.
type column struct {
	name     string
	dataType string // information_schema data_type
	identity bool
	conv     func(any) (any, error)
}

// copyAll copies every table in one target transaction, from one source snapshot.
func copyAll(ctx context.Context, src *sql.DB, conn *pgx.Conn, progress io.Writer, stats *Stats) error {
	stx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("source: begin read: %w", err)
	}
	defer func() { _ = stx.Rollback() }()

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("target: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// Checked again inside the transaction: a kkd started on the target
	// meanwhile would have added its admin user.
	if err := checkEmpty(ctx, tx); err != nil {
		return err
	}
	cols, err := targetColumns(ctx, tx)
	if err != nil {
		return err
	}
	if err := checkSourceTables(ctx, stx, cols); err != nil {
		return err
	}
	// The "all" group of the target's migration makes way for the source's.
	if _, err := tx.Exec(ctx, `DELETE FROM groups`); err != nil {
		return fmt.Errorf("target: clear groups: %w", err)
	}

	var agentJobs [][2]int64 // (agent id, job id) to set after jobs
	for _, table := range Tables() {
		t0 := time.Now()
		var onRow func([]any)
		tcols := cols[table]
		if table == "agents" {
			i := slices.IndexFunc(tcols, func(c column) bool { return c.name == "job_id" })
			id := slices.IndexFunc(tcols, func(c column) bool { return c.name == "id" })
			onRow = func(v []any) {
				if v[i] != nil {
					agentJobs = append(agentJobs, [2]int64{v[id].(int64), v[i].(int64)})
					v[i] = nil
				}
			}
		}
		n, err := copyTable(ctx, stx, tx, table, tcols, onRow)
		if err != nil {
			return fmt.Errorf("copy table %s: %w", table, err)
		}
		if table == "jobs" {
			for _, aj := range agentJobs {
				if _, err := tx.Exec(ctx, `UPDATE agents SET job_id = $2 WHERE id = $1`, aj[0], aj[1]); err != nil {
					return fmt.Errorf("copy table agents: set current job of agent %d: %w", aj[0], err)
				}
			}
		}
		for _, c := range tcols {
			if c.identity {
				if err := resetIdentity(ctx, tx, table, c.name); err != nil {
					return err
				}
			}
		}
		ts := TableStats{Table: table, Rows: n, Elapsed: time.Since(t0)}
		stats.Tables = append(stats.Tables, ts)
		stats.Rows += n
		fmt.Fprintf(progress, "%-16s %10d rows %10s\n", table, n, ts.Elapsed.Round(time.Millisecond))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("target: commit: %w", err)
	}
	return nil
}

// targetColumns reads the columns of every table of the target, by table,
// in column order, and checks that the tables are exactly Tables.
func targetColumns(ctx context.Context, q pgQuerier) (map[string][]column, error) {
	rows, err := q.Query(ctx, `SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_identity = 'YES'
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("target: read columns: %w", err)
	}
	defer rows.Close()
	out := map[string][]column{}
	for rows.Next() {
		var table string
		var c column
		if err := rows.Scan(&table, &c.name, &c.dataType, &c.identity); err != nil {
			return nil, fmt.Errorf("target: read columns: %w", err)
		}
		if notCopied[table] {
			continue
		}
		c.conv, err = converter(c.dataType)
		if err != nil {
			return nil, fmt.Errorf("target: column %s.%s: %w", table, c.name, err)
		}
		out[table] = append(out[table], c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("target: read columns: %w", err)
	}
	if err := sameTables("target", keys(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// checkSourceTables requires the source to have the tables and columns of the target.
func checkSourceTables(ctx context.Context, stx *sql.Tx, cols map[string][]column) error {
	rows, err := stx.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)
	if err != nil {
		return fmt.Errorf("source: read columns: %w", err)
	}
	defer rows.Close()
	have := map[string][]string{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return fmt.Errorf("source: read columns: %w", err)
		}
		if !notCopied[table] {
			have[table] = append(have[table], col)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("source: read columns: %w", err)
	}
	if err := sameTables("source", keys(have)); err != nil {
		return err
	}
	for table, tcols := range cols {
		want := make([]string, len(tcols))
		for i, c := range tcols {
			want[i] = c.name
		}
		got := slices.Clone(have[table])
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			return fmt.Errorf("table %s has columns %v in the source and %v in the target: the schemas differ", table, got, want)
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// sameTables checks that tables (sorted) are exactly those of Tables.
func sameTables(which string, tables []string) error {
	want := Tables()
	slices.Sort(want)
	if !slices.Equal(tables, want) {
		return fmt.Errorf("%s: tables %v are not the ones this kkd copies (%v): the schema differs from this kkd's", which, tables, want)
	}
	return nil
}

// copyTable streams the table's rows from the source into a COPY on the target.
func copyTable(ctx context.Context, stx *sql.Tx, tx pgx.Tx, table string, cols []column, onRow func([]any)) (int64, error) {
	names := make([]string, len(cols))
	quoted := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
		quoted[i] = `"` + c.name + `"`
	}
	rows, err := stx.QueryContext(ctx, `SELECT `+strings.Join(quoted, ", ")+` FROM "`+table+`"`)
	if err != nil {
		return 0, fmt.Errorf("read source: %w", err)
	}
	defer rows.Close()
	rs := &rowSource{rows: rows, cols: cols, onRow: onRow,
		raw: make([]any, len(cols)), ptrs: make([]any, len(cols)), out: make([]any, len(cols))}
	for i := range rs.raw {
		rs.ptrs[i] = &rs.raw[i]
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, names, rs)
	if err != nil {
		return 0, err
	}
	if n != rs.n {
		return 0, fmt.Errorf("read %d rows but the target took %d", rs.n, n)
	}
	return n, nil
}

// rowSource is a pgx.CopyFromSource over source rows: it holds one row at a time.
type rowSource struct {
	rows  *sql.Rows
	cols  []column
	onRow func([]any)
	raw   []any
	ptrs  []any
	out   []any
	n     int64
	err   error
}

func (r *rowSource) Next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = fmt.Errorf("read source row: %w", err)
		return false
	}
	for i, c := range r.cols {
		v, err := c.conv(r.raw[i])
		if err != nil {
			r.err = fmt.Errorf("row %d, column %s: %w", r.n+1, c.name, err)
			return false
		}
		r.out[i] = v
	}
	if r.onRow != nil {
		r.onRow(r.out)
	}
	r.n++
	return true
}

func (r *rowSource) Values() ([]any, error) { return r.out, nil }

func (r *rowSource) Err() error {
	if r.err != nil {
		return r.err
	}
	if err := r.rows.Err(); err != nil {
		return fmt.Errorf("read source: %w", err)
	}
	return nil
}

// converter returns the conversion of SQLite values (int64, float64, string,
// []byte or nil) for a PostgreSQL column of the information_schema type
// dataType. NULL stays NULL.
func converter(dataType string) (func(any) (any, error), error) {
	switch dataType {
	case "timestamp with time zone":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil:
				return nil, nil
			case int64:
				return time.UnixMilli(v).UTC(), nil
			}
			return nil, fmt.Errorf("want unix milliseconds, got %T", v)
		}, nil
	case "boolean":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil:
				return nil, nil
			case int64:
				if v == 0 || v == 1 {
					return v == 1, nil
				}
			}
			return nil, fmt.Errorf("want 0 or 1, got %v", v)
		}, nil
	case "json", "jsonb", "text":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil, string:
				return v, nil
			case []byte:
				return string(v), nil
			}
			return nil, fmt.Errorf("want text, got %T", v)
		}, nil
	case "bytea":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil:
				return nil, nil
			case []byte:
				if v == nil {
					return []byte{}, nil // an empty blob, not NULL
				}
				return v, nil
			case string:
				return []byte(v), nil
			}
			return nil, fmt.Errorf("want a blob, got %T", v)
		}, nil
	case "bigint", "integer", "smallint":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil, int64:
				return v, nil
			}
			return nil, fmt.Errorf("want an integer, got %T", v)
		}, nil
	case "double precision", "real":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil, float64:
				return v, nil
			case int64:
				return float64(v), nil
			}
			return nil, fmt.Errorf("want a number, got %T", v)
		}, nil
	}
	return nil, fmt.Errorf("type %s is not one db copy converts: add it to dbcopy.converter", dataType)
}

// resetIdentity makes the identity column's sequence hand out max+1 next.
func resetIdentity(ctx context.Context, tx pgx.Tx, table, col string) error {
	t, c := pgx.Identifier{table}.Sanitize(), pgx.Identifier{col}.Sanitize()
	_, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max(`+c+`) FROM `+t+`), 0) + 1, false)`,
		t, col)
	if err != nil {
		return fmt.Errorf("reset the identity of %s.%s: %w", table, col, err)
	}
	return nil
}

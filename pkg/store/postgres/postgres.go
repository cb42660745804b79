// Package postgres is the server store of kkd: store.Store on PostgreSQL
// through pgx/v5 (pgxpool). Several kkd processes may share one database.
//
// # Concurrency
//
// Every method that changes something runs as one READ COMMITTED transaction.
// Read-modify-write methods first lock the row they decide on (SELECT ... FOR
// UPDATE, or FOR SHARE where they only need it to stay as it is) and then read
// everything else in later statements, which in READ COMMITTED see every
// transaction that committed before the lock was granted. Rows are locked in
// one order, job → agent → run → flow, so methods do not deadlock each other;
// a transaction that the server aborts anyway (deadlock with some other
// client, serialization failure) is retried a few times. Some examples:
//
//   - ClaimJob locks the job (SELECT ... FOR UPDATE), then the agent, and
//     checks both: of many claimers of one job, across any number of pools or
//     processes, the first one to lock it assigns it and the others, once it
//     committed, see it assigned and get ErrConflict. ClaimJob names one job,
//     so it waits for a lock instead of skipping it (SKIP LOCKED): a job locked
//     by a transaction that leaves it queued must not be reported as taken.
//   - CompleteRunIfDone and CompleteFlowIfDone lock the run or flow before they
//     look for open jobs or runs, and every method that adds work to a run or
//     flow (CreateRun, StartRun, RerunRun, RerunJob) writes the run or flow row
//     in the same transaction, so a run or flow is never completed while work
//     someone just added to it is still open.
//   - Counters of flows and runs are upserts on branch_sequences, whose row
//     lock hands out each number once, in commit order.
//   - RegisterAgent picks a free agent name under a transaction-level advisory
//     lock, so concurrent registrations never take the same name.
//
// Reads of several tables run in one REPEATABLE READ, read-only transaction,
// so they see one snapshot.
//
// # Connections and timeouts
//
// The database URL is a libpq connection string or URL (postgres:// or
// postgresql://). pgxpool reads its pool settings from it: pool_max_conns
// (default: the larger of 4 and the number of CPUs), pool_min_conns,
// pool_max_conn_lifetime, pool_max_conn_idle_time, pool_health_check_period.
// connect_timeout (seconds) defaults to 10. Every connection runs with a
// statement_timeout (Config.StatementTimeout, default 30 s; a
// statement_timeout=MS parameter in the URL wins), so a statement stuck on a
// lock fails with an error that says so instead of hanging. An unreachable
// database gives an error naming host:port and what to check.
//
// # Data
//
// Times are timestamptz, written and returned at millisecond precision in UTC.
// Maps (branch env, flow and run args, step fields, host info, test values)
// are jsonb and come back as nil when empty; the stage schema, trigger data
// and the data tool's documents are json, so they come back byte for byte.
// Sealed secrets are bytea. Batches of test results and issues are written
// with one statement per table (unnest of column arrays); the identity of an
// issue is its job, line, column, type and the md5 digests of its path,
// symbol and message, as those may be too long for a btree entry together. The schema is created and upgraded by the
// embedded migrations in migrations/ (see Migrate), which mirror the SQLite
// store's version for version.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

var _ store.Store = (*Store)(nil)

// Defaults of Config.
const (
	DefaultStatementTimeout = 30 * time.Second
	DefaultConnectTimeout   = 10 * time.Second
)

// maxTxAttempts bounds how often a transaction the server aborted with a
// deadlock or serialization failure is run again.
const maxTxAttempts = 5

// Config of Open.
type Config struct {
	// URL is the database URL: postgres://user:password@host:port/db?params
	// or a libpq keyword/value string.
	URL string
	// Logger may be nil.
	Logger *slog.Logger
	// StatementTimeout bounds every statement (0: DefaultStatementTimeout).
	// A statement_timeout parameter in the URL takes precedence.
	StatementTimeout time.Duration
	// NoMigrate leaves the schema alone: Open then only checks that the
	// database is reachable (for `kkd migrate status`). The store is unusable
	// until Migrate ran.
	NoMigrate bool
}

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use, also by several processes on one database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// where names the server(s) in errors: "host:port" or a socket path.
	where string
	// timeout is the statement timeout in effect, for error messages.
	timeout string
}

// Open connects to the database, applies the pending migrations (unless
// cfg.NoMigrate) and returns the store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgconn masks the password in its parse errors.
		return nil, fmt.Errorf("open postgres store: database URL: %v: %w", err, ci.ErrInvalid)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: logger, where: servers(pc.ConnConfig)}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	params := pc.ConnConfig.RuntimeParams
	if v, ok := params["statement_timeout"]; ok {
		s.timeout = v
		if _, err := strconv.Atoi(v); err == nil {
			s.timeout = v + "ms"
		}
	} else {
		d := cfg.StatementTimeout
		if d <= 0 {
			d = DefaultStatementTimeout
		}
		params["statement_timeout"] = strconv.FormatInt(d.Milliseconds(), 10)
		s.timeout = d.String()
	}
	if _, ok := params["application_name"]; !ok {
		params["application_name"] = "kkd"
	}
	params["timezone"] = "UTC"
	pc.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		// timestamptz values come back in UTC (pgx's default is time.Local).
		c.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s.pool = pool
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", s.connectError(ctx, pc.ConnConfig, err))
	}
	if !cfg.NoMigrate {
		if _, err := s.Migrate(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("open postgres store at %s: %w", s.where, err)
		}
	}
	return s, nil
}

// Close releases the pool; it waits for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// servers names the hosts of a connection config for error messages.
func servers(c *pgx.ConnConfig) string {
	names := []string{hostPort(c.Host, c.Port)}
	for _, f := range c.Fallbacks {
		if n := hostPort(f.Host, f.Port); n != names[len(names)-1] {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

func hostPort(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("unix socket %s/.s.PGSQL.%d", host, port)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(int(port))
}

// connectError turns a failed first connection into an error that names the
// server and says what to check. The driver's error stays wrapped.
func (s *Store) connectError(ctx context.Context, c *pgx.ConnConfig, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("connect to PostgreSQL at %s: %w", s.where, err)
	}
	who := fmt.Sprintf("database %q as user %q", c.Database, c.User)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("PostgreSQL at %s refused %s: %s: check the user and password in the database URL (or PGPASSWORD, ~/.pgpass) and pg_hba.conf: %w",
				s.where, who, pgErr.Message, err)
		case "3D000":
			return fmt.Errorf("PostgreSQL at %s has no %s: create it (createdb -O %s %s) or fix the database name in the URL: %w",
				s.where, who, c.User, c.Database, err)
		case "57P03":
			return fmt.Errorf("PostgreSQL at %s is starting up or shutting down; try again in a moment: %w", s.where, err)
		}
		return fmt.Errorf("PostgreSQL at %s refused %s: %s: %w", s.where, who, pgErr.Message, err)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such file or directory"):
		return fmt.Errorf("cannot reach PostgreSQL at %s (connection refused): check that the server is running, that it listens there (listen_addresses, port in postgresql.conf) and the host and port in the database URL: %w",
			s.where, err)
	case pgconn.Timeout(err), strings.Contains(msg, "timeout"):
		return fmt.Errorf("cannot reach PostgreSQL at %s within %v: check the host and port in the database URL, the network and firewalls between kkd and the server (raise connect_timeout=SECONDS in the URL for slow links): %w",
			s.where, c.ConnectTimeout, err)
	case strings.Contains(msg, "no such host"), strings.Contains(msg, "server misbehaving"):
		return fmt.Errorf("cannot resolve the PostgreSQL host of %s: check the host name in the database URL and DNS: %w", s.where, err)
	case strings.Contains(msg, "tls"), strings.Contains(msg, "SSL"):
		return fmt.Errorf("TLS with PostgreSQL at %s failed: check sslmode (and sslrootcert) in the database URL and the server's ssl settings: %w", s.where, err)
	}
	return fmt.Errorf("cannot connect to PostgreSQL at %s (%s): check that the server is running and the database URL: %w", s.where, who, err)
}

// dbErr adds what to do to errors a statement can end with that have a cause
// outside the store: the statement timeout and an unreachable server (which
// becomes an unreachableError, matching ci.ErrUnavailable).
func (s *Store) dbErr(err error) error {
	if err == nil {
		return nil
	}
	if unreachable(err) {
		return &unreachableError{where: s.where, err: err}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57014" && strings.Contains(pgErr.Message, "statement timeout"):
			return fmt.Errorf("statement took longer than the statement timeout (%s; set statement_timeout=MS in the database URL to change it): %w",
				s.timeout, err)
		case pgErr.Code == "55P03" && strings.Contains(pgErr.Message, "lock timeout"):
			return fmt.Errorf("waited longer than lock_timeout for a row another transaction holds: %w", err)
		}
	}
	return err
}

// querier is what pgxpool.Pool and pgx.Tx have in common; loaders take it so
// they work inside write and read transactions alike.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// db wraps a querier so that its errors go through dbErr.
type db struct {
	q querier
	s *Store
}

func (d db) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := d.q.Exec(ctx, sql, args...)
	return tag, d.s.dbErr(err)
}

func (d db) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := d.q.Query(ctx, sql, args...)
	return rows, d.s.dbErr(err)
}

func (d db) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{d.q.QueryRow(ctx, sql, args...), d.s}
}

type row struct {
	r pgx.Row
	s *Store
}

func (r row) Scan(dest ...any) error { return r.s.dbErr(r.r.Scan(dest...)) }

// q is the pool for statements outside a transaction.
func (s *Store) q() querier { return db{s.pool, s} }

// retryable reports whether the server aborted a transaction that may succeed
// when run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// write runs fn in one READ COMMITTED transaction and commits it when fn
// returns nil. A transaction the server aborted with a deadlock or a
// serialization failure runs again (fn must only set its results on success
// paths it reaches again).
func (s *Store) write(ctx context.Context, fn func(tx querier) error) error {
	return s.inTx(ctx, pgx.TxOptions{}, fn)
}

// read runs fn in one read-only REPEATABLE READ transaction (one snapshot).
func (s *Store) read(ctx context.Context, fn func(tx querier) error) error {
	return s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (s *Store) inTx(ctx context.Context, opts pgx.TxOptions, fn func(tx querier) error) error {
	var err error
	for range maxTxAttempts {
		err = s.tryTx(ctx, opts, fn)
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
		s.log.Debug("postgres transaction aborted by the server, retrying", "error", err)
	}
	return err
}

func (s *Store) tryTx(ctx context.Context, opts pgx.TxOptions, fn func(tx querier) error) error {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", s.dbErr(err))
	}
	if err := fn(db{tx, s}); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", s.dbErr(err))
	}
	return nil
}

// now is the store's clock for Created and claim times.
func (s *Store) now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func isUnique(err error) bool     { return pgCode(err) == "23505" }
func isForeignKey(err error) bool { return pgCode(err) == "23503" }

// notFound turns pgx.ErrNoRows into ci.ErrNotFound with what was looked for.
func notFound(err error, what string, key any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s %v: %w", what, key, ci.ErrNotFound)
	}
	return err
}

// mustAffect returns ErrNotFound when tag changed no row.
func mustAffect(tag pgconn.CommandTag, what string, key any) error {
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s %v: %w", what, key, ci.ErrNotFound)
	}
	return nil
}

// Time helpers: timestamptz at millisecond precision, in UTC.

// ts is t as the store writes it.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// tsPtr is ts for optional times; nil is NULL.
func tsPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := ts(*t)
	return &v
}

// JSON helpers.

// encodeMap stores a map as a JSON object; nil and empty maps as "{}".
func encodeMap[V any](m map[string]V) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode json: %v: %w", err, ci.ErrInvalid)
	}
	return string(b), nil
}

// decodeMap reads a JSON object; an empty one comes back as nil.
func decodeMap[V any](s string) (map[string]V, error) {
	var m map[string]V
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("decode json %.40q: %w", s, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// encodeRaw stores a raw JSON document; nil or empty as NULL.
func encodeRaw(what string, raw json.RawMessage) (*string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s is not valid JSON: %w", what, ci.ErrInvalid)
	}
	s := string(raw)
	return &s, nil
}

func decodeRaw(s *string) json.RawMessage {
	if s == nil {
		return nil
	}
	return json.RawMessage(*s)
}

// collect scans every row with scan into a non-nil slice.
func collect[T any](s *Store, rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr(err)
	}
	return out, nil
}

// queryAll runs a query and scans every row.
func queryAll[T any](ctx context.Context, s *Store, q querier, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(s, rows, scan)
}

// checkName rejects empty names.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty: %w", what, ci.ErrInvalid)
	}
	return nil
}

// exists reports whether query (SELECT 1 ... ) returns a row.
func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// sqlLimit maps "0: no limit" to NULL (LIMIT NULL is no limit).
func sqlLimit(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	v := int64(limit)
	return &v
}

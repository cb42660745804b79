// Package sqlite is the embedded store of kkd: store.Store on one SQLite file,
// through the pure-Go modernc.org/sqlite driver.
//
// # Connections
//
// The store opens the file twice through database/sql:
//
//   - a write pool of exactly one connection. Every method that changes
//     something runs as one BEGIN IMMEDIATE transaction on it, so writers queue
//     in Go (honouring ctx) instead of failing with SQLITE_BUSY, and every
//     read-modify-write sees no interleaved writer;
//   - a read pool of several query_only connections. In WAL mode readers never
//     block the writer nor each other; methods that read several tables do it
//     in one read transaction, so they see one snapshot.
//
// # Durability
//
// The database runs with journal_mode=WAL and synchronous=NORMAL. A committed
// transaction survives a crash of the process (including SIGKILL): it is in the
// WAL file, which the next Open replays. A power loss or OS crash may lose the
// last transactions committed before it (the WAL is synced at checkpoints, not
// at every commit), but never corrupts the database. foreign_keys=ON makes the
// ON DELETE CASCADE rules of the schema effective.
//
// A third connection checkpoints in the background (PASSIVE) after every
// MiB of log chunks, so the writer does not copy the WAL's pages into the
// database file itself; the writer checkpoints only when the WAL reaches
// writerAutoCheckpoint pages (see checkpoint.go).
//
// # Data
//
// Times are stored as INTEGER unix milliseconds and returned as time.Time in
// UTC, truncated to the millisecond. JSON documents (branch env, flow and run
// args, trigger data, stage schema, step fields, host info) are stored as TEXT.
// Empty maps come back as nil. The schema is created and upgraded by the
// embedded migrations in migrations/ (see MigrationStatus).
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

var _ store.Store = (*Store)(nil)

// busyTimeout bounds how long a connection waits for a lock held by another
// process (or by a checkpoint) before it fails with SQLITE_BUSY. Writers of one
// Store never wait on each other in SQLite: they queue on the write pool.
const busyTimeout = 10 * time.Second

// Store is the SQLite implementation of store.Store. It is safe for concurrent
// use. Only one Store (one kkd process) should write a database file at a time;
// a second one works but its writers then contend through busy_timeout.
type Store struct {
	w    *sql.DB // exactly one connection: all writes
	r    *sql.DB // query_only connections: reads
	ckpt *checkpointer
	log  *slog.Logger
	path string
}

// Open opens (creating it if needed) the database file at path, applies the
// pending migrations and returns the store. logger may be nil.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if path == "" || path == ":memory:" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite store: path %q: give the path of a database file (without ? or #): %w", path, ci.ErrInvalid)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: logger, path: path}

	// The writer is opened (and the journal mode set) first, so the read pool
	// never races to convert a new file to WAL.
	w, err := openCached(dsn(path, "_txlock=immediate",
		"_pragma=journal_mode(WAL)", "_pragma=synchronous(NORMAL)",
		"_pragma=wal_autocheckpoint("+strconv.Itoa(writerAutoCheckpoint)+")"))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s.w = w
	if err := s.checkWriter(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}

	r, err := openCached(dsn(path, "_pragma=query_only(1)"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r

	// Same syncs as the writer: the checkpoint syncs the WAL before it copies
	// and the database file after.
	c, err := openCached(dsn(path, "_pragma=synchronous(NORMAL)"))
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	c.SetConnMaxIdleTime(0)
	c.SetConnMaxLifetime(0)
	s.ckpt = newCheckpointer(c, logger)

	if err := s.migrate(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return s, nil
}

// dsn builds the driver's data source name: the file path and query parameters
// that every connection of the pool applies when it is opened.
func dsn(path string, params ...string) string {
	q := []string{
		"_pragma=busy_timeout(" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + ")",
		"_pragma=foreign_keys(1)",
	}
	return path + "?" + strings.Join(append(q, params...), "&")
}

// checkWriter verifies that the pragmas took effect: a file system that cannot
// do WAL (some network file systems) would silently fall back otherwise.
func (s *Store) checkWriter(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, not wal: put the database on a local file system", mode)
	}
	var fk int
	if err := s.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if fk != 1 {
		return errors.New("foreign keys are not enabled")
	}
	return nil
}

// Close releases the database. It runs PRAGMA optimize first, as SQLite
// recommends for long-lived connections.
func (s *Store) Close() error {
	var errs []error
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
	}
	if s.w != nil {
		if _, err := s.w.Exec("PRAGMA optimize"); err != nil {
			s.log.Warn("sqlite optimize on close failed", "path", s.path, "error", err)
		}
		errs = append(errs, s.w.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite store %s: %w", s.path, err)
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common; loaders take it so they
// work inside write and read transactions alike.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// write runs fn in one BEGIN IMMEDIATE transaction on the write connection
// and commits it when fn returns nil. fn must not use s.w (the only connection
// is held by the transaction).
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// read runs fn in one read transaction (one snapshot) of the read pool.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// now is the store's clock for Created and claim times.
func (s *Store) now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// sqliteCode returns the extended result code of a driver error, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// notFound turns sql.ErrNoRows into ci.ErrNotFound with what was looked for.
func notFound(err error, what string, key any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %v: %w", what, key, ci.ErrNotFound)
	}
	return err
}

// mustAffect returns ErrNotFound when res changed no row.
func mustAffect(res sql.Result, what string, key any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s %v: %w", what, key, ci.ErrNotFound)
	}
	return nil
}

func affected(res sql.Result) (bool, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// Time helpers: INTEGER unix milliseconds, NULL for unset.

func ms(t time.Time) int64 { return t.UnixMilli() }

func msPtr(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

// truncMS is t as it reads back from the database.
func truncMS(t time.Time) time.Time { return fromMS(ms(t)) }

func truncMSPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := truncMS(*t)
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
func encodeRaw(what string, raw json.RawMessage) (sql.NullString, error) {
	if len(raw) == 0 {
		return sql.NullString{}, nil
	}
	if !json.Valid(raw) {
		return sql.NullString{}, fmt.Errorf("%s is not valid JSON: %w", what, ci.ErrInvalid)
	}
	return sql.NullString{String: string(raw), Valid: true}, nil
}

func decodeRaw(s sql.NullString) json.RawMessage {
	if !s.Valid {
		return nil
	}
	return json.RawMessage(s.String)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect scans every row with scan into a non-nil slice.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
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
		return nil, err
	}
	return out, nil
}

// queryAll runs a query and scans every row.
func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scan)
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
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

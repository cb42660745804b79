package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
)

// maxCachedStmts bounds the prepared statements kept per connection: the
// store's queries are a fixed set of texts (a few hundred at most); a query
// built with a variable number of placeholders beyond the bound is simply
// prepared and finalized each time, as without the cache.
const maxCachedStmts = 512

// The driver (modernc.org/sqlite) compiles the SQL text of every Exec and
// Query anew: a CPU profile of kkd under load showed a quarter of its time in
// SQLite's parser. cachingConnector wraps the driver so that each connection
// keeps its statements prepared by query text and only binds and steps them.
//
// A cached statement is used by one query at a time: a query whose text is
// already being read on the same connection (rows still open) gets a
// statement of its own. Statements are finalized when the connection closes.
// SQLite re-prepares a statement by itself when the schema changed.
type cachingConnector struct {
	base driver.Driver
	dsn  string
}

// openCached opens a database/sql pool on dsn whose connections cache their
// prepared statements.
func openCached(dsn string) (*sql.DB, error) {
	probe, err := sql.Open("sqlite", "")
	if err != nil {
		return nil, err
	}
	base := probe.Driver()
	if err := probe.Close(); err != nil {
		return nil, err
	}
	return sql.OpenDB(&cachingConnector{base: base, dsn: dsn}), nil
}

func (c *cachingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.base.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(innerConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context methods the statement cache needs", conn)
	}
	return &cachingConn{innerConn: inner, stmts: map[string]*cachedStmt{}}, nil
}

func (c *cachingConnector) Driver() driver.Driver { return c.base }

// innerConn is what the statement cache needs of the driver's connection.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type cachedStmt struct {
	stmt driver.Stmt
	busy bool // rows of it are open
}

// cachingConn is used by one goroutine at a time (database/sql guarantees
// it), so its map needs no lock; mu only guards against a Close racing a
// late rows.Close.
type cachingConn struct {
	innerConn
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

// stmtCtx is the context-aware part of a driver statement.
type stmtCtx interface {
	driver.StmtExecContext
	driver.StmtQueryContext
}

// cached returns the connection's statement for query, preparing it, or nil
// when the query must be run uncached (busy, cache full, a script).
func (c *cachingConn) cached(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	cs := c.stmts[query]
	full := len(c.stmts) >= maxCachedStmts
	busy := cs != nil && cs.busy
	c.mu.Unlock()
	if cs != nil {
		if busy {
			return nil, nil
		}
		return cs, nil
	}
	if full {
		return nil, nil
	}
	st, err := c.innerConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if _, ok := st.(stmtCtx); !ok {
		_ = st.Close()
		return nil, nil
	}
	cs = &cachedStmt{stmt: st}
	c.mu.Lock()
	c.stmts[query] = cs
	c.mu.Unlock()
	return cs, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.innerConn.ExecContext(ctx, query, args)
	}
	return cs.stmt.(stmtCtx).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.innerConn.QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(stmtCtx).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	cs.busy = true
	c.mu.Unlock()
	return &cachedRows{Rows: rows, cs: cs, c: c}, nil
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	c.mu.Lock()
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.stmt.Close())
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	errs = append(errs, c.innerConn.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite connection: %w", err)
	}
	return nil
}

// cachedRows frees its statement for the next query when closed.
type cachedRows struct {
	driver.Rows
	cs     *cachedStmt
	c      *cachingConn
	closed bool
}

func (r *cachedRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.Rows.Close()
	r.c.mu.Lock()
	r.cs.busy = false
	r.c.mu.Unlock()
	return err
}

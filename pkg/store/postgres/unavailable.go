package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kraken-go/kk/pkg/ci"
)

// unreachableError is a statement or transaction that failed because the
// database could not be reached: the connection could not be made or was
// lost, or the server is shutting down or starting up. It matches
// ci.ErrUnavailable (pkg/api answers 503 unavailable) and wraps the driver's
// error. Its message names the server (never the password) and says that
// kkd retries by itself.
type unreachableError struct {
	where string // host:port or socket path
	err   error
}

func (e *unreachableError) Error() string {
	return "database unreachable: cannot reach PostgreSQL at " + e.where + " (" + e.err.Error() +
		"); kkd retries by itself and recovers when the database is back: check that the server is running and reachable"
}

func (e *unreachableError) Unwrap() []error { return []error{ci.ErrUnavailable, e.err} }

// unreachable reports whether err says the database cannot be reached right
// now (as opposed to an error of the statement itself).
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ue *unreachableError
	if errors.As(err, &ue) {
		return false // already wrapped
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exceptions; 57P01..03: the server is shutting
		// down (admin or crash) or cannot accept connections yet.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	// A connection the server closed under a statement; pgconn reports it
	// as "conn closed" or "closed pool" without a wrapped cause.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "failed to connect")
}

// Ping checks that the database answers; an unreachable database gives an
// error matching ci.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", s.dbErr(err))
	}
	return nil
}

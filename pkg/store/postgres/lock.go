package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/leader"
)

// leaderLock is the key of the session-level advisory lock held by the
// leader of the kkd replicas ("kklead").
const leaderLock int64 = 0x6b6b6c656164

// Defaults of ElectorConfig.
const (
	DefaultElectRetry   = 2 * time.Second
	DefaultElectCheck   = time.Second
	DefaultCheckTimeout = time.Second
)

var _ leader.Elector = (*Elector)(nil)

// ElectorConfig of NewElector.
type ElectorConfig struct {
	// ReplicaID names this kkd in logs and in its lock connection's
	// application_name ("kkd-leader REPLICA").
	ReplicaID string
	Logger    *slog.Logger
	// Retry is how often a follower tries to take the lock (default 2 s).
	Retry time.Duration
	// Check is how often the leader checks its lock connection (default 1 s),
	// CheckTimeout how long one check may take (default 1 s).
	Check, CheckTimeout time.Duration
	// TakeoverDelay is how long a replica that got the lock waits before its
	// work starts (default Check+CheckTimeout plus 1 s), so that a previous
	// leader whose connection died has noticed it and stopped.
	TakeoverDelay time.Duration
}

// Elector is leader.Elector on PostgreSQL: the leader is the replica holding
// a session-level advisory lock (pg_try_advisory_lock) on a dedicated
// connection. Followers try to take it every Retry. When the leader's
// process dies or its connection breaks, PostgreSQL releases the lock at
// once and a follower takes it at its next try; it starts the leader's work
// after TakeoverDelay, by which time the old leader, which checks its
// connection every Check (SELECT 1, bounded by CheckTimeout), has stepped
// down. With the defaults a follower takes over within 2 s + 3 s of the
// leader's death.
type Elector struct {
	s   *Store
	cfg ElectorConfig
}

// NewElector returns an elector on the store's database.
func (s *Store) NewElector(cfg ElectorConfig) *Elector {
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultElectRetry
	}
	if cfg.Check <= 0 {
		cfg.Check = DefaultElectCheck
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.TakeoverDelay <= 0 {
		cfg.TakeoverDelay = cfg.Check + cfg.CheckTimeout + time.Second
	}
	return &Elector{s: s, cfg: cfg}
}

// Run campaigns for leadership and runs fn while it is held, until ctx is
// done.
func (e *Elector) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			e.close(conn)
		}
	}()
	for {
		if conn == nil {
			c, err := e.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.cfg.Logger.Warn("leader election: cannot connect; retrying", "err", err, "retry_in", e.cfg.Retry)
			}
			conn = c
		}
		if conn != nil {
			var got bool
			err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLock).Scan(&got)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				e.cfg.Logger.Warn("leader election: lock attempt failed; reconnecting", "err", e.s.dbErr(err))
				e.close(conn)
				conn = nil
			case got:
				e.lead(ctx, conn, fn)
				// Leadership ended: give the lock up with the connection (a
				// broken one holds nothing anyway).
				e.close(conn)
				conn = nil
				if ctx.Err() != nil {
					return nil
				}
			}
		}
		if !sleepCtx(ctx, e.cfg.Retry) {
			return nil
		}
	}
}

// lead runs fn while conn answers, until ctx is done or fn returns.
func (e *Elector) lead(ctx context.Context, conn *pgx.Conn, fn func(ctx context.Context) error) {
	log := e.cfg.Logger.With("replica_id", e.cfg.ReplicaID)
	log.Info("leader election: got the leader lock; taking over", "after", e.cfg.TakeoverDelay)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.NewTimer(e.cfg.TakeoverDelay)
	defer start.Stop()
	check := time.NewTicker(e.cfg.Check)
	defer check.Stop()
	var done chan error // nil until fn runs
	stop := func(why string, err error) {
		cancel()
		if done != nil {
			if ferr := <-done; ferr != nil && !errors.Is(ferr, context.Canceled) {
				log.Warn("leader work ended with an error", "err", ferr)
			}
		}
		log.Info("leader election: "+why, "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			stop("stepped down: shutting down", nil)
			return
		case <-start.C:
			log.Info("leader election: leading")
			done = make(chan error, 1)
			go func() { done <- fn(lctx) }()
		case err := <-done:
			done = nil
			log.Warn("leader election: leader work returned; stepping down", "err", err)
			return
		case <-check.C:
			cctx, ccancel := context.WithTimeout(ctx, e.cfg.CheckTimeout)
			_, err := conn.Exec(cctx, `SELECT 1`)
			ccancel()
			if err != nil && ctx.Err() == nil {
				stop("lost leadership: the lock connection failed", e.s.dbErr(err))
				return
			}
		}
	}
}

// connect opens the dedicated lock connection.
func (e *Elector) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, e.s.dedicatedConfig(appName("kkd-leader", e.cfg.ReplicaID)))
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", e.s.where, err)
	}
	return conn, nil
}

func (e *Elector) close(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

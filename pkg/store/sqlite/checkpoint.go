package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// checkpointEvery is how many bytes of log chunks the writer commits between
// two background checkpoints.
const checkpointEvery = 1 << 20

// writerAutoCheckpoint is the WAL size in pages at which the writer itself
// checkpoints after a commit (SQLite's wal_autocheckpoint; its default is
// 1000). The background checkpointer does most of the copying; the writer's
// own checkpoint is the backstop that keeps the WAL bounded while writes never
// pause: SQLite restarts the WAL from its beginning only when a write
// transaction starts with every frame copied, which the writer ensures by
// copying the few frames the checkpointer has not reached yet.
const writerAutoCheckpoint = 4096

// checkpointer copies the WAL's frames into the database file on its own
// connection, so the single writer does not: a 1 MiB log chunk is ~256
// pages, which SQLite writes once to the WAL and, at the checkpoint, once
// more to the database file with two fsyncs. Done by the writer, that copy
// and those fsyncs held every other write up; here they run beside it
// (PASSIVE: the checkpoint never blocks the writer nor readers, and copies
// only frames no reader may still need from the WAL).
type checkpointer struct {
	db      *sql.DB
	log     *slog.Logger
	kick    chan struct{}
	pending atomic.Int64 // log bytes committed since the last kick
	cancel  context.CancelFunc
	done    chan struct{}
}

func newCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, log: log, kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

// wrote counts n bytes committed by the writer and wakes the checkpointer
// once enough have been.
func (c *checkpointer) wrote(n int) {
	if c.pending.Add(int64(n)) < checkpointEvery {
		return
	}
	c.pending.Store(0)
	select {
	case c.kick <- struct{}{}:
	default: // a checkpoint is pending already
	}
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		if err := c.checkpoint(ctx); err != nil && ctx.Err() == nil {
			// The writer's own checkpoint still bounds the WAL.
			c.log.Warn("sqlite background checkpoint failed", "error", err)
		}
	}
}

func (c *checkpointer) checkpoint(ctx context.Context) error {
	var busy, frames, copied int
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	return nil
}

// close stops the checkpointer and closes its connection.
func (c *checkpointer) close() error {
	c.cancel()
	<-c.done
	return c.db.Close()
}

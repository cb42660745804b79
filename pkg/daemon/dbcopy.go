package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/store/dbcopy"
)

// dbCopyOptions are the flags of `kkd db copy`.
type dbCopyOptions struct {
	from, to string
	stdout   io.Writer
	stderr   io.Writer
}

func newCmdDB(stdout, stderr io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "db",
		Short: "Database maintenance: copy an installation to another database",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("kkd db needs a subcommand: copy")}
		},
	}
	c.AddCommand(newCmdDBCopy(stdout, stderr))
	return c
}

func newCmdDBCopy(stdout, stderr io.Writer) *cobra.Command {
	o := &dbCopyOptions{stdout: stdout, stderr: stderr}
	c := &cobra.Command{
		Use:   "copy --from sqlite://PATH --to postgres://USER:PASSWORD@HOST:PORT/DB",
		Short: "Copy a whole SQLite installation to PostgreSQL",
		Long: `Copy every table of an SQLite database (flows, runs, jobs, logs, results,
artifact records, agents, users, tokens, secrets) into an empty PostgreSQL
database, in one transaction: the target gets everything or nothing. Ids are
kept; secrets stay encrypted. Stop kkd first: what it writes during the copy is
not copied.

The source must be at the schema version of this kkd (run kkd migrate up on
it otherwise); the target must be empty (create it with createdb, and do not
start kkd on it before the copy). Only sqlite → postgres is supported.

Blobs (artifacts, caches, archived logs) are not in the database: start the new
kkd with the same --storage (default: DATA_DIR/blobs) and the same secret key
(DATA_DIR/secret.key or KKD_SECRET_KEY). See docs/postgres.md.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return dbCopyRun(ctx, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.from, "from", "", "source database URL: sqlite://PATH (e.g. sqlite:///var/lib/kkd/kk.db)")
	f.StringVar(&o.to, "to", "", "target database URL: postgres://USER:PASSWORD@HOST:PORT/DB, an empty database")
	return c
}

func dbCopyRun(ctx context.Context, o *dbCopyOptions) error {
	if o.from == "" || o.to == "" {
		return usageError{fmt.Errorf("give --from sqlite://PATH and --to postgres://USER:PASSWORD@HOST:PORT/DB")}
	}
	fromKind, fromTarget, err := parseDBURL(o.from)
	if err != nil {
		return usageError{fmt.Errorf("--from: %w", err)}
	}
	toKind, toTarget, err := parseDBURL(o.to)
	if err != nil {
		return usageError{fmt.Errorf("--to: %w", err)}
	}
	if fromKind != "sqlite" || toKind != "postgres" {
		return usageError{fmt.Errorf("copying from %s to %s is not supported: kkd db copy copies an SQLite database (--from sqlite://PATH) to PostgreSQL (--to postgres://...)",
			fromKind, toKind)}
	}
	logger := slog.New(slog.NewTextHandler(o.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintf(o.stderr, "copying %s to %s\n", o.from, redactURL(o.to))
	if _, err := dbcopy.Copy(ctx, dbcopy.Config{SQLitePath: fromTarget, PostgresURL: toTarget, Progress: o.stdout, Logger: logger}); err != nil {
		return fmt.Errorf("db copy: %w", err)
	}
	fmt.Fprintf(o.stdout, `done. Start kkd on the new database with the same blob store and secret key:
  kkd serve --db '%s' --data-dir DATA_DIR [--storage URL]
Artifacts, caches and archived logs stay in the blob store (--storage; default DATA_DIR/blobs),
and secrets open only with the same key (DATA_DIR/secret.key or KKD_SECRET_KEY).
`, redactURL(o.to))
	return nil
}

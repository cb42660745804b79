package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store/postgres"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

// Migration is one schema migration of a database, the same for every
// dialect: both stores number their migrations alike.
type Migration struct {
	Version int
	Name    string
	Applied *time.Time // nil while pending
}

// MigrationStatus lists the migrations of the database dbURL names, without
// changing it.
func MigrationStatus(ctx context.Context, dbURL string) ([]Migration, error) {
	kind, target, err := parseDBURL(dbURL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "sqlite":
		ms, err := sqlite.ReadMigrationStatus(ctx, target)
		return fromSQLite(ms), err
	default:
		s, err := postgres.Open(ctx, postgres.Config{URL: target, NoMigrate: true})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		ms, err := s.MigrationStatus(ctx)
		return fromPostgres(ms), err
	}
}

// Migrate applies the pending migrations of the database dbURL names and
// returns the ones it applied.
func Migrate(ctx context.Context, dbURL string, logger *slog.Logger) ([]Migration, error) {
	kind, target, err := parseDBURL(dbURL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return nil, fmt.Errorf("create database dir: %w", err)
		}
		ms, err := sqlite.Migrate(ctx, target, logger)
		return fromSQLite(ms), err
	default:
		s, err := postgres.Open(ctx, postgres.Config{URL: target, Logger: logger, NoMigrate: true})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		ms, err := s.Migrate(ctx)
		return fromPostgres(ms), err
	}
}

// parseDBURL returns the store kind ("sqlite" or "postgres") of a database
// URL and what its store opens: the file path, or the URL itself.
func parseDBURL(dbURL string) (kind, target string, err error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", "", badDBURL(err)
	}
	switch u.Scheme {
	case "sqlite":
		path := u.Host + u.Path
		if path == "" {
			return "", "", fmt.Errorf("database URL %q has no path: use sqlite:///abs/path/kk.db or sqlite://relative/kk.db", dbURL)
		}
		return "sqlite", path, nil
	case "postgres", "postgresql":
		return "postgres", dbURL, nil
	}
	return "", "", fmt.Errorf("database URL %q: unknown scheme %q: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB", redactURL(dbURL), u.Scheme)
}

// badDBURL reports a database URL that does not parse. The URL itself is
// left out: it may hold a password.
func badDBURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("the database URL does not parse (%v): use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB, with special characters in the password percent-encoded: %w", err, ci.ErrInvalid)
}

func fromSQLite(ms []sqlite.Migration) []Migration {
	out := make([]Migration, len(ms))
	for i, m := range ms {
		out[i] = Migration{Version: m.Version, Name: m.Name, Applied: m.Applied}
	}
	return out
}

func fromPostgres(ms []postgres.Migration) []Migration {
	out := make([]Migration, len(ms))
	for i, m := range ms {
		out[i] = Migration{Version: m.Version, Name: m.Name, Applied: m.Applied}
	}
	return out
}

// migrateOptions are the flags of `kkd migrate` and its subcommands.
type migrateOptions struct {
	dataDir, db string
	stdout      io.Writer
	stderr      io.Writer
}

// dbURL is --db, or the default database in --data-dir.
func (o *migrateOptions) dbURL() string {
	if o.db != "" {
		return o.db
	}
	return "sqlite://" + filepath.Join(o.dataDir, "kk.db")
}

func newCmdMigrate(stdout, stderr io.Writer) *cobra.Command {
	o := &migrateOptions{stdout: stdout, stderr: stderr}
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Show or apply the database schema migrations",
		Long: `Show or apply the database schema migrations. kkd serve applies pending
migrations on start; these commands let an operator check a database and
upgrade it ahead of a rollout. SQLite and PostgreSQL databases have the same
migration versions.

Environment: KKD_DATA_DIR, KKD_DB.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("kkd migrate needs a subcommand: status or up")}
		},
	}
	f := c.PersistentFlags()
	f.StringVar(&o.dataDir, "data-dir", envOr("KKD_DATA_DIR", defaultDataDir()), "data directory (KKD_DATA_DIR)")
	f.StringVar(&o.db, "db", envOr("KKD_DB", ""), "database URL, sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB (KKD_DB; default sqlite://DATA_DIR/kk.db)")
	c.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "List the migrations with the time each was applied (or pending)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return migrateStatusRun(c.Context(), o)
		},
	}, &cobra.Command{
		Use:   "up",
		Short: "Apply the pending migrations",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return migrateUpRun(c.Context(), o)
		},
	})
	return c
}

func migrateStatusRun(ctx context.Context, o *migrateOptions) error {
	ms, err := MigrationStatus(ctx, o.dbURL())
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tNAME\tAPPLIED")
	pending := 0
	for _, m := range ms {
		applied := "pending"
		if m.Applied != nil {
			applied = m.Applied.UTC().Format(time.RFC3339)
		} else {
			pending++
		}
		fmt.Fprintf(w, "%04d\t%s\t%s\n", m.Version, m.Name, applied)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if pending > 0 {
		fmt.Fprintf(o.stderr, "%d pending: run kkd migrate up (kkd serve applies them on start)\n", pending)
	}
	return nil
}

func migrateUpRun(ctx context.Context, o *migrateOptions) error {
	logger := slog.New(slog.NewTextHandler(o.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	done, err := Migrate(ctx, o.dbURL(), logger)
	for _, m := range done {
		fmt.Fprintf(o.stdout, "applied %04d_%s\n", m.Version, m.Name)
	}
	if err != nil {
		return err
	}
	if len(done) == 0 {
		fmt.Fprintln(o.stderr, "the database is up to date")
	}
	return nil
}

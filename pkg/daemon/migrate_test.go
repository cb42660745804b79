package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/store/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}

// kkd runs kkd with args and returns its exit code, stdout and stderr.
func kkd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	code := Main(context.Background(), args, &stdout, &stderr, "test")
	return code, stdout.String(), stderr.String()
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		db   func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "sub", "kk.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.URL(t) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := tc.db(t)
			all, err := MigrationStatus(t.Context(), db)
			require.NoError(t, err)
			require.NotEmpty(t, all)

			code, out, errOut := kkd(t, "migrate", "status", "--db", db)
			require.Equal(t, ExitOK, code, errOut)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			require.Regexp(t, `^VERSION\s+NAME\s+APPLIED$`, lines[0])
			require.Len(t, lines, len(all)+1)
			for i, m := range all {
				require.Nil(t, m.Applied)
				require.Regexp(t, fmt.Sprintf(`^%04d\s+%s\s+pending$`, m.Version, regexp.QuoteMeta(m.Name)), lines[i+1])
			}
			require.Regexp(t, `^0001\s+init\s+pending$`, lines[1])
			require.Contains(t, errOut, fmt.Sprintf("%d pending: run kkd migrate up", len(all)))

			code, out, errOut = kkd(t, "migrate", "up", "--db", db)
			require.Equal(t, ExitOK, code, errOut)
			var want strings.Builder
			for _, m := range all {
				fmt.Fprintf(&want, "applied %04d_%s\n", m.Version, m.Name)
			}
			require.Equal(t, want.String(), out)

			code, out, errOut = kkd(t, "migrate", "status", "--db", db)
			require.Equal(t, ExitOK, code, errOut)
			lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			require.Len(t, lines, len(all)+1)
			for i, m := range all {
				require.Regexp(t, fmt.Sprintf(`^%04d\s+%s\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, m.Version, regexp.QuoteMeta(m.Name)), lines[i+1])
			}
			require.Empty(t, errOut)

			code, out, errOut = kkd(t, "migrate", "up", "--db", db)
			require.Equal(t, ExitOK, code, errOut)
			require.Empty(t, out)
			require.Contains(t, errOut, "up to date")

			// The migrated database opens as a store.
			st, err := OpenStore(t.Context(), db, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			require.NoError(t, st.Close())
		})
	}
}

func TestMigrateStatusDoesNotCreateSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kk.db")
	code, _, errOut := kkd(t, "migrate", "status", "--data-dir", filepath.Dir(path))
	require.Equal(t, ExitOK, code, errOut)
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestMigrateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no subcommand", []string{"migrate"}, ExitUsage, "status or up"},
		{"unknown scheme", []string{"migrate", "status", "--db", "mysql://x"}, ExitError, `unknown scheme "mysql"`},
		{"bad URL", []string{"migrate", "status", "--db", "postgres://kk:pw@h/%zz"}, ExitError, "does not parse"},
		{"unreachable postgres", []string{"migrate", "up", "--db", "postgres://kk:pw@127.0.0.1:1/kk"}, ExitError,
			"cannot reach PostgreSQL at 127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := kkd(t, tc.args...)
			require.Equal(t, tc.code, code, errOut)
			require.Contains(t, errOut, tc.msg)
			require.NotContains(t, errOut, ":pw@", "no password in errors")
		})
	}
}

// TestMigrationsSameOnBothDialects keeps the dialects in step: every schema
// version exists for SQLite and PostgreSQL under the same name, so `kkd
// migrate status` reads the same on both. A new migration needs a file in
// pkg/store/migrations/sqlite and pkg/store/migrations/postgres.
func TestMigrationsSameOnBothDialects(t *testing.T) {
	t.Parallel()
	lite, err := MigrationStatus(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "kk.db"))
	require.NoError(t, err)
	pg, err := MigrationStatus(t.Context(), pgtest.URL(t))
	require.NoError(t, err)
	names := func(ms []Migration) []string {
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%04d_%s", m.Version, m.Name))
		}
		return out
	}
	require.Equal(t, names(lite), names(pg))
}

// TestServeOnPostgres runs kkd serve on a PostgreSQL database: it migrates,
// bootstraps the admin and the demo project, and serves the API.
func TestServeOnPostgres(t *testing.T) {
	t.Parallel()
	db := pgtest.URL(t)
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Options{
			Listen: "127.0.0.1:0", DataDir: t.TempDir(), DB: db, Demo: true, AdminPassword: "pw",
			Stdout: io.Discard, Stderr: io.Discard, Logger: slog.New(slog.DiscardHandler),
			ListenerReady: func(addr string) { ready <- addr },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve ended: %v", err)
	}
	cancel()
	require.NoError(t, <-done)

	st, err := OpenStore(t.Context(), db, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer st.Close()
	n, err := st.CountUsers(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n, "the admin was created in PostgreSQL")
	projects, err := st.ListProjects(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, projects, "the demo project was created in PostgreSQL")
}

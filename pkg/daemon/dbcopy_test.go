package daemon

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store/pgtest"
	"github.com/kraken-go/kk/pkg/store/postgres"
)

func TestDBCopyCommand(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kk.db")
	st, err := OpenStore(t.Context(), "sqlite://"+path, nil)
	require.NoError(t, err)
	p := ci.Project{Name: "moved"}
	require.NoError(t, st.CreateProject(t.Context(), &p))
	require.NoError(t, st.Close())
	url := pgtest.URL(t)

	code, out, errOut := kkd(t, "db", "copy", "--from", "sqlite://"+path, "--to", url)
	require.Equal(t, ExitOK, code, errOut)
	require.Regexp(t, `(?m)^projects\s+1 rows\s`, out)
	require.Regexp(t, `(?m)^copied \d+ rows of \d+ tables in .* rows/s\), schema version \d{4}$`, out)
	require.Contains(t, out, "--storage")
	require.Contains(t, out, "KKD_SECRET_KEY")

	pg, err := postgres.Open(t.Context(), postgres.Config{URL: url})
	require.NoError(t, err)
	defer pg.Close()
	got, err := pg.GetProjectByName(t.Context(), "moved")
	require.NoError(t, err)
	require.Equal(t, p.ID, got.ID)

	// Again: the target is no longer empty.
	code, _, errOut = kkd(t, "db", "copy", "--from", "sqlite://"+path, "--to", url)
	require.Equal(t, ExitError, code)
	require.Contains(t, errOut, "table projects has rows")
}

func TestDBCopyCommandErrors(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kk.db")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no flags", nil, ExitUsage, "give --from sqlite://PATH and --to postgres://"},
		{"no target", []string{"--from", "sqlite://" + path}, ExitUsage, "give --from"},
		{"bad scheme", []string{"--from", "mysql://x/y", "--to", "postgres://u@h/d"}, ExitUsage, `--from: database URL "mysql://x/y": unknown scheme "mysql"`},
		{"bad url", []string{"--from", "sqlite://" + path, "--to", "postgres://u:p%zz@h/d"}, ExitUsage, "--to: the database URL does not parse"},
		{"postgres to sqlite", []string{"--from", "postgres://u@h/d", "--to", "sqlite://" + path}, ExitUsage,
			"copying from postgres to sqlite is not supported: kkd db copy copies an SQLite database"},
		{"sqlite to sqlite", []string{"--from", "sqlite://" + path, "--to", "sqlite://" + path + "2"}, ExitUsage, "is not supported"},
		{"missing source", []string{"--from", "sqlite://" + path, "--to", "postgres://kk@127.0.0.1:1/kk?connect_timeout=5"}, ExitError,
			"there is no SQLite database at " + path},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := kkd(t, append([]string{"db", "copy"}, tc.args...)...)
			require.Equal(t, tc.code, code, errOut)
			require.Contains(t, errOut, tc.want)
		})
	}

	t.Run("unreachable target", func(t *testing.T) {
		t.Parallel()
		src := filepath.Join(t.TempDir(), "kk.db")
		st, err := OpenStore(t.Context(), "sqlite://"+src, nil)
		require.NoError(t, err)
		require.NoError(t, st.Close())
		code, _, errOut := kkd(t, "db", "copy", "--from", "sqlite://"+src, "--to", "postgres://kk:hunter2@127.0.0.1:1/kk?connect_timeout=5")
		require.Equal(t, ExitError, code)
		require.Contains(t, errOut, "cannot reach PostgreSQL at 127.0.0.1:1")
		require.NotContains(t, errOut, "hunter2")
	})
}

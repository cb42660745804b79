package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func TestURL(t *testing.T) {
	ctx := context.Background()
	var names []string
	t.Run("fresh databases", func(t *testing.T) {
		for range 2 {
			conn, err := pgx.Connect(ctx, URL(t))
			require.NoError(t, err)
			var name string
			var tables int
			require.NoError(t, conn.QueryRow(ctx, `SELECT current_database(),
				(SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables))
			require.Zero(t, tables, "the database is empty")
			_, err = conn.Exec(ctx, `CREATE TABLE t (x int)`)
			require.NoError(t, err)
			require.NoError(t, conn.Close(ctx))
			names = append(names, name)
		}
		require.NotEqual(t, names[0], names[1])
	})
	// The databases are gone once their test ended.
	admin, err := pgx.Connect(ctx, AdminURL(t))
	require.NoError(t, err)
	defer admin.Close(ctx)
	var n int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, names).Scan(&n))
	require.Zero(t, n)
}

func TestDBName(t *testing.T) {
	long := dbName("TestStore/claims/racing claims never give a job twice, with a very long name", 12)
	require.LessOrEqual(t, len(long), 63)
	require.Regexp(t, `^kk_\d+_12_[a-z0-9_]+$`, long)
}

func TestWithDatabase(t *testing.T) {
	u, err := withDatabase("postgres://u:p@h:5/old?sslmode=disable", "new")
	require.NoError(t, err)
	require.Equal(t, "postgres://u:p@h:5/new?sslmode=disable", u)
	u, err = withDatabase("host=h user=u dbname=old", "new")
	require.NoError(t, err)
	require.Equal(t, "host=h user=u dbname=old dbname=new", u)
}

package sqlite

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadMigrationStatusAndMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kk.db")
	all, err := migrations()
	require.NoError(t, err)

	st, err := ReadMigrationStatus(ctx, path)
	require.NoError(t, err)
	require.Len(t, st, len(all))
	for _, m := range st {
		require.Nil(t, m.Applied)
	}
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "status does not create the database")

	done, err := Migrate(ctx, path, nil)
	require.NoError(t, err)
	require.Len(t, done, len(all))
	st, err = ReadMigrationStatus(ctx, path)
	require.NoError(t, err)
	for i, m := range st {
		require.Equal(t, all[i].version, m.Version)
		require.Equal(t, all[i].name, m.Name)
		require.NotNil(t, m.Applied)
	}
	done, err = Migrate(ctx, path, nil)
	require.NoError(t, err)
	require.Empty(t, done, "nothing left to apply")
}

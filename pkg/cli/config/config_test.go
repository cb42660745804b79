package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/config"
)

func TestPath(t *testing.T) {
	t.Parallel()
	home := func() (string, error) { return "/home/u", nil }
	p, err := config.Path(func(string) string { return "" }, home)
	require.NoError(t, err)
	assert.Equal(t, "/home/u/.config/kk/config.yaml", p)
	p, err = config.Path(func(k string) string { return map[string]string{"KK_CONFIG": "/x/c.yaml"}[k] }, home)
	require.NoError(t, err)
	assert.Equal(t, "/x/c.yaml", p)
	_, err = config.Path(func(string) string { return "" }, func() (string, error) { return "", errors.New("no home") })
	assert.ErrorContains(t, err, "KK_CONFIG")
}

func TestSaveLoad(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "a", "b", "config.yaml")
	c, err := config.Load(p)
	require.NoError(t, err)
	assert.Equal(t, &config.Config{}, c, "a missing file is an empty config")

	require.NoError(t, config.Save(p, &config.Config{Server: "http://h:1", Token: "t"}))
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dst, err := os.Stat(filepath.Dir(p))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dst.Mode().Perm())

	c, err = config.Load(p)
	require.NoError(t, err)
	assert.Equal(t, &config.Config{Server: "http://h:1", Token: "t"}, c)

	// Overwriting an existing file with looser permissions tightens them.
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, config.Save(p, &config.Config{Server: "http://h:2"}))
	st, err = os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestLoadInvalid(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("server: [\n"), 0o600))
	_, err := config.Load(p)
	assert.ErrorContains(t, err, "kk login")
}

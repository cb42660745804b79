package factory_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/config"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

func newFactory(t *testing.T, env map[string]string, cfg *config.Config) *factory.Factory {
	t.Helper()
	home := t.TempDir()
	if cfg != nil {
		require.NoError(t, config.Save(filepath.Join(home, ".config", "kk", "config.yaml"), cfg))
	}
	ios, _, _, _ := iostreams.Test()
	return &factory.Factory{
		IOStreams: ios,
		Getenv:    func(k string) string { return env[k] },
		HomeDir:   func() (string, error) { return home, nil },
	}
}

func TestServerPrecedence(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Server: "http://from-config:1/", Token: "cfg-token"}
	for _, tc := range []struct {
		name       string
		flag       string
		env        map[string]string
		cfg        *config.Config
		wantServer string
		wantToken  string
	}{
		{"default", "", nil, nil, factory.DefaultServer, ""},
		{"config", "", nil, cfg, "http://from-config:1", "cfg-token"},
		{"env beats config; config token not sent elsewhere", "", map[string]string{"KK_SERVER": "http://env:2"}, cfg, "http://env:2", ""},
		{"flag beats env", "http://flag:3", map[string]string{"KK_SERVER": "http://env:2"}, cfg, "http://flag:3", ""},
		{"env token", "", map[string]string{"KK_TOKEN": "env-token"}, cfg, "http://from-config:1", "env-token"},
		{"same server via env keeps config token", "", map[string]string{"KK_SERVER": "http://from-config:1"}, cfg, "http://from-config:1", "cfg-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFactory(t, tc.env, tc.cfg)
			f.Flags.Server = tc.flag
			s, err := f.Server()
			require.NoError(t, err)
			assert.Equal(t, tc.wantServer, s)
			tok, err := f.Token(s)
			require.NoError(t, err)
			assert.Equal(t, tc.wantToken, tok)
		})
	}
}

func TestTokenFlag(t *testing.T) {
	t.Parallel()
	f := newFactory(t, map[string]string{"KK_TOKEN": "env"}, nil)
	f.Flags.Token = "flag"
	tok, err := f.Token(factory.DefaultServer)
	require.NoError(t, err)
	assert.Equal(t, "flag", tok)
}

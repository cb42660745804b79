package cmd

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

func TestOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		args        []string
		env         map[string]string
		wantLog     string
		wantNoColor bool
	}{
		{"xdg state", nil, map[string]string{"XDG_STATE_HOME": "/state"}, "/state/kk/tui.log", false},
		{"home", nil, nil, "/home/u/.local/state/kk/tui.log", false},
		{"flag", []string{"--log-file", "/tmp/x.log"}, map[string]string{"XDG_STATE_HOME": "/state"}, "/tmp/x.log", false},
		{"NO_COLOR", nil, map[string]string{"NO_COLOR": "1"}, "/home/u/.local/state/kk/tui.log", true},
		{"dumb terminal", nil, map[string]string{"TERM": "dumb"}, "/home/u/.local/state/kk/tui.log", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ios, _, _, _ := iostreams.Test()
			f := &factory.Factory{IOStreams: ios, Getenv: func(k string) string { return tc.env[k] },
				HomeDir: func() (string, error) { return "/home/u", nil }}
			var got *Options
			cmd := NewCmdTUI(f, func(_ context.Context, o *Options) error { got = o; return nil })
			cmd.SetArgs(tc.args)
			require.NoError(t, cmd.Execute())
			assert.Equal(t, filepath.FromSlash(tc.wantLog), got.LogFile)
			assert.Equal(t, tc.wantNoColor, got.NoColor)
		})
	}
}

func TestNeedsTerminal(t *testing.T) {
	t.Parallel()
	ios, _, _, _ := iostreams.Test()
	f := &factory.Factory{IOStreams: ios, Getenv: func(string) string { return "" },
		HomeDir: func() (string, error) { return t.TempDir(), nil }}
	cmd := NewCmdTUI(f, nil)
	cmd.SetArgs(nil)
	err := cmd.Execute()
	var ue *cmdutil.UsageError
	require.True(t, errors.As(err, &ue), "got %v", err)
	assert.Contains(t, err.Error(), "needs a terminal")
}

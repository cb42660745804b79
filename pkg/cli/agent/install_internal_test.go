package agent

import (
	"context"
	"io"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/agentinstall"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

// A real install or uninstall (root "/") checks the host first; here the
// check is that of a non-root user, whoever runs the tests.
func TestRealInstallNeedsRoot(t *testing.T) {
	t.Parallel()
	notRoot := func() error { return agentinstall.CheckHost(1000) }
	tests := []struct {
		name string
		cmd  func(*factory.Factory) *cobra.Command
		args []string
	}{
		{"install", func(f *factory.Factory) *cobra.Command {
			return NewCmdInstall(f, func(ctx context.Context, o *InstallOptions) error {
				o.CheckHost = notRoot
				return installRun(ctx, o)
			})
		}, []string{"--unix-group="}},
		{"uninstall", func(f *factory.Factory) *cobra.Command {
			return NewCmdUninstall(f, func(ctx context.Context, o *UninstallOptions) error {
				o.CheckHost = notRoot
				return uninstallRun(ctx, o)
			})
		}, []string{"--remove-user"}}, // so that there is something to do on any host
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ios, _, _, _ := iostreams.Test()
			f := &factory.Factory{IOStreams: ios, Getenv: func(string) string { return "" }}
			f.Flags.Server = "http://127.0.0.1:1"
			cmd := tc.cmd(f)
			cmd.SetArgs(tc.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.ExecuteContext(t.Context())
			require.ErrorContains(t, err, "run as root, e.g. with sudo, or use --dry-run")
		})
	}
}

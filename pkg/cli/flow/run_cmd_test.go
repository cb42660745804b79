package flow_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/flow"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
)

// TestNewCmdRun checks that the command line lands in RunOptions.
func TestNewCmdRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want flow.RunOptions
	}{
		{"plain", []string{"demo/main"}, flow.RunOptions{
			Ref: cmdutil.BranchRef{Project: "demo", Branch: "main"}, PollInterval: flow.DefaultPollInterval}},
		{"everything", []string{"p/feature/x", "--dev", "--arg", "a=1", "--arg", "b=2", "-w", "--poll-interval", "2s"}, flow.RunOptions{
			Ref: cmdutil.BranchRef{Project: "p", Branch: "feature/x"}, Dev: true,
			Args: map[string]string{"a": "1", "b": "2"}, Wait: true, PollInterval: 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ios, _, _, _ := iostreams.Test()
			f := &factory.Factory{IOStreams: ios, Getenv: func(string) string { return "" }}
			var got *flow.RunOptions
			cmd := flow.NewCmdRun(f, func(_ context.Context, o *flow.RunOptions) error {
				got = o
				return nil
			})
			cmd.SetArgs(tc.args)
			cmd.SetOut(ios.Out)
			cmd.SetErr(ios.ErrOut)
			require.NoError(t, cmd.Execute())
			require.NotNil(t, got)
			assert.Equal(t, tc.want.Ref, got.Ref)
			assert.Equal(t, tc.want.Dev, got.Dev)
			assert.Equal(t, tc.want.Args, got.Args)
			assert.Equal(t, tc.want.Wait, got.Wait)
			assert.Equal(t, tc.want.PollInterval, got.PollInterval)
			assert.Equal(t, output.Table, got.Format)
		})
	}
}

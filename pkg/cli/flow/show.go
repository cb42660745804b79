package flow

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/flowview"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// ShowOptions are the inputs of `kk flow show`.
type ShowOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	FlowID int64
}

// NewCmdShow returns `kk flow show FLOW`.
func NewCmdShow(f *factory.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:     "show FLOW",
		Aliases: []string{"view"},
		Short:   "Show a flow with its runs and jobs",
		Args:    cmdutil.ExactArgs(1, "missing flow id: kk flow show FLOW"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cmdutil.ParseID("flow", args[0], flowIDHint())
			if err != nil {
				return err
			}
			opts.FlowID = id
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return showRun(cmd.Context(), opts)
		},
	}
}

func showRun(ctx context.Context, opts *ShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	fl, err := c.GetFlow(ctx, opts.FlowID)
	if err != nil {
		return fmt.Errorf("flow %d: %w", opts.FlowID, err)
	}
	return flowview.PrintFlow(opts.IO, opts.Format, fl)
}

package project

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// ShowOptions are the inputs of `kk project show`.
type ShowOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Project string // name or id
}

// NewCmdShow returns `kk project show PROJECT`.
func NewCmdShow(f *factory.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "show PROJECT",
		Aliases:           []string{"view"},
		Short:             "Show a project (by name or id)",
		Args:              cmdutil.ExactArgs(1, "missing project: kk project show PROJECT"),
		ValidArgsFunction: cmdutil.CompleteProjects(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Project = args[0]
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
	p, err := c.GetProject(ctx, opts.Project)
	if err != nil {
		return fmt.Errorf("project %q: %w", opts.Project, err)
	}
	return printProject(opts.IO, opts.Format, p)
}

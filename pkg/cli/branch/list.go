package branch

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

// ListOptions are the inputs of `kk branch list`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Project string
}

// NewCmdList returns `kk branch list PROJECT`.
func NewCmdList(f *factory.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "list PROJECT",
		Aliases:           []string{"ls"},
		Short:             "List the branches of a project",
		Args:              cmdutil.ExactArgs(1, "missing project: kk branch list PROJECT"),
		ValidArgsFunction: cmdutil.CompleteProjects(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Project = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	bs, err := c.ListBranches(ctx, opts.Project)
	if err != nil {
		return fmt.Errorf("project %q: %w", opts.Project, err)
	}
	return printBranches(opts.IO, opts.Format, bs)
}

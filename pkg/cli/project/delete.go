package project

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/client"
)

// DeleteOptions are the inputs of `kk project delete`.
type DeleteOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)

	Project string // name or id
}

// NewCmdDelete returns `kk project delete PROJECT`.
func NewCmdDelete(f *factory.Factory, runF func(context.Context, *DeleteOptions) error) *cobra.Command {
	opts := &DeleteOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "delete PROJECT",
		Aliases:           []string{"rm"},
		Short:             "Delete a project with its branches, stages and flows",
		Args:              cmdutil.ExactArgs(1, "missing project: kk project delete PROJECT"),
		ValidArgsFunction: cmdutil.CompleteProjects(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Project = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return deleteRun(cmd.Context(), opts)
		},
	}
}

func deleteRun(ctx context.Context, opts *DeleteOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteProject(ctx, opts.Project); err != nil {
		return fmt.Errorf("delete project %q: %w", opts.Project, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "deleted project %s\n", opts.Project)
	return nil
}

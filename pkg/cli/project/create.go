package project

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// CreateOptions are the inputs of `kk project create`.
type CreateOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Name        string
	Description string
}

// NewCmdCreate returns `kk project create NAME`. runF replaces the work in tests.
func NewCmdCreate(f *factory.Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	opts := &CreateOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a project",
		Example: "  kk project create myproject --description 'my service'",
		Args:    cmdutil.ExactArgs(1, "missing project name: kk project create NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Description, "description", "d", "", "description of the project")
	return cmd
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := c.CreateProject(ctx, api.CreateProject{Name: opts.Name, Description: opts.Description})
	if err != nil {
		return fmt.Errorf("create project %q: %w", opts.Name, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "created project %s (id %d)\n", p.Name, p.ID)
	return printProject(opts.IO, opts.Format, p)
}

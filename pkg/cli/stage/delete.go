package stage

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/client"
)

// DeleteOptions are the inputs of `kk stage delete`.
type DeleteOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)

	Ref  cmdutil.BranchRef
	Name string
}

// NewCmdDelete returns `kk stage delete PROJECT/BRANCH STAGE`.
func NewCmdDelete(f *factory.Factory, runF func(context.Context, *DeleteOptions) error) *cobra.Command {
	opts := &DeleteOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "delete PROJECT/BRANCH STAGE",
		Aliases:           []string{"rm"},
		Short:             "Delete a stage",
		Args:              cmdutil.ExactArgs(2, "missing arguments: kk stage delete PROJECT/BRANCH STAGE"),
		ValidArgsFunction: cmdutil.CompleteBranchRefs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			opts.Ref, opts.Name = ref, args[1]
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
	s, err := findStage(ctx, c, opts.Ref, opts.Name)
	if err != nil {
		return err
	}
	if err := c.DeleteStage(ctx, s.ID); err != nil {
		return fmt.Errorf("delete stage %q of %s: %w", opts.Name, opts.Ref, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "deleted stage %s of %s\n", s.Name, opts.Ref)
	return nil
}

package branch

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/client"
)

// DeleteOptions are the inputs of `kk branch delete`.
type DeleteOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)

	Ref cmdutil.BranchRef
}

// NewCmdDelete returns `kk branch delete PROJECT/BRANCH`.
func NewCmdDelete(f *factory.Factory, runF func(context.Context, *DeleteOptions) error) *cobra.Command {
	opts := &DeleteOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "delete PROJECT/BRANCH",
		Aliases:           []string{"rm"},
		Short:             "Delete a branch with its stages and flows",
		Args:              cmdutil.ExactArgs(1, "missing branch: kk branch delete PROJECT/BRANCH"),
		ValidArgsFunction: cmdutil.CompleteBranchRefs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			opts.Ref = ref
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
	if err := c.DeleteBranch(ctx, opts.Ref.Project, opts.Ref.Branch); err != nil {
		return fmt.Errorf("delete branch %s: %w", opts.Ref, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "deleted branch %s\n", opts.Ref)
	return nil
}

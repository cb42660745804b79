package stage

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

// ShowOptions are the inputs of `kk stage show`.
type ShowOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref  cmdutil.BranchRef
	Name string
	Code bool
}

// NewCmdShow returns `kk stage show PROJECT/BRANCH STAGE`.
func NewCmdShow(f *factory.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:               "show PROJECT/BRANCH STAGE",
		Aliases:           []string{"view"},
		Short:             "Show a stage (with --code: print its schema code)",
		Args:              cmdutil.ExactArgs(2, "missing arguments: kk stage show PROJECT/BRANCH STAGE"),
		ValidArgsFunction: cmdutil.CompleteBranchRefs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			opts.Ref, opts.Name = ref, args[1]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return showRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Code, "code", false, "print only the stage's schema code")
	return cmd
}

func showRun(ctx context.Context, opts *ShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	s, err := findStage(ctx, c, opts.Ref, opts.Name)
	if err != nil {
		return err
	}
	if opts.Code {
		_, err := fmt.Fprint(opts.IO.Out, s.Code)
		return err
	}
	return printStage(opts.IO, opts.Format, s)
}

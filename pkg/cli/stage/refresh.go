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

// RefreshOptions are the inputs of `kk stage refresh`.
type RefreshOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref  cmdutil.BranchRef
	Name string
}

// NewCmdRefresh returns `kk stage refresh PROJECT/BRANCH STAGE`.
func NewCmdRefresh(f *factory.Factory, runF func(context.Context, *RefreshOptions) error) *cobra.Command {
	opts := &RefreshOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "refresh PROJECT/BRANCH STAGE",
		Short: "Fetch a repo-backed stage's file again now",
		Long: `Fetch the file of a stage applied with --repo again, evaluate it and store
it. When that fails the stage keeps its last good code and the error is shown
(and the command fails).`,
		Args:              cmdutil.ExactArgs(2, "missing arguments: kk stage refresh PROJECT/BRANCH STAGE"),
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
			return refreshRun(cmd.Context(), opts)
		},
	}
}

func refreshRun(ctx context.Context, opts *RefreshOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	s, err := findStage(ctx, c, opts.Ref, opts.Name)
	if err != nil {
		return err
	}
	s, err = c.RefreshStage(ctx, s.ID)
	if err != nil {
		return fmt.Errorf("refresh stage %s of %s: %w", opts.Name, opts.Ref, err)
	}
	if err := printStage(opts.IO, opts.Format, s); err != nil {
		return err
	}
	if s.Repo != nil && s.Repo.Error != "" {
		return fmt.Errorf("stage %s kept its code of %s: the refresh failed: %s", s.Name, shortSHA(s.Repo.Version), s.Repo.Error)
	}
	fmt.Fprintf(opts.IO.ErrOut, "stage %s is at %s\n", s.Name, shortSHA(s.Repo.Version))
	return nil
}

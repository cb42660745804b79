package branch

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

// CreateOptions are the inputs of `kk branch create`.
type CreateOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref        cmdutil.BranchRef
	RepoBranch string
	Env        []string
}

// NewCmdCreate returns `kk branch create PROJECT/BRANCH`.
func NewCmdCreate(f *factory.Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	opts := &CreateOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "create PROJECT/BRANCH",
		Short: "Create a branch",
		Long: `Create a branch of a project. --repo-branch is the repository branch it
follows (default: the branch name).`,
		Example:           "  kk branch create demo/main\n  kk branch create demo/feature/x --repo-branch feature/x",
		Args:              cmdutil.ExactArgs(1, "missing branch: kk branch create PROJECT/BRANCH"),
		ValidArgsFunction: cmdutil.CompleteBranchRefs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			if _, err := cmdutil.ParseKeyValues("--env", opts.Env); err != nil {
				return err
			}
			opts.Ref = ref
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.RepoBranch, "repo-branch", "", "repository branch (default: the branch name)")
	cmd.Flags().StringArrayVar(&opts.Env, "env", nil, "environment variable KEY=VALUE for the branch's jobs (repeatable)")
	return cmd
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	env, err := cmdutil.ParseKeyValues("--env", opts.Env)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := c.CreateBranch(ctx, opts.Ref.Project, api.CreateBranch{
		Name: opts.Ref.Branch, RepoBranch: opts.RepoBranch, Env: env,
	})
	if err != nil {
		return fmt.Errorf("create branch %s: %w", opts.Ref, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "created branch %s/%s (id %d)\n", opts.Ref.Project, b.Name, b.ID)
	return printBranch(opts.IO, opts.Format, opts.Ref.Project, b)
}

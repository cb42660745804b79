package flow

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/flowview"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// ListOptions are the inputs of `kk flow list`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref   cmdutil.BranchRef
	Kind  ci.FlowKind // "" for both
	Limit int         // 0: the server's default
}

// NewCmdList returns `kk flow list PROJECT/BRANCH`.
func NewCmdList(f *factory.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Client: f.Client}
	var kind string
	cmd := &cobra.Command{
		Use:               "list PROJECT/BRANCH",
		Aliases:           []string{"ls"},
		Short:             "List the flows of a branch, newest first",
		Args:              cmdutil.ExactArgs(1, "missing branch: kk flow list PROJECT/BRANCH"),
		ValidArgsFunction: cmdutil.CompleteBranchRefs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			switch ci.FlowKind(kind) {
			case "", ci.FlowCI, ci.FlowDEV:
			default:
				return cmdutil.UsageErrorf("invalid --kind %q: want ci or dev", kind)
			}
			if opts.Limit < 0 {
				return cmdutil.UsageErrorf("invalid --limit %d: want a positive number", opts.Limit)
			}
			opts.Ref, opts.Kind = ref, ci.FlowKind(kind)
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "only flows of this kind: ci or dev")
	cmd.Flags().IntVarP(&opts.Limit, "limit", "L", 0, "at most this many flows (default: the server's)")
	_ = cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(
		[]cobra.Completion{"ci", "dev"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := cmdutil.ResolveBranch(ctx, c, opts.Ref)
	if err != nil {
		return err
	}
	fls, err := c.ListFlows(ctx, b.ID, opts.Kind, opts.Limit)
	if err != nil {
		return fmt.Errorf("flows of %s: %w", opts.Ref, err)
	}
	return flowview.PrintFlows(opts.IO, opts.Format, fls)
}

// Package test implements `kk test`: the history of a test case in a branch.
package test

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/cli/run"
	"github.com/kraken-go/kk/pkg/client"
)

// NewCmdTest returns the `kk test` command group.
func NewCmdTest(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "test <command>",
		Short: "Show the history of test cases",
	})
	cmd.AddCommand(NewCmdHistory(f, nil))
	return cmd
}

// HistoryOptions are the inputs of `kk test history`.
type HistoryOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Branch cmdutil.BranchRef
	Test   string
	Limit  int
}

// NewCmdHistory returns `kk test history PROJECT/BRANCH TEST`.
func NewCmdHistory(f *factory.Factory, runF func(context.Context, *HistoryOptions) error) *cobra.Command {
	opts := &HistoryOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:               "history PROJECT/BRANCH TEST",
		Short:             "Show a test's results in a branch's flows, newest first",
		Example:           `  kk test history shop/main 'tests/test_cart.py::test_total' --limit 20`,
		Args:              cmdutil.ExactArgs(2, "missing arguments: kk test history PROJECT/BRANCH TEST"),
		ValidArgsFunction: cmdutil.FirstArgOnly(cmdutil.CompleteBranchRefs(f)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			if opts.Limit < 0 {
				return cmdutil.UsageErrorf("--limit %d: give a number >= 0 (0: all)", opts.Limit)
			}
			opts.Branch, opts.Test = ref, args[1]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return historyRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Limit, "limit", 20, "show at most this many results (0: all)")
	return cmd
}

func historyRun(ctx context.Context, opts *HistoryOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := cmdutil.ResolveBranch(ctx, c, opts.Branch)
	if err != nil {
		return err
	}
	rs, err := c.TestHistory(ctx, b.ID, opts.Test, opts.Limit)
	if err != nil {
		return fmt.Errorf("history of test %q in %s: %w", opts.Test, opts.Branch, err)
	}
	if opts.Format == output.Table && len(rs) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "test %q has no results in %s\n", opts.Test, opts.Branch)
		return nil
	}
	if opts.Format != output.Table {
		return output.WriteList(opts.IO, opts.Format, rs, nil, nil)
	}
	t := output.NewTable(opts.IO, "FLOW", "KIND", "RUN", "JOB", "STATUS", "CHANGE", "INSTABILITY", "AGE", "WHEN")
	for _, r := range rs {
		t.AddField(strconv.FormatInt(r.FlowID, 10))
		t.AddField(r.FlowKind)
		t.AddField(strconv.FormatInt(r.RunID, 10))
		t.AddField(r.JobName)
		t.AddColorField(r.Status, run.ResultColor(r.Status))
		t.AddColorField(r.Change, run.ResultColor(r.Change))
		t.AddField(strconv.Itoa(r.Instability))
		t.AddField(strconv.Itoa(r.Age))
		t.AddField(output.Time(opts.IO, r.Created))
		t.EndRow()
	}
	return t.Render()
}

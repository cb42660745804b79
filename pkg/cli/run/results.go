package run

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// ResultsOptions are the inputs of `kk run results`.
type ResultsOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	RunID int64
	Query client.ResultsQuery
}

// NewCmdResults returns `kk run results RUN`.
func NewCmdResults(f *factory.Factory, runF func(context.Context, *ResultsOptions) error) *cobra.Command {
	opts := &ResultsOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "results RUN",
		Short: "List the test results of a run with their history analysis",
		Long: `List the test results of a run's jobs, most relevant first.

Each result carries its change against the branch's history (new, fix, regr,
no-change), its instability (status flips in the last 10 CI results), its age
(CI runs in a row with the same status) and its relevancy (0-6).`,
		Example: `  kk run results 42 --change regr
  kk run results 42 --status failed --name 'tests/unit/*' -o json`,
		Args: cmdutil.ExactArgs(1, "missing run id: kk run results RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cmdutil.ParseID("run", args[0], "see `kk flow show FLOW`")
			if err != nil {
				return err
			}
			if opts.Query.MinInstability < 0 {
				return cmdutil.UsageErrorf("--min-instability %d: give a number >= 0", opts.Query.MinInstability)
			}
			opts.RunID = id
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return resultsRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Query.Status, "status", "", "only results of this status: passed, failed, error, unstable, not-run or disabled")
	fl.StringVar(&opts.Query.Change, "change", "", "only results with this change: new, fix, regr or no-change")
	fl.IntVar(&opts.Query.MinInstability, "min-instability", 0, "only results at least this unstable")
	fl.StringVar(&opts.Query.Name, "name", "", "only tests whose name matches this glob (* and ?)")
	fl.StringVar(&opts.Query.Job, "job", "", "only results of this job (id or name)")
	fl.StringVar(&opts.Query.Sort, "sort", "relevancy", "order: relevancy, name or status")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(
		[]cobra.Completion{"passed", "failed", "error", "unstable", "not-run", "disabled"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("change", cobra.FixedCompletions(
		[]cobra.Completion{"new", "fix", "regr", "no-change"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("sort", cobra.FixedCompletions(
		[]cobra.Completion{"relevancy", "name", "status"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func resultsRun(ctx context.Context, opts *ResultsOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	rs, err := c.RunResults(ctx, opts.RunID, opts.Query)
	if err != nil {
		return fmt.Errorf("results of run %d: %w", opts.RunID, err)
	}
	if opts.Format == output.Table && len(rs) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "no test results in run %d match\n", opts.RunID)
		return nil
	}
	if opts.Format != output.Table {
		return output.WriteList(opts.IO, opts.Format, rs, nil, nil)
	}
	t := output.NewTable(opts.IO, "JOB", "TEST", "STATUS", "CHANGE", "INSTABILITY", "AGE", "RELEVANCY")
	for _, r := range rs {
		t.AddField(r.JobName)
		t.AddField(r.Name)
		t.AddColorField(r.Status, ResultColor(r.Status))
		change := r.Change
		if !r.Analyzed {
			change = "(pending)"
		}
		t.AddColorField(change, ResultColor(r.Change))
		t.AddField(strconv.Itoa(r.Instability))
		t.AddField(strconv.Itoa(r.Age))
		t.AddField(strconv.Itoa(r.Relevancy))
		t.EndRow()
	}
	return t.Render()
}

// ResultColor is the colour of a test status or change.
func ResultColor(s string) string {
	switch s {
	case api.TestPassed, api.ChangeFix:
		return "green"
	case api.TestFailed, api.TestError, api.ChangeRegr:
		return "red"
	case api.TestUnstable, api.ChangeNew:
		return "yellow"
	case api.TestNotRun, api.TestDisabled:
		return "gray"
	}
	return ""
}

// IssuesOptions are the inputs of `kk run issues`.
type IssuesOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	RunID   int64
	NewOnly bool
}

// NewCmdIssues returns `kk run issues RUN`.
func NewCmdIssues(f *factory.Factory, runF func(context.Context, *IssuesOptions) error) *cobra.Command {
	opts := &IssuesOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "issues RUN",
		Short: "List the linter issues of a run",
		Long: `List the issues (linter findings) of a run's jobs. An issue is new when the
previous successful CI job of the same name, system, group and stage did not
have it (same path, type and symbol, within 5 lines).`,
		Args: cmdutil.ExactArgs(1, "missing run id: kk run issues RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cmdutil.ParseID("run", args[0], "see `kk flow show FLOW`")
			if err != nil {
				return err
			}
			opts.RunID = id
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return issuesRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.NewOnly, "new", false, "only new issues")
	return cmd
}

func issuesRun(ctx context.Context, opts *IssuesOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	is, err := c.RunIssues(ctx, opts.RunID, opts.NewOnly)
	if err != nil {
		return fmt.Errorf("issues of run %d: %w", opts.RunID, err)
	}
	if opts.Format == output.Table && len(is) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "no issues in run %d match\n", opts.RunID)
		return nil
	}
	return output.WriteList(opts.IO, opts.Format, is, []string{"JOB", "LOCATION", "TYPE", "SYMBOL", "AGE", "MESSAGE"}, func(i api.Issue) []string {
		age := strconv.Itoa(i.Age)
		if i.New {
			age = "new"
		}
		return []string{i.JobName, fmt.Sprintf("%s:%d", i.Path, i.Line), i.Type, i.Symbol, age, i.Message}
	})
}

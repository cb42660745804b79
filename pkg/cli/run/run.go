// Package run implements `kk run`: show, start (manual runs), cancel and
// rerun the runs of a flow.
package run

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/flowview"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// NewCmdRun returns the `kk run` command group.
func NewCmdRun(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "run <command>",
		Short: "Show, start, cancel and rerun runs; list their test results and issues",
		Long:  "A run executes one stage inside a flow; find run ids with `kk flow show FLOW`.",
	})
	cmd.AddCommand(NewCmdShow(f, nil))
	cmd.AddCommand(NewCmdStart(f, nil))
	cmd.AddCommand(NewCmdCancel(f, nil))
	cmd.AddCommand(NewCmdRerun(f, nil))
	cmd.AddCommand(NewCmdResults(f, nil), NewCmdIssues(f, nil))
	return cmd
}

// Options are the inputs of the `kk run` verbs.
type Options struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	RunID int64
}

// verb describes one `kk run` verb.
type verb struct {
	name, short, done string
	call              func(*client.Client, context.Context, int64) (api.RunDetail, error)
}

func newVerbCmd(f *factory.Factory, v verb, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   v.name + " RUN",
		Short: v.short,
		Args:  cmdutil.ExactArgs(1, fmt.Sprintf("missing run id: kk run %s RUN", v.name)),
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
			return verbRun(cmd.Context(), opts, v)
		},
	}
}

func verbRun(ctx context.Context, opts *Options, v verb) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	r, err := v.call(c, ctx, opts.RunID)
	if err != nil {
		if v.done == "" {
			return fmt.Errorf("run %d: %w", opts.RunID, err)
		}
		return fmt.Errorf("%s run %d: %w", v.name, opts.RunID, err)
	}
	if v.done != "" {
		fmt.Fprintf(opts.IO.ErrOut, "%s run %d (%s)\n", v.done, r.ID, r.Name)
	}
	return flowview.PrintRun(opts.IO, opts.Format, r)
}

// NewCmdShow returns `kk run show RUN`.
func NewCmdShow(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	cmd := newVerbCmd(f, verb{name: "show", short: "Show a run with its jobs", call: (*client.Client).GetRun}, runF)
	cmd.Aliases = []string{"view"}
	return cmd
}

// NewCmdStart returns `kk run start RUN`.
func NewCmdStart(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	return newVerbCmd(f, verb{name: "start", short: "Start a manual run", done: "started", call: (*client.Client).StartRun}, runF)
}

// NewCmdCancel returns `kk run cancel RUN`.
func NewCmdCancel(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	return newVerbCmd(f, verb{name: "cancel", short: "Cancel the unfinished jobs of a run", done: "cancelled", call: (*client.Client).CancelRun}, runF)
}

// NewCmdRerun returns `kk run rerun RUN`.
func NewCmdRerun(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	return newVerbCmd(f, verb{name: "rerun", short: "Rerun the failed jobs of a run", done: "rerunning", call: (*client.Client).RerunRun}, runF)
}

// Package job implements `kk job`: show, cancel and rerun jobs, and print or
// follow their logs.
package job

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/flowview"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// NewCmdJob returns the `kk job` command group.
func NewCmdJob(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "job <command>",
		Short: "Show, cancel and rerun jobs; print their logs",
		Long:  "A job runs a stage's steps on one agent; find job ids with `kk flow show FLOW`.",
	})
	cmd.AddCommand(NewCmdShow(f, nil))
	cmd.AddCommand(NewCmdCancel(f, nil))
	cmd.AddCommand(NewCmdRerun(f, nil))
	cmd.AddCommand(NewCmdLogs(f, nil))
	return cmd
}

func jobIDHint() string { return "see `kk flow show FLOW`" }

// Options are the inputs of `kk job show|cancel|rerun`.
type Options struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	JobID int64
}

type verb struct {
	name, short string
	// done describes a successful action on stderr; nil for show.
	done func(asked, got int64) string
	call func(*client.Client, context.Context, int64) (api.JobDetail, error)
}

func newVerbCmd(f *factory.Factory, v verb, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   v.name + " JOB",
		Short: v.short,
		Args:  cmdutil.ExactArgs(1, fmt.Sprintf("missing job id: kk job %s JOB", v.name)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cmdutil.ParseID("job", args[0], jobIDHint())
			if err != nil {
				return err
			}
			opts.JobID = id
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
	j, err := v.call(c, ctx, opts.JobID)
	if err != nil {
		if v.done == nil {
			return fmt.Errorf("job %d: %w", opts.JobID, err)
		}
		return fmt.Errorf("%s job %d: %w", v.name, opts.JobID, err)
	}
	if v.done != nil {
		fmt.Fprintln(opts.IO.ErrOut, v.done(opts.JobID, j.ID))
	}
	return printJob(opts.IO, opts.Format, j)
}

// printJob prints the job as flowview does and, in a table, why a queued
// job waits and the job's attempts (the JSON has them as wait_reason and
// attempts).
func printJob(ios *iostreams.IOStreams, format output.Format, j api.JobDetail) error {
	if err := flowview.PrintJob(ios, format, j); err != nil || format != output.Table {
		return err
	}
	if j.WaitReason != "" {
		fmt.Fprintf(ios.Out, "\nWaiting: %s\n", j.WaitReason)
	}
	if len(j.Attempts) == 0 {
		return nil
	}
	fmt.Fprintln(ios.Out)
	t := output.NewTable(ios, "attempt", "agent", "assigned", "duration", "outcome", "message")
	for _, a := range j.Attempts {
		t.AddField(strconv.Itoa(a.Attempt))
		t.AddField(a.Agent)
		t.AddField(output.Time(ios, a.Assigned))
		duration := ""
		if a.Finished != nil {
			duration = output.Duration(a.Finished.Sub(a.Assigned).Seconds())
		}
		t.AddField(duration)
		outcome := string(a.Outcome)
		if outcome == "" {
			outcome = "current"
		}
		t.AddColorField(outcome, output.StateColor(outcome))
		t.AddField(a.Message)
		t.EndRow()
	}
	return t.Render()
}

// NewCmdShow returns `kk job show JOB`.
func NewCmdShow(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	cmd := newVerbCmd(f, verb{name: "show", short: "Show a job with its steps", call: (*client.Client).GetJob}, runF)
	cmd.Aliases = []string{"view"}
	return cmd
}

// NewCmdCancel returns `kk job cancel JOB`.
func NewCmdCancel(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	return newVerbCmd(f, verb{name: "cancel", short: "Cancel a job",
		done: func(asked, _ int64) string { return fmt.Sprintf("cancelled job %d", asked) }, call: (*client.Client).CancelJob}, runF)
}

// NewCmdRerun returns `kk job rerun JOB`; it prints the new job.
func NewCmdRerun(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	return newVerbCmd(f, verb{name: "rerun", short: "Rerun a job (prints the new job)",
		done: func(asked, got int64) string { return fmt.Sprintf("job %d rerun as job %d", asked, got) }, call: (*client.Client).RerunJob}, runF)
}

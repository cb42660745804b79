// Package retention implements `kk retention`: run the retention now.
package retention

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

// NewCmdRetention returns the `kk retention` command group.
func NewCmdRetention(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "retention <command>",
		Short: "Delete old flows, logs and artifacts (per-branch retention)",
	})
	cmd.AddCommand(NewCmdRun(f, nil))
	return cmd
}

// RunOptions are the inputs of `kk retention run`.
type RunOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format
}

// NewCmdRun returns `kk retention run`.
func NewCmdRun(f *factory.Factory, runF func(context.Context, *RunOptions) error) *cobra.Command {
	opts := &RunOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "run",
		Short: "Apply retention now and print what was deleted (admins)",
		Long: `Apply the branches' retention now (kkd also does it daily): delete flows,
job logs and artifacts older than the branch keeps them (` + "`kk branch set`" + `),
expired caches and blobs nothing refers to. Data of flows in progress is never
deleted. See docs/retention.md.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRun(cmd.Context(), opts)
		},
	}
}

func runRun(ctx context.Context, opts *RunOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	rep, err := c.RunRetention(ctx)
	if err != nil {
		return fmt.Errorf("run retention: %w", err)
	}
	return printReport(opts.IO, opts.Format, rep)
}

func printReport(ios *iostreams.IOStreams, format output.Format, rep api.RetentionReport) error {
	if format != output.Table {
		return output.Write(ios.Out, format, rep)
	}
	t := output.NewTable(ios)
	for _, row := range [][3]string{
		{"Flows deleted:", strconv.Itoa(rep.Flows), fmt.Sprintf("(%d jobs)", rep.Jobs)},
		{"Job logs deleted:", strconv.Itoa(rep.Logs), bytes(rep.LogBytes)},
		{"Artifacts deleted:", strconv.Itoa(rep.Artifacts), bytes(rep.ArtifactBytes)},
		{"Expired caches deleted:", strconv.Itoa(rep.Caches), bytes(rep.CacheBytes)},
		{"Orphaned blobs deleted:", strconv.Itoa(rep.OrphanBlobs), bytes(rep.OrphanBytes)},
		{"Webhook deliveries deleted:", strconv.Itoa(rep.Deliveries), ""},
		{"Took:", fmt.Sprintf("%.1fs", rep.Seconds), ""},
	} {
		t.AddField(row[0])
		t.AddField(row[1])
		t.AddField(row[2])
		t.EndRow()
	}
	if err := t.Render(); err != nil {
		return err
	}
	for _, e := range rep.Errors {
		fmt.Fprintln(ios.ErrOut, "warning:", e)
	}
	return nil
}

func bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

package stage

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// ScheduleOptions are the inputs of `kk stage schedule`.
type ScheduleOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref cmdutil.BranchRef
}

// NewCmdSchedule returns `kk stage schedule PROJECT/BRANCH`.
func NewCmdSchedule(f *factory.Factory, runF func(context.Context, *ScheduleOptions) error) *cobra.Command {
	opts := &ScheduleOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "schedule PROJECT/BRANCH",
		Short: "Show the time and repo triggers of a branch's stages and when they fire next",
		Long: `Show the interval, date, cron and repo triggers of the branch's stages: the
rule, when each last fired and when it fires next (for repo triggers: the next
poll of the repository). Times are UTC; on a terminal they are relative.`,
		Args:              cmdutil.ExactArgs(1, "missing branch: kk stage schedule PROJECT/BRANCH"),
		ValidArgsFunction: cmdutil.CompleteBranchRefs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			opts.Ref = ref
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return scheduleRun(cmd.Context(), opts)
		},
	}
}

func scheduleRun(ctx context.Context, opts *ScheduleOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := cmdutil.ResolveBranch(ctx, c, opts.Ref)
	if err != nil {
		return err
	}
	es, err := c.Schedule(ctx, b.ID)
	if err != nil {
		return fmt.Errorf("schedule of %s: %w", opts.Ref, err)
	}
	ios := opts.IO
	return output.WriteList(ios, opts.Format, es, []string{"stage", "trigger", "rule", "last fired", "next", "note"}, func(e api.ScheduleEntry) []string {
		last := output.TimePtr(ios, e.LastFired)
		if last == "" {
			last = "never"
		}
		next := "-"
		if e.Next != nil {
			next = e.Next.UTC().Format(time.RFC3339)
			if ios.IsStdoutTTY() {
				next = "in " + until(time.Until(*e.Next))
			}
		}
		return []string{e.Stage, e.Trigger, e.Rule, last, next, e.Note}
	})
}

// until renders a duration in the future as "now", "12s", "3m", "2h", "4d".
func until(d time.Duration) string {
	switch {
	case d < time.Second:
		return "<1s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

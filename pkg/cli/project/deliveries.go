package project

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// DeliveriesOptions are the inputs of `kk project deliveries`.
type DeliveriesOptions struct {
	IO      *iostreams.IOStreams
	Client  func() (*client.Client, error)
	Format  output.Format
	Project string
	Limit   int
}

// NewCmdDeliveries returns `kk project deliveries`.
func NewCmdDeliveries(f *factory.Factory, runF func(context.Context, *DeliveriesOptions) error) *cobra.Command {
	opts := &DeliveriesOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "deliveries PROJECT",
		Short: "List the webhook deliveries a project received, newest first",
		Long: `List the webhook deliveries kkd recorded for a project, newest first, with
what each did: the flows it started, no_branch (no branch tracks the pushed
repository branch) or ignored (an event that starts nothing), and how many
times the forge sent it again (duplicates start nothing). Deliveries refused
for a missing or wrong signature are not recorded: kkd's log has them.
Records are kept 30 days.`,
		Args:              cmdutil.ExactArgs(1, "missing project: kk project deliveries PROJECT"),
		ValidArgsFunction: cmdutil.CompleteProjects(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Limit < 0 || opts.Limit > 1000 {
				return cmdutil.UsageErrorf("invalid --limit %d: want a number from 1 to 1000", opts.Limit)
			}
			opts.Project = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return deliveriesRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVarP(&opts.Limit, "limit", "L", 0, "at most this many deliveries (default 50)")
	return cmd
}

func deliveriesRun(ctx context.Context, opts *DeliveriesOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ds, err := c.ListDeliveries(ctx, opts.Project, opts.Limit)
	if err != nil {
		return err
	}
	return output.WriteList(opts.IO, opts.Format, ds, []string{"time", "forge", "event", "delivery", "outcome"}, func(d api.WebhookDelivery) []string {
		return []string{output.Time(opts.IO, d.Received), d.Forge, d.Event, d.Delivery, deliveryOutcome(d)}
	})
}

// deliveryOutcome says what a delivery did in a few words.
func deliveryOutcome(d api.WebhookDelivery) string {
	var s string
	switch d.Outcome {
	case api.WebhookStarted:
		ids := make([]string, len(d.Flows))
		for i, id := range d.Flows {
			ids[i] = strconv.FormatInt(id, 10)
		}
		s = "started flow " + strings.Join(ids, ", ")
		if len(ids) > 1 {
			s = "started flows " + strings.Join(ids, ", ")
		}
		if d.Note != "" {
			s += "; failed on " + d.Note
		}
	case api.WebhookNoBranch:
		s = "no branch matched"
	case api.WebhookIgnored:
		s = "ignored"
		if d.Note != "" {
			s += ": " + d.Note
		}
	default:
		s = "recorded"
		if d.Note != "" {
			s += ": " + d.Note
		}
	}
	if d.Duplicates > 0 {
		s += " (+" + strconv.Itoa(d.Duplicates) + " duplicate"
		if d.Duplicates > 1 {
			s += "s"
		}
		s += ")"
	}
	return s
}

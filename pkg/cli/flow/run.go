package flow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/flowview"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// DefaultPollInterval is how often `kk flow run --wait` asks for the flow.
const DefaultPollInterval = 500 * time.Millisecond

// maxPollFailures is how many polls in a row may fail on a transient error
// (server unreachable or failing) before --wait gives up.
const maxPollFailures = 120

// RunOptions are the inputs of `kk flow run`.
type RunOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref          cmdutil.BranchRef
	Dev          bool
	Args         map[string]string
	Wait         bool
	PollInterval time.Duration
}

// NewCmdRun returns `kk flow run PROJECT/BRANCH`.
func NewCmdRun(f *factory.Factory, runF func(context.Context, *RunOptions) error) *cobra.Command {
	opts := &RunOptions{IO: f.IOStreams, Client: f.Client, PollInterval: DefaultPollInterval}
	var args []string
	cmd := &cobra.Command{
		Use:   "run PROJECT/BRANCH",
		Short: "Start a flow on a branch",
		Long: `Start a CI flow (or with --dev a DEV flow) on a branch and print it.

With --wait, kk waits until the flow completes, prints the final flow and
exits 0 only if every job (not replaced by a rerun) ended ok; otherwise it
lists the failed jobs on stderr and exits 1.`,
		Example: `  kk flow run demo/main --wait
  kk flow run demo/feature/x --dev --arg COUNT=3 -o json`,
		Args:              cmdutil.ExactArgs(1, "missing branch: kk flow run PROJECT/BRANCH"),
		ValidArgsFunction: cmdutil.CompleteBranchRefs(f),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref, err := cmdutil.ParseBranchRef(a[0])
			if err != nil {
				return err
			}
			kv, err := cmdutil.ParseKeyValues("--arg", args)
			if err != nil {
				return err
			}
			opts.Ref, opts.Args = ref, kv
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Dev, "dev", false, "start a DEV flow instead of a CI flow")
	cmd.Flags().StringArrayVar(&args, "arg", nil, "flow argument KEY=VALUE (repeatable)")
	cmd.Flags().BoolVarP(&opts.Wait, "wait", "w", false, "wait for the flow to complete; exit 0 iff every job is ok")
	cmd.Flags().DurationVar(&opts.PollInterval, "poll-interval", DefaultPollInterval, "how often --wait asks the server")
	_ = cmd.Flags().MarkHidden("poll-interval")
	return cmd
}

func runRun(ctx context.Context, opts *RunOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := cmdutil.ResolveBranch(ctx, c, opts.Ref)
	if err != nil {
		return err
	}
	kind := ci.FlowCI
	if opts.Dev {
		kind = ci.FlowDEV
	}
	fl, err := c.CreateFlow(ctx, b.ID, api.CreateFlow{Kind: kind, Args: opts.Args})
	if err != nil {
		return fmt.Errorf("start flow on %s: %w", opts.Ref, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "started %s flow %d on %s\n", fl.Kind, fl.ID, opts.Ref)
	if !opts.Wait {
		return flowview.PrintFlow(opts.IO, opts.Format, fl)
	}
	fl, err = wait(ctx, c, opts, fl)
	if err != nil {
		return err
	}
	if err := flowview.PrintFlow(opts.IO, opts.Format, fl); err != nil {
		return err
	}
	return verdict(opts.IO, fl)
}

// wait polls the flow until it is completed.
func wait(ctx context.Context, c *client.Client, opts *RunOptions, fl api.FlowDetail) (api.FlowDetail, error) {
	interval := opts.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	tty := opts.IO.IsStderrTTY()
	manualSeen := map[int64]bool{}
	failures := 0
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		for _, r := range fl.Runs {
			if r.State == ci.RunManual && !manualSeen[r.ID] {
				manualSeen[r.ID] = true
				if tty {
					fmt.Fprint(opts.IO.ErrOut, "\r\x1b[K")
				}
				fmt.Fprintf(opts.IO.ErrOut, "run %d (%s) waits for a manual start: kk run start %d\n", r.ID, r.Name, r.ID)
			}
		}
		if fl.State == ci.FlowCompleted {
			if tty {
				fmt.Fprint(opts.IO.ErrOut, "\r\x1b[K")
			}
			return fl, nil
		}
		if tty {
			fmt.Fprintf(opts.IO.ErrOut, "\r\x1b[Kflow %d %s: %s", fl.ID, fl.State, flowview.Summary(fl))
		}
		select {
		case <-ctx.Done():
		case <-ticker.C:
		}
		next, err := c.GetFlow(ctx, fl.ID)
		switch {
		case ctx.Err() != nil:
			if tty {
				fmt.Fprint(opts.IO.ErrOut, "\r\x1b[K")
			}
			fmt.Fprintf(opts.IO.ErrOut, "stopped waiting; flow %d goes on: kk flow show %d\n", fl.ID, fl.ID)
			return fl, ctx.Err()
		case err == nil:
			fl, failures = next, 0
		case transient(err) && failures < maxPollFailures:
			failures++
			if failures == 1 {
				fmt.Fprintf(opts.IO.ErrOut, "\r\x1b[Kwaiting for flow %d: %v (retrying)\n", fl.ID, err)
			}
		default:
			return fl, fmt.Errorf("wait for flow %d: %w", fl.ID, err)
		}
	}
}

// transient reports errors worth retrying while waiting.
func transient(err error) bool {
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		return true
	}
	var ae *api.Error
	return errors.As(err, &ae) && (ae.Code == api.CodeUnavailable || ae.Code == api.CodeInternal)
}

// verdict explains a failed flow on stderr and returns ErrSilent, or nil when
// every current job is ok.
func verdict(ios *iostreams.IOStreams, fl api.FlowDetail) error {
	if flowview.Succeeded(fl) {
		fmt.Fprintf(ios.ErrOut, "flow %d succeeded: %s\n", fl.ID, flowview.Summary(fl))
		return nil
	}
	fmt.Fprintf(ios.ErrOut, "flow %d failed: %s\n", fl.ID, flowview.Summary(fl))
	for _, r := range fl.Runs {
		for _, j := range r.Jobs {
			if j.Covered || (j.State == ci.JobCompleted && j.Result.Ok()) {
				continue
			}
			msg := ""
			if j.Message != "" {
				msg = ": " + j.Message
			}
			fmt.Fprintf(ios.ErrOut, "  job %d %s (stage %s) %s%s; logs: kk job logs %d\n",
				j.ID, j.Name, r.Name, flowview.JobStatus(j), msg, j.ID)
		}
	}
	return cmdutil.ErrSilent
}

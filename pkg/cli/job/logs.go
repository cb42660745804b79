package job

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/client"
)

// LogsOptions are the inputs of `kk job logs`.
type LogsOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)

	JobID  int64
	Step   *int // nil: all steps
	Follow bool
}

// NewCmdLogs returns `kk job logs JOB [-f] [--step N]`.
func NewCmdLogs(f *factory.Factory, runF func(context.Context, *LogsOptions) error) *cobra.Command {
	opts := &LogsOptions{IO: f.IOStreams, Client: f.Client}
	var step int
	cmd := &cobra.Command{
		Use:   "logs JOB",
		Short: "Print a job's log (with -f: follow it until the job completes)",
		Long: `Print the log of a job, or of one step with --step N (steps count from 0).

With -f the log is streamed as it is written and kk returns when the job
completes; Ctrl-C stops following earlier.`,
		Example: "  kk job logs 42\n  kk job logs 42 -f --step 1",
		Args:    cmdutil.ExactArgs(1, "missing job id: kk job logs JOB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cmdutil.ParseID("job", args[0], jobIDHint())
			if err != nil {
				return err
			}
			opts.JobID = id
			if cmd.Flags().Changed("step") {
				if step < 0 {
					return cmdutil.UsageErrorf("invalid --step %d: steps count from 0", step)
				}
				opts.Step = &step
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return logsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "stream the log until the job completes")
	cmd.Flags().IntVar(&step, "step", 0, "only the log of step N (from 0)")
	return cmd
}

func logsRun(ctx context.Context, opts *LogsOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	body, err := c.Logs(ctx, opts.JobID, opts.Step, opts.Follow)
	if err != nil {
		return fmt.Errorf("logs of job %d: %w", opts.JobID, err)
	}
	defer body.Close()
	if err := stream(opts.IO.Out, body); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("logs of job %d: stream interrupted: %w (run the command again to see the rest)", opts.JobID, err)
	}
	return nil
}

// stream copies r to w as data arrives, flushing w after every read when it
// can be flushed.
func stream(w io.Writer, r io.Reader) error {
	flusher, _ := w.(interface{ Flush() error })
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flusher != nil {
				if ferr := flusher.Flush(); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

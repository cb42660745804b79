package artifacts

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

// ListOptions are the inputs of `kk artifacts list`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref Ref
}

// NewCmdList returns `kk artifacts list FLOW|RUN`.
func NewCmdList(f *factory.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:     "list FLOW|RUN",
		Aliases: []string{"ls"},
		Short:   "List the artifacts of a flow (all its runs) or of a run",
		Long: `List the artifacts of a flow, newest run first, or of one run.

FLOW is flow/ID or a bare flow ID; RUN is run/ID.`,
		Example: "  kk artifacts list 12\n  kk artifacts list run/34 -o json",
		Args:    cmdutil.ExactArgs(1, "missing flow or run: kk artifacts list FLOW|RUN (flow/ID, run/ID or a flow ID)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := ParseRef(args[0])
			if err != nil {
				return err
			}
			opts.Ref = ref
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var as []api.Artifact
	switch opts.Ref.Scope {
	case ScopeRun:
		as, err = c.ListRunArtifacts(ctx, opts.Ref.ID)
	default:
		as, err = c.ListFlowArtifacts(ctx, opts.Ref.ID)
	}
	if err != nil {
		return fmt.Errorf("artifacts of %s: %w", opts.Ref, err)
	}
	if len(as) == 0 && opts.Format == output.Table {
		fmt.Fprintf(opts.IO.ErrOut, "no artifacts in %s\n", opts.Ref)
		return nil
	}
	return output.WriteList(opts.IO, opts.Format, as,
		[]string{"ID", "RUN", "STAGE", "JOB", "PATH", "SIZE", "PUBLIC", "CREATED"},
		func(a api.Artifact) []string {
			public := ""
			if a.ReportEntry {
				public = "report"
			} else if a.Public {
				public = "yes"
			}
			return []string{
				strconv.FormatInt(a.ID, 10), strconv.FormatInt(a.RunID, 10), a.Stage, strconv.FormatInt(a.JobID, 10),
				a.Path, Size(a.Size), public, output.Time(opts.IO, a.Created),
			}
		})
}

// Size formats a byte count for people: 512 B, 1.5 KiB, 20.0 MiB.
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

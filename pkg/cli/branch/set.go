package branch

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// maxKeepDays is the longest retention (about 100 years).
const maxKeepDays = 36500

// SetOptions are the inputs of `kk branch set`.
type SetOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref cmdutil.BranchRef
	// Retention in days; nil: unchanged, 0: the default.
	KeepFlows, KeepLogs, KeepArtifacts *int
}

// NewCmdSet returns `kk branch set PROJECT/BRANCH --keep-flows 90d ...`.
func NewCmdSet(f *factory.Factory, runF func(context.Context, *SetOptions) error) *cobra.Command {
	opts := &SetOptions{IO: f.IOStreams, Client: f.Client}
	var flows, logs, artifacts string
	cmd := &cobra.Command{
		Use:   "set PROJECT/BRANCH [--keep-flows 90d] [--keep-logs 30d] [--keep-artifacts 30d]",
		Short: "Change a branch's settings (retention)",
		Long: fmt.Sprintf(`Change how long a branch keeps its data, counted from a flow's finish.
Durations are days (90d or 90) or weeks (12w); "default" restores the
default (flows %dd, logs %dd, artifacts %dd). Retention runs daily on the
leader kkd and on demand with `+"`kk retention run`"+` (see docs/retention.md).`,
			ci.DefaultKeepFlowsDays, ci.DefaultKeepLogsDays, ci.DefaultKeepArtifactsDays),
		Example:           "  kk branch set demo/main --keep-flows 180d --keep-logs 4w\n  kk branch set demo/main --keep-artifacts default",
		Args:              cmdutil.ExactArgs(1, "missing branch: kk branch set PROJECT/BRANCH --keep-flows 90d"),
		ValidArgsFunction: cmdutil.CompleteBranchRefs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			opts.Ref = ref
			for _, fl := range []struct {
				name, val string
				dst       **int
			}{{"keep-flows", flows, &opts.KeepFlows}, {"keep-logs", logs, &opts.KeepLogs}, {"keep-artifacts", artifacts, &opts.KeepArtifacts}} {
				if !cmd.Flags().Changed(fl.name) {
					continue
				}
				d, err := ParseDays(fl.val)
				if err != nil {
					return cmdutil.UsageErrorf("--%s: %v", fl.name, err)
				}
				*fl.dst = &d
			}
			if opts.KeepFlows == nil && opts.KeepLogs == nil && opts.KeepArtifacts == nil {
				return cmdutil.UsageErrorf("nothing to set: give --keep-flows, --keep-logs or --keep-artifacts")
			}
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return setRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&flows, "keep-flows", "", "keep flows (with runs, jobs, results) this long, e.g. 90d")
	cmd.Flags().StringVar(&logs, "keep-logs", "", "keep job logs this long, e.g. 30d")
	cmd.Flags().StringVar(&artifacts, "keep-artifacts", "", "keep artifacts this long, e.g. 30d")
	return cmd
}

// ParseDays reads a retention: "90d", "90" (days), "12w" (weeks) or
// "default" (0).
func ParseDays(s string) (int, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "default" {
		return 0, nil
	}
	mult := 1
	num := s
	switch {
	case strings.HasSuffix(s, "d"):
		num = strings.TrimSuffix(s, "d")
	case strings.HasSuffix(s, "w"):
		num, mult = strings.TrimSuffix(s, "w"), 7
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a retention: give days (90d), weeks (12w) or \"default\"", s)
	}
	if n*mult > maxKeepDays {
		return 0, fmt.Errorf("%q is more than %d days", s, maxKeepDays)
	}
	return n * mult, nil
}

func setRun(ctx context.Context, opts *SetOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := cmdutil.ResolveBranch(ctx, c, opts.Ref)
	if err != nil {
		return err
	}
	r := b.Retention
	if opts.KeepFlows != nil {
		r.KeepFlowsDays = *opts.KeepFlows
	}
	if opts.KeepLogs != nil {
		r.KeepLogsDays = *opts.KeepLogs
	}
	if opts.KeepArtifacts != nil {
		r.KeepArtifactsDays = *opts.KeepArtifacts
	}
	b, err = c.SetBranchRetention(ctx, opts.Ref.Project, strconv.FormatInt(b.ID, 10), r)
	if err != nil {
		return fmt.Errorf("set retention of %s: %w", opts.Ref, err)
	}
	return printBranch(opts.IO, opts.Format, opts.Ref.Project, b)
}

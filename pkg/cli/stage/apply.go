package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// ApplyOptions are the inputs of `kk stage apply`.
type ApplyOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Ref      cmdutil.BranchRef
	File     string // "-" reads stdin
	Name     string
	Disabled bool
}

// NewCmdApply returns `kk stage apply PROJECT/BRANCH FILE`.
func NewCmdApply(f *factory.Factory, runF func(context.Context, *ApplyOptions) error) *cobra.Command {
	opts := &ApplyOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "apply PROJECT/BRANCH FILE",
		Short: "Create or replace a stage from a schema file",
		Long: `Upload a stage schema file (Starlark) to a branch, creating the stage or
replacing its code. The stage is named after the file without its extension
unless --name is given. The server validates the schema; problems are printed
as FILE:LINE:COL: key: message and nothing is stored.`,
		Example: "  kk stage apply demo/main tests.star\n  kk stage apply demo/main ci/build.star --name build",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return cmdutil.UsageErrorf("want 2 arguments, got %d: kk stage apply PROJECT/BRANCH FILE", len(args))
			}
			return nil
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return cmdutil.CompleteBranchRefs(f)(cmd, args, toComplete)
			}
			if len(args) == 1 {
				return nil, cobra.ShellCompDirectiveDefault
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := cmdutil.ParseBranchRef(args[0])
			if err != nil {
				return err
			}
			opts.Ref, opts.File = ref, args[1]
			if opts.Name == "" {
				opts.Name = StageName(opts.File)
			}
			if opts.Name == "" {
				return cmdutil.UsageErrorf("cannot name the stage after %q: pass --name NAME", opts.File)
			}
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return applyRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "stage name (default: the file's base name without extension)")
	cmd.Flags().BoolVar(&opts.Disabled, "disabled", false, "store the stage disabled (flows skip it)")
	return cmd
}

// StageName is the default stage name of a file: its base name without the
// extension ("ci/unit-tests.star" → "unit-tests"). Stdin ("-") has none.
func StageName(file string) string {
	if file == "-" {
		return ""
	}
	base := filepath.Base(file)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

func readFile(in io.Reader, file string) ([]byte, error) {
	if file == "-" {
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read stage file: %w", err)
	}
	return b, nil
}

func applyRun(ctx context.Context, opts *ApplyOptions) error {
	code, err := readFile(opts.IO.In, opts.File)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := cmdutil.ResolveBranch(ctx, c, opts.Ref)
	if err != nil {
		return err
	}
	enabled := !opts.Disabled
	s, err := c.PutStage(ctx, b.ID, opts.Name, api.PutStage{Code: string(code), Filename: displayName(opts.File), Enabled: &enabled})
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeInvalidSchema {
		printProblems(opts.IO.ErrOut, opts.File, ae)
		return cmdutil.ErrSilent
	}
	if err != nil {
		return fmt.Errorf("apply stage %q to %s: %w", opts.Name, opts.Ref, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "applied stage %s to %s (id %d)\n", s.Name, opts.Ref, s.ID)
	return printStage(opts.IO, opts.Format, s)
}

// displayName names the stage file in messages.
func displayName(file string) string {
	if file == "-" {
		return "<stdin>"
	}
	return file
}

// printProblems prints the server's schema problems located in the local file.
func printProblems(w io.Writer, file string, ae *api.Error) {
	file = displayName(file)
	for _, d := range ae.Details {
		d.File = file
		fmt.Fprintln(w, d.String())
	}
	n := len(ae.Details)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "error: %s: %s (%d problem%s); the stage was not changed\n", file, ae.Message, n, plural)
}

// Package schema implements `kk schema check`, which evaluates and validates
// a stage schema file offline (no server) and prints the resulting stage.
package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	kkschema "github.com/kraken-go/kk/pkg/schema"
)

// NewCmdSchema returns the `kk schema` command group.
func NewCmdSchema(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "schema <command>",
		Short: "Work with stage schema files offline",
	})
	cmd.AddCommand(NewCmdCheck(f, nil))
	return cmd
}

// EvalFunc evaluates stage code (pkg/schema.Eval).
type EvalFunc func(ctx context.Context, filename string, code []byte, c kkschema.Context, lim kkschema.Limits) (*kkschema.Stage, error)

// CheckOptions are the inputs of `kk schema check`.
type CheckOptions struct {
	IO     *iostreams.IOStreams
	Format output.Format
	Eval   EvalFunc

	File string // "-" reads stdin
	Dev  bool
	Args map[string]string
}

// NewCmdCheck returns `kk schema check FILE [--dev] [--arg k=v]...`.
func NewCmdCheck(f *factory.Factory, runF func(context.Context, *CheckOptions) error) *cobra.Command {
	opts := &CheckOptions{IO: f.IOStreams, Eval: kkschema.Eval}
	var args []string
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Evaluate and validate a stage file; print the stage as JSON",
		Long: `Evaluate a stage schema file (Starlark) the way the server would, without
contacting it, validate the result and print the stage as indented JSON (-o yaml
for YAML).

The file is evaluated for a CI flow (ctx.is_ci is True) unless --dev is given.
Arguments given with --arg override the defaults of the stage's parameters.

Problems are printed to stderr as FILE:LINE:COL: key: message and kk exits 1.`,
		Example: "  kk schema check tests.star\n  kk schema check deploy.star --dev --arg TARGET=staging",
		Args:    cmdutil.ExactArgs(1, "missing file: kk schema check FILE"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return nil, cobra.ShellCompDirectiveDefault
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			kv, err := cmdutil.ParseKeyValues("--arg", args)
			if err != nil {
				return err
			}
			opts.File, opts.Args = a[0], kv
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return checkRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Dev, "dev", false, "evaluate for a DEV flow (ctx.is_ci is False)")
	cmd.Flags().StringArrayVar(&args, "arg", nil, "argument KEY=VALUE overriding a parameter default (repeatable)")
	return cmd
}

func checkRun(ctx context.Context, opts *CheckOptions) error {
	var code []byte
	var err error
	name := opts.File
	if opts.File == "-" {
		name = "<stdin>"
		code, err = io.ReadAll(opts.IO.In)
	} else {
		code, err = os.ReadFile(opts.File)
	}
	if err != nil {
		return fmt.Errorf("read stage file: %w", err)
	}
	sc := kkschema.Context{
		IsCI:  !opts.Dev,
		Args:  copyArgs(opts.Args),
		Stage: strings.TrimSuffix(filepath.Base(name), filepath.Ext(name)),
		Flow:  kkschema.FlowInfo{Kind: "CI", Data: map[string]any{}},
	}
	if opts.Dev {
		sc.Flow.Kind = "DEV"
	}
	// The first evaluation learns the parameters; the second sees their
	// defaults, as a flow would.
	st, err := opts.Eval(ctx, name, code, sc, kkschema.Limits{})
	if err != nil {
		return report(opts.IO, name, err)
	}
	merged := copyArgs(opts.Args)
	added := false
	for _, p := range st.Parameters {
		if _, ok := merged[p.Name]; !ok {
			merged[p.Name] = p.Default
			added = true
		}
	}
	warnUnknownArgs(opts.IO, opts.Args, st.Parameters)
	if added {
		sc.Args = merged
		st, err = opts.Eval(ctx, name, code, sc, kkschema.Limits{})
		if err != nil {
			return report(opts.IO, name, err)
		}
	}
	format := opts.Format
	if format == output.Table {
		format = output.JSON
	}
	return output.Write(opts.IO.Out, format, st)
}

func copyArgs(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// report prints schema problems located in file and returns ErrSilent; other
// errors are returned.
func report(ios *iostreams.IOStreams, file string, err error) error {
	var ps kkschema.Problems
	if !errors.As(err, &ps) {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("check %s: %w", file, err)
	}
	for _, p := range ps {
		if p.File == "" {
			p.File = file
		}
		fmt.Fprintln(ios.ErrOut, p.String())
	}
	plural := "s"
	if len(ps) == 1 {
		plural = ""
	}
	fmt.Fprintf(ios.ErrOut, "error: %s: %d problem%s\n", file, len(ps), plural)
	return cmdutil.ErrSilent
}

func warnUnknownArgs(ios *iostreams.IOStreams, args map[string]string, params []kkschema.Parameter) {
	known := make(map[string]bool, len(params))
	for _, p := range params {
		known[p.Name] = true
	}
	var unknown []string
	for k := range args {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		fmt.Fprintf(ios.ErrOut, "warning: --arg %s: the stage declares no parameter %q\n", k, k)
	}
}

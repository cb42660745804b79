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

	// The stage's code from a file of a git repository (--repo).
	Repo            string
	RepoBranch      string
	RepoPath        string
	RepoTokenSecret string
	Refresh         string
}

// NewCmdApply returns `kk stage apply PROJECT/BRANCH FILE`.
func NewCmdApply(f *factory.Factory, runF func(context.Context, *ApplyOptions) error) *cobra.Command {
	opts := &ApplyOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "apply PROJECT/BRANCH FILE | apply PROJECT/BRANCH --repo URL --repo-branch B --repo-path PATH",
		Short: "Create or replace a stage from a schema file or a file of a git repository",
		Long: `Upload a stage schema file (Starlark) to a branch, creating the stage or
replacing its code. The stage is named after the file without its extension
unless --name is given. The server validates the schema; problems are printed
as FILE:LINE:COL: key: message and nothing is stored.

With --repo the stage's code lives in a file of a git repository instead:
kkd fetches it now (it must evaluate, or nothing is stored) and again every
--refresh interval, on a push webhook of that repository branch and before
each run. A refresh that fails keeps the last good code and shows the error
in ` + "`kk stage show`" + ` (see docs/stages-from-repo.md).`,
		Example: "  kk stage apply demo/main tests.star\n  kk stage apply demo/main ci/build.star --name build\n" +
			"  kk stage apply demo/main --repo https://github.com/acme/shop.git --repo-branch main \\\n" +
			"      --repo-path .kraken/build.py --repo-token-secret gh-token --refresh 10m",
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.Repo != "" {
				if len(args) != 1 {
					return cmdutil.UsageErrorf("with --repo give only the branch, got %d arguments: kk stage apply PROJECT/BRANCH --repo URL --repo-branch B --repo-path PATH", len(args))
				}
				return nil
			}
			for _, fl := range []string{"repo-branch", "repo-path", "repo-token-secret", "refresh"} {
				if cmd.Flags().Changed(fl) {
					return cmdutil.UsageErrorf("--%s needs --repo URL", fl)
				}
			}
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
			opts.Ref = ref
			if opts.Repo != "" {
				if opts.RepoBranch == "" || opts.RepoPath == "" {
					return cmdutil.UsageErrorf("--repo needs --repo-branch BRANCH and --repo-path PATH (the stage file in the repository)")
				}
				opts.File = opts.RepoPath
			} else {
				opts.File = args[1]
			}
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
	cmd.Flags().StringVar(&opts.Repo, "repo", "", "read the stage from a file of this git repository (clone URL)")
	cmd.Flags().StringVar(&opts.RepoBranch, "repo-branch", "", "with --repo: the repository branch")
	cmd.Flags().StringVar(&opts.RepoPath, "repo-path", "", "with --repo: the stage file's path in the repository")
	cmd.Flags().StringVar(&opts.RepoTokenSecret, "repo-token-secret", "", "with --repo: a project secret holding an access token (see `kk secret create`)")
	cmd.Flags().StringVar(&opts.Refresh, "refresh", "", "with --repo: fetch the file again this often, e.g. 10m (default: only on pushes, before runs and by `kk stage refresh`)")
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
	enabled := !opts.Disabled
	req := api.PutStage{Filename: displayName(opts.File), Enabled: &enabled}
	if opts.Repo != "" {
		req.Repo = &api.StageRepoSpec{URL: opts.Repo, Branch: opts.RepoBranch, Path: opts.RepoPath,
			TokenSecret: opts.RepoTokenSecret, Refresh: opts.Refresh}
		req.Filename = ""
	} else {
		code, err := readFile(opts.IO.In, opts.File)
		if err != nil {
			return err
		}
		req.Code = string(code)
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := cmdutil.ResolveBranch(ctx, c, opts.Ref)
	if err != nil {
		return err
	}
	s, err := c.PutStage(ctx, b.ID, opts.Name, req)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeInvalidSchema {
		printProblems(opts.IO.ErrOut, opts.File, ae)
		return cmdutil.ErrSilent
	}
	if err != nil {
		return fmt.Errorf("apply stage %q to %s: %w", opts.Name, opts.Ref, err)
	}
	if s.Repo != nil {
		fmt.Fprintf(opts.IO.ErrOut, "applied stage %s to %s (id %d) from %s at %s\n", s.Name, opts.Ref, s.ID, s.Repo.Path, shortSHA(s.Repo.Version))
	} else {
		fmt.Fprintf(opts.IO.ErrOut, "applied stage %s to %s (id %d)\n", s.Name, opts.Ref, s.ID)
	}
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
	// The server's message already counts the problems.
	fmt.Fprintf(w, "error: %s: %s; the stage was not changed\n", file, ae.Message)
}

package agent

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/agentinstall"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

// UninstallOptions are the inputs of `kk agent uninstall`.
type UninstallOptions struct {
	IO *iostreams.IOStreams
	// CheckHost checks that a real uninstall (root "/") can proceed.
	CheckHost func() error

	Uninstall agentinstall.UninstallOptions
	DryRun    bool
	// Root is where the install is: "/" for a real one.
	Root string
}

// NewCmdUninstall returns `kk agent uninstall`.
func NewCmdUninstall(f *factory.Factory, runF func(context.Context, *UninstallOptions) error) *cobra.Command {
	opts := &UninstallOptions{
		IO:        f.IOStreams,
		CheckHost: func() error { return agentinstall.CheckHost(os.Geteuid()) },
	}
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the kkagent service that kk agent install set up",
		Long: `Stop and disable kkagent.service, and remove the unit, ` + agentinstall.EnvFilePath + ` and
` + agentinstall.InstallDir + `. The data dir (the agent's identity, credential and workspaces)
and the user are kept unless --purge-data and --remove-user. The data dir and
the user are read from the installed files unless given.

The agent stays known to kkd: delete it there with kk agent delete.
--dry-run prints what would be removed and changes nothing.`,
		Example: `  kk agent uninstall --dry-run
  sudo kk agent uninstall --purge-data --remove-user`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return uninstallRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print what would be removed, change nothing")
	fl.BoolVar(&opts.Uninstall.PurgeData, "purge-data", false, "also delete the data dir: identity, credential and workspaces")
	fl.BoolVar(&opts.Uninstall.RemoveUser, "remove-user", false, "also delete the agent's user")
	fl.StringVar(&opts.Uninstall.DataDir, "data-dir", "", "the agent's data dir (default: from "+agentinstall.EnvFilePath+")")
	fl.StringVar(&opts.Uninstall.User, "user", "", "the agent's user (default: from "+agentinstall.UnitPath+")")
	fl.BoolVar(&opts.Uninstall.Force, "force", false, "remove a kkagent.service that kk agent install did not write")
	fl.StringVar(&opts.Root, "root", "/", "uninstall from under this directory; host commands are not run (tests, images)")
	_ = fl.MarkHidden("root")
	return cmd
}

func uninstallRun(ctx context.Context, opts *UninstallOptions) error {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	plan, err := agentinstall.UninstallPlan(root, opts.Uninstall)
	if err != nil {
		return fmt.Errorf("uninstall kkagent: %w", err)
	}
	if plan.Empty() {
		fmt.Fprintf(opts.IO.ErrOut, "kkagent is not installed under %s: nothing to do\n", root)
		return nil
	}
	if opts.DryRun {
		if err := plan.Describe(opts.IO.Out, false); err != nil {
			return err
		}
		fmt.Fprintln(opts.IO.ErrOut, "dry run: nothing was changed; run as root without --dry-run to uninstall")
		return nil
	}
	var run agentinstall.CommandRunner = &agentinstall.Recorder{}
	if root == "/" {
		if err := opts.CheckHost(); err != nil {
			return err
		}
		run = agentinstall.ExecRunner{Stdout: opts.IO.ErrOut, Stderr: opts.IO.ErrOut}
	}
	plan.Progress = opts.IO.ErrOut
	if err := plan.Apply(ctx, root, run, nil); err != nil {
		return fmt.Errorf("uninstall kkagent: %w", err)
	}
	kept := ""
	if !opts.Uninstall.PurgeData {
		kept = "; the data dir is kept (--purge-data deletes it)"
	}
	fmt.Fprintf(opts.IO.ErrOut, "kkagent is uninstalled%s; kkd still knows the agent: kk agent delete NAME\n", kept)
	return nil
}

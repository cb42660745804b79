// Package root assembles kk's command tree and runs it: it maps the error a
// command returns to a message on stderr and to an exit code of the one table
// in cmdutil.
package root

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/agent"
	"github.com/kraken-go/kk/pkg/cli/artifacts"
	"github.com/kraken-go/kk/pkg/cli/branch"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/completion"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/flow"
	"github.com/kraken-go/kk/pkg/cli/group"
	"github.com/kraken-go/kk/pkg/cli/job"
	"github.com/kraken-go/kk/pkg/cli/login"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/cli/project"
	"github.com/kraken-go/kk/pkg/cli/retention"
	"github.com/kraken-go/kk/pkg/cli/run"
	"github.com/kraken-go/kk/pkg/cli/schema"
	"github.com/kraken-go/kk/pkg/cli/secret"
	"github.com/kraken-go/kk/pkg/cli/stage"
	testcmd "github.com/kraken-go/kk/pkg/cli/test"
	"github.com/kraken-go/kk/pkg/cli/version"
	"github.com/kraken-go/kk/pkg/client"
	tuicmd "github.com/kraken-go/kk/pkg/tui/cmd"
)

// NewCmdRoot returns the `kk` command with every subcommand.
func NewCmdRoot(f *factory.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kk <command>",
		Short: "kk drives a Kraken in Go CI server",
		Long: `kk drives a Kraken in Go CI server (kkd): projects, branches, stages, flows,
runs, jobs, logs, agents and groups.

Start with:
  kk login --server http://127.0.0.1:6363 --user admin --password-stdin
  kk project create demo && kk branch create demo/main
  kk stage apply demo/main tests.star && kk flow run demo/main --wait`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       f.Build.Version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if _, err := output.ParseFormat(f.Flags.Output); err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			return nil
		},
	}
	cmd.SetVersionTemplate("kk version {{.Version}}\n")
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmdutil.GroupCommand(cmd)
	cmd.RunE = rootRunE(cmd.RunE)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &cmdutil.UsageError{Err: err}
	})

	pf := cmd.PersistentFlags()
	pf.StringVar(&f.Flags.Server, "server", "",
		"kkd URL (env "+factory.EnvServer+"; default: config file, then "+factory.DefaultServer+")")
	pf.StringVar(&f.Flags.Token, "token", "", "API token (env "+factory.EnvToken+"; default: config file)")
	pf.StringVarP(&f.Flags.Output, "output", "o", "table", "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]cobra.Completion{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))

	cmd.AddCommand(
		login.NewCmdLogin(f, nil),
		schema.NewCmdSchema(f),
		project.NewCmdProject(f),
		branch.NewCmdBranch(f),
		stage.NewCmdStage(f),
		flow.NewCmdFlow(f),
		run.NewCmdRun(f),
		testcmd.NewCmdTest(f),
		job.NewCmdJob(f),
		agent.NewCmdAgent(f),
		group.NewCmdGroup(f),
		artifacts.NewCmdArtifacts(f),
		secret.NewCmdSecret(f),
		retention.NewCmdRetention(f),
		tuicmd.NewCmdTUI(f, nil),
		version.NewCmdVersion(f, nil),
		completion.NewCmdCompletion(f, nil),
	)
	return cmd
}

// rootRunE shows the help for a bare `kk` and rejects unknown commands.
func rootRunE(unknown func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return unknown(cmd, args)
	}
}

// Execute runs kk with args and returns the exit code. Errors are printed to
// the factory's stderr with a hint on how to fix them.
func Execute(ctx context.Context, f *factory.Factory, args []string) cmdutil.ExitCode {
	cmd := NewCmdRoot(f)
	cmd.SetArgs(args)
	cmd.SetIn(f.IOStreams.In)
	cmd.SetOut(f.IOStreams.Out)
	cmd.SetErr(f.IOStreams.ErrOut)
	ran, err := cmd.ExecuteContextC(ctx)
	code := cmdutil.ExitCodeOf(err)
	switch {
	case err == nil:
		return code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return cmdutil.ExitInterrupted
	case errors.Is(err, cmdutil.ErrSilent):
		return code
	}
	if ran == nil {
		ran = cmd
	}
	fmt.Fprintln(f.IOStreams.ErrOut, "error: "+Explain(err, ran.CommandPath(), f))
	if code == cmdutil.ExitUsage {
		fmt.Fprintf(f.IOStreams.ErrOut, "Run '%s --help' for usage.\n", ran.CommandPath())
	}
	return code
}

// Explain renders err for a user: the server's message, and what to do.
func Explain(err error, commandPath string, f *factory.Factory) string {
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		return ue.Error()
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err.Error()
	}
	server, _ := f.Server()
	switch ae.Code {
	case api.CodeUnauthorized:
		return fmt.Sprintf("not logged in or token invalid (server said: %s): "+
			"run `kk login --server %s --user admin --password-stdin`, or pass --token / %s",
			ae.Message, server, factory.EnvToken)
	case api.CodeForbidden:
		return err.Error() + "\nyour user may not do this: ask an admin"
	case api.CodeNotFound:
		// The server's message names what is missing and usually how to list
		// it; the command's own context ("job 3: ...") would only repeat it.
		if strings.Contains(ae.Message, "`kk ") {
			return ae.Message
		}
		if hint := notFoundHint(commandPath); hint != "" {
			return ae.Message + "\n" + hint
		}
		return ae.Message
	case api.CodeInternal, api.CodeUnavailable:
		return err.Error() + "\nthe server failed: see kkd's log, then retry"
	}
	return err.Error()
}

func notFoundHint(commandPath string) string {
	words := strings.Fields(commandPath)
	if len(words) < 2 {
		return ""
	}
	switch words[1] {
	case "project":
		return "see the projects with `kk project list`"
	case "branch":
		return "see the projects with `kk project list` and their branches with `kk branch list PROJECT`"
	case "stage", "flow":
		return "check PROJECT/BRANCH with `kk project list` and `kk branch list PROJECT`; flows with `kk flow list PROJECT/BRANCH`"
	case "run", "job":
		return "see a flow's runs and jobs with `kk flow show FLOW`"
	case "agent":
		return "see the agents with `kk agent list` and `kk agent list --discovered`"
	case "group":
		return "see the groups with `kk group list` and the agents with `kk agent list`"
	}
	return ""
}

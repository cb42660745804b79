// Package completion implements `kk completion SHELL`, which prints a shell
// completion script generated from the command tree.
package completion

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

// Shells are the shells completion scripts exist for.
func Shells() []string { return []string{"bash", "zsh", "fish", "powershell"} }

// Options are the inputs of `kk completion`.
type Options struct {
	IO    *iostreams.IOStreams
	Shell string
	Root  *cobra.Command
}

// NewCmdCompletion returns `kk completion SHELL`.
func NewCmdCompletion(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams}
	return &cobra.Command{
		Use:   "completion {bash|zsh|fish|powershell}",
		Short: "Print a shell completion script",
		Long: `Print a completion script for your shell to stdout.

  bash:        source <(kk completion bash)
               or: kk completion bash > /etc/bash_completion.d/kk
  zsh:         kk completion zsh > "${fpath[1]}/_kk"   (then restart the shell)
  fish:        kk completion fish > ~/.config/fish/completions/kk.fish
  powershell:  kk completion powershell | Out-String | Invoke-Expression`,
		ValidArgs: Shells(),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageErrorf("want one shell: kk completion {bash|zsh|fish|powershell}")
			}
			for _, s := range Shells() {
				if args[0] == s {
					return nil
				}
			}
			return cmdutil.UsageErrorf("unsupported shell %q: want bash, zsh, fish or powershell", args[0])
		},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Shell = args[0]
			opts.Root = cmd.Root()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Generate(opts.Root, opts.Shell, opts.IO.Out)
		},
	}
}

// Generate writes the completion script of root for shell to w.
func Generate(root *cobra.Command, shell string, w io.Writer) error {
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(w)
	}
	return fmt.Errorf("unsupported shell %q", shell)
}

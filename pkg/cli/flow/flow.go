// Package flow implements `kk flow`: start a flow on a branch (optionally
// waiting for its result), list and show flows.
package flow

import (
	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
)

// NewCmdFlow returns the `kk flow` command group.
func NewCmdFlow(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "flow <command>",
		Short: "Run and inspect flows",
		Long: `A flow (CI or DEV) is one execution of a branch's stages: it holds one run
per stage, and each run holds jobs.`,
	})
	cmd.AddCommand(NewCmdRun(f, nil))
	cmd.AddCommand(NewCmdList(f, nil))
	cmd.AddCommand(NewCmdShow(f, nil))
	return cmd
}

func flowIDHint() string { return "see `kk flow list PROJECT/BRANCH`" }

package agent

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
)

// NewCmdRotateToken returns `kk agent rotate-token AGENT`.
func NewCmdRotateToken(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "rotate-token AGENT",
		Short: "Revoke an agent's credential so that it gets a new one",
		Long: `Revoke the agent's credential. Its next call to kkd is refused; the agent then
registers again with the enroll secret kept in its data dir and receives a new
credential, without an admin's help. Use it when a credential may have leaked.
A copied credential stops working at once; a copied data dir does not (delete
the agent and authorize it again for that).`,
		Example:           "  kk agent rotate-token build-host-1",
		Args:              cmdutil.ExactArgs(1, "missing agent: kk agent rotate-token AGENT (name or id)"),
		ValidArgsFunction: cmdutil.CompleteAgents(f, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return rotateTokenRun(cmd.Context(), opts)
		},
	}
}

func rotateTokenRun(ctx context.Context, opts *Options) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	a, err := c.RotateAgentToken(ctx, opts.Agent)
	if err != nil {
		return fmt.Errorf("rotate the credential of agent %q: %w", opts.Agent, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "revoked the credential of agent %s: it gets a new one when it registers again\n", a.Name)
	return printAgent(opts.IO, opts.Format, a)
}

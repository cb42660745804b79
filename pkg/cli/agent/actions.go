package agent

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// Options are the inputs of `kk agent show|enable|disable|delete`.
type Options struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Agent string // name or id
	Force bool   // delete: cancel the agent's job first
}

type verb struct {
	name, short, long, done string
	// call performs the verb; nil result means there is nothing to print.
	call func(context.Context, *client.Client, *Options) (*api.Agent, error)
	// flags adds the verb's own flags, bound to the options.
	flags func(*cobra.Command, *Options)
}

func newVerbCmd(f *factory.Factory, v verb, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:               v.name + " AGENT",
		Short:             v.short,
		Long:              v.long,
		Args:              cmdutil.ExactArgs(1, fmt.Sprintf("missing agent: kk agent %s AGENT (name or id)", v.name)),
		ValidArgsFunction: cmdutil.CompleteAgents(f, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return verbRun(cmd.Context(), opts, v)
		},
	}
	if v.flags != nil {
		v.flags(cmd, opts)
	}
	return cmd
}

func verbRun(ctx context.Context, opts *Options, v verb) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	a, err := v.call(ctx, c, opts)
	if err != nil {
		if v.done == "" {
			return fmt.Errorf("agent %q: %w", opts.Agent, err)
		}
		return fmt.Errorf("%s agent %q: %w", v.name, opts.Agent, err)
	}
	if v.done != "" {
		fmt.Fprintf(opts.IO.ErrOut, "%s agent %s\n", v.done, opts.Agent)
	}
	if a == nil {
		return nil
	}
	return printAgent(opts.IO, opts.Format, *a)
}

func ptr(a api.Agent, err error) (*api.Agent, error) {
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// NewCmdShow returns `kk agent show AGENT`.
func NewCmdShow(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	cmd := newVerbCmd(f, verb{name: "show", short: "Show an agent with its host info",
		call: func(ctx context.Context, c *client.Client, o *Options) (*api.Agent, error) {
			return ptr(c.GetAgent(ctx, o.Agent))
		}}, runF)
	cmd.Aliases = []string{"view"}
	return cmd
}

// NewCmdEnable returns `kk agent enable AGENT`.
func NewCmdEnable(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	return newVerbCmd(f, verb{name: "enable", short: "Let a disabled agent take jobs again", done: "enabled",
		call: func(ctx context.Context, c *client.Client, o *Options) (*api.Agent, error) {
			return ptr(c.EnableAgent(ctx, o.Agent))
		}}, runF)
}

// NewCmdDisable returns `kk agent disable AGENT`.
func NewCmdDisable(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	return newVerbCmd(f, verb{name: "disable", short: "Stop an agent from taking new jobs", done: "disabled",
		call: func(ctx context.Context, c *client.Client, o *Options) (*api.Agent, error) {
			return ptr(c.DisableAgent(ctx, o.Agent))
		}}, runF)
}

// NewCmdDelete returns `kk agent delete AGENT [--force]`.
func NewCmdDelete(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	cmd := newVerbCmd(f, verb{name: "delete", short: "Forget an agent and revoke its credential", done: "deleted",
		long: `Forget an agent and revoke its credential. An agent that runs a job is not
deleted unless --force is given: its job is then cancelled first. The agent
shows up as discovered again if it keeps running.`,
		call: func(ctx context.Context, c *client.Client, o *Options) (*api.Agent, error) {
			return nil, c.DeleteAgent(ctx, o.Agent, o.Force)
		},
		flags: func(cmd *cobra.Command, o *Options) {
			cmd.Flags().BoolVar(&o.Force, "force", false, "delete the agent even while it runs a job, which is cancelled first")
		}}, runF)
	cmd.Aliases = []string{"rm"}
	return cmd
}

// AuthorizeOptions are the inputs of `kk agent authorize`.
type AuthorizeOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Agent  string
	Groups []string
}

// NewCmdAuthorize returns `kk agent authorize AGENT [--group G]...`.
func NewCmdAuthorize(f *factory.Factory, runF func(context.Context, *AuthorizeOptions) error) *cobra.Command {
	opts := &AuthorizeOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "authorize AGENT",
		Short: "Authorize a discovered agent so it gets jobs",
		Long: `Authorize a discovered agent (see kk agent list --discovered). It joins the
group "all" and every group given with --group.`,
		Example:           "  kk agent authorize build-host-1 --group linux --group docker",
		Args:              cmdutil.ExactArgs(1, "missing agent: kk agent authorize AGENT (name or id)"),
		ValidArgsFunction: cmdutil.CompleteAgents(f, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return authorizeRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Groups, "group", "g", nil, "also add the agent to group G (repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("group", cmdutil.CompleteGroups(f))
	return cmd
}

func authorizeRun(ctx context.Context, opts *AuthorizeOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	a, err := c.AuthorizeAgent(ctx, opts.Agent, api.AuthorizeAgent{Groups: opts.Groups})
	if err != nil {
		return fmt.Errorf("authorize agent %q: %w", opts.Agent, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "authorized agent %s (id %d)\n", a.Name, a.ID)
	return printAgent(opts.IO, opts.Format, a)
}

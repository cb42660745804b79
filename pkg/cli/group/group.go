// Package group implements `kk group`: create, list and delete agent groups
// and add agents to them or remove them.
package group

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// NewCmdGroup returns the `kk group` command group.
func NewCmdGroup(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "group <command>",
		Short: "Manage agent groups",
		Long:  `A job runs on an agent of the group its environment names (agents_group).`,
	})
	cmd.AddCommand(NewCmdCreate(f, nil))
	cmd.AddCommand(NewCmdList(f, nil))
	cmd.AddCommand(NewCmdDelete(f, nil))
	cmd.AddCommand(NewCmdAdd(f, nil))
	cmd.AddCommand(NewCmdRemove(f, nil))
	return cmd
}

func normalize(g api.Group) api.Group {
	if g.Agents == nil {
		g.Agents = []string{}
	}
	return g
}

func printGroups(ios *iostreams.IOStreams, format output.Format, gs []api.Group) error {
	out := make([]api.Group, len(gs))
	for i, g := range gs {
		out[i] = normalize(g)
	}
	if format != output.Table {
		return output.Write(ios.Out, format, out)
	}
	t := output.NewTable(ios, "id", "name", "agents")
	for _, g := range out {
		t.AddField(strconv.FormatInt(g.ID, 10))
		t.AddField(g.Name)
		t.AddField(strings.Join(g.Agents, ","))
		t.EndRow()
	}
	return t.Render()
}

func printGroup(ios *iostreams.IOStreams, format output.Format, g api.Group) error {
	g = normalize(g)
	if format != output.Table {
		return output.Write(ios.Out, format, g)
	}
	t := output.NewTable(ios)
	for _, kv := range [][2]string{
		{"ID:", strconv.FormatInt(g.ID, 10)},
		{"Name:", g.Name},
		{"Agents:", strings.Join(g.Agents, ", ")},
	} {
		t.AddField(kv[0])
		t.AddField(kv[1])
		t.EndRow()
	}
	return t.Render()
}

// NameOptions are the inputs of `kk group create|delete NAME`.
type NameOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Name string
}

// NewCmdCreate returns `kk group create NAME`.
func NewCmdCreate(f *factory.Factory, runF func(context.Context, *NameOptions) error) *cobra.Command {
	opts := &NameOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "create NAME",
		Short: "Create an agent group",
		Args:  cmdutil.ExactArgs(1, "missing group name: kk group create NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
}

func createRun(ctx context.Context, opts *NameOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	g, err := c.CreateGroup(ctx, api.CreateGroup{Name: opts.Name})
	if err != nil {
		return fmt.Errorf("create group %q: %w", opts.Name, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "created group %s (id %d)\n", g.Name, g.ID)
	return printGroup(opts.IO, opts.Format, g)
}

// NewCmdDelete returns `kk group delete NAME`.
func NewCmdDelete(f *factory.Factory, runF func(context.Context, *NameOptions) error) *cobra.Command {
	opts := &NameOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "delete NAME",
		Aliases:           []string{"rm"},
		Short:             "Delete an agent group",
		Args:              cmdutil.ExactArgs(1, "missing group name: kk group delete NAME"),
		ValidArgsFunction: cmdutil.FirstArgOnly(cmdutil.CompleteGroups(f)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return deleteRun(cmd.Context(), opts)
		},
	}
}

func deleteRun(ctx context.Context, opts *NameOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteGroup(ctx, opts.Name); err != nil {
		return fmt.Errorf("delete group %q: %w", opts.Name, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "deleted group %s\n", opts.Name)
	return nil
}

// ListOptions are the inputs of `kk group list`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format
}

// NewCmdList returns `kk group list`.
func NewCmdList(f *factory.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List agent groups with their agents",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	gs, err := c.ListGroups(ctx)
	if err != nil {
		return err
	}
	return printGroups(opts.IO, opts.Format, gs)
}

// MemberOptions are the inputs of `kk group add|remove GROUP AGENT`.
type MemberOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)
	Format output.Format

	Group string
	Agent string // name or id
	// Remove removes the agent instead of adding it.
	Remove bool
}

// NewCmdAdd returns `kk group add GROUP AGENT`.
func NewCmdAdd(f *factory.Factory, runF func(context.Context, *MemberOptions) error) *cobra.Command {
	return newMemberCmd(f, false, runF)
}

// NewCmdRemove returns `kk group remove GROUP AGENT`.
func NewCmdRemove(f *factory.Factory, runF func(context.Context, *MemberOptions) error) *cobra.Command {
	return newMemberCmd(f, true, runF)
}

func newMemberCmd(f *factory.Factory, remove bool, runF func(context.Context, *MemberOptions) error) *cobra.Command {
	opts := &MemberOptions{IO: f.IOStreams, Client: f.Client, Remove: remove}
	use, short := "add", "Add an agent to a group"
	if remove {
		use, short = "remove", "Remove an agent from a group"
	}
	agents := cmdutil.CompleteAgents(f, 1)
	groups := cmdutil.CompleteGroups(f)
	return &cobra.Command{
		Use:   use + " GROUP AGENT",
		Short: short,
		Args:  cmdutil.ExactArgs(2, fmt.Sprintf("missing arguments: kk group %s GROUP AGENT", use)),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return groups(cmd, args, toComplete)
			}
			return agents(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group, opts.Agent = args[0], args[1]
			opts.Format = f.Output()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return memberRun(cmd.Context(), opts)
		},
	}
}

func memberRun(ctx context.Context, opts *MemberOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var g api.Group
	if opts.Remove {
		g, err = c.RemoveAgentFromGroup(ctx, opts.Group, opts.Agent)
		if err != nil {
			return fmt.Errorf("remove agent %q from group %q: %w", opts.Agent, opts.Group, err)
		}
		fmt.Fprintf(opts.IO.ErrOut, "removed agent %s from group %s\n", opts.Agent, opts.Group)
	} else {
		g, err = c.AddAgentToGroup(ctx, opts.Group, opts.Agent)
		if err != nil {
			return fmt.Errorf("add agent %q to group %q: %w", opts.Agent, opts.Group, err)
		}
		fmt.Fprintf(opts.IO.ErrOut, "added agent %s to group %s\n", opts.Agent, opts.Group)
	}
	return printGroup(opts.IO, opts.Format, g)
}

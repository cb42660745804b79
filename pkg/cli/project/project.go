// Package project implements `kk project`: create, list, show and delete
// projects.
package project

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
)

// NewCmdProject returns the `kk project` command group.
func NewCmdProject(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "project <command>",
		Short: "Manage projects",
		Long:  "A project holds branches; a branch holds stages (schema code) and runs flows.",
	})
	cmd.AddCommand(NewCmdCreate(f, nil))
	cmd.AddCommand(NewCmdList(f, nil))
	cmd.AddCommand(NewCmdShow(f, nil))
	cmd.AddCommand(NewCmdDelete(f, nil))
	cmd.AddCommand(NewCmdWebhook(f, nil))
	cmd.AddCommand(NewCmdDeliveries(f, nil))
	return cmd
}

func printProjects(ios *iostreams.IOStreams, format output.Format, ps []ci.Project) error {
	return output.WriteList(ios, format, ps, []string{"id", "name", "description", "created"}, func(p ci.Project) []string {
		return []string{strconv.FormatInt(p.ID, 10), p.Name, p.Description, output.Time(ios, p.Created)}
	})
}

func printProject(ios *iostreams.IOStreams, format output.Format, p ci.Project) error {
	if format != output.Table {
		return output.Write(ios.Out, format, p)
	}
	t := output.NewTable(ios)
	for _, kv := range [][2]string{
		{"ID:", strconv.FormatInt(p.ID, 10)},
		{"Name:", p.Name},
		{"Description:", p.Description},
		{"Created:", output.Time(ios, p.Created)},
	} {
		t.AddField(kv[0])
		t.AddField(kv[1])
		t.EndRow()
	}
	return t.Render()
}

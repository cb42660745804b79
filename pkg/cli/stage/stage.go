// Package stage implements `kk stage`: apply stage schema files to a branch,
// list, show and delete stages, and show their trigger schedule.
package stage

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	"github.com/kraken-go/kk/pkg/client"
)

// NewCmdStage returns the `kk stage` command group.
func NewCmdStage(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "stage <command>",
		Short: "Manage the stages (schema code) of a branch",
	})
	cmd.AddCommand(NewCmdApply(f, nil))
	cmd.AddCommand(NewCmdList(f, nil))
	cmd.AddCommand(NewCmdShow(f, nil))
	cmd.AddCommand(NewCmdDelete(f, nil))
	cmd.AddCommand(NewCmdSchedule(f, nil))
	return cmd
}

func printStages(ios *iostreams.IOStreams, format output.Format, ss []ci.Stage) error {
	return output.WriteList(ios, format, ss, []string{"id", "name", "parent", "enabled", "updated"}, func(s ci.Stage) []string {
		return []string{strconv.FormatInt(s.ID, 10), s.Name, s.Parent, strconv.FormatBool(s.Enabled), output.Time(ios, s.Updated)}
	})
}

func printStage(ios *iostreams.IOStreams, format output.Format, s ci.Stage) error {
	if format != output.Table {
		return output.Write(ios.Out, format, s)
	}
	t := output.NewTable(ios)
	for _, kv := range [][2]string{
		{"ID:", strconv.FormatInt(s.ID, 10)},
		{"Name:", s.Name},
		{"Branch:", strconv.FormatInt(s.BranchID, 10)},
		{"Parent:", s.Parent},
		{"Enabled:", strconv.FormatBool(s.Enabled)},
		{"Updated:", output.Time(ios, s.Updated)},
	} {
		t.AddField(kv[0])
		t.AddField(kv[1])
		t.EndRow()
	}
	return t.Render()
}

// findStage returns the stage of a branch by name, or by id when name is a number.
func findStage(ctx context.Context, c *client.Client, ref cmdutil.BranchRef, name string) (ci.Stage, error) {
	b, err := cmdutil.ResolveBranch(ctx, c, ref)
	if err != nil {
		return ci.Stage{}, err
	}
	ss, err := c.ListStages(ctx, b.ID)
	if err != nil {
		return ci.Stage{}, fmt.Errorf("stages of %s: %w", ref, err)
	}
	for _, s := range ss {
		if s.Name == name {
			return s, nil
		}
	}
	if id, err := strconv.ParseInt(name, 10, 64); err == nil {
		for _, s := range ss {
			if s.ID == id {
				return s, nil
			}
		}
	}
	return ci.Stage{}, fmt.Errorf("stage %q not found in %s: see `kk stage list %s`: %w", name, ref, ref, ci.ErrNotFound)
}

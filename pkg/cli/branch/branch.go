// Package branch implements `kk branch`: create, list, show and delete the
// branches of a project. Branches are named PROJECT/BRANCH; the branch part is
// everything after the first '/', so "demo/feature/x" is branch "feature/x".
package branch

import (
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
)

// NewCmdBranch returns the `kk branch` command group.
func NewCmdBranch(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:   "branch <command>",
		Short: "Manage the branches of a project",
	})
	cmd.AddCommand(NewCmdCreate(f, nil))
	cmd.AddCommand(NewCmdList(f, nil))
	cmd.AddCommand(NewCmdShow(f, nil))
	cmd.AddCommand(NewCmdDelete(f, nil))
	cmd.AddCommand(NewCmdSet(f, nil))
	return cmd
}

func printBranches(ios *iostreams.IOStreams, format output.Format, bs []ci.Branch) error {
	return output.WriteList(ios, format, bs, []string{"id", "name", "repo branch", "created"}, func(b ci.Branch) []string {
		return []string{strconv.FormatInt(b.ID, 10), b.Name, b.RepoBranch, output.Time(ios, b.Created)}
	})
}

func printBranch(ios *iostreams.IOStreams, format output.Format, project string, b ci.Branch) error {
	if format != output.Table {
		return output.Write(ios.Out, format, b)
	}
	t := output.NewTable(ios)
	rows := [][2]string{
		{"ID:", strconv.FormatInt(b.ID, 10)},
		{"Name:", b.Name},
		{"Project:", project},
		{"Repo branch:", b.RepoBranch},
		{"Created:", output.Time(ios, b.Created)},
		{"Retention:", "flows " + keepDays(b.Retention.KeepFlowsDays, ci.DefaultKeepFlowsDays) +
			", logs " + keepDays(b.Retention.KeepLogsDays, ci.DefaultKeepLogsDays) +
			", artifacts " + keepDays(b.Retention.KeepArtifactsDays, ci.DefaultKeepArtifactsDays)},
	}
	if len(b.Env) > 0 {
		keys := make([]string, 0, len(b.Env))
		for k := range b.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		env := make([]string, len(keys))
		for i, k := range keys {
			env[i] = k + "=" + b.Env[k]
		}
		rows = append(rows, [2]string{"Env:", strings.Join(env, " ")})
	}
	for _, kv := range rows {
		t.AddField(kv[0])
		t.AddField(kv[1])
		t.EndRow()
	}
	return t.Render()
}

// keepDays renders a retention setting ("30d (default)").
func keepDays(days, def int) string {
	if days <= 0 {
		return strconv.Itoa(def) + "d (default)"
	}
	return strconv.Itoa(days) + "d"
}

// Package stage implements `kk stage`: apply stage schema files to a branch,
// list, show and delete stages, and show their trigger schedule.
package stage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

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
	cmd.AddCommand(NewCmdRefresh(f, nil))
	return cmd
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// firstLine is s up to its first newline, with "…" when cut.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// repoCols are the list columns of a stage's repository state: the
// version (commit) and the last refresh's error.
func repoCols(s ci.Stage) (string, string) {
	if s.Repo == nil {
		return "", ""
	}
	return shortSHA(s.Repo.Version), firstLine(s.Repo.Error)
}

func printStages(ios *iostreams.IOStreams, format output.Format, ss []ci.Stage) error {
	return output.WriteList(ios, format, ss, []string{"id", "name", "parent", "enabled", "updated", "repo version", "repo error"}, func(s ci.Stage) []string {
		version, repoErr := repoCols(s)
		return []string{strconv.FormatInt(s.ID, 10), s.Name, s.Parent, strconv.FormatBool(s.Enabled), output.Time(ios, s.Updated), version, repoErr}
	})
}

func printStage(ios *iostreams.IOStreams, format output.Format, s ci.Stage) error {
	if format != output.Table {
		return output.Write(ios.Out, format, s)
	}
	t := output.NewTable(ios)
	rows := [][2]string{
		{"ID:", strconv.FormatInt(s.ID, 10)},
		{"Name:", s.Name},
		{"Branch:", strconv.FormatInt(s.BranchID, 10)},
		{"Parent:", s.Parent},
		{"Enabled:", strconv.FormatBool(s.Enabled)},
		{"Updated:", output.Time(ios, s.Updated)},
	}
	if r := s.Repo; r != nil {
		refresh := "on pushes and before runs"
		if r.RefreshSeconds > 0 {
			refresh = "every " + (time.Duration(r.RefreshSeconds) * time.Second).String()
		}
		refreshed := ""
		if r.Refreshed != nil {
			refreshed = output.Time(ios, *r.Refreshed)
		}
		rows = append(rows,
			[2]string{"Repo:", r.URL},
			[2]string{"Repo branch:", r.Branch},
			[2]string{"Repo path:", r.Path},
			[2]string{"Token secret:", r.TokenSecret},
			[2]string{"Refresh:", refresh},
			[2]string{"Repo version:", r.Version},
			[2]string{"Refreshed:", refreshed},
		)
		if r.Error != "" {
			for i, line := range strings.Split(r.Error, "\n") {
				key := ""
				if i == 0 {
					key = "Repo error:"
				}
				rows = append(rows, [2]string{key, line})
			}
		}
	}
	for _, kv := range rows {
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

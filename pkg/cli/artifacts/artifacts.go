// Package artifacts implements `kk artifacts`: list the files the jobs of a
// flow or run stored, and download one.
package artifacts

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
)

// NewCmdArtifacts returns the `kk artifacts` command group.
func NewCmdArtifacts(f *factory.Factory) *cobra.Command {
	cmd := cmdutil.GroupCommand(&cobra.Command{
		Use:     "artifacts <command>",
		Aliases: []string{"artifact"},
		Short:   "List and download the artifacts of flows and runs",
		Long: `Artifacts are the files jobs store with the artifacts tool. List those of a
flow (all its runs) or of one run, and download one by id.`,
	})
	cmd.AddCommand(NewCmdList(f, nil))
	cmd.AddCommand(NewCmdGet(f, nil))
	return cmd
}

// Scope of a list: a flow or a run.
type Scope string

const (
	ScopeFlow Scope = "flow"
	ScopeRun  Scope = "run"
)

// Ref names a flow or a run.
type Ref struct {
	Scope Scope
	ID    int64
}

func (r Ref) String() string { return fmt.Sprintf("%s %d", r.Scope, r.ID) }

// ParseRef parses flow/ID, run/ID or a bare flow ID.
func ParseRef(s string) (Ref, error) {
	const hint = "give flow/ID, run/ID or a flow ID (see `kk flow list PROJECT/BRANCH` and `kk flow show FLOW`)"
	kind, num, ok := strings.Cut(s, "/")
	if !ok {
		kind, num = string(ScopeFlow), s
	}
	switch Scope(kind) {
	case ScopeFlow, ScopeRun:
	default:
		return Ref{}, cmdutil.UsageErrorf("invalid reference %q: %s", s, hint)
	}
	id, err := cmdutil.ParseID(kind, num, hint)
	if err != nil {
		return Ref{}, err
	}
	return Ref{Scope: Scope(kind), ID: id}, nil
}

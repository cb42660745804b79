package cmdutil

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// ExactArgs requires n arguments; msg says what is missing.
func ExactArgs(n int, msg string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < n:
			return UsageErrorf("%s", msg)
		case len(args) > n:
			return UsageErrorf("too many arguments: %s takes %d, got %d (%q)",
				cmd.CommandPath(), n, len(args), strings.Join(args[n:], " "))
		}
		return nil
	}
}

// NoArgs rejects positional arguments.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " "))
	}
	return nil
}

// GroupCommand makes cmd (a command that only groups subcommands, like
// `kk project`) fail with a usage error when run without a known subcommand.
func GroupCommand(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			var names []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() && c.Name() != "help" {
					names = append(names, c.Name())
				}
			}
			return UsageErrorf("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(names, ", "))
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf("; did you mean %q?", s[0])
		}
		return UsageErrorf("%s", msg)
	}
	return cmd
}

// BranchRef is a PROJECT/BRANCH reference. The project is a name or an id; the
// branch is everything after the first '/', so branch names may contain '/'.
type BranchRef struct {
	Project string
	Branch  string
}

func (r BranchRef) String() string { return r.Project + "/" + r.Branch }

// ParseBranchRef parses PROJECT/BRANCH, splitting on the first '/'.
func ParseBranchRef(s string) (BranchRef, error) {
	p, b, ok := strings.Cut(s, "/")
	if !ok || p == "" || b == "" {
		return BranchRef{}, UsageErrorf("invalid branch reference %q: want PROJECT/BRANCH, e.g. myproject/main", s)
	}
	return BranchRef{Project: p, Branch: b}, nil
}

// ParseID parses the numeric id of a kind of object (flow, run, job, stage).
// hint says where to find ids.
func ParseID(kind, s, hint string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, UsageErrorf("invalid %s id %q: want a positive number (%s)", kind, s, hint)
	}
	return n, nil
}

// ParseKeyValues parses k=v pairs given with flag (e.g. --arg); later pairs
// override earlier ones.
func ParseKeyValues(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, UsageErrorf("invalid %s %q: want KEY=VALUE", flag, p)
		}
		m[k] = v
	}
	return m, nil
}
